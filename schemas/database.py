"""Connections: the URL to use, engines, and the checks that the server is fit for us."""

from __future__ import annotations

import re
from typing import Final

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from schemas.embedded import EmbeddedCluster
from schemas.errors import DatabaseError, DatabaseUnavailable
from schemas.settings import Settings


def cluster_for(settings: Settings) -> EmbeddedCluster:
    """Return the embedded cluster the settings describe."""
    return EmbeddedCluster(settings.pg_dir, port=settings.pg_port, pg_bin=settings.pg_bin)


def parse_url(raw: str) -> URL:
    """Parse a PostgreSQL URL and pin the psycopg 3 driver; refuse anything else."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise DatabaseError(
            "SIBIAO_DATABASE_URL is not a database URL; expected "
            "postgresql://user:password@host:port/database"
        ) from None
    if url.get_backend_name() != "postgresql":
        raise DatabaseError(
            f"Sibiao needs PostgreSQL with PostGIS, not {url.get_backend_name()!r}: "
            "set SIBIAO_DATABASE_URL to a postgresql:// URL or unset it to use the embedded one"
        )
    return url.set(drivername="postgresql+psycopg")


def database_url(settings: Settings, *, start: bool = True) -> URL:
    """Return the URL of the platform's database, starting the embedded one if needed."""
    if settings.database_url is not None:
        return parse_url(settings.database_url)
    cluster = cluster_for(settings)
    if start:
        cluster.start()
        ensure_database(parse_url(cluster.url("postgres")), settings.database_name)
    return parse_url(cluster.url(settings.database_name))


def _describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def ensure_database(maintenance: URL, name: str) -> None:
    """Create database ``name`` (on the server of ``maintenance``) with PostGIS, if missing."""
    engine = create_engine(maintenance, isolation_level="AUTOCOMMIT", poolclass=None)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {_describe(maintenance)}: {_first(exc)}"
        ) from None
    finally:
        engine.dispose()
    target = maintenance.set(database=name)
    engine = create_engine(target, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except DBAPIError as exc:
        raise DatabaseError(
            f"cannot enable PostGIS in {_describe(target)}: {_first(exc)}; "
            "install postgresql-<version>-postgis-3 on that server"
        ) from None
    finally:
        engine.dispose()


def drop_database(maintenance: URL, name: str) -> None:
    """Drop database ``name``, closing other sessions on it first."""
    engine = create_engine(maintenance, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def _first(exc: DBAPIError) -> str:
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


#: Connections an engine keeps: one per thread of the API's thread pool (AnyIO's default
#: limiter: 40 tokens), so busy sync handlers never open and close overflow connections (a new
#: backend per request is the most expensive thing a request can do).
POOL_SIZE: Final = 40
MAX_OVERFLOW: Final = 10


def make_engine(url: URL, *, pool_size: int = POOL_SIZE) -> Engine:
    """Return an engine for ``url`` (psycopg 3, pre-ping, a pool as large as the thread pool).

    Connections are opened on demand: the pool only caps how many are kept. They are not
    recycled by age: connections opened in the same burst would all expire together and be
    reopened together, and a new backend's first statements cost ~25 ms more (a stall of the
    intake, docs/benchmarks.md); pre-ping replaces the ones that died.
    """
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=MAX_OVERFLOW,
        pool_pre_ping=True,
    )


def check_server(engine: Engine) -> str:
    """Return the PostGIS version, or raise a clear error when the server is unfit."""
    try:
        with engine.connect() as conn:
            has = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            ).scalar()
            if not has:
                raise DatabaseError(
                    f"the server at {_describe(engine.url)} has no PostGIS: install "
                    "postgresql-<version>-postgis-3 there, or unset SIBIAO_DATABASE_URL "
                    "to use the embedded cluster"
                )
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            conn.commit()
            return str(conn.execute(text("SELECT postgis_lib_version()")).scalar())
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {_describe(engine.url)}: {_first(exc)}"
        ) from None
    except DBAPIError as exc:
        raise DatabaseError(f"{_describe(engine.url)}: {_first(exc)}") from None


_NAMED: Final = re.compile(r"(?<![:\w]):(\w+)")


def driver_sql(sql: str) -> str:
    """Return SQL written with ``:name`` parameters in psycopg's ``%(name)s`` style.

    For the few hot statements run with ``Connection.exec_driver_sql`` (no SQLAlchemy compile or
    cache key per execution). ``::type`` casts are kept; the SQL must hold no ``%``.
    """
    if "%" in sql:
        raise ValueError("driver_sql: the statement must not contain '%'")
    return _NAMED.sub(r"%(\1)s", sql)
