"""Escalation of missed deadlines with a moved clock, exactly once under concurrency; outbox."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime, timedelta

from dispatch_support import SH, case_in, submit
from sqlalchemy import func, select

from cases import workflow
from cases.calls import call_department, respond_call
from cases.escalation import (
    SUPERVISION_OFFICE,
    ConsoleSender,
    FileSender,
    OutboxMessage,
    deliver_outbox,
    escalate_due,
)
from cases.queries import get_case
from schemas.tables import escalations, outbox

T = datetime(2026, 6, 1, 9, tzinfo=SH)  # a Monday


def _mine(found, ids):
    return sorted(e.case_id for e in found if e.case_id in ids)


def test_escalates_once_when_the_clock_passes_the_deadline(db, catalog, calendar):
    late, _ = submit(
        db, catalog, calendar, case_in("PU02", lon=113.2251, lat=23.4151, reported_at=T), now=T
    )
    done_in_time, _ = submit(
        db, catalog, calendar, case_in("PU02", lon=113.2051, lat=23.4051, reported_at=T), now=T
    )
    assert late.deadline == T + timedelta(hours=2)  # PU02: 2 natural hours
    with db.begin() as conn:
        for action in ("dispatch", "start", "resolve"):
            workflow.apply(conn, done_in_time.id, action, who="u", now=T + timedelta(hours=1))
    ids = {late.id, done_in_time.id}
    with db.begin() as conn:
        assert _mine(escalate_due(conn, now=T + timedelta(hours=1, minutes=59)), ids) == []
    with db.begin() as conn:
        found = escalate_due(conn, now=T + timedelta(hours=2, minutes=1))
    assert _mine(found, ids) == [late.id]
    mine = next(e for e in found if e.case_id == late.id)
    assert mine.escalated_to == SUPERVISION_OFFICE == "区委督查室"
    assert mine.deadline == late.deadline and "超过处置时限" in mine.reason
    with db.begin() as conn:
        assert _mine(escalate_due(conn, now=T + timedelta(days=3)), ids) == []
    with db.connect() as conn:
        detail = get_case(conn, late.id)
        messages = conn.execute(
            select(outbox.c.recipient, outbox.c.subject).where(outbox.c.case_id == late.id)
        ).all()
    assert detail.case.overdue and detail.case.escalated
    assert detail.case.escalated_at == T + timedelta(hours=2, minutes=1)
    assert detail.escalations == [mine] and detail.events[-1].action == "escalate"
    assert messages == [("区委督查室", f"超时督办：案件 {late.id}")]
    with db.connect() as conn:
        assert not get_case(conn, done_in_time.id).case.escalated


def test_unanswered_department_calls_are_escalated(db, catalog, calendar):
    at = datetime(2026, 6, 3, 9, tzinfo=SH)
    case, _ = submit(
        db, catalog, calendar, case_in("SO02", lon=113.215, lat=23.405, reported_at=at), now=at
    )
    with db.begin() as conn:
        workflow.dispatch(conn, case.id, who="d", now=at)
        silent = call_department(
            conn, case.id, "区市场监督管理局", who="狮岭镇", now=at, calendar=calendar
        )
        answered = call_department(
            conn, case.id, "区住房和城乡建设局", who="狮岭镇", now=at, calendar=calendar
        )
        respond_call(
            conn, answered.id, who="住建局", now=at + timedelta(hours=1), response="已处理"
        )
    assert silent.deadline == datetime(2026, 6, 4, 9, tzinfo=SH)  # one working day
    with db.begin() as conn:
        early = escalate_due(conn, now=datetime(2026, 6, 4, 8, 59, tzinfo=SH))
        found = escalate_due(conn, now=datetime(2026, 6, 4, 9, 1, tzinfo=SH))
        again = escalate_due(conn, now=datetime(2026, 6, 8, 9, tzinfo=SH))
    calls = {silent.id, answered.id}
    assert not [e for e in early if e.call_id in calls]
    assert [e.call_id for e in found if e.call_id in calls] == [silent.id]
    assert not [e for e in again if e.call_id in calls]
    with db.connect() as conn:
        detail = get_case(conn, case.id)
    assert [c.escalated for c in detail.calls] == [True, False]
    assert any(e.call_id == silent.id for e in detail.escalations)
    assert "未在" in detail.escalations[-1].reason


def test_two_processes_escalate_each_case_exactly_once(db, catalog, calendar):
    at = datetime(2026, 6, 10, 9, tzinfo=SH)
    created = [
        submit(
            db,
            catalog,
            calendar,
            case_in("WF02", lon=113.2 + 0.0011 * k, lat=23.4005 + 0.0009 * k, reported_at=at),
            now=at,
        )[0]
        for k in range(24)
    ]
    ids = {c.id for c in created}
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            with db.begin() as conn:
                results.append(_mine(escalate_due(conn, now=at + timedelta(hours=3)), ids))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    together = results[0] + results[1]
    assert sorted(together) == sorted(ids)  # each case escalated by exactly one process
    with db.connect() as conn:
        per_case = conn.execute(
            select(escalations.c.case_id, func.count())
            .where(escalations.c.case_id.in_(ids))
            .group_by(escalations.c.case_id)
        ).all()
        notices = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.case_id.in_(ids))
        ).scalar()
    assert len(per_case) == 24 and {n for _, n in per_case} == {1} and notices == 24


class Flaky:
    """A sender that fails on its first message, then records what it was given."""

    def __init__(self) -> None:
        self.sent: list[OutboxMessage] = []
        self.failed = False

    def send(self, message: OutboxMessage) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("gateway down")
        self.sent.append(message)


def test_outbox_delivery_records_sends_and_failures(db, catalog, calendar, tmp_path):
    at = datetime(2026, 6, 20, 9, tzinfo=SH)
    case, _ = submit(
        db, catalog, calendar, case_in("EM01", lon=113.205, lat=23.415, reported_at=at), now=at
    )
    with db.begin() as conn:
        escalate_due(conn, now=at + timedelta(hours=2))
        first_pending = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        ).scalar()
    flaky = Flaky()
    with db.begin() as conn:
        first = deliver_outbox(conn, flaky, now=at + timedelta(hours=3))
    assert first.failed == 1 and first.sent == first_pending - 1
    with db.begin() as conn:
        path = tmp_path / "outbox.jsonl"
        second = deliver_outbox(conn, FileSender(path), now=at + timedelta(hours=4))
        third = deliver_outbox(conn, FileSender(path), now=at + timedelta(hours=5))
    assert (second.sent, second.failed, third.sent) == (1, 0, 0)
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line["recipient"] == "区委督查室" and line["subject"].startswith("超时督办")
    with db.connect() as conn:
        row = conn.execute(
            select(outbox.c.attempts, outbox.c.last_error, outbox.c.sent_at).where(
                outbox.c.id == line["id"]
            )
        ).one()
    assert row.attempts == 2 and row.sent_at == at + timedelta(hours=4)
    stream = io.StringIO()
    ConsoleSender(stream).send(OutboxMessage(1, "notice", "区委督查室", "主题", "正文", None, at))
    assert stream.getvalue() == "[notice] to 区委督查室: 主题\n"
    assert case.id in {m.case_id for m in flaky.sent} | {line["case_id"]}
