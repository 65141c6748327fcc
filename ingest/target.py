"""The table a load writes: the layer's next version, built beside the live one.

``layers.<code>__b<batch>`` takes the file's rows by COPY, then its indexes, then the live
name at the swap (``ingest.publish``). A replace builds it on a side connection and commits
it before the swap, so that its three indexes can be built at the same time on other
connections (the GiST index alone takes longer than both b-trees); readers never see
it, as the layer's name still points at the live table until the swap commits (small files
are built inside the main transaction: for them, the extra commits cost more). The layer
stays locked (an advisory lock held by the load's main transaction) from the start, so a
table of that shape that exists when a load starts belongs to a load that died: it is
dropped. Appends and upserts change the table after the COPY, so they build it inside the
main transaction.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from schemas.catalog import Layer
from schemas.tables import LAYER_SCHEMA

log = logging.getLogger("sibiao.ingest")
SIDE_BUILD_ROWS = 100_000


def row_columns(layer: Layer, *tail: str) -> str:
    """Return a layer row's columns for SQL: fid, attributes (quoted), geom, codes, ``tail``."""
    attributes = (f'"{a.name}"' for a in layer.attributes)
    codes = ("district_code", "division_code", "grid_code")
    return ", ".join(["fid", *attributes, "geom", *codes, *tail])


@dataclass(frozen=True)
class Target:
    """The next version's table: name, versions, fid offset, COPY columns."""

    name: str
    current: int
    version: int
    offset: int
    columns: str
    separate: bool  # built and committed on a side connection before the swap

    @property
    def table(self) -> str:
        """Return the quoted table name."""
        return f'{LAYER_SCHEMA}."{self.name}"'

    @property
    def suffix(self) -> str:
        """Return the suffix its index names carry until the swap."""
        return self.name[self.name.rindex("__") :]


def current_version(conn: Connection, layer: Layer) -> int:
    """Return the layer's current version (0 before its first load)."""
    value = conn.execute(
        text("SELECT current_version FROM catalog_layers WHERE code = :c"), {"c": layer.code}
    ).scalar()
    return int(value or 0)


