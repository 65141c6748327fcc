"""Publish staged rows as a new version of a layer, in one transaction, and roll back.

A version is a whole table. A load builds the next version beside the live table
(``layers.<code>__b<batch>``): the staged rows, plus the live rows it keeps (append,
upsert), each row given its grid cell and village by a spatial join; then indexes;
then the swap: the live table moves to ``layers_history.<code>__v<n>`` and the new one
takes its name. Readers see the old version or the new one, never a mixture, and a load
that dies before the commit leaves the live table as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, text

from schemas.catalog import Catalog, Layer, LayerRole
from schemas.errors import Conflict, NotFound
from schemas.tables import HISTORY_SCHEMA, LAYER_SCHEMA, STAGING_SCHEMA, column_type_sql

log = logging.getLogger("sibiao.ingest")
RejectSink = Callable[[list[tuple[int, str | None, str, str | None, bytes | None]]], None]


@dataclass(frozen=True)
class Published:
    """The outcome of a publish: new version, rows kept, rows rejected by key checks."""

    version: int
    features: int
    rejected: int


def staging_name(batch_id: int) -> str:
    """Return the quoted name of a batch's staging table."""
    return f'{STAGING_SCHEMA}."b{batch_id}"'


def create_staging(conn: Connection, layer: Layer, batch_id: int, *, srid: int) -> str:
    """Create the (unlogged) staging table of a batch; return its columns in COPY order."""
    columns = ["src_row bigint NOT NULL"]
    columns += [f'"{a.name}" {column_type_sql(a)}' for a in layer.attributes]
    columns.append(f"geom geometry({layer.geometry.value}, {srid}) NOT NULL")
    conn.execute(text(f"DROP TABLE IF EXISTS {staging_name(batch_id)}"))
    conn.execute(text(f"CREATE UNLOGGED TABLE {staging_name(batch_id)} ({', '.join(columns)})"))
    return ", ".join(["src_row", *(f'"{a.name}"' for a in layer.attributes), "geom"])


def drop_staging(conn: Connection, batch_id: int) -> None:
    """Drop a batch's staging table."""
    conn.execute(text(f"DROP TABLE IF EXISTS {staging_name(batch_id)}"))


def _key_sql(layer: Layer, alias: str) -> str:
    return ", ".join(f'{alias}."{k}"' for k in layer.natural_key)


def _key_text(layer: Layer, alias: str) -> str:
    return " || ' / ' || ".join(f"coalesce({alias}.\"{k}\"::text, '')" for k in layer.natural_key)


