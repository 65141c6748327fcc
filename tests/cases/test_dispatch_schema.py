"""The dispatch tables as migrated match their declarations in schemas.tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import Column, MetaData, Text, inspect, text

from schemas.tables import metadata

DISPATCH = {
    "cases",
    "case_events",
    "routing_rule_versions",
    "department_calls",
    "escalations",
    "outbox",
}


def _table_of(diff) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        name = getattr(part, "name", None) if not isinstance(part, str) else None
        table = getattr(part, "table", None)
        if table is not None:
            return table.name
        if isinstance(part, str) and part in DISPATCH:
            return part
        if name in DISPATCH:
            return name
    return None


def test_migration_matches_the_table_declarations(db):
    with db.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": alembic_helpers.include_object,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        diffs = [d for d in compare_metadata(context, metadata) if _table_of(d) in DISPATCH]
        altered = MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.sorted_tables:
            table.to_metadata(altered)
        altered.tables["cases"].append_column(Column("not_migrated", Text))
        seen = [d for d in compare_metadata(context, altered) if _table_of(d) in DISPATCH]
    assert diffs == []
    assert [(d[0], d[2], d[3].name) for d in seen] == [("add_column", "cases", "not_migrated")]


def test_constraint_names_follow_the_convention(db):
    inspector = inspect(db)
    checks = {c["name"] for c in inspector.get_check_constraints("cases")}
    assert {
        "ck_cases_status",
        "ck_cases_step",
        "ck_cases_level",
        "ck_cases_location_method",
    } <= checks
    assert {c["name"] for c in inspector.get_check_constraints("escalations")} == {
        "ck_escalations_subject"
    }
    uniques = {u["name"] for u in inspector.get_unique_constraints("escalations")}
    assert uniques == {"uq_escalations_case_id_deadline", "uq_escalations_call_id"}
    for table in DISPATCH - {"routing_rule_versions"}:
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        assert columns["district_code"]["nullable"] is False, table


def test_packaged_rules_are_version_one(db):
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT author, rules->>'version', jsonb_array_length(rules->'items') "
                "FROM routing_rule_versions WHERE version = 1"
            )
        ).one()
    assert row[0].startswith("routing.yaml") and row[1] == "1" and row[2] == 36
