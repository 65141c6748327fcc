"""Case statistics by town, department, unit, category, item or period.

Cohort counts: the cases *received* in [start, end) (merged duplicates left out, they are one
problem with their original), grouped, and for each group:

* received, closed (closed now), closure rate = closed / received;
* on-time rate = resolved by the deadline / cases whose timeliness is known (resolved, plus still
  running past the deadline — those are late whatever happens next);
* overdue now = still running and past the deadline at ``now``;
* median hours to close = median of closed_at − received_at over the closed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, text

from cases.models import RUNNING
from cases.store import CaseScope
from schemas.errors import InvalidInput

#: Dimension -> (key expression, label aggregate) over the cases table; identifiers are fixed.
DIMENSIONS: Final = {
    "town": ("town_code", "max(town_name)"),
    "department": ("department", "NULL"),
    "unit": ("responsible_unit", "NULL"),
    "category": ("category", "NULL"),
    "item": ("item_code", "NULL"),
}
PERIODS: Final = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True, slots=True)
class StatRow:
    """The figures of one group."""

    key: str | None
    label: str | None
    received: int
    closed: int
    closure_rate: float | None
    on_time_rate: float | None
    overdue_now: int
    median_hours_to_close: float | None


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def case_stats(
    conn: Connection,
    *,
    by: str,
    start: datetime,
    end: datetime,
    now: datetime,
    period: str = "month",
    timezone: str = "Asia/Shanghai",
    scope: CaseScope | None = None,
) -> list[StatRow]:
    """Return the statistics of cases received in [start, end), one row per group.

    Only the cases in ``scope`` (the caller's towns or department) count; None counts all.
    """
    if by == "period":
        if period not in PERIODS:
            raise InvalidInput(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
        key = f"to_char(date_trunc('{period}', received_at AT TIME ZONE :tz), 'YYYY-MM-DD')"
        label = "NULL"
    elif by in DIMENSIONS:
        key, label = DIMENSIONS[by]
    else:
        raise InvalidInput(f"by must be one of {', '.join([*DIMENSIONS, 'period'])}, not {by!r}")
    if end <= start:
        raise InvalidInput("end must be after start")
    scoped = ""
    params: dict[str, object] = {}
    if scope is not None and scope.towns is not None:
        scoped += " AND town_code = ANY(:scope_towns)"
        params["scope_towns"] = list(scope.towns)
    if scope is not None and scope.department is not None:
        scoped += " AND (department = :scope_department OR responsible_unit = :scope_department)"
        params["scope_department"] = scope.department
    rows = conn.execute(
        text(f"""
        SELECT {key} AS key, {label} AS label,
               count(*) AS received,
               count(*) FILTER (WHERE status = 'closed') AS closed,
               count(*) FILTER (WHERE resolved_at IS NOT NULL AND resolved_at <= deadline)
                   AS on_time,
               count(*) FILTER (WHERE resolved_at IS NOT NULL
                                   OR (status = ANY(:running) AND deadline < :now)) AS judged,
               count(*) FILTER (WHERE status = ANY(:running) AND deadline < :now) AS overdue_now,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM closed_at - received_at) / 3600.0
               ) FILTER (WHERE status = 'closed' AND closed_at IS NOT NULL) AS median_hours
        FROM cases
        WHERE status <> 'merged' AND received_at >= :start AND received_at < :end{scoped}
        GROUP BY 1
        ORDER BY 1 NULLS LAST
        """),
        {
            "start": start,
            "end": end,
            "now": now,
            "tz": timezone,
            "running": sorted(s.value for s in RUNNING),
            **params,
        },
    ).all()
    return [
        StatRow(
            key=None if r.key is None else str(r.key),
            label=str(r.label) if r.label is not None else (None if r.key is None else str(r.key)),
            received=int(r.received),
            closed=int(r.closed),
            closure_rate=_rate(int(r.closed), int(r.received)),
            on_time_rate=_rate(int(r.on_time), int(r.judged)),
            overdue_now=int(r.overdue_now),
            median_hours_to_close=None
            if r.median_hours is None
            else round(float(r.median_hours), 2),
        )
        for r in rows
    ]
