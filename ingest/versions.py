"""Layer history and rollback, as the CLI and the API offer them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, text

from ingest import batches
from ingest.publish import Published, rollback
from schemas.catalog import Catalog
from schemas.errors import InvalidInput, NotFound
from schemas.settings import Settings


def _vector_layer(catalog: Catalog, code: str) -> None:
    if not catalog.has_layer(code):
        raise NotFound(f"no layer {code!r} in the catalog; `sibiao layers list` shows them")
    if catalog.layer(code).is_raster:
        raise InvalidInput(f"{code} is a raster layer; its versions are raster versions")


def layer_history(conn: Connection, catalog: Catalog, code: str) -> list[dict[str, Any]]:
    """Return every version of a layer, newest first, with the load that made it."""
    _vector_layer(catalog, code)
    rows = (
        conn.execute(
            text("""
        SELECT v.version, v.feature_count, v.created_at, v.retired_at, v.dropped,
               v.retired_at IS NULL AS current, b.id AS batch_id, b.mode, b.file_name,
               b.sha256, b.user_name, b.source_crs, b.read_count, b.loaded_count,
               b.rejected_count
        FROM layer_versions v LEFT JOIN load_batches b ON b.id = v.batch_id
        WHERE v.layer_code = :code ORDER BY v.version DESC
    """),
            {"code": code},
        )
        .mappings()
        .all()
    )
    return [dict(row) for row in rows]


def rollback_layer(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    code: str,
    to_version: int,
    *,
    user: str | None = None,
) -> Published:
    """Make an earlier version of a layer current again (as a new version)."""
    _vector_layer(catalog, code)
    layer = catalog.layer(code)
    batch_id = batches.create(
        engine,
        layer=code,
        mode="rollback",
        file_name=f"rollback to version {to_version}",
        user=user,
        district=settings.district_code,
        state="running",
    )
    try:
        with engine.begin() as conn:
            published = rollback(
                conn,
                layer=layer,
                to_version=to_version,
                batch_id=batch_id,
                district=settings.district_code,
                keep_versions=settings.keep_versions,
            )
            batches.commit(
                conn,
                batch_id,
                version=published.version,
                read=published.features,
                loaded=published.features,
                rejected=0,
                repaired=[],
            )
    except BaseException as exc:
        batches.fail(engine, batch_id, exc, 0)
        raise
    return published
