"""Load a GeoTIFF into a raster layer: check it, write a COG, register it as a new version.

Each version of a raster layer is one Cloud-Optimised GeoTIFF,
``data_dir/rasters/<code>/v<N>.tif`` (deflate, 512-pixel tiles, internal overviews down to
one tile: averaged for float layers, modal for integer class layers), and one row of
``raster_versions`` (footprint in EPSG:4490, CRS, grid, dtype, nodata, statistics, sha256).
The file work is in :mod:`ingest.raster_files`; this module keeps the versions.

Decisions
---------
- **The source CRS is kept** (no reprojection). Warping resamples every pixel: DEM values
  move, class edges shift by up to half a pixel, and square 30 m cells in EPSG:4547 become
  non-square cells in degrees. The ``/rasters/{code}/point`` endpoint moves one query point
  into the raster's CRS instead, which is exact and cheap; the footprint is stored in
  EPSG:4490 for spatial questions. ``--source-crs`` only *labels* the grid (no warp), and
  GCJ-02/BD-09 are refused: they are offsets that would need a warp.
- **Values**: the band count must equal the catalog's (one band for every layer today). Data
  is cast to the catalog dtype when the cast keeps the meaning: widening casts are done
  with a note; narrowing casts are checked on every pixel first (integer targets need
  whole values in range, float32 needs finite values in range, rounding noted) and refused
  otherwise. The file's nodata is kept (noted when it differs from the catalog's); the
  catalog's is used, and said, when the file declares none.
- **Versions** are ``max + 1``; the new one is current, the others not, in one transaction
  under the layer's advisory lock. The COG is written to a hidden temporary name in the
  layer's folder and moved to ``v<N>.tif`` (``os.replace``) inside that transaction, so a
  row never points at a half-written file; a failed transaction removes it again.
- **Pruning**: the current version and the ``keep_versions`` newest others are kept.
  Older versions lose their file *and their row*: the table has no "dropped" flag, and a
  row whose file is gone would offer a rollback that cannot happen. Who loaded what, when,
  from which file (sha256) stays in ``load_batches``. Rollback flips ``is_current`` back
  to a kept version (no copy, no new version number) after checking its file's sha256.
- **Statistics** (:func:`ingest.raster_files.statistics`): count, min, max, mean and std
  are exact, from strips of the COG merged in float64; percentiles 5/50/95 come from the
  full grid when it is small, else from a decimated read served by the overviews
  (``percentiles_from`` says which). Keys describe band 1; several bands add ``bands``.
- **Batches**: mode ``raster`` (``rollback`` for a rollback); read/loaded count the one
  raster; the notes (nodata, casts, CRS) go to the batch's options.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from ingest import batches
from ingest.context import file_sha256
from ingest.pipeline import LoadRequest
from ingest.raster_files import inspect, open_geotiff, statistics, write_cog
from schemas.catalog import Catalog, Layer, RasterSpec
from schemas.errors import Conflict, InvalidInput, NotFound, SibiaoError
from schemas.geodesy import STORAGE_EPSG
from schemas.settings import Settings
from schemas.tables import catalog_layers, load_batches, raster_versions

_VERSION_FILE: Final = re.compile(r"^v(\d+)\.tif$")


@dataclass(frozen=True)
class RasterInfo:
    """One registered version of a raster layer."""

    layer: str
    version: int
    path: Path  # relative to the data folder
    crs: str
    footprint: shapely.Polygon  # EPSG:4490 lon/lat
    width: int
    height: int
    resolution: float  # CRS units per pixel (x)
    dtype: str
    nodata: float | None
    statistics: dict[str, Any]
    sha256: str
    is_current: bool
    batch_id: int | None
    created_at: datetime

    def file(self, data_dir: Path) -> Path:
        """Return the absolute path of the COG."""
        return data_dir / self.path


@dataclass(frozen=True)
class RasterLoadResult:
    """The summary of a committed raster load."""

    batch_id: int
    layer: str
    version: int
    path: Path  # absolute
    crs: str
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    resolution: float
    statistics: dict[str, Any]
    sha256: str
    notes: tuple[str, ...]
    pruned: tuple[int, ...]
    seconds: float


def _raster_layer(catalog: Catalog, code: str) -> tuple[Layer, RasterSpec]:
    if not catalog.has_layer(code):
        raise NotFound(f"no layer {code!r} in the catalog; `sibiao layers list` shows them")
    layer = catalog.layer(code)
    if layer.raster is None:
        raise InvalidInput(f"{code} is a vector layer: load its file with the vector loader")
    return layer, layer.raster


def _lock(conn: Connection, code: str) -> None:
    """Serialise version changes of one layer (same key as vector publishes)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"sibiao.layer.{code}"})


