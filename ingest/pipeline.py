"""Load one file into one layer: read, map, check, COPY, publish — all or nothing.

The whole load runs in one transaction on one connection (staging table, COPY, new
version, swap), so a load that fails or is killed leaves the previous version intact.
Progress goes to ``load_batches`` on a second connection, so others can watch it.
Every row read ends up loaded or rejected with its row number, field and reason.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyproj
import shapely
from sqlalchemy import Connection, Engine, text

from ingest import batches
from ingest.encode import SIGNATURE, TRAILER, Column, PgType, encode_rows
from ingest.fields import map_fields
from ingest.publish import create_staging, publish, staging_name
from ingest.rejects import RejectSpool
from ingest.sources import Source, SourceBatch, SourceFormat, open_source
from ingest.validate import Checked, Checker, Extent
from schemas.catalog import AttributeType, Catalog, Layer, LayerRole
from schemas.errors import InvalidInput, NotFound
from schemas.geodesy import SourceCrs, parse_crs
from schemas.settings import Settings

log = logging.getLogger("sibiao.ingest")
Mode = Literal["replace", "append", "upsert"]
MODES: tuple[str, ...] = ("replace", "append", "upsert")
_PG = {
    AttributeType.string: PgType.text,
    AttributeType.integer: PgType.int8,
    AttributeType.float: PgType.float8,
    AttributeType.boolean: PgType.bool,
    AttributeType.date: PgType.date,
    AttributeType.datetime: PgType.timestamptz,
}


@dataclass(frozen=True)
class LoadRequest:
    """What to load where."""

    path: Path
    layer: str
    mode: str = "replace"
    source_crs: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    file_name: str | None = None


@dataclass
class Progress:
    """Counts so far."""

    read: int = 0
    loaded: int = 0
    rejected: int = 0
    expected: int | None = None


@dataclass(frozen=True)
class LoadResult:
    """The summary of a committed load."""

    batch_id: int
    layer: str
    read: int
    loaded: int
    rejected: int
    repaired: tuple[int, ...]
    version: int
    seconds: float
    source_crs: str
    format: str
    encoding: str | None
    ignored_fields: tuple[str, ...]


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_crs(source: Source, override: str | None) -> SourceCrs:
    """Return the CRS to read the file in: the override, else the file's own, else refuse."""
    if override:
        return parse_crs(override)
    if source.crs is None:
        raise InvalidInput(
            f"{source.path.name}: the file declares no coordinate system; give it with "
            "--source-crs (an EPSG code such as 4490, 4326 or 4547, or gcj02 / bd09)"
        )
    crs = pyproj.CRS.from_user_input(source.crs)
    if len(crs.axis_info) > 2:
        crs = crs.to_2d()
    epsg = crs.to_epsg(min_confidence=60)
    if epsg is not None:
        return parse_crs(epsg)
    authority = crs.to_authority(min_confidence=60)
    if authority is not None:
        return parse_crs(":".join(authority))
    raise InvalidInput(
        f"{source.path.name}: its coordinate system has no EPSG code ({source.crs[:80]}…); "
        "give it with --source-crs"
    )


def district_extent(conn: Connection, catalog: Catalog, settings: Settings) -> Extent:
    """Return where features may lie: the district outline grown by the margin, else a box."""
    code = catalog.by_role(LayerRole.district).code
    margin_m = settings.extent_margin_deg * 111_000
    row = conn.execute(
        text(
            f"SELECT ST_AsBinary(ST_Buffer(ST_Union(geom)::geography, :m)::geometry) "
            f'FROM layers."{code}"'
        ),
        {"m": margin_m},
    ).first()
    if row is None or row[0] is None:
        minx, miny, maxx, maxy = settings.district_extent
        margin = settings.extent_margin_deg
        return Extent(minx - margin, miny - margin, maxx + margin, maxy + margin)
    area = shapely.from_wkb(bytes(row[0]))
    shapely.prepare(area)
    minx, miny, maxx, maxy = area.bounds
    return Extent(minx, miny, maxx, maxy, area=area)


def _layer(catalog: Catalog, code: str) -> Layer:
    if not catalog.has_layer(code):
        raise NotFound(f"no layer {code!r} in the catalog; `sibiao layers list` shows them")
    layer = catalog.layer(code)
    if layer.is_raster:
        raise InvalidInput(f"{code} is a raster layer: load a GeoTIFF with the raster loader")
    return layer


