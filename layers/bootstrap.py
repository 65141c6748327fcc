"""Bring a database to the current schema, catalog and divisions register."""

from __future__ import annotations

from sqlalchemy import Engine

from layers.divisions import default_divisions, seed_divisions
from layers.registry import default_catalog
from schemas import migrate
from schemas.layer_sync import SyncReport
from schemas.settings import Settings


def prepare_database(engine: Engine, settings: Settings) -> SyncReport:
    """Migrate to head, create/extend layer tables from the catalog, seed the divisions."""
    catalog = default_catalog(settings.catalog_dir)
    report = migrate.upgrade(engine, catalog, srid=settings.storage_epsg)
    with engine.begin() as conn:
        seed_divisions(conn, default_divisions())
    return report