def _sweep(folder: Path, registered: set[int]) -> None:
    """Delete version files no row points at (left by a crash; call under the lock)."""
    for path in folder.glob("v*.tif"):
        match = _VERSION_FILE.match(path.name)
        if match and int(match.group(1)) not in registered:
            path.unlink(missing_ok=True)


def _prune(conn: Connection, code: str, current: int, keep: int) -> list[tuple[int, str]]:
    """Delete the rows of versions beyond the current one and ``keep`` others; return them."""
    others = conn.execute(
        select(raster_versions.c.version, raster_versions.c.path)
        .where(raster_versions.c.layer_code == code, raster_versions.c.version != current)
        .order_by(raster_versions.c.version.desc())
        .offset(keep)
    ).all()
    old = [(int(v), str(p)) for v, p in others]
    if old:
        conn.execute(
            delete(raster_versions).where(
                raster_versions.c.layer_code == code,
                raster_versions.c.version.in_([v for v, _ in old]),
            )
        )
    return old


def load_raster(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    request: LoadRequest,
    *,
    batch_id: int | None = None,
) -> RasterLoadResult:
    """Load a GeoTIFF as the next, current version of a raster layer.

    Parameters
    ----------
    engine
        Engine on the platform database.
    settings
        Gives ``data_dir``, ``district_extent``, ``district_code`` and ``keep_versions``.
    catalog
        The layer catalog; ``request.layer`` must be a raster layer of it.
    request
        The file, layer, optional ``source_crs`` (labels a grid without CRS or with a
        wrong one) and user; ``mode`` must be ``replace``.
    batch_id
        A batch already created for this load (``queued``); else one is created.

    Returns
    -------
    RasterLoadResult
        Version, COG path, grid, statistics and the notes of what was decided.

    Raises
    ------
    NotFound
        The layer is not in the catalog.
    InvalidInput
        The layer is a vector layer, the mode is not ``replace``, or the file fails a check
        (the message names it). A batch given or created is marked failed; the layer keeps
        its current version.
    """
    started = time.perf_counter()
    try:
        layer, spec = _raster_layer(catalog, request.layer)
        if request.mode != "replace":
            raise InvalidInput(f"a raster is replaced as a whole: mode {request.mode!r} is wrong")
    except SibiaoError as exc:
        if batch_id is not None:  # queued by the caller: it must not stay queued
            batches.fail(engine, batch_id, exc, 0)
        raise
    name = request.file_name or request.path.name
    batch_id = batch_id or batches.create(
        engine,
        layer=layer.code,
        mode="raster",
        file_name=name,
        user=request.user,
        district=settings.district_code,
    )
    folder = settings.data_dir / "rasters" / layer.code
    temp = folder / f".b{batch_id}-{secrets.token_hex(4)}.tif"
    placed: Path | None = None
    try:
        with open_geotiff(request.path, name) as src:
            checked = inspect(src, name, spec, request.source_crs, settings)
            batches.start(
                engine,
                batch_id,
                sha256=file_sha256(request.path),
                source_crs=checked.crs_text,
                source_format="GeoTIFF",
                expected=1,
                options={"notes": checked.notes, "source_dtype": checked.source_dtype},
            )
            folder.mkdir(parents=True, exist_ok=True)
            write_cog(src, temp, name, checked, spec, layer.code)
        stats = statistics(temp, checked.nodata)
        if not stats["valid_count"]:
            raise InvalidInput(f"{name}: every pixel is nodata ({checked.nodata:g})")
        digest = file_sha256(temp)
        with engine.begin() as conn:
            _lock(conn, layer.code)
            have = set(
                conn.execute(
                    select(raster_versions.c.version).where(
                        raster_versions.c.layer_code == layer.code
                    )
                ).scalars()
            )
            version = max(have, default=0) + 1
            _sweep(folder, have)
            placed = folder / f"v{version}.tif"
            os.replace(temp, placed)
            conn.execute(
                update(raster_versions)
                .where(raster_versions.c.layer_code == layer.code)
                .values(is_current=False)
            )
            conn.execute(
                insert(raster_versions).values(
                    layer_code=layer.code,
                    version=version,
                    batch_id=batch_id,
                    path=placed.relative_to(settings.data_dir).as_posix(),
                    crs=checked.crs_text,
                    footprint=from_shape(checked.footprint, srid=STORAGE_EPSG),
                    width=checked.width,
                    height=checked.height,
                    resolution=checked.resolution,
                    dtype=spec.dtype,
                    nodata=checked.nodata,
                    statistics=stats,
                    sha256=digest,
                    is_current=True,
                    district_code=settings.district_code,
                )
            )
            pruned = _prune(conn, layer.code, version, settings.keep_versions)
            conn.execute(
                text(
                    "UPDATE load_batches SET options = coalesce(options, '{}'::jsonb)"
                    " || jsonb_build_object('notes', CAST(:notes AS jsonb)) WHERE id = :id"
                ),
                {"notes": json.dumps(checked.notes), "id": batch_id},
            )
            _set_current_version(conn, layer.code, version)
            batches.commit(
                conn, batch_id, version=version, read=1, loaded=1, rejected=0, repaired=[]
            )
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if placed is not None:
            placed.unlink(missing_ok=True)
        batches.fail(engine, batch_id, exc, 0)
        raise
    for _, path in pruned:
        (settings.data_dir / path).unlink(missing_ok=True)
    return RasterLoadResult(
        batch_id=batch_id,
        layer=layer.code,
        version=version,
        path=placed,
        crs=checked.crs_text,
        width=checked.width,
        height=checked.height,
        bands=checked.count,
        dtype=spec.dtype,
        nodata=checked.nodata,
        resolution=checked.resolution,
        statistics=stats,
        sha256=digest,
        notes=tuple(checked.notes),
        pruned=tuple(v for v, _ in pruned),
        seconds=round(time.perf_counter() - started, 2),
    )


