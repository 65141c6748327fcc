"""``sibiao replay-cases`` against a live server, and its pacing and counting on their own."""

from __future__ import annotations

import json
import socket
from datetime import date, datetime, timedelta

import httpx
from dispatch_http_support import synthetic_stream
from dispatch_support import SH
from typer.testing import CliRunner

from api.cli.main import app as cli
from api.cli.replay import replay
from cases.synthetic import write_case_stream
from schemas.errors import ConfigurationError

NATIVE_ID = {
    "city_management": "ajbh",
    "illegal_construction": "XCBH",
    "community_grid": "eventId",
    "migrant_management": "rwbh",
    "hotline_12345": "order_no",
}


def _key(system: str, payload: dict) -> tuple[str, str]:
    if system in NATIVE_ID:
        return system, payload[NATIVE_ID[system]]
    return system, json.dumps(payload, sort_keys=True, ensure_ascii=False)


def test_replay_posts_a_stream_and_the_database_holds_each_case_once(
    live, clock, dispatch, tmp_path
):
    stream = synthetic_stream(
        dispatch.district, start=date(2026, 10, 19), days=2, per_day=25, seed=21
    )
    path = tmp_path / "cases.jsonl"
    assert write_case_stream(stream, path) == len(stream)
    systems = {g.system.value for g in stream}
    assert "open311" in systems and len(systems) >= 4
    distinct = {_key(g.system.value, g.payload) for g in stream}
    clock.at = datetime(2026, 10, 22, 9, 0, 0, 123000, tzinfo=SH)  # marks this replay's rows

    def stored() -> int:
        return int(dispatch.scalar("SELECT count(*) FROM cases WHERE received_at = :t", t=clock.at))

    # 拆违 numbers restart each year (CW2026-000001…): an earlier test's stream may hold some
    known = {
        (system, source_id)
        for system, source_id in dispatch.rows("SELECT source_system, source_id FROM cases")
    }
    new = len(distinct - known)
    assert new >= len(distinct) - 5
    runner = CliRunner()
    args = ["replay-cases", str(path), "--url", live, "--speed", "0", "--json"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, (first.output, first.exception)
    counts = json.loads(first.stdout)
    assert counts["sent"] == len(stream) and counts["failed"] == 0
    assert counts["refused"] == 0, counts["reasons"]
    assert counts["created"] == new and counts["resent"] == len(stream) - new
    assert stored() == new
    again = json.loads(runner.invoke(cli, args).stdout)
    assert (again["created"], again["resent"]) == (0, len(stream))
    assert stored() == new
    limited = json.loads(runner.invoke(cli, [*args, "--limit", "5"]).stdout)
    assert limited["sent"] == 5
    duplicates = dispatch.scalar(
        "SELECT count(*) FROM cases WHERE received_at = :t AND duplicate_of IS NOT NULL",
        t=clock.at,
    )
    repeats = sum(g.truth.duplicate_of is not None for g in stream)
    assert repeats == 0 or duplicates >= 1  # the stream's second reports meet their originals


def _stream_lines() -> list[str]:
    base = datetime(2026, 3, 2, 9, tzinfo=SH)
    lines = []
    for k, minutes in enumerate((0, 1, 2)):
        payload = {
            "order_no": f"GZ20260302{k:06d}",
            "created_at": (base + timedelta(minutes=minutes)).isoformat(),
            "channel": "phone",
            "district": "花都区",
            "caller": {"name": "陈先生", "phone": "138****0000"},
            "appeal": {
                "kind": "投诉",
                "classification": "城市管理/市容环境/暴露垃圾与垃圾满溢",
                "title": "反映垃圾问题",
                "content": "垃圾满溢",
                "address": "新华街道迎宾大道1号",
            },
        }
        lines.append(json.dumps({"system": "hotline_12345", "payload": payload}))
    lines.append("not json")
    lines.append(json.dumps({"system": "open311", "payload": {"service_code": "CA01"}}))
    return lines


def test_replay_paces_by_report_times_and_counts_reasons():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.startswith("/open311"):
            return httpx.Response(403, json=[{"code": 403, "description": "api_key is wrong"}])
        if len(seen) == 2:
            return httpx.Response(200, json={"id": 1})
        if len(seen) == 3:
            return httpx.Response(400, json={"title": "InvalidInput", "detail": "outside"})
        return httpx.Response(201, json={"id": 1})

    waits: list[float] = []
    with httpx.Client(base_url="http://replay.test", transport=httpx.MockTransport(handler)) as c:
        report = replay(_stream_lines(), c, speed=60, api_key="k", sleep=waits.append)
    assert [round(w, 1) for w in waits] == [1.0, 2.0]  # one and two minutes, 60 times faster
    assert (report.sent, report.created, report.resent, report.refused) == (4, 1, 1, 3)
    assert report.reasons["HTTP 400: outside"] == 1
    assert report.reasons["HTTP 403: api_key is wrong"] == 1
    assert any(reason.startswith("line 4") for reason in report.reasons)
    form = seen[-1]
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"api_key=k" in form.content and b"service_code=CA01" in form.content
    assert seen[0].url.path == "/intake/hotline_12345"


def test_replay_against_nothing_fails_in_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(_stream_lines() * 3) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["replay-cases", str(path), "--url", f"http://127.0.0.1:{port}", "--timeout", "2"]
    )
    assert isinstance(result.exception, ConfigurationError)
    assert f"127.0.0.1:{port}" in str(result.exception)
