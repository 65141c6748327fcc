"""A database that goes away answers 503 with Retry-After (never 500) and the API recovers.

Stopping PostgreSQL is destructive, so these tests stop the private cluster of this folder,
never the shared one. The classification of errors is checked on real sessions of the shared
cluster: a session terminated by the server is an outage, a bad statement is not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from api.errors import is_database_outage
from bench.load_harness import PrivateCluster

pytestmark = pytest.mark.slow


def _body(source_id: str) -> dict[str, object]:
    return {
        "source_system": "platform",
        "source_id": source_id,
        "item_code": "PU01",
        "reported_at": datetime.now(UTC).isoformat(),
        "location": {"lon": 113.2156, "lat": 23.4154, "crs": "EPSG:4490"},
    }


@pytest.fixture()
def outage_client(private: PrivateCluster) -> Iterator[TestClient]:
    settings = private.settings(private.fresh("answers"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_an_outage_answers_503_with_retry_after_then_recovers(
    outage_client: TestClient, private: PrivateCluster
) -> None:
    client = outage_client
    assert client.post("/cases", json=_body("before")).status_code == 201
    private.cluster.stop()
    try:
        posted = client.post("/cases", json=_body("during"))
        listed = client.get("/cases")
        open311 = client.get("/open311/v2/requests.json")
        open311_xml = client.get("/open311/v2/requests.xml")
    finally:
        private.cluster.start()
    for answer in (posted, listed):
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "unavailable" in answer.json()["detail"]
    assert open311.status_code == 503 and open311.headers["Retry-After"] == "5"
    assert open311.json() == [{"code": 503, "description": open311.json()[0]["description"]}]
    assert open311_xml.status_code == 503 and b"<errors><error><code>503" in open311_xml.content
    again = client.post("/cases", json=_body("during"))  # the same app, no restart
    assert again.status_code == 201, again.text
    assert client.post("/cases", json=_body("during")).status_code == 200
    ids = [c["source_id"] for c in client.get("/cases", params={"limit": 10}).json()["items"]]
    assert sorted(ids) == ["before", "during"]


def test_a_terminated_session_is_an_outage_and_a_bad_statement_is_not(server_url: URL) -> None:
    engine = create_engine(server_url, pool_pre_ping=True)
    try:
        with engine.connect() as victim, engine.connect() as killer:
            pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(DBAPIError) as terminated:
                victim.execute(text("SELECT 1"))
            with pytest.raises(DBAPIError) as bad:
                killer.execute(text("SELECT * FROM no_such_table"))
        assert is_database_outage(terminated.value)
        assert not is_database_outage(bad.value)
        with engine.connect() as conn:  # the pool recovers on its own
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
