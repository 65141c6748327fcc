"""Load one file into one layer: read, map, check, COPY, publish — all or nothing.

A load runs in one transaction on one connection (the next version's table, COPY of rows
already placed in their grid cell, key checks, indexes, swap), so a load that fails or is
killed leaves the previous version intact. A big file loaded in replace mode builds its
table on a side connection and commits it first (``ingest.target``: readers cannot see it,
and its indexes are built in parallel); the swap is still that one transaction.
Progress goes to ``load_batches`` on a second connection, so others can watch it.
Every row read ends up loaded or rejected with its row number, field and reason.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Engine

from ingest import batches
from ingest.context import district_extent, file_sha256, resolve_crs
from ingest.encode import SIGNATURE, TRAILER, Column, PgType, encode_rows
from ingest.fields import map_fields
from ingest.locate import Codes, Locator
from ingest.publish import publish
from ingest.rejects import RejectSpool
from ingest.sources import Source, SourceBatch, SourceFormat, open_source
from ingest.stages import ordered_map
from ingest.target import Target, create_table, create_target, drop_table
from ingest.validate import Checked, Checker
from schemas.catalog import AttributeType, Catalog, Layer
from schemas.errors import InvalidInput, NotFound
from schemas.settings import Settings

log = logging.getLogger("sibiao.ingest")
Mode = Literal["replace", "append", "upsert"]
MODES: tuple[str, ...] = ("replace", "append", "upsert")
WORKERS = 2  # threads checking, placing and encoding batches (the reader is one more)
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
    try:
        return _load_source(
            engine, settings, catalog, request, layer, source, started, batch_id, on_progress
        )
    finally:
        source.close()


def _load_source(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    request: LoadRequest,
    layer: Layer,
    source: Source,
    started: float,
    batch_id: int | None,
    on_progress: Callable[[Progress], None] | None,
) -> LoadResult:
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
    target: Target | None = None
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sibiao-sha256")
    digest = hashing.submit(file_sha256, request.path)  # beside the load, recorded at its end
    try:
        batches.start(
            engine,
            batch_id,
            sha256=None,
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
            locator = Locator.read(conn, catalog, district, rows=source.rows)
            target = create_target(conn, layer, batch_id, request.mode, rows=source.rows)
            t_stream = time.perf_counter()
            with engine.begin() if target.separate else contextlib.nullcontext(conn) as copy_conn:
                create_table(copy_conn, layer, target)
                streamed = _stream(
                    copy_conn,
                    engine,
                    layer,
                    source,
                    checker,
                    locator,
                    target,
                    batch_id,
                    spool,
                    progress,
                    on_progress,
                )
            repaired = streamed.repaired
            log.debug("stream %s: %.2f s", layer.code, time.perf_counter() - t_stream)
            if progress.loaded == 0:
                raise InvalidInput(
                    f"{source.path.name}: none of its {progress.read} rows could be loaded "
                    f"(first reason: {next(iter(spool))[2] if spool.count else 'no rows'}); "
                    f"{layer.code} keeps its current version"
                )
            published = publish(
                conn,
                engine,
                layer=layer,
                target=target,
                batch_id=batch_id,
                mode=request.mode,
                district=district,
                keep_versions=settings.keep_versions,
                sink=spool.add,
                one_district=len(streamed.districts) <= 1,
                loaded=progress.loaded,
                last_row=progress.read,
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
                sha256=digest.result(),
            )
    except BaseException as exc:
        if target is not None:
            drop_table(engine, target)
        sha256 = digest.result() if digest.done() and not digest.exception() else None
        batches.fail(engine, batch_id, exc, progress.read, spool, sha256=sha256)
        raise
    finally:
        spool.close()
        hashing.shutdown(wait=False, cancel_futures=True)
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


def _encoded(
    checked: Checked, layer: Layer, codes: Codes, target: Target, batch_id: int
) -> memoryview:
    """Return a batch's accepted rows as binary COPY tuples of the version table."""
    n = len(checked.rows)
    cols = [Column(pa.array(checked.rows + target.offset, pa.int64()), PgType.int8)]
    cols += [Column(checked.columns[a.name], _PG[a.type]) for a in layer.attributes]
    cols += [
        Column(checked.ewkb(), PgType.bytea),
        Column(codes.district, PgType.text),
        Column(codes.division, PgType.text),
        Column(codes.grid, PgType.text),
        Column(pa.array(np.full(n, batch_id, np.int64)), PgType.int8),
        Column(pa.array(np.full(n, target.version, np.int32)), PgType.int4),
    ]
    return encode_rows(cols)


def _prepared(
    source: Source,
    checker: Checker,
    locator: Locator,
    layer: Layer,
    target: Target,
    batch_id: int,
) -> Iterator[tuple[SourceBatch, Checked, Codes, memoryview]]:
    """Read on one thread; check, place and encode each batch on two (``ingest.stages``)."""

    def prepare(batch: SourceBatch) -> tuple[SourceBatch, Checked, Codes, memoryview]:
        checked = checker.check(batch)
        codes = locator.codes(*checked.anchors())
        return batch, checked, codes, _encoded(checked, layer, codes, target, batch_id)

    return ordered_map(source.batches(), prepare, workers=WORKERS, ahead=WORKERS + 2)


@dataclass
class Streamed:
    """What the COPY pass found besides the counts."""

    repaired: list[int] = field(default_factory=list)
    districts: set[str] = field(default_factory=set)


def _stream(
    conn: Connection,
    engine: Engine,
    layer: Layer,
    source: Source,
    checker: Checker,
    locator: Locator,
    target: Target,
    batch_id: int,
    spool: RejectSpool,
    progress: Progress,
    on_progress: Callable[[Progress], None] | None,
) -> Streamed:
    """COPY every accepted row into the new version table; spool the rejected ones."""
    raw = conn.connection.driver_connection
    assert raw is not None
    found = Streamed()
    last_report = time.monotonic()
    with (
        raw.cursor() as cur,
        cur.copy(
            f"COPY {target.table} ({target.columns}) FROM STDIN (FORMAT BINARY, FREEZE)"
        ) as copy,
    ):
        copy.write(SIGNATURE)
        for batch, checked, codes, encoded in _prepared(
            source, checker, locator, layer, target, batch_id
        ):
            copy.write(encoded)
            rej = checked.rejected
            spool.add(
                list(zip(rej.rows, rej.fields, rej.reasons, rej.values, rej.wkb, strict=True))
            )
            found.repaired += checked.repaired
            found.districts.update(pc.unique(codes.district).to_pylist())
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
    return found
