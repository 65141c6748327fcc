"""Layer access beyond items: collections, OpenAPI, tiles, TileJSON and planner queries.

With authentication on, a layer whose sensitivity the caller's role may not read is not
listed and answers 401 (anonymous) or 403; an analyst reads the restricted ``population``
layer with personal fields masked (left out of tiles), a supervisor as stored; every read of
the restricted layer is audited. The rule is ``layers.access.Reader``'s, fed by
``api/policy.yaml``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.security.tokens import issue_token
from schemas.accounts import create_user
from schemas.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
NAME, ID_NUMBER, PHONE = "王五六", "440114198802023456", "13900001111"
LON, LAT = 113.20513, 23.40517
ROLES = ("planner", "analyst", "supervisor")
MULTI = "/tiles/WebMercatorQuad/14/6964/13386"
TILE_ACTION = (
    "GET /collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"
)


@pytest.fixture(scope="module")
def secure_settings(district) -> Settings:
    """Return the district's settings with authentication on."""
    return district.settings.model_copy(
        update={"auth_enabled": True, "secret_key": "test-secret-" + secrets.token_hex(8)}
    )


@pytest.fixture(scope="module")
def secure(district, secure_settings) -> Iterator[TestClient]:
    """Yield a client of an app over the district with authentication on."""
    with TestClient(create_app(secure_settings, catalog=district.catalog)) as client:
        yield client


@pytest.fixture(scope="module")
def who(district, secure_settings) -> dict[str, dict[str, str]]:
    """Create a planner, an analyst and a supervisor; return each one's headers (and name)."""
    suffix = secrets.token_hex(3)
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    with district.engine.begin() as conn:
        for role in ROLES:
            user = create_user(
                conn,
                name=f"{role}_{suffix}",
                role=role,
                password="correct horse battery",
                district_code=district.settings.district_code,
            )
            token = issue_token(user, secure_settings, now=datetime.now(UTC)).access_token
            out[role] = {"Authorization": f"Bearer {token}", "X-Name": user.name}
    return out


def _h(who, role: str) -> dict[str, str]:
    return {k: v for k, v in who[role].items() if k != "X-Name"}