def _set_current_version(conn: Connection, code: str, version: int) -> None:
    conn.execute(
        update(catalog_layers).where(catalog_layers.c.code == code).values(current_version=version)
    )


_COLUMNS = (
    raster_versions.c.layer_code,
    raster_versions.c.version,
    raster_versions.c.path,
    raster_versions.c.crs,
    func.ST_AsBinary(raster_versions.c.footprint).label("footprint"),
    raster_versions.c.width,
    raster_versions.c.height,
    raster_versions.c.resolution,
    raster_versions.c.dtype,
    raster_versions.c.nodata,
    raster_versions.c.statistics,
    raster_versions.c.sha256,
    raster_versions.c.is_current,
    raster_versions.c.batch_id,
    raster_versions.c.created_at,
)


def _info(row: Any) -> RasterInfo:
    return RasterInfo(
        layer=row.layer_code,
        version=int(row.version),
        path=Path(row.path),
        crs=row.crs,
        footprint=shapely.from_wkb(bytes(row.footprint)),
        width=int(row.width),
        height=int(row.height),
        resolution=float(row.resolution),
        dtype=row.dtype,
        nodata=None if row.nodata is None else float(row.nodata),
        statistics=dict(row.statistics),
        sha256=row.sha256,
        is_current=bool(row.is_current),
        batch_id=row.batch_id,
        created_at=row.created_at,
    )


