"""Intake's round trips: how many statements a case costs, and that the shortcuts change nothing.

The fast path reads the re-send check and the rules' version in one query, snaps with the
division names joined, and stores the case, its event and the duplicate link in one statement
whose answer is the stored row as JSON. These tests pin the statement counts (a regression
would show as a count, not a timing) and compare the answers with fresh reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from dispatch_support import SH, case_in, submit
from sqlalchemy import Engine, event, text

from cases.intake import intake_state
from cases.routing import current_rules, item_of, packaged_rules, update_rules
from cases.store import events_of, fetch_case
from schemas.database import driver_sql


def day(n: int, hour: int = 9) -> datetime:
    """Return a day of 2026 no other intake test uses."""
    return datetime(2026, 6, 1, hour, tzinfo=SH) + timedelta(days=n)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Collect the SQL statements sent on ``engine`` inside the block."""
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def test_a_located_case_costs_three_statements_and_a_resend_two(db, catalog, calendar):
    # CA01 names no asset layer: state + snap + store; CA02 adds the nearest public toilet.
    assert not item_of(packaged_rules(), "CA01").asset_layers
    assert item_of(packaged_rules(), "CA02").asset_layers
    with db.connect() as conn:
        current_rules(conn)  # the rules are read once per process, then kept
    cin = case_in("CA01", lon=113.2151, lat=23.4152, reported_at=day(0))
    with statements(db) as seen:
        case, created = submit(db, catalog, calendar, cin, now=day(0, 10))
    assert created and case.grid_code == "440114001201002"
    assert len(seen) == 3, seen
    assert seen[0].startswith("SELECT (SELECT id FROM cases")
    assert "INSERT INTO case_events" in seen[2]

    with statements(db) as seen:
        again, created = submit(db, catalog, calendar, cin, now=day(0, 11))
    assert not created and again == case
    assert len(seen) == 2, seen  # the state names the stored case; it is read, nothing written

    asset_case = case_in("CA02", lon=113.2152, lat=23.4153, reported_at=day(1))
    with statements(db) as seen:
        submit(db, catalog, calendar, asset_case, now=day(1, 10))
    assert len(seen) == 4, seen


def test_the_stored_answer_is_what_a_fresh_read_gives(db, catalog, calendar):
    """The row the insert hands back as JSON equals the typed read of the same row."""
    original, _ = submit(
        db,
        catalog,
        calendar,
        case_in("CA01", lon=113.2255, lat=23.4055, reported_at=day(2), reporter=None),
        now=day(2, 10),
    )
    near, _ = submit(
        db,
        catalog,
        calendar,
        case_in(
            "CA01",
            lon=113.2256,
            lat=23.4055,
            reported_at=day(2, 12),
            description="又堵了",
            payload={"编号": "X-1", "n": [1, 2.5, None]},
        ),
        now=day(2, 13),
    )
    with db.connect() as conn:
        assert fetch_case(conn, original.id) == original
        assert fetch_case(conn, near.id) == near
        (first,) = events_of(conn, near.id)
        stored_reporter = conn.execute(
            text("SELECT jsonb_typeof(reporter) FROM cases WHERE id = :id"), {"id": original.id}
        ).scalar_one()
    assert original.reporter is None and original.reporters == []
    assert stored_reporter == "null"  # JSON null, as SQLAlchemy's JSONB type stores None
    assert near.duplicate_of == original.id and near.payload == {"编号": "X-1", "n": [1, 2.5, None]}
    assert (first.action, first.to_status, first.actor) == ("receive", "reported", "platform")
    assert first.detail is not None and first.detail["duplicate_of"] == original.id
    assert first.detail["located_by"] == "point" and first.at == near.received_at


def test_rules_are_read_again_when_a_version_is_added_or_rewritten(db):
    """The process keeps parsed rules, but a new version or a rewritten row is seen at once."""
    with db.connect() as conn, conn.begin() as tx:
        first = current_rules(conn)
        assert intake_state(conn, "platform", "nobody").rules is first  # cached, not re-parsed
        changed = first.model_dump(mode="json")
        changed["items"][0]["zh"] = "改过的名称"
        version = update_rules(conn, changed, "tester")
        newer = intake_state(conn, "platform", "nobody").rules
        assert newer.version == version == first.version + 1
        assert newer.items[0].zh == "改过的名称"
        conn.execute(
            text(
                "UPDATE routing_rule_versions SET rules = jsonb_set(rules, "
                "'{items,0,zh}', '\"再改\"') WHERE version = :v"
            ),
            {"v": version},
        )
        assert current_rules(conn).items[0].zh == "再改"
        tx.rollback()
    with db.connect() as conn:
        assert current_rules(conn) is first


def test_driver_sql_keeps_casts_and_refuses_percent():
    assert driver_sql("SELECT :a::text, '{}'::jsonb, x FROM t WHERE y = :b_2") == (
        "SELECT %(a)s::text, '{}'::jsonb, x FROM t WHERE y = %(b_2)s"
    )
    with pytest.raises(ValueError, match="%"):
        driver_sql("SELECT 5 % :a")