@pytest.fixture(scope="module")
def person(district) -> str:
    """Write one population record at a known point; return its record id."""
    record = f"ACC{secrets.token_hex(6).upper()}"
    with district.engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO layers.population (record_id, person_name, id_number, phone,
                    residence_type, building_code, residents, geom, district_code)
                VALUES (:record, :name, :id, :phone, 'registered', '4401140010010000001', 3,
                    ST_SetSRID(ST_MakePoint(:lon, :lat), 4490), :district)
                """
            ),
            {
                "record": record,
                "name": NAME,
                "id": ID_NUMBER,
                "phone": PHONE,
                "lon": LON,
                "lat": LAT,
                "district": district.settings.district_code,
            },
        )
    return record


def _audited(district, name: str, action: str) -> list[dict]:
    with district.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM audit_log WHERE who = :who AND action = :action ORDER BY id DESC"),
            {"who": name, "action": action},
        ).mappings()
        return [dict(r) for r in rows]


def test_collections_list_only_what_the_role_may_read(secure, who):
    listed = {}
    for role in ("anonymous", *ROLES):
        response = secure.get("/collections", headers=_h(who, role))
        assert response.status_code == 200, response.text
        listed[role] = {c["id"] for c in response.json()["collections"]}
    assert "building" in listed["anonymous"]
    assert "manhole_cover" not in listed["anonymous"] and "population" not in listed["anonymous"]
    assert "manhole_cover" in listed["planner"] and "population" not in listed["planner"]
    assert {"manhole_cover", "population"} <= listed["analyst"] == listed["supervisor"]
    docs = {role: secure.get("/api", headers=_h(who, role)).json()["paths"] for role in who}
    assert "/collections/building/items" in docs["anonymous"]
    assert "/collections/manhole_cover/items" not in docs["anonymous"]
    assert "/collections/manhole_cover/items" in docs["planner"]
    assert "/collections/population/items" not in docs["planner"]
    assert "/collections/population/items" in docs["analyst"]
    queryables = {
        role: set(
            secure.get("/collections/population/queryables", headers=_h(who, role)).json()[
                "properties"
            ]
        )
        for role in ("analyst", "supervisor")
    }
    assert "residents" in queryables["analyst"] and "person_name" not in queryables["analyst"]
    assert {"person_name", "id_number", "phone"} <= queryables["supervisor"]


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("anonymous", "/collections/manhole_cover", 401),
        ("anonymous", "/collections/manhole_cover/tiles/WebMercatorQuad/tilejson.json", 401),
        (
            "anonymous",
            "/tiles/WebMercatorQuad/14/6964/13386?collections=building,manhole_cover",
            401,
        ),
        ("planner", "/collections/population", 403),
        ("planner", "/collections/population/tiles/WebMercatorQuad/14/6964/13386", 403),
        ("planner", "/tiles/WebMercatorQuad/tilejson.json?collections=building,population", 403),
        ("planner", f"/nearby?lon={LON}&lat={LAT}&layers=school,population", 403),
        ("planner", "/coverage?layer=population&max_distance_m=500", 403),
        ("anonymous", f"/nearby?lon={LON}&lat={LAT}&layers=manhole_cover", 401),
    ],
)
def test_layers_a_role_may_not_read_are_refused(secure, who, role, path, status):
    response = secure.get(path, headers=_h(who, role))
    assert response.status_code == status, response.text
    assert NAME not in response.text


def test_planner_reads_internal_layers_everywhere(secure, who):
    tile = TMS.tile(LON, LAT, 14)
    headers = _h(who, "planner")
    path = f"/collections/manhole_cover/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    assert secure.get(path, headers=headers).status_code in (200, 204)
    near = secure.get(f"/nearby?lon={LON}&lat={LAT}&layers=manhole_cover&k=2", headers=headers)
    assert near.status_code == 200 and near.json()["layers"]["manhole_cover"]["numberReturned"] == 2


def _population_tile(secure, who, role: str) -> dict:
    tile = TMS.tile(LON, LAT, 16)
    response = secure.get(
        f"/collections/population/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}",
        headers=_h(who, role),
    )
    assert response.status_code == 200, response.text
    return mapbox_vector_tile.decode(response.content)["population"]


def test_tiles_leave_personal_fields_out_for_masked_roles(secure, who, person, district):
    analyst = _population_tile(secure, who, "analyst")
    props = [f["properties"] for f in analyst["features"]]
    assert any(p.get("record_id") == person for p in props)
    assert not any({"person_name", "id_number", "phone"} & set(p) for p in props)
    supervisor = _population_tile(secure, who, "supervisor")
    mine = [
        f["properties"] for f in supervisor["features"] if f["properties"]["record_id"] == person
    ]
    assert mine and mine[0]["id_number"] == ID_NUMBER
    tilejson = secure.get(
        "/collections/population/tiles/WebMercatorQuad/tilejson.json",
        headers=_h(who, "analyst"),
    ).json()
    assert "person_name" not in tilejson["vector_layers"][0]["fields"]
    assert "residents" in tilejson["vector_layers"][0]["fields"]
    tile = TMS.tile(LON, LAT, 16)
    refused = secure.get(
        f"/collections/population/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
        "?properties=person_name",
        headers=_h(who, "analyst"),
    )
    assert refused.status_code == 400
    for role in ("analyst", "supervisor"):
        rows = _audited(district, who[role]["X-Name"], TILE_ACTION)
        assert rows and rows[0]["detail"]["sensitivity"] == "restricted"


def test_planner_queries_mask_restricted_layers_and_audit(secure, who, person, district):
    params = f"/nearby?lon={LON}&lat={LAT}&layers=population&k=1"
    seen = {}
    for role in ("analyst", "supervisor"):
        response = secure.get(params, headers=_h(who, role))
        assert response.status_code == 200, response.text
        seen[role] = response.json()["layers"]["population"]["features"][0]["properties"]
        assert _audited(district, who[role]["X-Name"], "GET /nearby")
    assert seen["analyst"]["record_id"] == seen["supervisor"]["record_id"] == person
    assert (seen["analyst"]["person_name"], seen["analyst"]["phone"]) == ("王**", "139****1111")
    assert seen["supervisor"]["id_number"] == ID_NUMBER

    body = {"layers": ["population"], "point": [LON, LAT], "buffer_m": 5}
    refused = secure.post("/within", json=body, headers=_h(who, "planner"))
    assert refused.status_code == 403 and NAME not in refused.text
    analyst = secure.post("/within", json=body, headers=_h(who, "analyst"))
    assert analyst.status_code == 200, analyst.text
    assert ID_NUMBER not in analyst.text and PHONE not in analyst.text
    assert "440114********3456" in analyst.text
    row = _audited(district, who["analyst"]["X-Name"], "POST /within")[0]
    assert row["detail"]["layers"] == ["population"]
    assert row["detail"]["sensitivity"] == "restricted"
    internal = secure.post(
        "/within",
        json={"layers": ["manhole_cover"], "point": [LON, LAT], "buffer_m": 300},
        headers=_h(who, "planner"),
    )
    assert internal.status_code == 200, internal.text
