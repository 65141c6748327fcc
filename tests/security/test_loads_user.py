"""Loads record who uploaded them: on the batch (GET /loads/{id}) and in the audit row."""

from __future__ import annotations

from security_support import audit_rows
from sqlalchemy import text

from schemas.accounts import Role


def test_upload_records_the_signed_in_uploader(secure_client, accounts, engine):
    # A file that cannot be read: the batch is made (and then fails), no layer row is written.
    answer = secure_client.post(
        "/layers/school/loads",
        files={"file": ("broken.geojson", b"{not geojson", "application/geo+json")},
        data={"mode": "append"},
        headers=accounts.headers(Role.analyst),
    )
    assert answer.status_code == 202, answer.text
    load_id = answer.json()["id"]
    secure_client.app.state.jobs.wait(load_id, timeout=60)
    status = secure_client.get(f"/loads/{load_id}", headers=accounts.headers(Role.analyst))
    assert status.status_code == 200, status.text
    analyst = accounts.users[Role.analyst].name
    assert status.json()["user"] == analyst
    assert status.json()["state"] == "failed"
    rows = audit_rows(engine, action="POST /layers/{code}/loads", who=analyst)
    assert rows and rows[0]["status"] == 202
    assert rows[0]["detail"]["load_id"] == load_id
    assert rows[0]["role"] == "analyst"


def _batches(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM load_batches")).scalar_one())


def test_refused_upload_makes_no_batch(secure_client, accounts, engine):
    before = audit_rows(engine, action="POST /layers/{code}/loads")
    batches = _batches(engine)
    answer = secure_client.post(
        "/layers/school/loads",
        files={"file": ("x.geojson", b"{}", "application/geo+json")},
        headers=accounts.headers(Role.planner),
    )
    assert answer.status_code == 403, answer.text
    assert _batches(engine) == batches
    after = audit_rows(engine, action="POST /layers/{code}/loads")
    assert len(after) == len(before) + 1
    assert after[0]["status"] == 403 and "load_id" not in after[0]["detail"]
