"""Security: accounts of people, API keys of the intake systems, the audit log.

``users`` keep a scrypt hash of the password (never the password), the role and the towns
(dispatchers) or department (department handlers) they serve. ``api_keys`` keep the SHA-256
of a key whose secret is shown once; ``prefix`` finds the row. ``audit_log`` records every
write and every read of a restricted layer (see api/policy.yaml and docs/security.md).

Revision ID: 0005_security
Revises: 0004_dispatch
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0005_security"
down_revision = "0004_dispatch"
branch_labels = None
depends_on = None

USER_ROLES = ("analyst", "dispatcher", "department_handler", "planner", "supervisor", "admin")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("towns", ARRAY(sa.String(9)), nullable=False, server_default="{}"),
        sa.Column("department", sa.Text, nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.CheckConstraint("role IN (" + ", ".join(f"'{r}'" for r in USER_ROLES) + ")",
                           name="role"),
        sa.CheckConstraint("role <> 'dispatcher' OR cardinality(towns) > 0",
                           name="dispatcher_towns"),
        sa.CheckConstraint("role <> 'department_handler' OR department IS NOT NULL",
                           name="handler_department"),
        comment="People who sign in: scrypt password hash, role, towns or department they serve",
    )
    op.create_index("ix_users_district_code", "users", ["district_code"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        comment="Keys of the intake systems: SHA-256 of the secret (shown once), bound to one system",
    )
    op.create_index("ix_api_keys_district_code", "api_keys", ["district_code"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("who", sa.Text, nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("client", sa.Text, nullable=True),
        sa.Column("detail", JSONB, nullable=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        comment="Every write and every read of a restricted layer: who, what, when, from where, status",
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_who_at", "audit_log", ["who", "at"])
    op.create_index("ix_audit_log_district_code", "audit_log", ["district_code"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("users")
