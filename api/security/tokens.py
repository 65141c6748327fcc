"""Access tokens: HS256 JWTs signed with a key derived from ``SIBIAO_SECRET_KEY``.

Claims: ``sub`` (user name), ``role``, ``towns``, ``department``, ``iat``, ``exp``, ``iss``.
The claims say what the account was when the token was issued; each request still looks
the account up, so disabling it or changing its role takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from schemas.accounts import User
from schemas.errors import Unauthenticated
from schemas.settings import Settings

ALGORITHM = "HS256"
ISSUER = "sibiao"
LEEWAY_S = 30


def signing_key(settings: Settings) -> bytes:
    """Return the 32-byte HMAC key of access tokens (derived, so it serves one purpose)."""
    return hmac.new(
        settings.secret_key.encode(), b"sibiao access token v1", hashlib.sha256
    ).digest()


@dataclass(frozen=True, slots=True)
class Token:
    """An issued token and when it expires."""

    access_token: str
    expires_at: datetime
    expires_in: int


def issue_token(user: User, settings: Settings, *, now: datetime) -> Token:
    """Return a signed access token for an account."""
    lifetime = timedelta(minutes=settings.token_minutes)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user.name,
        "role": user.role.value,
        "towns": list(user.towns),
        "department": user.department,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    token = jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)
    return Token(token, now + lifetime, int(lifetime.total_seconds()))


def read_token(token: str, settings: Settings) -> dict[str, Any]:
    """Return the claims of a valid token; raise Unauthenticated (expired, forged, malformed)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the access token has expired; sign in again") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("the access token is not valid") from None
    if not isinstance(claims.get("sub"), str):
        raise Unauthenticated("the access token is not valid")
    return claims
