"""Dispatch: cases located, routed and on a deadline; events, rule versions, calls, escalations.

``cases`` gains the item, the location (datum, geocoding, snapping), the divisions and their
names, the route (level, department, responsible unit, fallback, deadline, rule version), the
five-step status, duplicates and merges, the nearest asset and the original payload.
``routing_rule_versions`` keeps every version of the routing rules (the packaged
``routing.yaml`` is version 1, seeded by ``sibiao db upgrade`` through ``cases.routing``).

Revision ID: 0004_dispatch
Revises: 0003_loads
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_dispatch"
down_revision = "0003_loads"
branch_labels = None
depends_on = None

STATUSES = ("reported", "dispatched", "handling", "resolved", "visited", "closed", "merged")


def _case_columns() -> tuple[sa.Column, ...]:
    """Return the columns added to ``cases`` (item_code apart: backfilled, then NOT NULL)."""
    return (
        sa.Column("step", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("reporter", JSONB, nullable=True),
        sa.Column("reporters", JSONB, nullable=False, server_default="[]"),
        sa.Column("address_text", sa.Text, nullable=True),
        sa.Column("source_crs", sa.String(32), nullable=True),
        sa.Column("reported_lon", sa.Float, nullable=True),
        sa.Column("reported_lat", sa.Float, nullable=True),
        sa.Column("location_method", sa.String(8), nullable=True),
        sa.Column("geocode_confidence", sa.Float, nullable=True),
        sa.Column("needs_manual_location", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("snap_distance_m", sa.Float, nullable=True),
        sa.Column("village_name", sa.Text, nullable=True),
        sa.Column("town_name", sa.Text, nullable=True),
        sa.Column("level", sa.String(8), nullable=True),
        sa.Column("department", sa.Text, nullable=True),
        sa.Column("responsible_unit", sa.Text, nullable=True),
        sa.Column("fallback_department", sa.Text, nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("escalated", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rule_version", sa.Integer, nullable=True),
        sa.Column("duplicate_of", sa.BigInteger, nullable=True),
        sa.Column("merged_into", sa.BigInteger, nullable=True),
        sa.Column("asset_layer", sa.String(48), nullable=True),
        sa.Column("asset_code", sa.Text, nullable=True),
        sa.Column("asset_maintenance_unit", sa.Text, nullable=True),
        sa.Column("asset_distance_m", sa.Float, nullable=True),
        sa.Column("payload", JSONB, nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )


CASE_CHECKS = {
    "status": "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")",
    "step": "step BETWEEN 1 AND 5",
    "location_method": "location_method IN ('point', 'geocode', 'manual')",
    "level": "level IN ('village', 'town', 'district')",
}
CASE_INDEXES = {
    "ix_cases_status_deadline": ["status", "deadline"],
    "ix_cases_item_code_reported_at": ["item_code", "reported_at"],
    "ix_cases_town_code": ["town_code"],
    "ix_cases_received_at": ["received_at"],
    "ix_cases_duplicate_of": ["duplicate_of"],
}


def upgrade() -> None:
    op.create_table(
        "routing_rule_versions",
        sa.Column("version", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("rules", JSONB, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("version", name="pk_routing_rule_versions"),
        comment="Every version of the routing rules; a case keeps the version it was routed with",
    )

    op.add_column("cases", sa.Column("item_code", sa.String(4), nullable=True))
    op.execute("UPDATE cases SET item_code = left(category, 4)")
    op.alter_column("cases", "item_code", nullable=False)
    for column in _case_columns():
        op.add_column("cases", column)
    for name, condition in CASE_CHECKS.items():
        op.create_check_constraint(name, "cases", condition)
    op.create_foreign_key("fk_cases_rule_version_routing_rule_versions", "cases",
                          "routing_rule_versions", ["rule_version"], ["version"])
    op.create_foreign_key("fk_cases_duplicate_of_cases", "cases", "cases",
                          ["duplicate_of"], ["id"])
    op.create_foreign_key("fk_cases_merged_into_cases", "cases", "cases", ["merged_into"], ["id"])
    for name, columns in CASE_INDEXES.items():
        op.create_index(name, "cases", columns)
    op.create_table_comment(
        "cases", "Citizens' cases: intake, location, routing, deadline and the five-step loop"
    )

    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("case_id", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("detail", JSONB, nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE",
                                name="fk_case_events_case_id_cases"),
        comment="Every transition of a case: action, from, to, who, when, note",
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id", "id"])
    op.create_index("ix_case_events_district_code", "case_events", ["district_code"])

    op.create_table(
        "department_calls",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("case_id", sa.BigInteger, nullable=False),
        sa.Column("department", sa.Text, nullable=False),
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responder", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("escalated", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_department_calls"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE",
                                name="fk_department_calls_case_id_cases"),
        comment="有呼必应: a town calls a district department on a case; it must respond in time",
    )
    op.create_index("ix_department_calls_case_id", "department_calls", ["case_id"])
    op.create_index("ix_department_calls_district_code", "department_calls", ["district_code"])
    op.create_index("ix_department_calls_pending", "department_calls", ["deadline"],
                    postgresql_where=sa.text("responded_at IS NULL"))

    op.create_table(
        "escalations",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("case_id", sa.BigInteger, nullable=True),
        sa.Column("call_id", sa.BigInteger, nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("escalated_to", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_escalations"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE",
                                name="fk_escalations_case_id_cases"),
        sa.ForeignKeyConstraint(["call_id"], ["department_calls.id"], ondelete="CASCADE",
                                name="fk_escalations_call_id_department_calls"),
        sa.UniqueConstraint("case_id", "deadline", name="uq_escalations_case_id_deadline"),
        sa.UniqueConstraint("call_id", name="uq_escalations_call_id"),
        sa.CheckConstraint("num_nonnulls(case_id, call_id) = 1", name="subject"),
        comment="Missed deadlines reported to the supervision office (区委督查室), once each",
    )
    op.create_index("ix_escalations_district_code", "escalations", ["district_code"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("case_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="SET NULL",
                                name="fk_outbox_case_id_cases"),
        comment="Notifications waiting to be sent (transactional outbox)",
    )
    op.create_index("ix_outbox_district_code", "outbox", ["district_code"])
    op.create_index("ix_outbox_pending", "outbox", ["id"],
                    postgresql_where=sa.text("sent_at IS NULL"))


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("escalations")
    op.drop_table("department_calls")
    op.drop_table("case_events")
    for name in CASE_INDEXES:
        op.drop_index(name, "cases")
    for name in ("fk_cases_merged_into_cases", "fk_cases_duplicate_of_cases",
                 "fk_cases_rule_version_routing_rule_versions"):
        op.drop_constraint(name, "cases", type_="foreignkey")
    for name in CASE_CHECKS:
        op.drop_constraint(op.f(f"ck_cases_{name}"), "cases", type_="check")
    for column in reversed(_case_columns()):
        op.drop_column("cases", column.name)
    op.drop_column("cases", "item_code")
    op.create_table_comment("cases", "Citizens' cases (the dispatch issue extends this table)")
    op.drop_table("routing_rule_versions")
