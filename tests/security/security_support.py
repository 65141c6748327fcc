"""What the security tests share: the accounts' password, the Accounts record, audit rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from schemas.accounts import Role, User

PASSWORD = "correct horse battery"
DEPARTMENT = "区城市管理和综合执法局"
SYSTEM = "hotline_12345"


@dataclass(frozen=True)
class Accounts:
    """One enabled account per person role, their tokens, and a key bound to SYSTEM."""

    users: dict[Role, User]
    tokens: dict[Role, str]
    key: str
    key_id: int
    town: str
    suffix: str

    def headers(self, role: Role) -> dict[str, str]:
        """Return the credentials of a role (none for anonymous)."""
        if role is Role.anonymous:
            return {}
        if role is Role.system:
            return {"X-API-Key": self.key}
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def audit_rows(engine: Engine, **where: object) -> list[dict[str, object]]:
    """Return audit rows matching column = value conditions, newest first."""
    conditions = " AND ".join(f"{column} = :{column}" for column in where) or "true"
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT * FROM audit_log WHERE {conditions} ORDER BY id DESC"), where
        ).mappings()
        return [dict(r) for r in rows]
