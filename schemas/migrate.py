"""Run the Alembic migrations on a connection we own, with the catalog handed in."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from schemas.catalog import Catalog
from schemas.layer_sync import SyncReport, sync_layer_tables

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(conn: Connection | None, catalog: Catalog | None, *, srid: int) -> Config:
    """Return an Alembic configuration bound to ``conn`` that knows the catalog."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes.update({"connection": conn, "catalog": catalog, "srid": srid})
    return cfg


def head() -> str:
    """Return the newest revision."""
    script = ScriptDirectory.from_config(alembic_config(None, None, srid=0))
    current = script.get_current_head()
    assert current is not None
    return current


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at (None when empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, catalog: Catalog, *, srid: int, revision: str = "head") -> SyncReport:
    """Migrate to ``revision`` and, at head, add what the catalog gained since; one transaction."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn, catalog, srid=srid), revision)
        at_head = MigrationContext.configure(conn).get_current_revision() == head()
        return sync_layer_tables(conn, catalog, srid=srid) if at_head else SyncReport()


def downgrade(engine: Engine, catalog: Catalog, *, srid: int, revision: str = "base") -> None:
    """Migrate down to ``revision`` in one transaction."""
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn, catalog, srid=srid), revision)
