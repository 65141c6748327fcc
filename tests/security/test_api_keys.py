"""API keys of the intake systems: valid, revoked, bound to one system; Open311's api_key."""

from __future__ import annotations

from datetime import UTC, datetime

from security_support import SYSTEM, audit_rows

from schemas.accounts import create_key, find_key, list_keys, revoke_key


def test_a_valid_key_is_the_system_it_is_bound_to(secure_client, accounts, engine):
    answer = secure_client.get("/auth/me", headers={"X-API-Key": accounts.key})
    assert answer.status_code == 200
    assert answer.json()["role"] == "system" and answer.json()["system"] == SYSTEM
    with engine.connect() as conn:
        (record,) = [k for k in list_keys(conn) if k.id == accounts.key_id]
    assert record.last_used_at is not None
    assert accounts.key not in str(record.as_dict())


def test_the_key_acts_only_for_its_own_system(secure_client, accounts):
    own = secure_client.post(f"/intake/{SYSTEM}", json={}, headers={"X-API-Key": accounts.key})
    assert own.status_code not in (401, 403), own.text
    other = secure_client.post(
        "/intake/city_management", json={}, headers={"X-API-Key": accounts.key}
    )
    assert other.status_code == 403
    assert "bound to 'hotline_12345'" in other.json()["detail"]
    # a system key may not read cases, whatever it may send
    assert secure_client.get("/cases", headers={"X-API-Key": accounts.key}).status_code == 403


def test_revoked_unknown_and_doubled_keys_are_refused(secure_client, engine, accounts, settings):
    with engine.begin() as conn:
        key, secret = create_key(conn, system=SYSTEM, district_code=settings.district_code)
    assert secure_client.get("/auth/me", headers={"X-API-Key": secret}).status_code == 200
    with engine.begin() as conn:
        revoked = revoke_key(conn, key.id, now=datetime.now(UTC))
        again = revoke_key(conn, key.id, now=datetime.now(UTC))
    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    for headers in (
        {"X-API-Key": secret},
        {"X-API-Key": secret[:-1] + ("A" if secret[-1] != "A" else "B")},
        {"X-API-Key": "sbk_nothing"},
        {"X-API-Key": accounts.key, "Authorization": "Bearer x"},
    ):
        answer = secure_client.get("/auth/me", headers=headers)
        assert answer.status_code == 401, headers
    with engine.connect() as conn:
        assert find_key(conn, secret, now=datetime.now(UTC)) is None


def test_open311_api_key_field_identifies_the_system(secure_client, engine, accounts):
    form = {"api_key": accounts.key, "service_code": "9999", "lat": "23.4", "long": "113.2"}
    answer = secure_client.post("/open311/v2/requests.json", data=form)
    assert answer.status_code not in (401, 403), answer.text
    (row,) = audit_rows(
        engine, who=f"key:{accounts.key_id}:{SYSTEM}", action="POST /open311/v2/requests.{fmt}"
    )[:1]
    assert row["role"] == "system" and row["status"] == answer.status_code
    assert accounts.key not in str(row)
    # any other api_key is just an anonymous client (Open311 asks every client for one)
    anonymous = secure_client.post("/open311/v2/requests.json", data=form | {"api_key": "mini"})
    assert anonymous.status_code not in (401, 403)
    assert audit_rows(engine, action="POST /open311/v2/requests.{fmt}")[0]["who"] == "anonymous"
