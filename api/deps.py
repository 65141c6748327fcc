"""Dependencies shared by routers: settings, engine, connections, the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from schemas.catalog import Catalog
from schemas.errors import DatabaseUnavailable
from schemas.settings import Settings


def get_settings(request: Request) -> Settings:
    """Return the app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    """Return the app's engine."""
    engine: Engine = request.app.state.engine
    return engine


def get_catalog(request: Request) -> Catalog:
    """Return the app's catalog."""
    catalog: Catalog = request.app.state.catalog
    return catalog


def get_connection(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Connection]:
    """Yield a connection for one request; a database that is down answers 503."""
    try:
        conn = engine.connect()
    except OperationalError:
        raise DatabaseUnavailable("the database is unavailable; try again shortly") from None
    with conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
ConnectionDep = Annotated[Connection, Depends(get_connection)]
