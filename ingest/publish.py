"""Publish a load's rows as a new version of a layer, in one transaction, and roll back.

A version is a whole table. A load builds the next version beside the live table
(``layers.<code>__b<batch>``): the file's rows are COPYed straight into it, already placed
in their grid cell and village (``ingest.locate``), with ``fid`` = an offset + the row
number in the file; then the rows of a duplicate natural key are rejected, the live rows
it keeps are copied in (append, upsert), the indexes built, and the swap made: the live
table moves to ``layers_history.<code>__v<n>`` and the new one takes its name. Readers see
the old version or the new one, never a mixture, and a load that dies before the commit
leaves the live table as it was (the new table vanishes with the transaction; a big replace
builds and commits it on the side first, unseen, and a later load drops it: ``ingest.target``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from ingest.target import (
    Target,
    build_indexes,
    constraint_sql,
    current_version,
    index_sql,
    lock_layer,
    row_columns,
    unique_sql,
)
from schemas.catalog import Layer
from schemas.errors import Conflict, NotFound
from schemas.tables import HISTORY_SCHEMA, LAYER_SCHEMA

log = logging.getLogger("sibiao.ingest")
RejectSink = Callable[[list[tuple[int, str | None, str, str | None, bytes | None]]], None]


@dataclass(frozen=True)
class Published:
    """The outcome of a publish: new version, rows kept, rows rejected by key checks."""

    version: int
    features: int
    rejected: int


def _key_sql(layer: Layer, alias: str) -> str:
    return ", ".join(f'{alias}."{k}"' for k in layer.natural_key)


def _key_text(layer: Layer, alias: str) -> str:
    return " || ' / ' || ".join(f"coalesce({alias}.\"{k}\"::text, '')" for k in layer.natural_key)


def _reject_duplicates(conn: Connection, layer: Layer, target: Target, sink: RejectSink) -> int:
    """Delete every row whose natural key an earlier row of the file has; report them."""
    keys = _key_sql(layer, "t")
    rows = conn.execute(
        text(f"""
        WITH ranked AS (
            SELECT fid, first_value(fid) OVER w AS first_fid, row_number() OVER w AS rn
            FROM {target.table} t WHERE t.fid > :offset
            WINDOW w AS (PARTITION BY {keys} ORDER BY fid))
        DELETE FROM {target.table} s USING ranked r
        WHERE s.fid = r.fid AND r.rn > 1
        RETURNING s.fid - :offset, r.first_fid - :offset, {_key_text(layer, "s")},
                  ST_AsEWKB(s.geom)
    """),
        {"offset": target.offset},
    ).all()
    field = layer.natural_key[0]
    sink(
        [
            (
                int(row),
                field,
                f"duplicate natural key {key}: same as row {first}",
                key,
                bytes(geom) if geom is not None else None,
            )
            for row, first, key, geom in rows
        ]
    )
    return len(rows)


def _unique(conn: Connection, layer: Layer, table: str, suffix: str) -> None:
    conn.execute(text(unique_sql(layer, table, suffix)))
    (attach,) = constraint_sql(layer, table, suffix, unique=True)[1:]
    conn.execute(text(attach))


def _unique_or_reject(
    conn: Connection, layer: Layer, target: Target, sink: RejectSink, *, one_district: bool
) -> int:
    """Build the natural-key index; only when that fails, find and reject the duplicates.

    The index is needed anyway, so a file without duplicates (the usual case) costs
    nothing more. Its key includes the district code, so the shortcut holds only when
    every row of the file lies in one district.
    """
    if one_district:
        try:
            with conn.begin_nested():
                _unique(conn, layer, target.table, target.suffix)
            return 0
        except IntegrityError:
            pass
    rejected = _reject_duplicates(conn, layer, target, sink)
    _unique(conn, layer, target.table, target.suffix)
    return rejected


def _reject_existing(
    conn: Connection, layer: Layer, target: Target, district: str, sink: RejectSink
) -> int:
    match = " AND ".join(f'l."{k}" = s."{k}"' for k in layer.natural_key)
    rows = conn.execute(
        text(f"""
        DELETE FROM {target.table} s USING {LAYER_SCHEMA}."{layer.code}" l
        WHERE l.district_code = :district AND {match}
        RETURNING s.fid - :offset, {_key_text(layer, "s")}, ST_AsEWKB(s.geom)
    """),
        {"district": district, "offset": target.offset},
    ).all()
    field = layer.natural_key[0]
    sink(
        [
            (
                int(row),
                field,
                f"natural key {key} is already in the layer (load with mode upsert to replace it)",
                key,
                bytes(geom) if geom is not None else None,
            )
            for row, key, geom in rows
        ]
    )
    return len(rows)


def _carry_live_rows(
    conn: Connection, layer: Layer, target: Target, mode: str, district: str
) -> int:
    """Copy the live rows the new version keeps (return how many); upserts keep their fids."""
    live = f'{LAYER_SCHEMA}."{layer.code}"'
    match = " AND ".join(f'l."{k}" = s."{k}"' for k in layer.natural_key)
    unchanged = ""
    if mode == "upsert":
        conn.execute(
            text(
                f"UPDATE {target.table} s SET fid = l.fid FROM {live} l "
                f"WHERE l.district_code = :district AND {match}"
            ),
            {"district": district},
        )
        unchanged = (
            f"WHERE NOT (l.district_code = :district AND EXISTS "
            f"(SELECT 1 FROM {target.table} s WHERE {match}))"
        )
    cols = row_columns(layer, "batch_id", "layer_version", "loaded_at")
    inserted = conn.execute(
        text(
            f"INSERT INTO {target.table} ({cols}) OVERRIDING SYSTEM VALUE "
            f"SELECT {cols} FROM {live} l {unchanged}"
        ),
        {"district": district},
    )
    return int(inserted.rowcount)


def _index(conn: Connection, layer: Layer, table: str, suffix: str, *, unique: bool = True) -> None:
    for statement in index_sql(layer, table, suffix):
        conn.execute(text(statement))
    conn.execute(text(constraint_sql(layer, table, suffix, unique=False)[0]))
    if unique:
        _unique(conn, layer, table, suffix)
    conn.execute(text(f"ANALYZE {table}"))


def _rename_indexes(conn: Connection, schema: str, table: str, old: str, new: str) -> None:
    rows = (
        conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE schemaname = :s AND tablename = :t"),
            {"s": schema, "t": table},
        )
        .scalars()
        .all()
    )
    for name in rows:
        if name.endswith(old):
            target = (name[: len(name) - len(old)] + new)[:63]
            conn.execute(text(f'ALTER INDEX {schema}."{name}" RENAME TO "{target}"'))


def _swap(conn: Connection, layer: Layer, new_name: str, current: int, suffix: str) -> None:
    code = layer.code
    conn.execute(text(f'LOCK TABLE {LAYER_SCHEMA}."{code}" IN ACCESS EXCLUSIVE MODE'))
    retired = f"{code}__v{current}"
    conn.execute(text(f'DROP TABLE IF EXISTS {HISTORY_SCHEMA}."{retired}"'))
    _rename_indexes(conn, LAYER_SCHEMA, code, "", f"__v{current}")
    conn.execute(text(f'ALTER TABLE {LAYER_SCHEMA}."{code}" SET SCHEMA {HISTORY_SCHEMA}'))
    conn.execute(text(f'ALTER TABLE {HISTORY_SCHEMA}."{code}" RENAME TO "{retired}"'))
    conn.execute(text(f'ALTER TABLE {LAYER_SCHEMA}."{new_name}" RENAME TO "{code}"'))
    _rename_indexes(conn, LAYER_SCHEMA, code, suffix, "")


def _versions(
    conn: Connection,
    layer: Layer,
    batch_id: int | None,
    current: int,
    version: int,
    district: str,
    count: int | None = None,
) -> int:
    if count is None:
        count = int(
            conn.execute(text(f'SELECT count(*) FROM {LAYER_SCHEMA}."{layer.code}"')).scalar_one()
        )
    retired = conn.execute(
        text(
            "UPDATE layer_versions SET retired_at = now(), table_name = :t "
            "WHERE layer_code = :c AND version = :v"
        ),
        {"t": f"{HISTORY_SCHEMA}.{layer.code}__v{current}", "c": layer.code, "v": current},
    )
    if retired.rowcount == 0:  # the empty table the migration made is version 0
        conn.execute(
            text(
                "INSERT INTO layer_versions (layer_code, version, table_name, feature_count,"
                " retired_at, district_code) VALUES (:c, :v, :t, 0, now(), :d)"
            ),
            {
                "c": layer.code,
                "v": current,
                "t": f"{HISTORY_SCHEMA}.{layer.code}__v{current}",
                "d": district,
            },
        )
    conn.execute(
        text(
            "INSERT INTO layer_versions (layer_code, version, batch_id, table_name, feature_count,"
            " district_code) VALUES (:c, :v, :b, :t, :n, :d)"
        ),
        {
            "c": layer.code,
            "v": version,
            "b": batch_id,
            "t": f"{LAYER_SCHEMA}.{layer.code}",
            "n": count,
            "d": district,
        },
    )
    conn.execute(
        text("UPDATE catalog_layers SET current_version = :v WHERE code = :c"),
        {"v": version, "c": layer.code},
    )
    return count


def _prune(conn: Connection, layer: Layer, keep: int) -> None:
    old = (
        conn.execute(
            text(
                "SELECT version FROM layer_versions WHERE layer_code = :c "
                "AND retired_at IS NOT NULL AND NOT dropped ORDER BY version DESC OFFSET :k"
            ),
            {"c": layer.code, "k": keep},
        )
        .scalars()
        .all()
    )
    for version in old:
        conn.execute(text(f'DROP TABLE IF EXISTS {HISTORY_SCHEMA}."{layer.code}__v{version}"'))
        conn.execute(
            text("UPDATE layer_versions SET dropped = true WHERE layer_code = :c AND version = :v"),
            {"c": layer.code, "v": version},
        )


def publish(
    conn: Connection,
    engine: Engine,
    *,
    layer: Layer,
    target: Target,
    batch_id: int,
    mode: str,
    district: str,
    keep_versions: int,
    sink: RejectSink,
    one_district: bool,
    loaded: int,
    last_row: int,
) -> Published:
    """Turn the rows COPYed into ``target`` into the layer's next version (caller commits).

    ``loaded`` rows were COPYed, with row numbers up to ``last_row``.
    """
    t0 = time.perf_counter()
    t1 = t0
    carried = 0
    if target.separate:
        built = build_indexes(engine, layer, target, unique=one_district)
        t1 = time.perf_counter()
        for statement in constraint_sql(layer, target.table, target.suffix, unique=built):
            conn.execute(text(statement))
        rejected = 0 if built else _reject_duplicates(conn, layer, target, sink)
        if not built:
            _unique(conn, layer, target.table, target.suffix)
        # no ANALYZE here (~0.3 s a million rows, alone on the critical path): the index
        # builds recorded the row count, and autovacuum analyzes the table within a minute
        # (a million fresh rows are far past its threshold)
    elif mode == "replace":
        rejected = _unique_or_reject(conn, layer, target, sink, one_district=one_district)
    else:
        rejected = _reject_duplicates(conn, layer, target, sink)
        if mode == "append":
            rejected += _reject_existing(conn, layer, target, district, sink)
        carried = _carry_live_rows(conn, layer, target, mode, district)
        _unique(conn, layer, target.table, target.suffix)
    # the largest fid given is at most offset + last row (carried rows have fid <= offset)
    conn.execute(
        text(f"SELECT setval(pg_get_serial_sequence('{target.table}', 'fid'), :v)"),
        {"v": max(target.offset + last_row, 1)},
    )
    if not target.separate:
        t1 = time.perf_counter()
        _index(conn, layer, target.table, target.suffix, unique=False)
    t2 = time.perf_counter()
    _swap(conn, layer, target.name, target.current, target.suffix)
    features = _versions(
        conn,
        layer,
        batch_id,
        target.current,
        target.version,
        district,
        count=loaded - rejected + carried,
    )
    _prune(conn, layer, keep_versions)
    log.debug(
        "publish %s: indexes %.2f s, keys %.2f s, swap %.2f s",
        layer.code,
        t1 - t0 if target.separate else t2 - t1,
        t2 - t1 if target.separate else t1 - t0,
        time.perf_counter() - t2,
    )
    return Published(version=target.version, features=features, rejected=rejected)


def rollback(
    conn: Connection,
    *,
    layer: Layer,
    to_version: int,
    batch_id: int,
    district: str,
    keep_versions: int,
) -> Published:
    """Make a copy of an earlier version the layer's next version (caller commits)."""
    lock_layer(conn, layer)
    current = current_version(conn, layer)
    if to_version == current:
        raise Conflict(f"{layer.code} is at version {current} already")
    row = conn.execute(
        text("SELECT dropped FROM layer_versions WHERE layer_code = :c AND version = :v"),
        {"c": layer.code, "v": to_version},
    ).first()
    if row is None or row[0]:
        kept = conn.execute(
            text(
                "SELECT string_agg(version::text, ', ' ORDER BY version) FROM layer_versions "
                "WHERE layer_code = :c AND NOT dropped"
            ),
            {"c": layer.code},
        ).scalar()
        raise NotFound(
            f"{layer.code} has no version {to_version} to go back to (kept: {kept or 'none'})"
        )
    source = f'{HISTORY_SCHEMA}."{layer.code}__v{to_version}"'
    new_name = f"{layer.code}__b{batch_id}"
    new = f'{LAYER_SCHEMA}."{new_name}"'
    version = current + 1
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    conn.execute(
        text(
            f'CREATE TABLE {new} (LIKE {LAYER_SCHEMA}."{layer.code}" INCLUDING '
            "DEFAULTS INCLUDING IDENTITY INCLUDING COMMENTS)"
        )
    )
    cols = row_columns(layer, "batch_id", "loaded_at")
    conn.execute(
        text(
            f"INSERT INTO {new} ({cols}, layer_version) OVERRIDING SYSTEM VALUE "
            f"SELECT {cols}, :v FROM {source}"
        ),
        {"v": version},
    )
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{new}', 'fid'), "
            f"greatest((SELECT max(fid) FROM {new}), 1))"
        )
    )
    suffix = f"__b{batch_id}"
    _index(conn, layer, new, suffix)
    _swap(conn, layer, new_name, current, suffix)
    features = _versions(conn, layer, batch_id, current, version, district)
    _prune(conn, layer, keep_versions)
    return Published(version=version, features=features, rejected=0)
