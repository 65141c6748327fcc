"""An app with authentication on, one account per role, and an intake system's key.

Accounts are made through ``schemas.accounts`` (as the CLI and ``POST /users`` do) in the run's
database; names carry a random suffix so nothing collides with other tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from security_support import DEPARTMENT, PASSWORD, SYSTEM, Accounts
from sqlalchemy import Engine, text

from api.app import create_app
from api.security.tokens import issue_token
from schemas.accounts import PERSON_ROLES, Role, User, create_key, create_user
from schemas.settings import Settings


@pytest.fixture(scope="session")
def secure_settings(settings: Settings) -> Settings:
    """Return the run's settings with authentication on."""
    return settings.model_copy(update={"auth_enabled": True, "secret_key": "test-secret"})


@pytest.fixture(scope="session")
def accounts(engine: Engine, secure_settings: Settings) -> Accounts:
    """Create one account per person role and one API key."""
    suffix = secrets.token_hex(3)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        town = conn.execute(
            text("SELECT code FROM divisions WHERE level = 'town' ORDER BY code LIMIT 1")
        ).scalar_one()
        users: dict[Role, User] = {}
        for role in PERSON_ROLES:
            users[role] = create_user(
                conn,
                name=f"{role.value}_{suffix}",
                role=role,
                password=PASSWORD,
                towns=[town] if role is Role.dispatcher else [],
                department=DEPARTMENT if role is Role.department_handler else None,
                district_code=secure_settings.district_code,
            )
        key, secret = create_key(
            conn, system=SYSTEM, district_code=secure_settings.district_code, created_by="test"
        )
    tokens = {
        role: issue_token(user, secure_settings, now=now).access_token
        for role, user in users.items()
    }
    return Accounts(users, tokens, secret, key.id, town, suffix)


@pytest.fixture(scope="session")
def secure_client(secure_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """Yield a client of an app with authentication on (lifespan run)."""
    with TestClient(create_app(secure_settings)) as client:
        yield client
