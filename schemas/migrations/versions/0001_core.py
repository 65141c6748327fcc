"""Create the platform's own tables: catalog, divisions, load batches, cases.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def _srid() -> int:
    return int(context.config.attributes.get("srid", 4490))


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "catalog_layers",
        sa.Column("code", sa.String(48), primary_key=True),
        sa.Column("group_code", sa.String(48), nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("geometry_type", sa.String(24), nullable=False),
        sa.Column("sensitivity", sa.String(16), nullable=False),
        sa.Column("declaration", JSONB, nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("code", name="pk_catalog_layers"),
        comment="The layer catalog as last synchronised from layers/catalog/*.yaml",
    )
    op.create_table(
        "divisions",
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(12), nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_divisions"),
        sa.CheckConstraint("level IN ('district', 'town', 'village')",
                           name="level"),
        sa.CheckConstraint(
            "(level = 'district' AND length(code) = 6) OR (level = 'town' AND length(code) = 9)"
            " OR (level = 'village' AND length(code) = 12)",
            name="code_length",
        ),
        comment="Administrative divisions: district, town/subdistrict, village/community",
    )
    op.create_index("ix_divisions_parent_code", "divisions", ["parent_code"])
    op.create_index("ix_divisions_district_code", "divisions", ["district_code"])
    op.create_table(
        "load_batches",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("layer_code", sa.String(48), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("file_name", sa.Text, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("source_crs", sa.Text, nullable=True),
        sa.Column("user_name", sa.Text, nullable=True),
        sa.Column("read_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("loaded_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rejected_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_load_batches"),
        sa.ForeignKeyConstraint(["layer_code"], ["catalog_layers.code"],
                                name="fk_load_batches_layer_code_catalog_layers"),
        sa.CheckConstraint("mode IN ('replace', 'append', 'upsert', 'rollback')",
                           name="mode"),
        comment="Provenance of every layer load: file, checksum, who, when, counts",
    )
    op.create_index("ix_load_batches_district_code", "load_batches", ["district_code"])
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("source_system", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("status", sa.String(24), nullable=False, server_default="reported"),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("geom", Geometry("POINT", srid=_srid(), spatial_index=False), nullable=True),
        sa.Column("grid_code", sa.String(15), nullable=True),
        sa.Column("village_code", sa.String(12), nullable=True),
        sa.Column("town_code", sa.String(9), nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("source_system", "source_id", name="uq_cases_source"),
        comment="Citizens' cases (the dispatch issue extends this table)",
    )
    op.create_index("idx_cases_geom", "cases", ["geom"], postgresql_using="gist")
    op.create_index("ix_cases_district_code", "cases", ["district_code"])


def downgrade() -> None:
    op.drop_table("cases")
    op.drop_table("load_batches")
    op.drop_table("divisions")
    op.drop_table("catalog_layers")