def lock_layer(conn: Connection, layer: Layer) -> None:
    """Serialise loads and rollbacks of one layer (held until the transaction ends)."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"sibiao.layer.{layer.code}"}
    )


def _drop_orphans(conn: Connection, layer: Layer) -> None:
    """Drop version tables left by loads of this layer that died (the lock is held)."""
    names = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename LIKE :p"),
        {"s": LAYER_SCHEMA, "p": f"{layer.code}\\_\\_b%"},
    ).scalars()
    pattern = re.compile(rf"{re.escape(layer.code)}__b[0-9]+")
    for name in names:
        if pattern.fullmatch(name):
            log.warning("dropping %s.%s, left by a load that died", LAYER_SCHEMA, name)
            conn.execute(text(f'DROP TABLE IF EXISTS {LAYER_SCHEMA}."{name}"'))


def create_target(
    conn: Connection, layer: Layer, batch_id: int, mode: str, *, rows: int | None
) -> Target:
    """Lock the layer and describe its next version's table (created by ``create_table``).

    ``rows`` (the file's count, if known) decides whether the table is built on the side:
    below ``SIDE_BUILD_ROWS`` the extra commits cost more than parallel indexes save.
    """
    lock_layer(conn, layer)
    _drop_orphans(conn, layer)
    current = current_version(conn, layer)
    offset = 0
    if mode != "replace":
        offset = int(
            conn.execute(
                text(f'SELECT coalesce(max(fid), 0) FROM {LAYER_SCHEMA}."{layer.code}"')
            ).scalar_one()
        )
    columns = row_columns(layer, "batch_id", "layer_version")
    return Target(
        name=f"{layer.code}__b{batch_id}",
        current=current,
        version=current + 1,
        offset=offset,
        columns=columns,
        separate=mode == "replace" and rows is not None and rows >= SIDE_BUILD_ROWS,
    )


def create_table(conn: Connection, layer: Layer, target: Target) -> None:
    """Create the empty table, without indexes, shaped like the live one."""
    conn.execute(text(f"DROP TABLE IF EXISTS {target.table}"))
    conn.execute(
        text(
            f'CREATE TABLE {target.table} (LIKE {LAYER_SCHEMA}."{layer.code}" INCLUDING DEFAULTS '
            "INCLUDING IDENTITY INCLUDING COMMENTS)"
        )
    )


def drop_table(engine: Engine, target: Target) -> None:
    """Drop a side-built table after a failed load (best effort: the next load sweeps it)."""
    if not target.separate:
        return
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f"DROP TABLE IF EXISTS {target.table}"))
    except Exception:  # noqa: BLE001 - the failure being reported matters more
        log.warning("could not drop %s; the next load of the layer will", target.table)


def unique_sql(layer: Layer, table: str, suffix: str) -> str:
    """Return the DDL of the natural-key index (made a constraint by ``constraint_sql``).

    The key's own fields lead and the district code closes it: the district is the same in
    nearly every row, so leading with it makes every comparison of the build's sort (and of
    each lookup) walk past it first (~40 % slower to build on a million rows).
    """
    keys = ", ".join(f'"{k}"' for k in layer.natural_key)
    return (
        f'CREATE UNIQUE INDEX "uq_{layer.code}_natural_key{suffix}" '
        f"ON {table} ({keys}, district_code)"
    )


def index_sql(layer: Layer, table: str, suffix: str) -> list[str]:
    """Return the DDL of the GiST and primary-key indexes (GiST first).

    Plain ``CREATE [UNIQUE] INDEX`` takes a lock that lets the other index builds run;
    ``ALTER TABLE ... ADD CONSTRAINT`` would not, so the key constraints are attached to
    their finished indexes afterwards (``constraint_sql``).

    There is no b-tree on ``grid_code``: nothing reads by it (the grid page and ``/within``
    find a cell's features through the GiST index and the cell's polygon), a filter on it
    over the items API stops at the page size on the primary key, and its build was the
    dearest of the load (grid codes share their first 8 characters, so the sort cannot use
    abbreviated keys: 1.1 s per million rows, 0.4 s of the load's wall time).
    """
    code = layer.code
    return [
        f'CREATE INDEX "idx_{code}_geom{suffix}" ON {table} USING gist (geom)',
        f'CREATE UNIQUE INDEX "pk_{code}{suffix}" ON {table} (fid)',
    ]


def constraint_sql(layer: Layer, table: str, suffix: str, *, unique: bool) -> list[str]:
    """Return the DDL that makes the built key indexes the table's constraints."""
    code = layer.code
    pk = f"pk_{code}{suffix}"
    out = [f'ALTER TABLE {table} ADD CONSTRAINT "{pk}" PRIMARY KEY USING INDEX "{pk}"']
    if unique:
        name = f"uq_{code}_natural_key{suffix}"
        out.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"')
    return out


def _run(engine: Engine, statements: list[str]) -> None:
    for statement in statements:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 0"))
            conn.execute(text(statement))
        log.debug("%.2f s: %s", time.perf_counter() - started, statement[:80])


def _try_unique(engine: Engine, statement: str) -> bool:
    try:
        _run(engine, [statement])
    except IntegrityError:
        return False
    return True


def build_indexes(engine: Engine, layer: Layer, target: Target, *, unique: bool) -> bool:
    """Build a side-built table's indexes on two connections; return whether the unique one is.

    The GiST index goes on one connection, the b-trees on the other (each without parallel
    workers, which would only take the GiST build's core); the natural-key one (when
    ``unique``) last, as it fails when the file repeats a key (the caller then rejects the
    repeats and builds it).
    """
    gist, *btrees = index_sql(layer, target.table, target.suffix)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sibiao-index") as pool:
        spatial = pool.submit(_run, engine, [gist])
        others = pool.submit(_run, engine, btrees)
        keyed = (
            pool.submit(_try_unique, engine, unique_sql(layer, target.table, target.suffix))
            if unique
            else None
        )
        spatial.result()
        others.result()
        return keyed.result() if keyed is not None else False
