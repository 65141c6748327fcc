"""Signing in with the OAuth2 password flow; tokens that hold and tokens that do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from security_support import PASSWORD

from api.security.tokens import issue_token, read_token
from schemas.accounts import Role, create_user, disable_user, hash_password, verify_password


def _login(client, name, password):
    return client.post("/auth/token", data={"username": name, "password": password})


def test_password_is_hashed_with_salted_scrypt():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$65536$8$2$")
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and not verify_password(PASSWORD + "!", first)


def test_good_password_gives_a_token_with_the_claims(secure_client, accounts, secure_settings):
    user = accounts.users[Role.dispatcher]
    answer = _login(secure_client, user.name, PASSWORD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 8 * 3600
    claims = read_token(body["access_token"], secure_settings)
    assert claims["sub"] == user.name and claims["role"] == "dispatcher"
    assert claims["towns"] == [accounts.town] and claims["department"] is None
    me = secure_client.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() | {} == {
        "name": user.name,
        "role": "dispatcher",
        "towns": [accounts.town],
        "department": None,
        "system": None,
        "via": "token",
    }


def test_wrong_password_and_unknown_user_answer_the_same_401(secure_client, accounts):
    name = accounts.users[Role.planner].name
    wrong = _login(secure_client, name, "not the password")
    unknown = _login(secure_client, "nobody_" + accounts.suffix, PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["detail"] == "wrong user name or password"


def test_expired_forged_and_malformed_tokens_are_refused(secure_client, accounts, secure_settings):
    user = accounts.users[Role.planner]
    old = issue_token(user, secure_settings, now=datetime.now(UTC) - timedelta(hours=9))
    forged = jwt.encode(
        {"sub": user.name, "role": "admin", "iss": "sibiao", "iat": 0, "exp": 4102444800},
        "x" * 32,
        algorithm="HS256",
    )
    cases = {
        f"Bearer {old.access_token}": "expired",
        f"Bearer {forged}": "not valid",
        "Bearer": "Bearer <access token>",
        f"Basic {accounts.tokens[Role.planner]}": "Bearer <access token>",
    }
    for header, words in cases.items():
        answer = secure_client.get("/auth/me", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert words in answer.json()["detail"]
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    # a public page refuses bad credentials too (they are never silently ignored)
    assert (
        secure_client.get("/health", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_disabled_account_cannot_sign_in_and_its_token_stops(
    secure_client, engine, accounts, secure_settings
):
    name = f"leaver_{accounts.suffix}"
    with engine.begin() as conn:
        user = create_user(
            conn,
            name=name,
            role=Role.planner,
            password=PASSWORD,
            district_code=secure_settings.district_code,
        )
    token = _login(secure_client, name, PASSWORD).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert secure_client.get("/collections/manhole_cover", headers=auth).status_code != 401
    with engine.begin() as conn:
        disable_user(conn, user.name)
    answer = _login(secure_client, name, PASSWORD)
    assert answer.status_code == 401 and "disabled" in answer.json()["detail"]
    refused = secure_client.get("/auth/me", headers=auth)
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]


def test_role_change_takes_effect_without_a_new_token(secure_client, engine, accounts):
    """The token's claims are informative: each request reads the account as it is now."""
    analyst = accounts.users[Role.analyst]
    auth = {"Authorization": f"Bearer {accounts.tokens[Role.analyst]}"}
    assert secure_client.get("/auth/me", headers=auth).json()["role"] == "analyst"
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET role = 'planner' WHERE id = :id"), {"id": analyst.id})
    try:
        assert secure_client.get("/auth/me", headers=auth).json()["role"] == "planner"
        assert secure_client.get("/loads/1", headers=auth).status_code == 403
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE users SET role = 'analyst' WHERE id = :id"), {"id": analyst.id}
            )
