"""Read and write the platform's case tables (never layer tables): rows in, models out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, false, func, or_, select
from sqlalchemy.engine import Row

from cases.models import Case, CaseEvent, DepartmentCall, Escalation, Status
from schemas.errors import NotFound
from schemas.tables import case_events, cases, department_calls, escalations

SYSTEM_ACTOR = "system"

_COLUMNS = [c for c in cases.c if c.name != "geom"]


@dataclass(frozen=True, slots=True)
class CaseScope:
    """Which cases a caller may see and act on (None = not limited that way).

    ``towns``: a dispatcher's towns (an empty tuple sees nothing); ``department``: a department
    handler's department, matched against the rule's department or the responsible unit.
    Supervisors, admins and callers of an app without authentication have no scope (None).
    """

    towns: tuple[str, ...] | None = None
    department: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """Return the WHERE conditions on ``cases`` that keep only the cases in scope."""
        where: list[ColumnElement[bool]] = []
        if self.towns is not None:
            where.append(cases.c.town_code.in_(self.towns) if self.towns else false())
        if self.department is not None:
            where.append(
                or_(
                    cases.c.department == self.department,
                    cases.c.responsible_unit == self.department,
                )
            )
        return where


def scope_conditions(scope: CaseScope | None) -> list[ColumnElement[bool]]:
    """Return the conditions of a scope (none for no scope)."""
    return [] if scope is None else scope.conditions()


def case_select() -> Select[Any]:
    """Return SELECT of every case column with the point as lon/lat."""
    return select(
        *_COLUMNS,
        func.ST_X(cases.c.geom).label("lon"),
        func.ST_Y(cases.c.geom).label("lat"),
    )


def case_from_row(row: Row[Any] | Mapping[str, Any]) -> Case:
    """Return the model of a row selected by :func:`case_select`."""
    data = dict(row._mapping) if isinstance(row, Row) else dict(row)
    data["reporters"] = data.get("reporters") or []
    return Case.model_validate(data)


def fetch_case(
    conn: Connection, case_id: int, *, lock: bool = False, scope: CaseScope | None = None
) -> Case:
    """Return a case (locking its row for the transaction when ``lock``); NotFound if absent.

    A case outside ``scope`` is NotFound too, with the same message: its existence is not told.
    """
    stmt = case_select().where(cases.c.id == case_id, *scope_conditions(scope))
    if lock:
        stmt = stmt.with_for_update(of=cases)
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return case_from_row(row)


def ensure_in_scope(conn: Connection, case_id: int, scope: CaseScope | None) -> None:
    """Raise NotFound unless the case exists and is in ``scope`` (no scope: no check)."""
    if scope is not None:
        fetch_case(conn, case_id, scope=scope)


def find_by_source(conn: Connection, system: str, source_id: str) -> Case | None:
    """Return the case a system sent under its own id, if any."""
    row = conn.execute(
        case_select().where(cases.c.source_system == system, cases.c.source_id == source_id)
    ).first()
    return None if row is None else case_from_row(row)


def add_event(
    conn: Connection,
    case: Case,
    action: str,
    *,
    to_status: Status | str,
    actor: str,
    at: datetime,
    from_status: Status | str | None = None,
    note: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Write one line of a case's timeline; return its id."""
    return int(
        conn.execute(
            case_events.insert()
            .values(
                case_id=case.id,
                action=action,
                from_status=None if from_status is None else str(from_status),
                to_status=str(to_status),
                actor=actor,
                at=at,
                note=note,
                detail=dict(detail) if detail else None,
                district_code=case.district_code,
            )
            .returning(case_events.c.id)
        ).scalar_one()
    )


def events_of(conn: Connection, case_id: int) -> list[CaseEvent]:
    """Return a case's timeline, oldest first."""
    rows = conn.execute(
        select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.id)
    ).all()
    return [CaseEvent.model_validate(dict(r._mapping)) for r in rows]


def calls_of(conn: Connection, case_id: int) -> list[DepartmentCall]:
    """Return a case's department calls, oldest first."""
    rows = conn.execute(
        select(department_calls)
        .where(department_calls.c.case_id == case_id)
        .order_by(department_calls.c.id)
    ).all()
    return [DepartmentCall.model_validate(dict(r._mapping)) for r in rows]


def escalations_of(conn: Connection, case_id: int) -> list[Escalation]:
    """Return the escalations of a case and of its department calls, oldest first."""
    calls = select(department_calls.c.id).where(department_calls.c.case_id == case_id)
    rows = conn.execute(
        select(escalations)
        .where((escalations.c.case_id == case_id) | escalations.c.call_id.in_(calls))
        .order_by(escalations.c.id)
    ).all()
    return [Escalation.model_validate(dict(r._mapping)) for r in rows]
