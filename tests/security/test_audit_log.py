"""The audit log, the actor the routers see, and the rate limit: all from the one middleware."""

from __future__ import annotations

import pytest
import yaml
from fastapi import Header
from fastapi.testclient import TestClient
from security_support import audit_rows

from api.app import create_app
from api.security.policy import POLICY_FILE, Policy
from schemas.accounts import Role

ITEMS = "GET /collections/{collectionId}/items"


def test_a_write_is_audited_without_its_secrets(secure_client, engine, accounts):
    admin = accounts.users[Role.admin]
    answer = secure_client.post(
        "/keys", json={"system": "city_management"}, headers=accounts.headers(Role.admin)
    )
    assert answer.status_code == 201, answer.text
    secret = answer.json()["key"]
    row = audit_rows(engine, who=admin.name, action="POST /keys")[0]
    assert row["role"] == "admin" and row["status"] == 201
    assert row["client"] == "testclient" and row["district_code"] == "440114"
    assert row["at"] is not None
    assert secret not in str(row)


def test_a_refused_write_is_audited_too(secure_client, engine, accounts):
    before = len(audit_rows(engine, action="POST /layers/{code}/loads"))
    anonymous = secure_client.post("/layers/school/loads", files={"file": ("a.csv", b"x,y\n")})
    planner = secure_client.post(
        "/layers/school/loads",
        files={"file": ("a.csv", b"x,y\n")},
        headers=accounts.headers(Role.planner),
    )
    assert (anonymous.status_code, planner.status_code) == (401, 403)
    rows = audit_rows(engine, action="POST /layers/{code}/loads")
    assert len(rows) == before + 2
    assert [(r["who"], r["status"], r["target"]) for r in rows[:2]] == [
        (accounts.users[Role.planner].name, 403, "school"),
        ("anonymous", 401, "school"),
    ]
    assert "may not" in rows[0]["detail"]["refused"]


def test_restricted_reads_are_audited_and_public_ones_are_not(secure_client, engine, accounts):
    analyst = accounts.users[Role.analyst].name
    planner = accounts.users[Role.planner].name
    read = secure_client.get(
        "/collections/population/items?limit=5", headers=accounts.headers(Role.analyst)
    )
    assert read.status_code not in (401, 403)
    row = audit_rows(engine, who=analyst, action=ITEMS)[0]
    assert row["target"] == "population" and row["status"] == read.status_code
    assert row["detail"]["sensitivity"] == "restricted" and row["detail"]["query"] == {"limit": "5"}

    refused = secure_client.get(
        "/collections/population/items", headers=accounts.headers(Role.planner)
    )
    assert refused.status_code == 403
    assert audit_rows(engine, who=planner, action=ITEMS)[0]["status"] == 403

    before = len(audit_rows(engine, action=ITEMS))
    public = secure_client.get("/collections/school/items", headers=accounts.headers(Role.planner))
    assert public.status_code == 200
    assert len(audit_rows(engine, action=ITEMS)) == before


def test_the_audit_log_is_readable_by_supervisors_only(secure_client, accounts):
    rows = secure_client.get(
        "/audit?action=POST&limit=5", headers=accounts.headers(Role.supervisor)
    )
    assert rows.status_code == 200 and 0 < len(rows.json()) <= 5
    assert all(r["action"].startswith("POST") for r in rows.json())
    assert secure_client.get("/audit", headers=accounts.headers(Role.planner)).status_code == 403


@pytest.fixture(scope="module")
def probe_client(secure_settings, engine):
    """An app with a route that shows the actor header, and a tight anonymous rate limit."""
    data = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    data["rules"].append({"paths": ["/probe"], "methods": ["GET"], "allow": ["everyone"]})
    data["rules"].append(
        {
            "paths": ["/probe"],
            "methods": ["POST"],
            "allow": ["everyone"],
            "rate_limit": {"requests": 2, "seconds": 60},
        }
    )
    app = create_app(secure_settings)
    app.state.policy = Policy.model_validate(data)

    @app.get("/probe")
    def probe(x_sibiao_user: str | None = Header(default=None)) -> dict[str, str | None]:
        return {"actor": x_sibiao_user}

    @app.post("/probe")
    def probe_post() -> dict[str, str]:
        return {"ok": "yes"}

    with TestClient(app) as client:
        yield client


def test_the_actor_header_is_the_caller_never_what_the_client_claims(probe_client, accounts):
    claimed = {"X-Sibiao-User": "someone_else"}
    mine = probe_client.get("/probe", headers=claimed | accounts.headers(Role.dispatcher))
    assert mine.json() == {"actor": accounts.users[Role.dispatcher].name}
    nobody = probe_client.get("/probe", headers=claimed)
    assert nobody.json() == {"actor": "anonymous"}
    system = probe_client.get("/probe", headers=claimed | accounts.headers(Role.system))
    assert system.json() == {"actor": f"key:{accounts.key_id}:hotline_12345"}


def test_anonymous_callers_are_rate_limited_and_signed_in_ones_are_not(probe_client, accounts):
    codes = [probe_client.post("/probe").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = probe_client.post("/probe")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "too many requests" in limited.json()["detail"]
    signed_in = [
        probe_client.post("/probe", headers=accounts.headers(Role.planner)).status_code
        for _ in range(3)
    ]
    assert signed_in == [200, 200, 200]


def test_nul_and_lone_surrogates_cannot_hide_a_request_from_the_audit_log(
    secure_client, engine, accounts
):
    """PostgreSQL refuses NUL in text and JSON; the row must still be written."""
    planner = accounts.users[Role.planner]
    answer = secure_client.post(
        "/within?crs=EPSG%3A4490%00%ED%A0%80&tag=hide%00me",
        json={"layers": ["school"], "point": [113.2, 23.4], "buffer_m": 10},
        headers=accounts.headers(Role.planner),
    )
    assert answer.status_code == 400, answer.text  # refused before routing: NUL in the URL
    rows = audit_rows(engine, who=planner.name, target="/within")
    assert rows, "the request left no audit row"
    assert rows[0]["status"] == 400 and rows[0]["action"] == "POST <no route>"
    query = rows[0]["detail"]["query"]
    assert query["tag"] == "hide\ufffdme"
    assert "\x00" not in str(rows[0])


def test_a_sign_in_with_nul_is_refused_and_audited(secure_client, engine):
    answer = secure_client.post(
        "/auth/token", data={"username": "nul\x00name", "password": "whatever-long"}
    )
    assert answer.status_code == 401, answer.text
    rows = audit_rows(engine, action="POST /auth/token", status=401)
    assert any(r["detail"].get("username") == "nul\ufffdname" for r in rows[:5]), rows[:5]
