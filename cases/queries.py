"""Read cases for the API: one case with its timeline, and filtered, paged lists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import ColumnElement, Connection, and_, false, func, or_, select

from cases.models import RUNNING, CaseDetail, CasePage, Status
from cases.store import (
    CaseScope,
    calls_of,
    case_from_row,
    case_select,
    escalations_of,
    events_of,
    fetch_case,
    scope_conditions,
)
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG
from schemas.tables import cases

__all__ = ["MAX_LIMIT", "CaseFilter", "CaseScope", "get_case", "list_cases"]

MAX_LIMIT: Final = 1000


@dataclass(frozen=True)
class CaseFilter:
    """Filters of a case list; every one given must hold (None = any)."""

    status: Sequence[Status | str] | None = None
    town_code: str | None = None
    village_code: str | None = None
    grid_code: str | None = None
    department: str | None = None  # the rule's department (generic) or the responsible unit
    item_code: str | None = None
    category: str | None = None
    source_system: str | None = None
    overdue: bool | None = None  # overdue now (running, past the deadline at ``now``)
    needs_manual_location: bool | None = None
    duplicates: bool | None = None  # True: only linked duplicates; False: only originals
    received_from: datetime | None = None
    received_to: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None  # storage lon/lat
    scope: CaseScope | None = None  # the caller's towns or department (None: every case)


def get_case(conn: Connection, case_id: int, *, scope: CaseScope | None = None) -> CaseDetail:
    """Return a case with its timeline, department calls and escalations; NotFound if absent.

    A case outside ``scope`` is NotFound as well (its existence is not told).
    """
    return CaseDetail(
        case=fetch_case(conn, case_id, scope=scope),
        events=events_of(conn, case_id),
        calls=calls_of(conn, case_id),
        escalations=escalations_of(conn, case_id),
    )


def _overdue(now: datetime) -> ColumnElement[bool]:
    """Return the condition "overdue now": still running and past the deadline at ``now``."""
    return and_(cases.c.status.in_([s.value for s in RUNNING]), cases.c.deadline < now)


def _conditions(f: CaseFilter, now: datetime, srid: int) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = scope_conditions(f.scope)
    if f.status is not None:
        try:
            wanted = [Status(s).value for s in f.status]
        except ValueError as exc:
            raise InvalidInput(
                f"{exc}; statuses are {', '.join(s.value for s in Status)}"
            ) from None
        where.append(cases.c.status.in_(wanted) if wanted else false())
    for column, value in (
        (cases.c.town_code, f.town_code),
        (cases.c.village_code, f.village_code),
        (cases.c.grid_code, f.grid_code),
        (cases.c.item_code, f.item_code),
        (cases.c.category, f.category),
        (cases.c.source_system, f.source_system),
    ):
        if value is not None:
            where.append(column == value)
    if f.department is not None:
        where.append(
            or_(cases.c.department == f.department, cases.c.responsible_unit == f.department)
        )
    if f.overdue is not None:
        where.append(_overdue(now) if f.overdue else ~_overdue(now))
    if f.needs_manual_location is not None:
        where.append(cases.c.needs_manual_location.is_(f.needs_manual_location))
    if f.duplicates is not None:
        where.append(
            cases.c.duplicate_of.is_not(None) if f.duplicates else cases.c.duplicate_of.is_(None)
        )
    if f.received_from is not None:
        where.append(cases.c.received_at >= f.received_from)
    if f.received_to is not None:
        where.append(cases.c.received_at < f.received_to)
    if f.bbox is not None:
        minx, miny, maxx, maxy = f.bbox
        if not all(map(math.isfinite, f.bbox)) or minx > maxx or miny > maxy:
            raise InvalidInput(f"bbox must be minlon, minlat, maxlon, maxlat, not {f.bbox}")
        envelope = func.ST_MakeEnvelope(minx, miny, maxx, maxy, srid)
        where.append(cases.c.geom.op("&&")(envelope))
        where.append(func.ST_Intersects(cases.c.geom, envelope))
    return where


def list_cases(
    conn: Connection,
    filters: CaseFilter | None = None,
    *,
    now: datetime,
    limit: int = 50,
    offset: int = 0,
    srid: int = STORAGE_EPSG,
) -> CasePage:
    """Return one page of the cases matching the filters, newest received first, and the total."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, not {offset}")
    where = _conditions(filters or CaseFilter(), now, srid)
    total = conn.execute(select(func.count()).select_from(cases).where(*where)).scalar_one()
    rows = conn.execute(
        case_select()
        .where(*where)
        .order_by(cases.c.received_at.desc(), cases.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return CasePage(
        items=[case_from_row(r) for r in rows], total=int(total), limit=limit, offset=offset
    )


MAX_POINTS: Final = 10_000


@dataclass(frozen=True)
class CasePoint:
    """A located case as a map draws it: where, which step, overdue or not."""

    id: int
    status: str
    item_code: str
    category: str
    lon: float
    lat: float
    overdue: bool
    duplicate_of: int | None
    town_code: str | None
    received_at: datetime


@dataclass(frozen=True)
class CasePointPage:
    """One page of located cases, the located total and how many match but have no point."""

    items: list[CasePoint]
    total: int
    unlocated: int
    limit: int
    offset: int


def case_points(
    conn: Connection,
    filters: CaseFilter | None = None,
    *,
    now: datetime,
    limit: int = 5000,
    offset: int = 0,
    srid: int = STORAGE_EPSG,
) -> CasePointPage:
    """Return one page of the located cases matching the filters (compact, for maps), by id."""
    if not 1 <= limit <= MAX_POINTS:
        raise InvalidInput(f"limit must be between 1 and {MAX_POINTS}, not {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, not {offset}")
    where = _conditions(filters or CaseFilter(), now, srid)
    located = cases.c.geom.is_not(None)
    counts = conn.execute(
        select(func.count().filter(located), func.count().filter(cases.c.geom.is_(None))).where(
            *where
        )
    ).one()
    rows = conn.execute(
        select(
            cases.c.id,
            cases.c.status,
            cases.c.item_code,
            cases.c.category,
            func.ST_X(cases.c.geom).label("lon"),
            func.ST_Y(cases.c.geom).label("lat"),
            func.coalesce(_overdue(now), false()).label("overdue"),
            cases.c.duplicate_of,
            cases.c.town_code,
            cases.c.received_at,
        )
        .where(*where, located)
        .order_by(cases.c.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return CasePointPage(
        items=[
            CasePoint(
                id=int(r.id),
                status=str(r.status),
                item_code=str(r.item_code),
                category=str(r.category),
                lon=float(r.lon),
                lat=float(r.lat),
                overdue=bool(r.overdue),
                duplicate_of=None if r.duplicate_of is None else int(r.duplicate_of),
                town_code=r.town_code,
                received_at=r.received_at,
            )
            for r in rows
        ],
        total=int(counts[0]),
        unlocated=int(counts[1]),
        limit=limit,
        offset=offset,
    )
