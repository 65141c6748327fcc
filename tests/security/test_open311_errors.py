"""Refusals on Open311 paths speak GeoReport v2: a list of {code, description}, XML for .xml.

The mini-program and other GeoReport clients parse that list; a problem+json answer from the
security middleware (bad credentials, a refusal before routing) or from the guard (rate limit)
would reach them as an unreadable error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.security.policy import POLICY_FILE, load_policy
from schemas.accounts import Role
from schemas.settings import Settings

SERVICES = "/open311/v2/services"


def _json_errors(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert isinstance(body, list) and len(body) == 1, body
    assert body[0]["code"] == status and body[0]["description"]
    return str(body[0]["description"])


def _xml_errors(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == "errors"
    errors = root.findall("error")
    assert len(errors) == 1
    assert errors[0].findtext("code") == str(status)
    return errors[0].findtext("description") or ""


def test_bad_token_on_open311_is_a_georeport_401(secure_client):
    headers = {"Authorization": "Bearer not-a-token"}
    answer = secure_client.get(f"{SERVICES}.json", headers=headers)
    assert "not valid" in _json_errors(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    answer = secure_client.get(f"{SERVICES}.xml", headers=headers)
    assert "not valid" in _xml_errors(answer, 401)


def test_token_and_key_together_on_open311_is_a_georeport_401(secure_client, accounts):
    headers = {**accounts.headers(Role.admin), "X-API-Key": accounts.key}
    answer = secure_client.post(
        "/open311/v2/requests.xml", data={"service_code": "CA01"}, headers=headers
    )
    assert "not both" in _xml_errors(answer, 401)


def test_bad_token_elsewhere_stays_problem_json(secure_client):
    answer = secure_client.get("/cases", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.fixture(scope="module")
def strict_client(secure_settings: Settings, engine, tmp_path_factory) -> Iterator[TestClient]:
    """An app whose policy keeps Open311's service list for admins (refused early to others)."""
    text = POLICY_FILE.read_text(encoding="utf-8")
    old = '      - "/open311/v2/services.{fmt}"\n'
    assert old in text
    text = text.replace(old, "", 1).rstrip("\n") + (
        '\n  - paths: ["/open311/v2/services.{fmt}"]\n    methods: [GET]\n    allow: [admin]\n'
    )
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    app = create_app(secure_settings)
    app.state.policy = load_policy(path)
    with TestClient(app) as client:
        yield client


def test_early_refusals_on_open311_are_georeport(strict_client, accounts):
    anonymous = strict_client.get(f"{SERVICES}.json")
    assert "sign in" in _json_errors(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    planner = strict_client.get(f"{SERVICES}.xml", headers=accounts.headers(Role.planner))
    assert "planner may not" in _xml_errors(planner, 403)
    admin = strict_client.get(f"{SERVICES}.json", headers=accounts.headers(Role.admin))
    assert admin.status_code == 200 and isinstance(admin.json(), list)


def test_rate_limit_on_open311_is_a_georeport_429(strict_client):
    # A form without api_key is refused by the router without writing anything, but every
    # anonymous POST counts against the policy's 30 per minute.
    first = strict_client.post("/open311/v2/requests.json", data={"x": "1"})
    assert first.status_code == 403 and "api_key" in first.text, first.text
    statuses = [
        strict_client.post("/open311/v2/requests.json", data={"x": "1"}).status_code
        for _ in range(29)
    ]
    assert set(statuses) == {403}, statuses
    answer = strict_client.post("/open311/v2/requests.xml", data={"x": "1"})
    assert "too many requests" in _xml_errors(answer, 429)
    assert int(answer.headers["retry-after"]) >= 1
    answer = strict_client.post("/open311/v2/requests.json", data={"x": "1"})
    assert "too many requests" in _json_errors(answer, 429)
