"""Bring the layer tables in line with the catalog, additively and loudly.

Missing tables are created (with their typmod geometry column, GiST index and
natural-key constraint), missing attribute columns are added. Anything else that
differs — a column whose type changed, a geometry of another type or SRID — is
refused: that needs a reviewed migration, not a silent change to live data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.dialects import postgresql

from schemas.catalog import Catalog
from schemas.errors import DatabaseError
from schemas.tables import LAYER_SCHEMA, NAMING, build_layer_tables, catalog_layers

_DIALECT = postgresql.dialect()


@dataclass
class SyncReport:
    """What a synchronisation did."""

    created: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)


def _type_sql(type_: object) -> str:
    return str(type_.compile(dialect=_DIALECT)).lower()  # type: ignore[attr-defined]


def sync_layer_tables(conn: Connection, catalog: Catalog, *, srid: int) -> SyncReport:
    """Create missing layer tables and columns; refuse incompatible differences."""
    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{LAYER_SCHEMA}"'))
    md = MetaData(naming_convention=NAMING)
    tables = build_layer_tables(md, catalog, srid=srid)
    inspector = inspect(conn)
    existing = set(inspector.get_table_names(schema=LAYER_SCHEMA))
    report = SyncReport()
    problems: list[str] = []
    for code, table in tables.items():
        if table.name not in existing:
            table.create(conn)
            report.created.append(code)
            continue
        have = {c["name"]: c for c in inspector.get_columns(table.name, schema=LAYER_SCHEMA)}
        for column in table.columns:
            found = have.pop(column.name, None)
            if found is None:
                conn.execute(
                    text(
                        f'ALTER TABLE "{LAYER_SCHEMA}"."{table.name}" '
                        f'ADD COLUMN "{column.name}" {_type_sql(column.type)}'
                    )
                )
                report.added_columns.append(f"{code}.{column.name}")
                continue
            want, got = _type_sql(column.type), _type_sql(found["type"])
            if want != got:
                problems.append(
                    f"{code}.{column.name} is {got} in the database, {want} in the catalog"
                )
        report.extra_columns += [f"{code}.{name}" for name in have]
    if problems:
        raise DatabaseError(
            "the layer tables differ from the catalog in ways that need a migration: "
            + "; ".join(problems)
        )
    sync_catalog_rows(conn, catalog)
    return report


def sync_catalog_rows(conn: Connection, catalog: Catalog) -> None:
    """Write the catalog's declarations into ``catalog_layers`` (keeping current versions)."""
    rows = [
        {
            "code": layer.code,
            "group_code": layer.group,
            "name_zh": layer.zh,
            "name_en": layer.en,
            "geometry_type": layer.geometry.value,
            "sensitivity": layer.sensitivity.value,
            "declaration": layer.model_dump(mode="json", exclude_none=True),
        }
        for layer in catalog.layers
    ]
    stmt = postgresql.insert(catalog_layers).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[catalog_layers.c.code],
        set_={
            key: stmt.excluded[key]
            for key in (
                "group_code",
                "name_zh",
                "name_en",
                "geometry_type",
                "sensitivity",
                "declaration",
            )
        }
        | {"updated_at": text("now()")},
    )
    conn.execute(stmt)


def drop_layer_tables(conn: Connection) -> None:
    """Drop every layer table (the whole ``layers`` schema)."""
    conn.execute(text(f'DROP SCHEMA IF EXISTS "{LAYER_SCHEMA}" CASCADE'))