def run_load(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    request: LoadRequest,
    *,
    batch_id: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> LoadResult:
    """Load a file; return the summary, or raise a domain error (the layer unchanged)."""
    started = time.perf_counter()
    layer = _layer(catalog, request.layer)
    if request.mode not in MODES:
        raise InvalidInput(f"mode {request.mode!r}: choose replace, append or upsert")
    source = open_source(request.path)
    crs = resolve_crs(source, request.source_crs)
    try:
        mapping = map_fields(
            layer,
            source.fields,
            request.field_map,
            dbf_encoding=source.encoding,
            truncated_names=source.format is SourceFormat.shapefile,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{source.path.name}: {exc.message}") from None
    district = settings.district_code
    batch_id = batch_id or batches.create(
        engine,
        layer=layer.code,
        mode=request.mode,
        file_name=request.file_name or request.path.name,
        user=request.user,
        district=district,
    )
    spool = RejectSpool()
    progress = Progress(expected=source.rows)
    try:
        batches.start(
            engine,
            batch_id,
            sha256=file_sha256(request.path),
            source_crs=crs.canonical,
            source_format=source.format.value,
            expected=source.rows,
            options={
                "field_map": mapping.to_attribute,
                "encoding": source.encoding,
                "notes": source.notes,
            },
        )
        with engine.begin() as conn:
            batches.note_backend(conn, engine, batch_id)
            extent = district_extent(conn, catalog, settings)
            checker = Checker(
                layer, mapping, crs, storage_epsg=settings.storage_epsg, extent=extent
            )
            t_stream = time.perf_counter()
            repaired = _stream(
                conn,
                engine,
                layer,
                source,
                checker,
                batch_id,
                spool,
                progress,
                on_progress,
                settings,
            )
            log.debug("stream %s: %.2f s", layer.code, time.perf_counter() - t_stream)
            if progress.loaded == 0:
                raise InvalidInput(
                    f"{source.path.name}: none of its {progress.read} rows could be loaded "
                    f"(first reason: {next(iter(spool))[2] if spool.count else 'no rows'}); "
                    f"{layer.code} keeps its current version"
                )
            published = publish(
                conn,
                catalog=catalog,
                layer=layer,
                batch_id=batch_id,
                mode=request.mode,
                district=district,
                keep_versions=settings.keep_versions,
                sink=spool.add,
            )
            progress.loaded -= published.rejected
            progress.rejected += published.rejected
            if progress.loaded == 0:
                raise InvalidInput(
                    f"{source.path.name}: none of its {progress.read} rows could be loaded "
                    f"(every natural key is a duplicate or already in the layer); "
                    f"{layer.code} keeps its current version"
                )
            if progress.loaded + progress.rejected != progress.read:
                raise RuntimeError(
                    f"lost rows: read {progress.read}, loaded {progress.loaded}, "
                    f"rejected {progress.rejected}"
                )
            spool.store(conn, batch_id, district)
            batches.commit(
                conn,
                batch_id,
                version=published.version,
                read=progress.read,
                loaded=progress.loaded,
                rejected=progress.rejected,
                repaired=repaired,
            )
    except BaseException as exc:
        batches.fail(engine, batch_id, exc, progress.read, spool)
        raise
    finally:
        spool.close()
    if on_progress is not None:
        on_progress(progress)
    return LoadResult(
        batch_id=batch_id,
        layer=layer.code,
        read=progress.read,
        loaded=progress.loaded,
        rejected=progress.rejected,
        repaired=tuple(repaired),
        version=published.version,
        seconds=round(time.perf_counter() - started, 2),
        source_crs=crs.canonical,
        format=source.format.value,
        encoding=source.encoding,
        ignored_fields=mapping.ignored,
    )


def _prepared(
    source: Source, checker: Checker, layer: Layer
) -> Iterator[tuple[SourceBatch, Checked, memoryview]]:
    """Read, check and encode the batches on a worker thread, two batches ahead.

    Reading (GDAL), checking (shapely, Arrow) and encoding release the GIL, so they run on
    one core while the server parses the COPY stream on the other. The bounded queue keeps
    memory flat whatever the file size.
    """
    out: queue.Queue[object] = queue.Queue(maxsize=2)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for batch in source.batches():
                if stop.is_set():
                    return
                checked = checker.check(batch)
                cols = [Column(pa.array(checked.rows, pa.int64()), PgType.int8)]
                cols += [Column(checked.columns[a.name], _PG[a.type]) for a in layer.attributes]
                cols.append(Column(checked.ewkb, PgType.bytea))
                out.put((batch, checked, encode_rows(cols)))
            out.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            out.put(exc)

    thread = threading.Thread(target=work, name="sibiao-read", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                out.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _stream(
    conn: Connection,
    engine: Engine,
    layer: Layer,
    source: Source,
    checker: Checker,
    batch_id: int,
    spool: RejectSpool,
    progress: Progress,
    on_progress: Callable[[Progress], None] | None,
    settings: Settings,
) -> list[int]:
    """COPY every accepted row into the staging table; spool the rejected ones."""
    columns = create_staging(conn, layer, batch_id, srid=settings.storage_epsg)
    raw = conn.connection.driver_connection
    assert raw is not None
    repaired: list[int] = []
    last_report = time.monotonic()
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {staging_name(batch_id)} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(SIGNATURE)
        for batch, checked, encoded in _prepared(source, checker, layer):
            copy.write(encoded)
            rej = checked.rejected
            spool.add(
                list(zip(rej.rows, rej.fields, rej.reasons, rej.values, rej.wkb, strict=True))
            )
            repaired += checked.repaired
            progress.read += batch.rows
            progress.loaded += len(checked.rows)
            progress.rejected += len(rej.rows)
            if on_progress is not None:
                on_progress(progress)
            if time.monotonic() - last_report > 1.0:
                batches.progress(
                    engine, batch_id, progress.read, progress.loaded, progress.rejected
                )
                last_report = time.monotonic()
        copy.write(TRAILER)
    return repaired
