"""有呼必应: a town that cannot solve a case alone calls a district department, which must respond.

The call becomes a to-do for the department with a response deadline on the working calendar;
an unanswered call past its deadline is escalated by :func:`cases.escalation.escalate_due`. The
town then verifies on site and decides (through the workflow) whether to close.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection, select

from cases.calendar import add_deadline
from cases.models import DepartmentCall, Status
from cases.rules import Deadline, DeadlineUnit, WorkingCalendar
from cases.store import add_event, fetch_case
from schemas.errors import Conflict, InvalidInput, NotFound
from schemas.tables import department_calls

#: How long a department has to respond when the caller names no limit.
DEFAULT_RESPONSE: Final = Deadline(amount=1, unit=DeadlineUnit.working_days)
#: A department may be called while the case is being dispatched or handled.
CALLABLE: Final = frozenset({Status.dispatched, Status.handling})


def _call(conn: Connection, call_id: int, *, lock: bool = False) -> DepartmentCall:
    stmt = select(department_calls).where(department_calls.c.id == call_id)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"no department call {call_id}")
    return DepartmentCall.model_validate(dict(row._mapping))


def call_department(
    conn: Connection,
    case_id: int,
    department: str,
    *,
    who: str,
    now: datetime,
    calendar: WorkingCalendar,
    within: Deadline = DEFAULT_RESPONSE,
    note: str | None = None,
) -> DepartmentCall:
    """Call a district department on a case; return the call with its response deadline."""
    if not department or not department.strip():
        raise InvalidInput("name the department to call")
    if not who or not who.strip():
        raise InvalidInput("a call needs who makes it")
    case = fetch_case(conn, case_id, lock=True)
    if case.status not in CALLABLE:
        raise Conflict(
            f"case {case_id} is {case.status.value}: departments are called on dispatched or "
            "handling cases"
        )
    deadline = add_deadline(calendar, now, within)
    call_id = conn.execute(
        department_calls.insert()
        .values(
            case_id=case_id,
            department=department.strip(),
            caller=who.strip(),
            note=note,
            called_at=now,
            deadline=deadline,
            district_code=case.district_code,
        )
        .returning(department_calls.c.id)
    ).scalar_one()
    add_event(
        conn,
        case,
        "call",
        from_status=case.status,
        to_status=case.status,
        actor=who.strip(),
        at=now,
        note=note,
        detail={
            "call_id": int(call_id),
            "department": department.strip(),
            "deadline": deadline.isoformat(),
        },
    )
    return _call(conn, int(call_id))


def respond_call(
    conn: Connection,
    call_id: int,
    *,
    who: str,
    now: datetime,
    response: str,
    department: str | None = None,
) -> DepartmentCall:
    """Record a department's response to a call (once); return the call.

    ``department``: the responder's department (a department handler's scope); a call addressed
    to another department is NotFound, as one that does not exist.
    """
    if not response or not response.strip():
        raise InvalidInput("a response needs its content")
    call = _call(conn, call_id, lock=True)
    if department is not None and call.department != department:
        raise NotFound(f"no department call {call_id}")
    if call.responded_at is not None:
        raise Conflict(f"call {call_id} was answered at {call.responded_at.isoformat()}")
    conn.execute(
        department_calls.update()
        .where(department_calls.c.id == call_id)
        .values(responded_at=now, responder=who.strip(), response=response.strip())
    )
    case = fetch_case(conn, call.case_id)
    add_event(
        conn,
        case,
        "respond",
        from_status=case.status,
        to_status=case.status,
        actor=who.strip(),
        at=now,
        note=response.strip(),
        detail={"call_id": call_id, "department": call.department, "late": now > call.deadline},
    )
    return _call(conn, call_id)
