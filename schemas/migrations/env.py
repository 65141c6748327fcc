"""Alembic environment: runs on the connection handed over by ``schemas.migrate``."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers

from schemas.tables import LAYER_SCHEMA, metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `sibiao db upgrade`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    include_schemas=False,
    include_object=alembic_helpers.include_object,
    process_revision_directives=alembic_helpers.writer,
    render_item=alembic_helpers.render_item,
    version_table="alembic_version",
    transaction_per_migration=False,
)
context.config.attributes.setdefault("layer_schema", LAYER_SCHEMA)
with context.begin_transaction():
    context.run_migrations()