def current_raster(conn: Connection, code: str) -> RasterInfo | None:
    """Return the current version of a raster layer, or None before its first load."""
    row = conn.execute(
        select(*_COLUMNS).where(raster_versions.c.layer_code == code, raster_versions.c.is_current)
    ).first()
    return None if row is None else _info(row)


def raster_history(conn: Connection, code: str) -> list[dict[str, Any]]:
    """Return the kept versions of a raster layer, newest first, with the load that made each.

    Parameters
    ----------
    conn
        Connection to the platform database.
    code
        Raster layer code (an unknown code has no versions).

    Returns
    -------
    list of dict
        ``info`` (a RasterInfo) and the batch's ``file_name``, ``user_name``,
        ``source_sha256``, ``source_crs`` and ``finished_at``.
    """
    rows = conn.execute(
        select(
            *_COLUMNS,
            load_batches.c.file_name,
            load_batches.c.user_name,
            load_batches.c.sha256.label("source_sha256"),
            load_batches.c.source_crs,
            load_batches.c.finished_at,
        )
        .select_from(
            raster_versions.outerjoin(load_batches, load_batches.c.id == raster_versions.c.batch_id)
        )
        .where(raster_versions.c.layer_code == code)
        .order_by(raster_versions.c.version.desc())
    ).all()
    keys = ("file_name", "user_name", "source_sha256", "source_crs", "finished_at")
    return [{"info": _info(row)} | {k: getattr(row, k) for k in keys} for row in rows]


def rollback_raster(
    engine: Engine, settings: Settings, code: str, to_version: int, *, user: str | None = None
) -> RasterInfo:
    """Make a kept earlier version of a raster layer current again.

    Parameters
    ----------
    engine
        Engine on the platform database.
    settings
        Gives ``data_dir`` (where the COG must still be) and ``district_code``.
    code
        Raster layer code.
    to_version
        The version to restore (``raster_history`` lists the kept ones).
    user
        Who asks (recorded on the ``rollback`` batch).

    Returns
    -------
    RasterInfo
        The version now current (same number: no copy is made).

    Raises
    ------
    NotFound
        No such layer, or the version is not kept (the message lists the kept ones).
    InvalidInput
        The layer is a vector layer.
    Conflict
        The version is current already, or its file no longer matches its checksum.
    """
    with engine.connect() as conn:
        kind = conn.execute(
            select(catalog_layers.c.geometry_type).where(catalog_layers.c.code == code)
        ).scalar()
    if kind is None:
        raise NotFound(f"no layer {code!r} in the catalog; `sibiao layers list` shows them")
    if kind != "raster":
        raise InvalidInput(f"{code} is a vector layer: roll it back as a layer version")
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
            _lock(conn, code)
            rows = {
                info.version: info
                for info in map(
                    _info,
                    conn.execute(select(*_COLUMNS).where(raster_versions.c.layer_code == code)),
                )
            }
            target = rows.get(to_version)
            if target is None:
                kept = ", ".join(str(v) for v in sorted(rows)) or "none"
                raise NotFound(f"{code} has no version {to_version} to go back to (kept: {kept})")
            if target.is_current:
                raise Conflict(f"{code} is at version {to_version} already")
            path = target.file(settings.data_dir)
            if not path.is_file():
                raise NotFound(f"{code} version {to_version}: its file {target.path} is gone")
            if file_sha256(path) != target.sha256:
                raise Conflict(f"{code} version {to_version}: its file {target.path} was altered")
            conn.execute(
                update(raster_versions)
                .where(raster_versions.c.layer_code == code)
                .values(is_current=raster_versions.c.version == to_version)
            )
            _set_current_version(conn, code, to_version)
            batches.commit(
                conn, batch_id, version=to_version, read=1, loaded=1, rejected=0, repaired=[]
            )
    except BaseException as exc:
        batches.fail(engine, batch_id, exc, 0)
        raise
    return replace(target, is_current=True)
