"""Masking of personal fields: the pure rule, and restricted layers over the OGC feature routes.

Analysts read ``population`` with names, identity numbers and phones masked; supervisors and
admins read them as stored; roles not allowed personal data are refused by the policy. Each
read of the restricted layer, masked or not, is audited.
"""

from __future__ import annotations

import secrets

import pytest
from security_support import Accounts, audit_rows
from sqlalchemy import Engine, text

from layers.masking import (
    Kind,
    kind_of,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_properties,
    mask_value,
    masks_personal,
)
from layers.registry import default_catalog
from schemas.accounts import Role
from schemas.settings import Settings

NAME, ID_NUMBER, PHONE = "张三丰", "440114199001011234", "13812345678"
ITEMS = "GET /collections/{collectionId}/items"


@pytest.mark.parametrize(
    ("field", "value", "masked"),
    [
        ("person_name", NAME, "张**"),
        ("head_name", "李四", "李**"),
        ("person_name", "X", "X**"),
        ("id_number", ID_NUMBER, "440114********1234"),
        ("head_id_number", "44011419900101123X", "440114********123X"),
        ("id_number", "1234567890", "**********"),  # too short to keep both ends
        ("phone", PHONE, "138****5678"),
        ("phone", "020-86881234", "020****1234"),
        ("phone", "1234567", "*******"),
        ("guardian_note", "secret", "***"),
        ("phone", None, None),
    ],
)
def test_mask_value_keeps_the_shape_only(field, value, masked):
    assert mask_value(field, value) == masked


def test_masking_never_returns_the_value_and_tells_kinds_apart():
    assert [kind_of(f) for f in ("person_name", "id_number", "phone", "remark")] == [
        Kind.name,
        Kind.id_number,
        Kind.phone,
        Kind.other,
    ]
    for value in (NAME, ID_NUMBER, PHONE):
        assert value not in {mask_name(value), mask_id_number(value), mask_phone(value)}
    assert masks_personal("analyst") is True
    assert masks_personal("planner") is True  # a role not named as unmasked is masked
    assert masks_personal("supervisor") is masks_personal("admin") is False
    assert masks_personal(None) is False


def test_mask_properties_masks_only_personal_fields(settings: Settings):
    layer = default_catalog(settings.catalog_dir).layer("population")
    assert set(layer.personal_fields) == {"person_name", "id_number", "phone"}
    props = {"person_name": NAME, "id_number": ID_NUMBER, "phone": PHONE, "residents": 4}
    assert mask_properties(layer, props) == {
        "person_name": "张**",
        "id_number": "440114********1234",
        "phone": "138****5678",
        "residents": 4,
    }


@pytest.fixture(scope="module")
def person(engine: Engine, settings: Settings) -> dict[str, object]:
    """Write one population record and return its fid and record id."""
    record = f"MASK{secrets.token_hex(6).upper()}"
    with engine.begin() as conn:
        fid = conn.execute(
            text(
                """
                INSERT INTO layers.population (record_id, person_name, id_number, phone,
                    residence_type, building_code, residents, geom, district_code)
                VALUES (:record, :name, :id, :phone, 'registered', '4401140010010000001', 3,
                    ST_SetSRID(ST_MakePoint(113.2051, 23.4051), 4490), :district)
                RETURNING fid
                """
            ),
            {
                "record": record,
                "name": NAME,
                "id": ID_NUMBER,
                "phone": PHONE,
                "district": settings.district_code,
            },
        ).scalar_one()
    return {"fid": int(fid), "record": record}


def _feature(secure_client, accounts: Accounts, role: Role, person) -> dict:
    response = secure_client.get(
        "/collections/population/items",
        params={"filter": f"record_id = '{person['record']}'"},
        headers=accounts.headers(role),
    )
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert len(features) == 1
    return features[0]["properties"]


def test_analyst_reads_population_masked_and_audited(secure_client, accounts, person, engine):
    props = _feature(secure_client, accounts, Role.analyst, person)
    assert (props["person_name"], props["id_number"], props["phone"]) == (
        "张**",
        "440114********1234",
        "138****5678",
    )
    assert props["residents"] == 3 and props["record_id"] == person["record"]
    row = audit_rows(engine, who=accounts.users[Role.analyst].name, action=ITEMS)[0]
    assert (row["target"], row["status"]) == ("population", 200)
    assert row["detail"]["sensitivity"] == "restricted"

    one = secure_client.get(
        f"/collections/population/items/{person['fid']}", headers=accounts.headers(Role.analyst)
    )
    assert one.status_code == 200, one.text
    assert one.json()["properties"]["id_number"] == "440114********1234"
    assert ID_NUMBER not in one.text and PHONE not in one.text and NAME not in one.text


@pytest.mark.parametrize(
    "params",
    [
        {"filter": f"person_name = '{NAME}'"},
        {"filter": "id_number LIKE '4401141990%'"},
        {"sortby": "phone"},
    ],
)
def test_analyst_cannot_filter_or_sort_on_personal_fields(secure_client, accounts, person, params):
    response = secure_client.get(
        "/collections/population/items", params=params, headers=accounts.headers(Role.analyst)
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("role", [Role.supervisor, Role.admin])
def test_supervisor_and_admin_read_raw_values(secure_client, accounts, person, role):
    props = _feature(secure_client, accounts, role, person)
    assert (props["person_name"], props["id_number"], props["phone"]) == (NAME, ID_NUMBER, PHONE)
    filtered = secure_client.get(
        "/collections/population/items",
        params={"filter": f"id_number = '{ID_NUMBER}'"},
        headers=accounts.headers(role),
    )
    assert filtered.status_code == 200
    assert person["record"] in filtered.text


@pytest.mark.parametrize("role", [Role.planner, Role.dispatcher, Role.anonymous])
def test_roles_without_personal_data_are_refused(secure_client, accounts, person, role):
    response = secure_client.get(
        f"/collections/population/items/{person['fid']}", headers=accounts.headers(role)
    )
    assert response.status_code in (401, 403)
    assert ID_NUMBER not in response.text
