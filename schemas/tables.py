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
    SmallInteger,
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

#: Statuses of the five-step loop (cases.workflow holds the transitions between them).
CASE_STATUSES = ("reported", "dispatched", "handling", "resolved", "visited", "closed", "merged")
CASE_STATUS_CHECK = "status IN (" + ", ".join(f"'{s}'" for s in CASE_STATUSES) + ")"

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
    # 0004_dispatch: what the item is, where it is, who must act by when, and its history.
    Column("item_code", String(4), nullable=False),
    Column("step", SmallInteger, nullable=False, server_default="1"),
    Column("reporter", JSONB, nullable=True),
    Column("reporters", JSONB, nullable=False, server_default="[]"),
    Column("address_text", Text, nullable=True),
    Column("source_crs", String(32), nullable=True),
    Column("reported_lon", Double, nullable=True),
    Column("reported_lat", Double, nullable=True),
    Column("location_method", String(8), nullable=True),
    Column("geocode_confidence", Double, nullable=True),
    Column("needs_manual_location", Boolean, nullable=False, server_default="false"),
    Column("snap_distance_m", Double, nullable=True),
    Column("village_name", Text, nullable=True),
    Column("town_name", Text, nullable=True),
    Column("level", String(8), nullable=True),
    Column("department", Text, nullable=True),
    Column("responsible_unit", Text, nullable=True),
    Column("fallback_department", Text, nullable=True),
    Column("deadline", DateTime(timezone=True), nullable=True),
    Column("overdue", Boolean, nullable=False, server_default="false"),
    Column("escalated", Boolean, nullable=False, server_default="false"),
    Column("escalated_at", DateTime(timezone=True), nullable=True),
    Column("rule_version", Integer, ForeignKey("routing_rule_versions.version"), nullable=True),
    Column("duplicate_of", BigInteger, ForeignKey("cases.id"), nullable=True),
    Column("merged_into", BigInteger, ForeignKey("cases.id"), nullable=True),
    Column("asset_layer", String(48), nullable=True),
    Column("asset_code", Text, nullable=True),
    Column("asset_maintenance_unit", Text, nullable=True),
    Column("asset_distance_m", Double, nullable=True),
    Column("payload", JSONB, nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("source_system", "source_id", name="uq_cases_source"),
    CheckConstraint(CASE_STATUS_CHECK, name="status"),
    CheckConstraint("step BETWEEN 1 AND 5", name="step"),
    CheckConstraint("location_method IN ('point', 'geocode', 'manual')", name="location_method"),
    CheckConstraint("level IN ('village', 'town', 'district')", name="level"),
    comment="Citizens' cases: intake, location, routing, deadline and the five-step loop",
)
Index("ix_cases_status_deadline", cases.c.status, cases.c.deadline)
Index("ix_cases_item_code_reported_at", cases.c.item_code, cases.c.reported_at)
Index("ix_cases_town_code", cases.c.town_code)
Index("ix_cases_received_at", cases.c.received_at)
Index("ix_cases_duplicate_of", cases.c.duplicate_of)

routing_rule_versions = Table(
    "routing_rule_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("rules", JSONB, nullable=False),
    Column("author", Text, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="Every version of the routing rules; a case keeps the version it was routed with",
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("case_id", BigInteger, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_status", String(24), nullable=True),
    Column("to_status", String(24), nullable=False),
    Column("actor", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=True),
    Column("detail", JSONB, nullable=True),
    _district(),
    comment="Every transition of a case: action, from, to, who, when, note",
)
Index("ix_case_events_case_id", case_events.c.case_id, case_events.c.id)

department_calls = Table(
    "department_calls",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("case_id", BigInteger, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("department", Text, nullable=False),
    Column("caller", Text, nullable=False),
    Column("note", Text, nullable=True),
    Column("called_at", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("responded_at", DateTime(timezone=True), nullable=True),
    Column("responder", Text, nullable=True),
    Column("response", Text, nullable=True),
    Column("escalated", Boolean, nullable=False, server_default="false"),
    _district(),
    comment="有呼必应: a town calls a district department on a case; it must respond in time",
)
Index("ix_department_calls_case_id", department_calls.c.case_id)
Index(
    "ix_department_calls_pending",
    department_calls.c.deadline,
    postgresql_where=department_calls.c.responded_at.is_(None),
)

escalations = Table(
    "escalations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("case_id", BigInteger, ForeignKey("cases.id", ondelete="CASCADE"), nullable=True),
    Column(
        "call_id",
        BigInteger,
        ForeignKey("department_calls.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("escalated_to", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    _district(),
    UniqueConstraint("case_id", "deadline", name="uq_escalations_case_id_deadline"),
    UniqueConstraint("call_id", name="uq_escalations_call_id"),
    CheckConstraint("num_nonnulls(case_id, call_id) = 1", name="subject"),
    comment="Missed deadlines reported to the supervision office (区委督查室), once each",
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("case_id", BigInteger, ForeignKey("cases.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    _district(),
    comment="Notifications waiting to be sent (transactional outbox)",
)
Index("ix_outbox_pending", outbox.c.id, postgresql_where=outbox.c.sent_at.is_(None))


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
        UniqueConstraint(*layer.natural_key, "district_code", name=f"uq_{layer.code}_natural_key"),
        schema=LAYER_SCHEMA,
        comment=f"{layer.zh} / {layer.en}",
    )
    return table


def build_layer_tables(md: MetaData, catalog: Catalog, *, srid: int = 4490) -> dict[str, Table]:
    """Declare one table per vector layer of ``catalog`` in ``md``; return them by layer code."""
    return {layer.code: layer_table(md, layer, srid=srid) for layer in catalog.vector_layers}


# 0005_security: accounts, API keys of the intake systems, and the audit log.
from sqlalchemy.dialects.postgresql import ARRAY  # noqa: E402

#: Roles a person's account can have (``system`` belongs to API keys, ``anonymous`` to nobody).
USER_ROLES = ("analyst", "dispatcher", "department_handler", "planner", "supervisor", "admin")
USER_ROLE_CHECK = "role IN (" + ", ".join(f"'{r}'" for r in USER_ROLES) + ")"

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(24), nullable=False),
    Column("towns", ARRAY(String(9)), nullable=False, server_default="{}"),
    Column("department", Text, nullable=True),
    Column("disabled", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_login", DateTime(timezone=True), nullable=True),
    _district(),
    CheckConstraint(USER_ROLE_CHECK, name="role"),
    CheckConstraint("role <> 'dispatcher' OR cardinality(towns) > 0", name="dispatcher_towns"),
    CheckConstraint(
        "role <> 'department_handler' OR department IS NOT NULL", name="handler_department"
    ),
    comment="People who sign in: scrypt password hash, role, towns or department they serve",
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("system", String(32), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("created_by", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    _district(),
    comment="Keys of the intake systems: SHA-256 of the secret (shown once), bound to one system",
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("who", Text, nullable=False),
    Column("role", String(24), nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=True),
    Column("status", SmallInteger, nullable=False),
    Column("client", Text, nullable=True),
    Column("detail", JSONB, nullable=True),
    _district(),
    comment="Every write and every read of a restricted layer: who, what, when, from where, status",
)
Index("ix_audit_log_at", audit_log.c.at)
Index("ix_audit_log_who_at", audit_log.c.who, audit_log.c.at)
