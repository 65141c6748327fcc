"""The five-step loop as an explicit state machine, every transition audited and row-locked.

Steps and statuses: 1 reported → 2 dispatched → 3 handling → 4 resolved (awaiting the follow-up
visit) → 4 visited (awaiting evaluation) → 5 closed; and merged (a duplicate folded into another
open case). Actions: dispatch, start, resolve, visit, close move one step on; reassign hands a
dispatched or handling case to another unit (dispatched again); reopen brings a closed case back
to handling with a new deadline; merge folds a reported, dispatched or handling case into another.

``return`` is the one action whose target depends on where the case is: a unit returns a case it
was wrongly given (dispatched/handling → reported, back to the command centre); a follow-up visit
or evaluation that finds the problem unsolved returns it to the handler (resolved/visited →
handling). Any pair not in :data:`TRANSITIONS` raises ``Conflict`` (the API answers 409).

Every function runs in the caller's transaction: it locks the case row (``SELECT … FOR NO KEY
UPDATE``: intake may still link a duplicate to it), checks the transition against the status it
finds, updates the row and writes one ``case_events`` row (who, when, from, to, note) — so two
concurrent transitions are serialised and the second is judged against the first's result.

Who may take which action is not the workflow's to decide (the API's policy says it), but it
may depend on the status, which only the locked row tells: the caller passes a :data:`Permit`,
called with the status found and the action, before the transition is judged; a reason it
returns is raised as ``Forbidden``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Connection
from sqlalchemy import case as sql_case
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import cast

from cases.calendar import add_deadline
from cases.models import OPEN, STEP, Case, Status
from cases.routing import current_rules, item_of, rules_version
from cases.rules import WorkingCalendar
from cases.store import (
    CaseScope,
    add_event,
    case_from_row,
    case_select,
    fetch_case,
    scope_conditions,
)
from schemas.errors import Conflict, Forbidden, InvalidInput, NotFound
from schemas.tables import cases


class Action(StrEnum):
    """What a user can do to a case."""

    dispatch = "dispatch"
    start = "start"
    resolve = "resolve"
    visit = "visit"
    close = "close"
    return_ = "return"
    reassign = "reassign"
    reopen = "reopen"
    merge = "merge"


S, A = Status, Action
#: The legal (status, action) pairs and the status each leads to.
TRANSITIONS: Final[Mapping[tuple[Status, Action], Status]] = {
    (S.reported, A.dispatch): S.dispatched,
    (S.dispatched, A.start): S.handling,
    (S.handling, A.resolve): S.resolved,
    (S.resolved, A.visit): S.visited,
    (S.visited, A.close): S.closed,
    (S.dispatched, A.return_): S.reported,
    (S.handling, A.return_): S.reported,
    (S.resolved, A.return_): S.handling,
    (S.visited, A.return_): S.handling,
    (S.dispatched, A.reassign): S.dispatched,
    (S.handling, A.reassign): S.dispatched,
    (S.closed, A.reopen): S.handling,
    (S.reported, A.merge): S.merged,
    (S.dispatched, A.merge): S.merged,
    (S.handling, A.merge): S.merged,
}
#: Actions that must say why.
NOTE_REQUIRED: Final = frozenset({A.return_, A.reassign, A.reopen})
#: Whether the caller may take an action on a case in a status: None if so, else why not.
Permit = Callable[[Status, Action], str | None]


def _check_permit(permit: Permit | None, status: Status, action: Action | str) -> None:
    if permit is None:
        return
    try:
        act = Action(action)
    except ValueError:
        return  # target_of names the unknown action
    if (reason := permit(status, act)) is not None:
        raise Forbidden(reason)


def allowed_actions(status: Status | str) -> list[Action]:
    """Return the actions legal in a status, in the order of the loop."""
    return [action for (state, action) in TRANSITIONS if state == Status(status)]


def target_of(status: Status | str, action: Action | str) -> Status:
    """Return the status an action leads to from ``status``; raise Conflict when illegal."""
    try:
        act = Action(action)
    except ValueError:
        raise InvalidInput(
            f"unknown action {action!r}; one of {', '.join(a.value for a in Action)}"
        ) from None
    state = Status(status)
    if (found := TRANSITIONS.get((state, act))) is None:
        legal = ", ".join(a.value for a in allowed_actions(state)) or "none"
        raise Conflict(f"cannot {act.value} a case that is {state.value} (legal now: {legal})")
    return found


def _effects(
    conn: Connection,
    case: Case,
    action: Action,
    target: Status,
    *,
    now: datetime,
    unit: str | None,
    calendar: WorkingCalendar | None,
) -> dict[str, Any]:
    """Return the columns an action changes besides status and step."""
    if action in (A.dispatch, A.reassign):
        chosen = unit or (case.responsible_unit if action is A.dispatch else None)
        if not chosen:
            raise InvalidInput(
                f"case {case.id} has no responsible unit yet: locate it or name the unit"
                if action is A.dispatch
                else "reassign needs the unit to hand the case to"
            )
        return {"responsible_unit": chosen}
    if action is A.resolve:
        return {"resolved_at": now}
    if action is A.close:
        return {"closed_at": now}
    if action is A.return_ and target is S.handling:
        return {"resolved_at": None}
    if action is A.reopen:
        if calendar is None:
            raise InvalidInput("reopen needs the working calendar to set the new deadline")
        rules = rules_version(conn, case.rule_version) if case.rule_version else current_rules(conn)
        deadline = add_deadline(calendar, now, item_of(rules, case.item_code).deadline)
        return {
            "resolved_at": None,
            "closed_at": None,
            "deadline": deadline,
            "overdue": False,
            "escalated": False,
            "escalated_at": None,
        }
    return {}


def apply(
    conn: Connection,
    case_id: int,
    action: Action | str,
    *,
    who: str,
    now: datetime,
    note: str | None = None,
    unit: str | None = None,
    calendar: WorkingCalendar | None = None,
    scope: CaseScope | None = None,
    permit: Permit | None = None,
) -> Case:
    """Apply an action to a case under a row lock and audit it; return the updated case.

    A case outside ``scope`` (the caller's towns or department) is NotFound; an action
    ``permit`` refuses on the status found is Forbidden (before its legality is judged).

    ``unit`` names the unit for ``dispatch`` (default: the routed one) and ``reassign``;
    ``calendar`` is needed by ``reopen`` (a new deadline from ``now``). ``merge`` has its own
    function, :func:`merge`, since it changes two cases.
    """
    if str(action) == A.merge.value:
        raise InvalidInput("merge needs the case to merge into: use cases.workflow.merge")
    if not who or not who.strip():
        raise InvalidInput("every transition needs who does it")
    case = fetch_case(conn, case_id, lock=True, scope=scope)
    _check_permit(permit, case.status, action)
    target = target_of(case.status, action)
    act = Action(action)
    if act in NOTE_REQUIRED and not (note and note.strip()):
        raise InvalidInput(f"{act.value} needs a note saying why")
    values = _effects(conn, case, act, target, now=now, unit=unit, calendar=calendar)
    values |= {"status": target.value, "step": STEP[target], "updated_at": now}
    conn.execute(cases.update().where(cases.c.id == case_id).values(values))
    detail = {k: v for k, v in values.items() if k in ("responsible_unit", "deadline")}
    add_event(
        conn,
        case,
        act.value,
        from_status=case.status,
        to_status=target,
        actor=who.strip(),
        at=now,
        note=note,
        detail={k: str(v) if isinstance(v, datetime) else v for k, v in detail.items()},
    )
    return fetch_case(conn, case_id)


def dispatch(
    conn: Connection,
    case_id: int,
    *,
    who: str,
    now: datetime,
    unit: str | None = None,
    note: str | None = None,
) -> Case:
    """Dispatch a reported case to its routed unit (or ``unit``)."""
    return apply(conn, case_id, A.dispatch, who=who, now=now, unit=unit, note=note)


def start(
    conn: Connection, case_id: int, *, who: str, now: datetime, note: str | None = None
) -> Case:
    """Record that the unit has started handling the case."""
    return apply(conn, case_id, A.start, who=who, now=now, note=note)


def resolve(
    conn: Connection, case_id: int, *, who: str, now: datetime, note: str | None = None
) -> Case:
    """Record that the unit has handled the case (the deadline stops)."""
    return apply(conn, case_id, A.resolve, who=who, now=now, note=note)


def visit(
    conn: Connection, case_id: int, *, who: str, now: datetime, note: str | None = None
) -> Case:
    """Record the follow-up visit."""
    return apply(conn, case_id, A.visit, who=who, now=now, note=note)


def close(
    conn: Connection, case_id: int, *, who: str, now: datetime, note: str | None = None
) -> Case:
    """Evaluate and close the case."""
    return apply(conn, case_id, A.close, who=who, now=now, note=note)


def send_back(conn: Connection, case_id: int, *, who: str, now: datetime, note: str) -> Case:
    """Return the case (action ``return``): to the command centre, or to the handler."""
    return apply(conn, case_id, A.return_, who=who, now=now, note=note)


def reassign(
    conn: Connection, case_id: int, *, who: str, now: datetime, unit: str, note: str
) -> Case:
    """Hand the case to another unit (it is dispatched again)."""
    return apply(conn, case_id, A.reassign, who=who, now=now, unit=unit, note=note)


def reopen(
    conn: Connection, case_id: int, *, who: str, now: datetime, calendar: WorkingCalendar, note: str
) -> Case:
    """Reopen a closed case: back to handling with a new deadline from ``now``."""
    return apply(conn, case_id, A.reopen, who=who, now=now, calendar=calendar, note=note)


def merge(
    conn: Connection,
    case_id: int,
    into: int,
    *,
    who: str,
    now: datetime,
    note: str | None = None,
    scope: CaseScope | None = None,
    permit: Permit | None = None,
) -> tuple[Case, Case]:
    """Fold a duplicate into an open case; return (merged case, the case it went into).

    Both cases must be in ``scope``; one outside it is NotFound. ``permit`` is asked about
    the merged case's status (Forbidden when it refuses).

    The kept case's reporters grow by the merged case's reporters (each tagged with the case it
    came from), duplicates that pointed at the merged case now point at the kept one, and the
    kept case stops being a duplicate if it was one of the merged case.
    """
    if case_id == into:
        raise InvalidInput("a case cannot be merged into itself")
    if not who or not who.strip():
        raise InvalidInput("every transition needs who does it")
    rows = conn.execute(
        case_select()
        .where(cases.c.id.in_([case_id, into]), *scope_conditions(scope))
        .order_by(cases.c.id)
        .with_for_update(of=cases, key_share=True)  # NO KEY: see fetch_case
    ).all()
    found = {c.id: c for c in map(case_from_row, rows)}
    for wanted in (case_id, into):
        if wanted not in found:
            raise NotFound(f"no case {wanted}")
    source, kept = found[case_id], found[into]
    _check_permit(permit, source.status, A.merge)
    target = target_of(source.status, A.merge)
    if kept.status not in OPEN:
        raise Conflict(f"case {into} is {kept.status.value}: merge into an open case")
    tagged = [{**r, "merged_from": source.id} for r in source.reporters]
    conn.execute(
        cases.update()
        .where(cases.c.id == into)
        .values(
            reporters=cases.c.reporters.op("||")(cast(tagged, JSONB)),
            duplicate_of=sql_case(
                (cases.c.duplicate_of == case_id, None), else_=cases.c.duplicate_of
            ),
            updated_at=now,
        )
    )
    conn.execute(
        cases.update()
        .where(cases.c.id == case_id)
        .values(status=target.value, step=STEP[target], merged_into=into, updated_at=now)
    )
    relinked = (
        conn.execute(
            cases.update()
            .where(cases.c.duplicate_of == case_id, cases.c.id != into)
            .values(duplicate_of=into)
            .returning(cases.c.id)
        )
        .scalars()
        .all()
    )
    add_event(
        conn,
        source,
        A.merge.value,
        from_status=source.status,
        to_status=target,
        actor=who.strip(),
        at=now,
        note=note,
        detail={"into": into},
    )
    add_event(
        conn,
        kept,
        A.merge.value,
        from_status=kept.status,
        to_status=kept.status,
        actor=who.strip(),
        at=now,
        note=note,
        detail={
            "merged": case_id,
            "reporters_added": len(tagged),
            "duplicates_relinked": sorted(int(i) for i in relinked),
        },
    )
    return fetch_case(conn, case_id), fetch_case(conn, into)
