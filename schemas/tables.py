"""SQLAlchemy tables: the platform's own tables and one table per catalog vector layer.

Layer tables live in the PostgreSQL schema ``layers`` and are built from a catalog
object by :func:`build_layer_tables`, so the catalog's data files stay in ``layers/``
and this module imports nothing of ours but the catalog models.
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

from schemas.catalog import Attribute, AttributeType, Catalog, Layer

LAYER_SCHEMA = "layers"
HISTORY_SCHEMA = "layers_history"
STAGING_SCHEMA = "staging"
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _district() -> Column[str]:
    return Column("district_code", String(6), nullable=False, index=True)


catalog_layers = Table(
    "catalog_layers",
    metadata,
    Column("code", String(48), primary_key=True),
    Column("group_code", String(48), nullable=False),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("geometry_type", String(24), nullable=False),
    Column("sensitivity", String(16), nullable=False),
    Column("declaration", JSONB, nullable=False),
    Column("current_version", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="The layer catalog as last synchronised from layers/catalog/*.yaml",
)

divisions = Table(
    "divisions",
    metadata,
    Column("code", String(12), primary_key=True),
    Column("name", Text, nullable=False),
    Column("level", String(8), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("parent_code", String(12), nullable=True),
    _district(),
    CheckConstraint("level IN ('district', 'town', 'village')", name="level"),
    CheckConstraint(
        "(level = 'district' AND length(code) = 6) OR (level = 'town' AND length(code) = 9)"
        " OR (level = 'village' AND length(code) = 12)",
        name="code_length",
    ),
    comment="Administrative divisions: district, town/subdistrict, village/community",
)
Index("ix_divisions_parent_code", divisions.c.parent_code)

load_batches = Table(
    "load_batches",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("layer_code", String(48), ForeignKey("catalog_layers.code"), nullable=False),
    Column("version", Integer, nullable=True),
    Column("mode", String(16), nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("file_name", Text, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("source_crs", Text, nullable=True),
    Column("user_name", Text, nullable=True),
    Column("read_count", BigInteger, nullable=False, server_default="0"),
    Column("loaded_count", BigInteger, nullable=False, server_default="0"),
    Column("rejected_count", BigInteger, nullable=False, server_default="0"),
    Column("message", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    _district(),
    Column("source_format", Text, nullable=True),
    Column("options", JSONB, nullable=True),
    Column("repaired_count", BigInteger, nullable=False, server_default="0"),
    Column("expected_rows", BigInteger, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("mode IN ('replace', 'append', 'upsert', 'rollback', 'raster')", name="mode"),
    CheckConstraint(
        "state IN ('pending', 'queued', 'running', 'committed', 'failed')", name="state"
    ),
    comment="Provenance of every layer load: file, checksum, who, when, counts",
)

load_rejects = Table(
    "load_rejects",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "batch_id", BigInteger, ForeignKey("load_batches.id", ondelete="CASCADE"), nullable=False
    ),
    Column("row_number", BigInteger, nullable=False),
    Column("field", Text, nullable=True),
    Column("reason", Text, nullable=False),
    Column("value", Text, nullable=True),
    Column("geom", Geometry("GEOMETRY", srid=4490, spatial_index=False), nullable=True),
    Column("district_code", String(6), nullable=False),
    comment="Every row a load did not take: row number, field, reason",
)
Index("ix_load_rejects_batch_row", load_rejects.c.batch_id, load_rejects.c.row_number)

layer_versions = Table(
    "layer_versions",
    metadata,
    Column("layer_code", String(48), ForeignKey("catalog_layers.code"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("batch_id", BigInteger, nullable=True),
    Column("table_name", Text, nullable=True),
    Column("feature_count", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    Column("dropped", Boolean, nullable=False, server_default="false"),
    Column("district_code", String(6), nullable=False),
    comment="Each version of a layer: the batch that made it, where its rows are kept",
)

raster_versions = Table(
    "raster_versions",
    metadata,
    Column("layer_code", String(48), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("batch_id", BigInteger, nullable=True),
    Column("path", Text, nullable=False),
    Column("crs", Text, nullable=False),
    Column("footprint", Geometry("POLYGON", srid=4490, spatial_index=False), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("resolution", Double, nullable=False),
    Column("dtype", Text, nullable=False),
    Column("nodata", Double, nullable=True),
    Column("statistics", JSONB, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("is_current", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("district_code", String(6), nullable=False),
    comment="Raster layers: COG files in the data folder with footprint, CRS, statistics",
)

cases = Table(
    "cases",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("source_system", String(32), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("category", String(32), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(24), nullable=False, server_default="reported"),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("geom", Geometry("POINT", srid=4490, spatial_index=True), nullable=True),
    Column("grid_code", String(15), nullable=True),
    Column("village_code", String(12), nullable=True),
    Column("town_code", String(9), nullable=True),
    _district(),
    UniqueConstraint("source_system", "source_id", name="uq_cases_source"),
    comment="Citizens' cases (the dispatch issue extends this table)",
)


def column_type(kind: AttributeType, max_length: int | None = None) -> TypeEngine[Any]:
    """Return the column type an attribute type is stored as."""
    types: dict[AttributeType, TypeEngine[Any]] = {
        AttributeType.string: String(max_length) if max_length else Text(),
        AttributeType.integer: BigInteger(),
        AttributeType.float: Double(),
        AttributeType.boolean: Boolean(),
        AttributeType.date: Date(),
        AttributeType.datetime: DateTime(timezone=True),
    }
    return types[kind]


def column_type_sql(attr: Attribute) -> str:
    """Return the PostgreSQL type of an attribute's column, as DDL text."""
    from sqlalchemy.dialects import postgresql

    compiled = column_type(attr.type, attr.max_length).compile(dialect=postgresql.dialect())
    return str(compiled)


def layer_table(md: MetaData, layer: Layer, *, srid: int) -> Table:
    """Declare the table of one vector layer."""
    columns: list[Column[object]] = [
        Column("fid", BigInteger, Identity(), primary_key=True, comment="feature id (OGC API)"),
    ]
    for attr in layer.attributes:
        columns.append(
            Column(
                attr.name,
                column_type(attr.type, attr.max_length),
                nullable=not attr.required,
                comment=f"{attr.zh} / {attr.en}" + (f" [{attr.unit}]" if attr.unit else ""),
            )
        )
    columns += [
        Column(
            "geom",
            Geometry(layer.geometry.value.upper(), srid=srid, spatial_index=True),
            nullable=False,
        ),
        Column("district_code", String(6), nullable=False, comment="6-digit county code"),
        Column("division_code", String(12), nullable=True, comment="village/community it lies in"),
        Column("grid_code", String(15), nullable=True, comment="basic grid cell it lies in"),
        Column("batch_id", BigInteger, nullable=True, comment="load batch that wrote it"),
        Column("layer_version", Integer, nullable=False, server_default="0"),
        Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]
    table = Table(
        layer.table_name,
        md,
        *columns,
        UniqueConstraint("district_code", *layer.natural_key, name=f"uq_{layer.code}_natural_key"),
        schema=LAYER_SCHEMA,
        comment=f"{layer.zh} / {layer.en}",
    )
    Index(f"ix_{layer.code}_grid_code", table.c.grid_code)
    return table


def build_layer_tables(md: MetaData, catalog: Catalog, *, srid: int = 4490) -> dict[str, Table]:
    """Declare one table per vector layer of ``catalog`` in ``md``; return them by layer code."""
    return {layer.code: layer_table(md, layer, srid=srid) for layer in catalog.vector_layers}
