"""Escalation on a clock: the ``sibiao worker`` command and the API's in-process scheduler."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

from dispatch_http_support import Clock
from dispatch_support import SH, new_id
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli.main import app as cli

T = datetime(2026, 10, 12, 9, tzinfo=SH)  # a Monday


def post_late_case(client, at: datetime) -> dict:
    body = {
        "source_system": "platform",
        "source_id": new_id("E"),
        "item_code": "PU02",  # 2 natural hours
        "reported_at": at.isoformat(),
        "location": {"lon": 113.2251, "lat": 23.4151, "crs": "EPSG:4490"},
    }
    response = client.post("/cases", json=body)
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["deadline"] == (at + timedelta(hours=2)).isoformat()
    return case


def lines_about(path, case_id: int) -> list[dict]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["case_id"] == case_id]


def escalations_of(dispatch, case_id: int) -> int:
    return int(dispatch.scalar("SELECT count(*) FROM escalations WHERE case_id = :c", c=case_id))


def test_the_worker_escalates_a_late_case_exactly_once(client, clock, dispatch, tmp_path):
    clock.at = T
    case = post_late_case(client, T)
    outbox = tmp_path / "outbox.log"
    env = {"SIBIAO_DATABASE_URL": dispatch.settings.database_url}
    runner = CliRunner()

    def tick(at: datetime) -> dict:
        result = runner.invoke(
            cli,
            ["worker", "--once", "--json", "--now", at.isoformat(), "--outbox", str(outbox)],
            env=env,
        )
        assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.stdout.strip().splitlines()[-1])

    tick(T + timedelta(hours=1, minutes=59))
    assert escalations_of(dispatch, case["id"]) == 0
    first = tick(T + timedelta(hours=2, minutes=1))
    assert first["escalated"] >= 1
    for _ in range(20):  # drain the outbox (100 messages a tick)
        if tick(T + timedelta(hours=3))["sent"] == 0:
            break
    tick(T + timedelta(days=2))
    assert escalations_of(dispatch, case["id"]) == 1
    (line,) = lines_about(outbox, case["id"])
    assert line["recipient"] == "区委督查室" and str(case["id"]) in line["subject"]
    clock.at = T + timedelta(days=2)
    detail = client.get(f"/cases/{case['id']}").json()
    assert detail["case"]["escalated"] is True and len(detail["escalations"]) == 1
    assert [e["action"] for e in detail["events"]].count("escalate") == 1
    bad = runner.invoke(cli, ["worker", "--once", "--now", "tomorrow"], env=env)
    assert bad.exit_code != 0 and "tomorrow" in str(bad.exception)


def test_the_api_scheduler_escalates_once_on_its_clock_and_stops(dispatch):
    settings = dispatch.settings.model_copy(update={"escalation_interval_s": 0.1})
    app = create_app(settings, catalog=dispatch.catalog)
    own = Clock(T + timedelta(days=7))
    app.state.clock = own
    outbox = settings.data_dir / "outbox.log"
    with TestClient(app) as client:
        scheduler = app.state.escalation
        assert scheduler is not None
        case = post_late_case(client, own.at)
        time.sleep(0.5)
        assert escalations_of(dispatch, case["id"]) == 0  # not late yet
        own.at += timedelta(hours=2, minutes=1)
        deadline = time.monotonic() + 20
        while not lines_about(outbox, case["id"]):
            assert time.monotonic() < deadline, "no notification within 20 s"
            time.sleep(0.1)
        ticks = scheduler.ticks
        while scheduler.ticks < ticks + 3:
            assert time.monotonic() < deadline + 10
            time.sleep(0.05)
        assert escalations_of(dispatch, case["id"]) == 1
        assert len(lines_about(outbox, case["id"])) == 1
        body = client.get(f"/cases/{case['id']}").json()
        assert body["case"]["escalated"] and body["case"]["overdue"]
    assert app.state.escalation is None
    assert scheduler._thread is None
