"""Read and write the platform's case tables (never layer tables): rows in, models out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg.types.json import Jsonb
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Row

from cases.models import OPEN, Case, CaseEvent, DepartmentCall, Escalation, Status
from schemas.database import driver_sql
from schemas.errors import NotFound
from schemas.tables import case_events, cases, department_calls, escalations

SYSTEM_ACTOR = "system"

_COLUMNS = [c for c in cases.c if c.name != "geom"]

#: The columns intake sets on a new case; the point (``geom``) and ``duplicate_of`` are
#: computed in the same statement (see :func:`insert_received`).
RECEIVED_COLUMNS: Final = frozenset(
    c.name for c in cases.c if c.name not in {"id", "geom", "duplicate_of", "merged_into"}
) - {"overdue", "escalated", "escalated_at", "resolved_at", "closed_at"}

_OPEN_SQL: Final = "ARRAY[{}]::text[]".format(", ".join(f"'{s.value}'" for s in sorted(OPEN)))

#: The open original case a point repeats (needs ``p(g)``; parameters ``dup_*``).
DUPLICATE_SQL: Final = f"""
    SELECT c.id FROM cases c, p
    WHERE c.item_code = :dup_item AND c.status = ANY({_OPEN_SQL}) AND c.duplicate_of IS NULL
      AND c.geom IS NOT NULL AND c.id <> :dup_exclude
      AND c.reported_at BETWEEN :dup_t0 AND :dup_t1
      AND ST_DWithin(c.geom, p.g, :dup_deg)
      AND ST_DWithin(c.geom::geography, p.g::geography, :dup_radius)
    ORDER BY ST_Distance(c.geom::geography, p.g::geography), c.reported_at, c.id
    LIMIT 1"""
POINT_SQL: Final = "SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), :srid) AS g"


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
    The lock is ``FOR NO KEY UPDATE``, as every lock taken to change a case (its id never
    changes): it serialises the case's writers, but unlike ``FOR UPDATE`` it does not block
    the ``FOR KEY SHARE`` lock of a foreign-key check, so intake may link a new duplicate to
    the case (``duplicate_of``) meanwhile instead of waiting for the locking transaction.
    """
    stmt = case_select().where(cases.c.id == case_id, *scope_conditions(scope))
    if lock:
        stmt = stmt.with_for_update(of=cases, key_share=True)
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


def _q(name: str) -> str:
    return f'"{name}"'


def _insert_received_sql(search: bool) -> str:
    """Return the one statement that stores a received case and its first event.

    Point, duplicate search, ``INSERT … ON CONFLICT DO NOTHING``, the ``receive`` event (with
    ``duplicate_of`` added to its detail when one was found) and the stored row (the columns
    :func:`case_select` reads, as one JSON text: cheaper to decode than 50 typed columns) in a
    single round trip. No row back: a concurrent re-send won.
    """
    names = sorted(RECEIVED_COLUMNS)
    columns = ", ".join(_q(n) for n in [*names, "geom", "duplicate_of"])
    values = ", ".join(f":{n}" for n in names)
    duplicate = "(SELECT id FROM dup)" if search else "NULL"
    returning = ", ".join(_q(c.name) for c in _COLUMNS)
    dup_cte = f"dup AS ({DUPLICATE_SQL})," if search else ""
    sql = f"""
    WITH p AS ({POINT_SQL}), {dup_cte}
    ins AS (
        INSERT INTO cases ({columns})
        VALUES ({values}, (SELECT g FROM p), {duplicate})
        ON CONFLICT (source_system, source_id) DO NOTHING
        RETURNING {returning}, ST_X(geom) AS lon, ST_Y(geom) AS lat
    ),
    ev AS (
        INSERT INTO case_events
            (case_id, action, from_status, to_status, actor, at, note, detail, district_code)
        SELECT ins.id, 'receive', NULL, ins.status, ins.source_system, ins.received_at, :ev_note,
               CAST(:ev_detail AS jsonb) || CASE WHEN ins.duplicate_of IS NULL THEN '{{}}'::jsonb
                   ELSE jsonb_build_object('duplicate_of', ins.duplicate_of) END,
               ins.district_code
        FROM ins
    )
    SELECT row_to_json(ins)::text FROM ins
    """
    return driver_sql(sql)


_INSERT_RECEIVED: Final = {search: _insert_received_sql(search) for search in (False, True)}
_JSONB_PARAMS: Final = ("reporter", "reporters", "payload", "ev_detail")


def insert_received(
    conn: Connection,
    values: Mapping[str, Any],
    *,
    point: tuple[float, float] | None,
    srid: int,
    duplicate: Mapping[str, Any] | None,
    note: str | None,
    detail: Mapping[str, Any],
) -> Case | None:
    """Store a new case and its ``receive`` event in one statement; None if it exists already.

    The event's actor is the sending system.

    ``values`` gives every column of :data:`RECEIVED_COLUMNS`; ``duplicate`` the ``dup_*``
    parameters of :data:`DUPLICATE_SQL` (None: no search, ``duplicate_of`` stays empty).
    """
    missing = RECEIVED_COLUMNS - values.keys()
    if missing:
        raise ValueError(f"insert_received: no value for {sorted(missing)}")
    params: dict[str, Any] = {k: values[k] for k in RECEIVED_COLUMNS}
    params |= {
        "lon": None if point is None else point[0],
        "lat": None if point is None else point[1],
        "srid": srid,
        "ev_note": note,
        "ev_detail": dict(detail),
        **(duplicate or {}),
    }
    for name in _JSONB_PARAMS:  # JSON null for None, as SQLAlchemy's JSONB type writes it
        params[name] = Jsonb(params[name])
    sql = _INSERT_RECEIVED[duplicate is not None]
    doc = conn.exec_driver_sql(sql, params).scalar()
    return None if doc is None else Case.model_validate_json(doc)
