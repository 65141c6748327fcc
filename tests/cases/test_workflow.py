"""The state machine: legal and illegal transitions, audit, locking, merge, department calls."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from dispatch_support import SH, case_in, submit

from cases import workflow
from cases.calls import call_department, respond_call
from cases.models import STEP, Status
from cases.queries import get_case
from cases.rules import Deadline, DeadlineUnit
from cases.workflow import TRANSITIONS, Action, allowed_actions, apply, merge, target_of
from schemas.errors import Conflict, InvalidInput, NotFound

T0 = datetime(2026, 5, 11, 9, tzinfo=SH)  # a Monday


def fresh(
    db,
    catalog,
    calendar,
    item: str = "RT01",
    lon: float = 113.215,
    lat: float = 23.415,
    at: datetime = T0,
):
    case, _ = submit(db, catalog, calendar, case_in(item, lon=lon, lat=lat, reported_at=at))
    return case


def test_the_full_loop_with_its_timeline(db, catalog, calendar):
    case = fresh(db, catalog, calendar)
    steps = [
        ("dispatch", "dispatched"),
        ("start", "handling"),
        ("resolve", "resolved"),
        ("visit", "visited"),
        ("close", "closed"),
    ]
    with db.begin() as conn:
        for k, (action, status) in enumerate(steps, start=1):
            case = apply(
                conn, case.id, action, who=f"user{k}", now=T0 + timedelta(hours=k), note=f"step {k}"
            )
            assert case.status == status and case.step == STEP[Status(status)]
    assert case.resolved_at == T0 + timedelta(hours=3)
    assert case.closed_at == T0 + timedelta(hours=5)
    assert case.responsible_unit == "区住房和城乡建设局"
    with db.connect() as conn:
        events = get_case(conn, case.id).events
    assert [(e.action, e.from_status, e.to_status, e.actor) for e in events] == [
        ("receive", None, "reported", "platform"),
        ("dispatch", "reported", "dispatched", "user1"),
        ("start", "dispatched", "handling", "user2"),
        ("resolve", "handling", "resolved", "user3"),
        ("visit", "resolved", "visited", "user4"),
        ("close", "visited", "closed", "user5"),
    ]
    assert [e.at for e in events[1:]] == [T0 + timedelta(hours=k) for k in range(1, 6)]
    assert events[1].note == "step 1"


@pytest.mark.parametrize("status", list(Status))
def test_every_pair_not_in_the_table_is_a_conflict(status):
    for action in Action:
        if (status, action) in TRANSITIONS:
            assert target_of(status, action) == TRANSITIONS[(status, action)]
        else:
            with pytest.raises(Conflict, match=f"cannot {action.value}"):
                target_of(status, action)
    assert set(allowed_actions(status)) == {a for (s, a) in TRANSITIONS if s == status}


def test_illegal_transitions_change_nothing(db, catalog, calendar):
    case = fresh(db, catalog, calendar)
    with db.begin() as conn:
        for action in ("start", "resolve", "visit", "close", "reopen", "reassign"):
            with pytest.raises(Conflict):
                apply(conn, case.id, action, who="u", now=T0, note="n", unit="x")
        with pytest.raises(InvalidInput, match="unknown action"):
            apply(conn, case.id, "explode", who="u", now=T0)
        with pytest.raises(NotFound):
            apply(conn, 10**12, "dispatch", who="u", now=T0)
    with db.connect() as conn:
        detail = get_case(conn, case.id)
    assert detail.case.status == "reported" and len(detail.events) == 1


def test_return_reassign_and_reopen(db, catalog, calendar):
    case = fresh(db, catalog, calendar, item="CA03")
    with db.begin() as conn:
        case = workflow.dispatch(conn, case.id, who="d", now=T0)
        assert case.responsible_unit == "新华街道综合行政执法办公室"
        with pytest.raises(InvalidInput, match="needs a note"):
            workflow.send_back(conn, case.id, who="unit", now=T0, note=" ")
        case = workflow.send_back(conn, case.id, who="unit", now=T0, note="不属本单位")
        assert case.status == "reported"
        case = workflow.dispatch(conn, case.id, who="d", now=T0, unit="区城市管理和综合执法局")
        case = workflow.reassign(
            conn, case.id, who="d", now=T0, unit="花山镇综合行政执法办公室", note="跨镇"
        )
        assert (case.status, case.responsible_unit) == ("dispatched", "花山镇综合行政执法办公室")
        for action in ("start", "resolve"):
            case = apply(conn, case.id, action, who="u", now=T0 + timedelta(hours=1))
        case = workflow.send_back(conn, case.id, who="visitor", now=T0, note="回访不满意")
        assert case.status == "handling" and case.resolved_at is None
        for action in ("resolve", "visit", "close"):
            case = apply(conn, case.id, action, who="u", now=T0 + timedelta(hours=2))
        with pytest.raises(InvalidInput, match="calendar"):
            apply(conn, case.id, "reopen", who="u", now=T0, note="again")
        later = datetime(2026, 5, 15, 16, tzinfo=SH)  # a Friday
        case = workflow.reopen(
            conn, case.id, who="citizen", now=later, calendar=calendar, note="又有人偷倒"
        )
    assert case.status == "handling" and case.closed_at is None and not case.overdue
    assert case.deadline == datetime(2026, 5, 18, 16, tzinfo=SH)  # 1 working day later


def test_dispatch_needs_a_unit_when_the_place_is_unknown(db, catalog, calendar):
    case, _ = submit(
        db, catalog, calendar, case_in("CA01", address="无法识别的地方", reported_at=T0)
    )
    with db.begin() as conn:
        with pytest.raises(InvalidInput, match="no responsible unit"):
            workflow.dispatch(conn, case.id, who="d", now=T0)
        done = workflow.dispatch(conn, case.id, who="d", now=T0, unit="新街村委会")
    assert done.responsible_unit == "新街村委会"


def test_concurrent_transitions_are_serialised(db, catalog, calendar):
    case = fresh(db, catalog, calendar)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def act() -> None:
        barrier.wait()
        try:
            with db.begin() as conn:
                apply(conn, case.id, "dispatch", who="racer", now=T0)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=act) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["ok"]
    with db.connect() as conn:
        events = get_case(conn, case.id).events
    assert [e.action for e in events] == ["receive", "dispatch"]


def test_merge_folds_reporters_and_relinks_duplicates(db, catalog, calendar):
    at = datetime(2026, 5, 20, 9, tzinfo=SH)
    keep, _ = submit(
        db,
        catalog,
        calendar,
        case_in("AD02", lon=113.2053, lat=23.4153, reported_at=at, reporter={"name": "甲"}),
    )
    dup, _ = submit(
        db,
        catalog,
        calendar,
        case_in("AD02", lon=113.2040, lat=23.4160, reported_at=at, reporter={"name": "乙"}),
    )
    other, _ = submit(
        db,
        catalog,
        calendar,
        case_in("AD02", lon=113.2060, lat=23.4140, reported_at=at, reporter={"name": "丙"}),
    )
    assert dup.duplicate_of == keep.id == other.duplicate_of
    with db.begin() as conn:
        # fold `keep` into `dup` to show that links to the merged case follow it
        merged, kept = merge(conn, keep.id, dup.id, who="dispatcher", now=at, note="同一处")
        with pytest.raises(Conflict, match="cannot merge"):
            merge(conn, keep.id, other.id, who="dispatcher", now=at)
        with pytest.raises(InvalidInput, match="itself"):
            merge(conn, dup.id, dup.id, who="dispatcher", now=at)
        with pytest.raises(Conflict, match="open case"):
            merge(conn, other.id, keep.id, who="dispatcher", now=at)
        with pytest.raises(InvalidInput, match="use cases.workflow.merge"):
            apply(conn, other.id, "merge", who="d", now=at)
    assert (merged.status, merged.merged_into, merged.step) == ("merged", dup.id, 5)
    assert kept.reporters == [{"name": "乙"}, {"name": "甲", "merged_from": keep.id}]
    assert kept.duplicate_of is None  # it was a duplicate of the case folded into it
    with db.connect() as conn:
        assert get_case(conn, other.id).case.duplicate_of == dup.id
        events = get_case(conn, dup.id).events
    assert events[-1].action == "merge" and events[-1].detail["duplicates_relinked"] == [other.id]


def test_department_calls(db, catalog, calendar):
    case = fresh(db, catalog, calendar, item="SO02")
    with db.begin() as conn:
        with pytest.raises(Conflict, match="dispatched or handling"):
            call_department(
                conn, case.id, "区市场监督管理局", who="town", now=T0, calendar=calendar
            )
        workflow.dispatch(conn, case.id, who="d", now=T0)
        call = call_department(
            conn,
            case.id,
            "区市场监督管理局",
            who="新华街道",
            now=T0,
            calendar=calendar,
            within=Deadline(amount=4, unit=DeadlineUnit.working_hours),
        )
        assert call.deadline == datetime(2026, 5, 11, 15, tzinfo=SH)
        answered = respond_call(
            conn, call.id, who="市监局", now=T0 + timedelta(hours=1), response="已派员核查"
        )
        with pytest.raises(Conflict, match="was answered"):
            respond_call(conn, call.id, who="市监局", now=T0, response="again")
    assert answered.responded_at == T0 + timedelta(hours=1) and answered.responder == "市监局"
    with db.connect() as conn:
        detail = get_case(conn, case.id)
    assert [e.action for e in detail.events][-2:] == ["call", "respond"]
    assert detail.calls == [answered] and detail.events[-1].detail["late"] is False
