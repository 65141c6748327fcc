"""Signing in: ``POST /auth/token`` (OAuth2 password flow) and ``GET /auth/me``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import EngineDep, SettingsDep
from api.security.middleware import DETAIL_KEY
from api.security.tokens import issue_token
from schemas.accounts import ANONYMOUS, Principal, authenticate

router = APIRouter(prefix="/auth", tags=["security"])


class TokenOut(BaseModel):
    """An access token (OAuth2 token response)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: {"description": "wrong user name or password, or a disabled account"}},
    summary="Sign in: a bearer token for a user name and password",
)
def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    engine: EngineDep,
    settings: SettingsDep,
) -> TokenOut:
    """Check the password (form fields username, password) and return a signed token."""
    request.scope.setdefault("state", {})[DETAIL_KEY] = {"username": form.username[:64]}
    now = datetime.now(UTC)
    with engine.begin() as conn:
        # A NUL cannot be stored (nor be in a name): the lookup fails as for an unknown name.
        name = form.username.replace("\x00", "\ufffd")
        user = authenticate(conn, name, form.password.replace("\x00", "\ufffd"), now=now)
    issued = issue_token(user, settings, now=now)
    return TokenOut(
        access_token=issued.access_token, expires_in=issued.expires_in, role=user.role.value
    )


@router.get("/me", summary="Who the credentials of this request belong to")
def me(request: Request) -> dict[str, Any]:
    """Return the caller: name, role, towns, department, system, how it was recognised."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return {
        "name": principal.name,
        "role": principal.role.value,
        "towns": list(principal.towns),
        "department": principal.department,
        "system": principal.system,
        "via": principal.via,
    }
