"""What the database holds: schema revision, PostGIS version, rows per layer."""

from __future__ import annotations

from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from schemas.tables import LAYER_SCHEMA


@dataclass(frozen=True)
class DatabaseStatus:
    """A short account of the database for health checks and ``sibiao db status``."""

    revision: str | None
    postgis: str
    layer_tables: int
    estimated_features: dict[str, int]


def database_status(conn: Connection) -> DatabaseStatus:
    """Return the schema revision, PostGIS version and estimated rows of each layer table."""
    revision = MigrationContext.configure(conn).get_current_revision()
    postgis = str(conn.execute(text("SELECT postgis_lib_version()")).scalar())
    rows = conn.execute(
        text(
            "SELECT c.relname, greatest(c.reltuples, 0)::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind = 'r' ORDER BY c.relname"
        ),
        {"schema": LAYER_SCHEMA},
    ).all()
    return DatabaseStatus(
        revision=revision,
        postgis=postgis,
        layer_tables=len(rows),
        estimated_features={str(name): int(count) for name, count in rows},
    )
