"""The audit log: every write and every read of a restricted layer, who, what, when, from where.

Rows are written by the API's security middleware (one place, ``api.security``), never by
routers; they are read by ``GET /audit`` and by whoever investigates, with SQL if need be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from schemas.tables import audit_log

#: Keys never written into ``detail`` (credentials that might travel in a query string).
SECRET_KEYS = frozenset({"api_key", "password", "token", "access_token", "key", "secret"})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited request."""

    who: str
    role: str
    action: str  # method and route template, e.g. "POST /layers/{code}/loads"
    status: int
    target: str | None = None  # e.g. "population" or "case 12"
    client: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def scrub(values: dict[str, Any]) -> dict[str, Any]:
    """Return ``values`` without credentials (their keys kept, values replaced)."""
    return {k: ("***" if k.lower() in SECRET_KEYS else v) for k, v in values.items()}


def record(conn: Connection, entry: AuditEntry, *, district_code: str) -> None:
    """Write one row."""
    conn.execute(
        audit_log.insert().values(
            who=entry.who[:200],
            role=entry.role,
            action=entry.action[:300],
            target=None if entry.target is None else entry.target[:500],
            status=entry.status,
            client=entry.client,
            detail=scrub(entry.detail) or None,
            district_code=district_code,
        )
    )


def recent(
    conn: Connection,
    *,
    limit: int = 100,
    who: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Return the newest rows first, filtered by who, action (prefix) and time."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if who is not None:
        query = query.where(audit_log.c.who == who)
    if action is not None:
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "who": r.who,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "status": r.status,
            "client": r.client,
            "detail": r.detail,
        }
        for r in conn.execute(query)
    ]
