"""Create the schema of layer tables and one table per catalog vector layer.

The tables are declared from the catalog (``schemas.tables.build_layer_tables``);
``schemas.layer_sync`` creates the missing ones and adds missing columns, so a
catalog that grows a layer or an attribute needs no hand-written migration. A change
that is not additive (type change, removed column) is refused with a message.

Revision ID: 0002_layer_tables
Revises: 0001_core
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import context, op

from schemas.layer_sync import drop_layer_tables, sync_layer_tables

revision = "0002_layer_tables"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    catalog = context.config.attributes["catalog"]
    srid = int(context.config.attributes.get("srid", 4490))
    sync_layer_tables(op.get_bind(), catalog, srid=srid)


def downgrade() -> None:
    drop_layer_tables(op.get_bind())
