"""Escalation must not hold intake up: row locks that let FK checks through, short batches.

A case received as a probable duplicate takes ``FOR KEY SHARE`` on its original (the foreign
key ``duplicate_of``). An escalation tick locking that original ``FOR UPDATE`` made the intake
wait for the whole tick (seconds with 1,000 overdue cases: every intake thread stuck, see
docs/benchmarks.md); ``FOR NO KEY UPDATE`` lets it through. The waiting intake here runs with
a ``lock_timeout``, so a regression fails with LockNotAvailable instead of hanging.
"""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta

from dispatch_support import SH, case_in, submit
from sqlalchemy import select, text

from cases import workflow
from cases.escalation import ConsoleSender, escalate_due
from cases.intake import receive
from cases.scheduler import run_tick
from schemas.tables import escalations

# Dates no other test uses, so duplicates link to this file's originals only.
T0 = datetime(2025, 11, 3, 9, tzinfo=SH)


def _receive_waiting_at_most(db, catalog, calendar, cin, now, lock_timeout="2s"):
    """Receive a case in another thread and transaction, giving up on a lock after a while."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            with db.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{lock_timeout}'"))
                out["case"], _ = receive(conn, catalog, None, calendar, cin, now=now)
        except Exception as exc:  # noqa: BLE001 - reported to the test below
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in out, out.get("error")
    return out["case"]


def test_a_duplicate_is_received_while_its_original_is_being_escalated(db, catalog, calendar):
    original, _ = submit(
        db, catalog, calendar, case_in("PU02", lon=113.2161, lat=23.4161, reported_at=T0)
    )
    late = T0 + timedelta(hours=3)  # PU02: 2 natural hours
    with db.begin() as conn:  # the tick's transaction, still open while the duplicate comes
        found = escalate_due(conn, now=late)
        assert original.id in {e.case_id for e in found}
        duplicate = _receive_waiting_at_most(
            db,
            catalog,
            calendar,
            case_in("PU02", lon=113.2162, lat=23.4161, reported_at=T0 + timedelta(hours=1)),
            now=late,
        )
    assert duplicate.duplicate_of == original.id


def test_a_duplicate_is_received_while_a_transition_holds_its_original(db, catalog, calendar):
    at = T0 + timedelta(days=5)  # outside the other tests' duplicate windows (48 h)
    original, _ = submit(
        db, catalog, calendar, case_in("PU02", lon=113.2111, lat=23.4111, reported_at=at)
    )
    with db.begin() as conn:  # a dispatcher's transition, not committed yet
        workflow.dispatch(conn, original.id, who="调度员", now=at)
        duplicate = _receive_waiting_at_most(
            db,
            catalog,
            calendar,
            case_in("PU02", lon=113.2112, lat=23.4111, reported_at=at + timedelta(minutes=5)),
            now=at + timedelta(minutes=5),
        )
    assert duplicate.duplicate_of == original.id


def _backlog(db, catalog, calendar, at: datetime, lat: float) -> list[int]:
    """Five PU02 cases reported at ``at``, 400 m apart (not duplicates of each other)."""
    return [
        submit(
            db,
            catalog,
            calendar,
            case_in("PU02", lon=113.2051 + 0.004 * k, lat=lat, reported_at=at),
        )[0].id
        for k in range(5)
    ]


def test_a_tick_escalates_a_backlog_in_several_short_transactions(db, catalog, calendar):
    at = T0 + timedelta(days=10)
    mine = _backlog(db, catalog, calendar, at, lat=23.4051)
    tick = run_tick(db, ConsoleSender(io.StringIO()), now=at + timedelta(hours=3), batch=2)
    with db.connect() as conn:
        rows = conn.execute(
            select(escalations.c.case_id, text("xmin::text")).where(escalations.c.case_id.in_(mine))
        ).all()
    assert sorted(case_id for case_id, _ in rows) == sorted(mine)  # each once, none left
    assert tick.escalated >= len(mine)
    assert len({xmin for _, xmin in rows}) >= 3  # at most 2 per transaction


def test_a_tick_rests_after_each_full_batch_as_long_as_it_took(db, catalog, calendar):
    at = T0 + timedelta(days=20)
    mine = _backlog(db, catalog, calendar, at, lat=23.4151)
    rests: list[float] = []
    tick = run_tick(
        db, ConsoleSender(io.StringIO()), now=at + timedelta(hours=3), batch=2, rest=rests.append
    )
    with db.connect() as conn:
        done = conn.execute(
            select(escalations.c.case_id).where(escalations.c.case_id.in_(mine))
        ).scalars()
        assert sorted(done) == sorted(mine)
    assert tick.escalated >= len(mine)
    assert 2 <= len(rests) <= tick.escalated // 2  # a rest after each full batch only
    assert all(0 < seconds < 30 for seconds in rests)