def _reject_duplicates(conn: Connection, layer: Layer, batch_id: int, sink: RejectSink) -> int:
    stg = staging_name(batch_id)
    keys = _key_sql(layer, "t")
    rows = conn.execute(
        text(f"""
        WITH ranked AS (
            SELECT src_row, first_value(src_row) OVER w AS first_row,
                   row_number() OVER w AS rn
            FROM {stg} t WINDOW w AS (PARTITION BY {keys} ORDER BY src_row))
        DELETE FROM {stg} s USING ranked r
        WHERE s.src_row = r.src_row AND r.rn > 1
        RETURNING s.src_row, r.first_row, {_key_text(layer, "s")}, ST_AsEWKB(s.geom)
    """)
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


def _reject_existing(
    conn: Connection, layer: Layer, batch_id: int, district: str, sink: RejectSink
) -> int:
    stg = staging_name(batch_id)
    match = " AND ".join(f'l."{k}" = s."{k}"' for k in layer.natural_key)
    rows = conn.execute(
        text(f"""
        DELETE FROM {stg} s USING {LAYER_SCHEMA}."{layer.code}" l
        WHERE l.district_code = :district AND {match}
        RETURNING s.src_row, {_key_text(layer, "s")}, ST_AsEWKB(s.geom)
    """),
        {"district": district},
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


def _locate(conn: Connection, catalog: Catalog, layer: Layer, batch_id: int) -> str:
    """Find each staged row's grid cell (else village) in set-based SQL; return the table.

    The polygons drive the join (each cell is prepared once and tested against the staged
    points through their GiST index), which is an order of magnitude faster than a lookup
    per row. A point on a shared edge goes to the cell (or village) with the smallest code.
    """
    grid = catalog.by_role(LayerRole.grid_cell).code
    village = catalog.by_role(LayerRole.village).code
    stg = staging_name(batch_id)
    located = f'{STAGING_SCHEMA}."b{batch_id}_located"'
    point = layer.geometry.single.value == "Point" and not layer.geometry.is_multi
    anchor = "geom" if point else "ST_PointOnSurface(geom)"
    conn.execute(text(f"ALTER TABLE {stg} ADD COLUMN anchor geometry"))
    conn.execute(text(f"UPDATE {stg} SET anchor = {anchor}")) if not point else None
    column = "geom" if point else "anchor"
    conn.execute(text(f"CREATE INDEX ON {stg} USING gist ({column})"))
    conn.execute(text(f"ANALYZE {stg}"))
    conn.execute(
        text(f"""
        CREATE UNLOGGED TABLE {located} AS
        SELECT s.src_row, min(c.code) AS grid_code, NULL::text AS village_code
        FROM {LAYER_SCHEMA}."{grid}" c
        CROSS JOIN LATERAL (SELECT t.src_row FROM {stg} t
                            WHERE ST_Intersects(c.geom, t.{column})) s
        GROUP BY s.src_row""")
    )
    # Only the few rows outside every cell are tried against the (large) village polygons.
    conn.execute(
        text(f"""
        CREATE TEMP TABLE unplaced ON COMMIT DROP AS
        SELECT s.src_row, s.{column} AS anchor FROM {stg} s
        WHERE NOT EXISTS (SELECT 1 FROM {located} l WHERE l.src_row = s.src_row)""")
    )
    conn.execute(
        text(f"""
        INSERT INTO {located} (src_row, grid_code, village_code)
        SELECT u.src_row, NULL, min(v.code)
        FROM unplaced u JOIN {LAYER_SCHEMA}."{village}" v ON ST_Intersects(v.geom, u.anchor)
        GROUP BY u.src_row""")
    )
    conn.execute(text("DROP TABLE unplaced"))
    return located


def _new_rows(
    conn: Connection,
    catalog: Catalog,
    layer: Layer,
    batch_id: int,
    new: str,
    version: int,
    district: str,
    *,
    keep_fids_from: str | None,
) -> None:
    cols = ", ".join(f'"{a.name}"' for a in layer.attributes)
    picked = ", ".join(f's."{a.name}"' for a in layer.attributes)
    t0 = time.perf_counter()
    located = _locate(conn, catalog, layer, batch_id)
    log.debug("locate %s: %.2f s", layer.code, time.perf_counter() - t0)
    division = "coalesce(left(g.grid_code, 12), g.village_code)"
    fid_col, fid_val, fid_join = "", "", ""
    if keep_fids_from is not None:
        match = " AND ".join(f'o."{k}" = s."{k}"' for k in layer.natural_key)
        fid_col = "fid, "
        fid_val = f"coalesce(o.fid, nextval(pg_get_serial_sequence('{new}', 'fid'))), "
        fid_join = f"LEFT JOIN {keep_fids_from} o ON o.district_code = :district AND {match}"
    conn.execute(
        text(f"""
        INSERT INTO {new} ({fid_col}{cols}, geom, district_code, division_code, grid_code,
                           batch_id, layer_version)
        OVERRIDING SYSTEM VALUE
        SELECT {fid_val}{picked}, s.geom, coalesce(left({division}, 6), :district),
               {division}, g.grid_code, :batch, :version
        FROM {staging_name(batch_id)} s {fid_join}
        LEFT JOIN {located} g ON g.src_row = s.src_row
        ORDER BY s.src_row
    """),
        {"district": district, "batch": batch_id, "version": version},
    )
    conn.execute(text(f"DROP TABLE {located}"))


def _index(conn: Connection, layer: Layer, table: str, suffix: str) -> None:
    code = layer.code
    keys = ", ".join(f'"{k}"' for k in layer.natural_key)
    conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "pk_{code}{suffix}" PRIMARY KEY (fid)'))
    conn.execute(
        text(
            f'ALTER TABLE {table} ADD CONSTRAINT "uq_{code}_natural_key{suffix}" '
            f"UNIQUE (district_code, {keys})"
        )
    )
    conn.execute(text(f'CREATE INDEX "idx_{code}_geom{suffix}" ON {table} USING gist (geom)'))
    conn.execute(text(f'CREATE INDEX "ix_{code}_grid_code{suffix}" ON {table} (grid_code)'))
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
    conn: Connection, layer: Layer, batch_id: int | None, current: int, version: int, district: str
) -> int:
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


def current_version(conn: Connection, layer: Layer) -> int:
    """Return the layer's current version (0 before its first load)."""
    value = conn.execute(
        text("SELECT current_version FROM catalog_layers WHERE code = :c"), {"c": layer.code}
    ).scalar()
    return int(value or 0)


def lock_layer(conn: Connection, layer: Layer) -> None:
    """Serialise publishes of one layer (held until the transaction ends)."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"sibiao.layer.{layer.code}"}
    )


def publish(
    conn: Connection,
    *,
    catalog: Catalog,
    layer: Layer,
    batch_id: int,
    mode: str,
    district: str,
    keep_versions: int,
    sink: RejectSink,
) -> Published:
    """Turn a batch's staged rows into the layer's next version (caller commits)."""
    lock_layer(conn, layer)
    rejected = _reject_duplicates(conn, layer, batch_id, sink)
    if mode == "append":
        rejected += _reject_existing(conn, layer, batch_id, district, sink)
    current = current_version(conn, layer)
    version = current + 1
    live = f'{LAYER_SCHEMA}."{layer.code}"'
    new_name = f"{layer.code}__b{batch_id}"
    new = f'{LAYER_SCHEMA}."{new_name}"'
    conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
    conn.execute(
        text(
            f"CREATE TABLE {new} (LIKE {live} INCLUDING DEFAULTS INCLUDING IDENTITY"
            " INCLUDING COMMENTS)"
        )
    )
    if mode in ("append", "upsert"):
        cols = ", ".join(
            [
                "fid",
                *(f'"{a.name}"' for a in layer.attributes),
                "geom",
                "district_code",
                "division_code",
                "grid_code",
                "batch_id",
                "layer_version",
                "loaded_at",
            ]
        )
        unchanged = ""
        if mode == "upsert":
            match = " AND ".join(f'l."{k}" = s."{k}"' for k in layer.natural_key)
            unchanged = (
                f"WHERE NOT (l.district_code = :district AND EXISTS "
                f"(SELECT 1 FROM {staging_name(batch_id)} s WHERE {match}))"
            )
        conn.execute(
            text(
                f"INSERT INTO {new} ({cols}) OVERRIDING SYSTEM VALUE "
                f"SELECT {cols} FROM {live} l {unchanged}"
            ),
            {"district": district},
        )
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{new}', 'fid'), "
                f"greatest((SELECT max(fid) FROM {live}), 1))"
            )
        )
    t0 = time.perf_counter()
    _new_rows(
        conn,
        catalog,
        layer,
        batch_id,
        new,
        version,
        district,
        keep_fids_from=live if mode == "upsert" else None,
    )
    t1 = time.perf_counter()
    suffix = f"__b{batch_id}"
    _index(conn, layer, new, suffix)
    t2 = time.perf_counter()
    _swap(conn, layer, new_name, current, suffix)
    features = _versions(conn, layer, batch_id, current, version, district)
    _prune(conn, layer, keep_versions)
    drop_staging(conn, batch_id)
    log.debug(
        "publish %s: rows %.2f s, indexes %.2f s, swap %.2f s",
        layer.code,
        t1 - t0,
        t2 - t1,
        time.perf_counter() - t2,
    )
    return Published(version=version, features=features, rejected=rejected)


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
    cols = ", ".join(
        [
            "fid",
            *(f'"{a.name}"' for a in layer.attributes),
            "geom",
            "district_code",
            "division_code",
            "grid_code",
            "batch_id",
            "loaded_at",
        ]
    )
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
