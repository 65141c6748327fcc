"""Loads: versions of layers, rejected rows, raster registrations, staging and history schemas.

Revision ID: 0003_loads
Revises: 0002_layer_tables
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_loads"
down_revision = "0002_layer_tables"
branch_labels = None
depends_on = None


def _srid() -> int:
    return int(context.config.attributes.get("srid", 4490))


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS staging")
    op.execute("CREATE SCHEMA IF NOT EXISTS layers_history")
    op.add_column("load_batches", sa.Column("source_format", sa.Text, nullable=True))
    op.add_column("load_batches", sa.Column("options", JSONB, nullable=True))
    op.add_column("load_batches", sa.Column("repaired_count", sa.BigInteger, nullable=False,
                                            server_default="0"))
    op.add_column("load_batches", sa.Column("expected_rows", sa.BigInteger, nullable=True))
    op.add_column("load_batches", sa.Column("updated_at", sa.DateTime(timezone=True),
                                            nullable=False, server_default=sa.func.now()))
    op.drop_constraint(op.f("ck_load_batches_mode"), "load_batches")
    op.create_check_constraint("mode", "load_batches",
                               "mode IN ('replace', 'append', 'upsert', 'rollback', 'raster')")
    op.create_check_constraint(
        "state", "load_batches",
        "state IN ('pending', 'queued', 'running', 'committed', 'failed')")
    op.create_table(
        "load_rejects",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("row_number", sa.BigInteger, nullable=False),
        sa.Column("field", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("geom", Geometry("GEOMETRY", srid=_srid(), spatial_index=False), nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_load_rejects"),
        sa.ForeignKeyConstraint(["batch_id"], ["load_batches.id"], ondelete="CASCADE",
                                name="fk_load_rejects_batch_id_load_batches"),
        comment="Every row a load did not take: row number, field, reason",
    )
    op.create_index("ix_load_rejects_batch_row", "load_rejects", ["batch_id", "row_number"])
    op.create_table(
        "layer_versions",
        sa.Column("layer_code", sa.String(48), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=True),
        sa.Column("table_name", sa.Text, nullable=True),
        sa.Column("feature_count", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dropped", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("layer_code", "version", name="pk_layer_versions"),
        sa.ForeignKeyConstraint(["layer_code"], ["catalog_layers.code"],
                                name="fk_layer_versions_layer_code_catalog_layers"),
        comment="Each version of a layer: the batch that made it, where its rows are kept",
    )
    op.create_table(
        "raster_versions",
        sa.Column("layer_code", sa.String(48), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("crs", sa.Text, nullable=False),
        sa.Column("footprint", Geometry("POLYGON", srid=_srid(), spatial_index=False),
                  nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("resolution", sa.Float, nullable=False),
        sa.Column("dtype", sa.Text, nullable=False),
        sa.Column("nodata", sa.Float, nullable=True),
        sa.Column("statistics", JSONB, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("is_current", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("layer_code", "version", name="pk_raster_versions"),
        comment="Raster layers: COG files in the data folder with footprint, CRS, statistics",
    )


def downgrade() -> None:
    op.drop_table("raster_versions")
    op.drop_table("layer_versions")
    op.drop_table("load_rejects")
    op.drop_constraint(op.f("ck_load_batches_state"), "load_batches")
    op.drop_constraint(op.f("ck_load_batches_mode"), "load_batches")
    op.create_check_constraint("mode", "load_batches",
                               "mode IN ('replace', 'append', 'upsert', 'rollback')")
    for column in ("updated_at", "expected_rows", "repaired_count", "options", "source_format"):
        op.drop_column("load_batches", column)
    op.execute("DROP SCHEMA IF EXISTS layers_history CASCADE")
    op.execute("DROP SCHEMA IF EXISTS staging CASCADE")
