"""Check, before serving, that the database is up and at the current schema."""

from __future__ import annotations

from layers.status import database_status
from schemas import migrate
from schemas.database import check_server, database_url, make_engine
from schemas.errors import DatabaseError
from schemas.settings import Settings


def ensure_ready(settings: Settings) -> None:
    """Raise a clear error unless the database runs PostGIS at the newest revision."""
    engine = make_engine(database_url(settings))
    try:
        check_server(engine)
        with engine.connect() as conn:
            status = database_status(conn)
    finally:
        engine.dispose()
    if status.revision != migrate.head():
        raise DatabaseError(
            f"the database schema is at {status.revision or 'nothing'}, not {migrate.head()}: "
            "run `sibiao db upgrade`"
        )
