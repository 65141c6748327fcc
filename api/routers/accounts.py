"""Accounts, API keys and the audit log over HTTP (admins; the audit log for supervisors too)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import ConnectionDep, EngineDep, SettingsDep
from api.security import check_system
from schemas.accounts import (
    ANONYMOUS,
    Principal,
    create_key,
    create_user,
    disable_user,
    list_keys,
    list_users,
    revoke_key,
)
from schemas.audit import recent

router = APIRouter(tags=["security"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class UserIn(_Body):
    """A new account."""

    name: str = Field(min_length=1, max_length=64)
    role: str = Field(max_length=24, description="analyst, dispatcher, department_handler, …")
    password: str = Field(min_length=1, max_length=1024)
    towns: list[str] = Field(default_factory=list, max_length=20, description="dispatchers")
    department: str | None = Field(default=None, max_length=200, description="handlers")


class KeyIn(_Body):
    """A new API key for an intake system."""

    system: str = Field(max_length=32, description="the system the key may act for")


def _caller(request: Request) -> Principal:
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


@router.get("/users", summary="Accounts")
def get_users(conn: ConnectionDep) -> list[dict[str, Any]]:
    """Return every account (never a password hash)."""
    return [u.as_dict() for u in list_users(conn)]


@router.post("/users", status_code=201, summary="Create an account")
def post_user(body: UserIn, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    """Create an account with a role (and towns or department)."""
    with engine.begin() as conn:
        user = create_user(
            conn,
            name=body.name,
            role=body.role,
            password=body.password,
            towns=body.towns,
            department=body.department,
            district_code=settings.district_code,
        )
    return JSONResponse(user.as_dict(), status_code=201)


@router.post("/users/{name}/disable", summary="Disable an account")
def post_disable(name: Annotated[str, Path(max_length=64)], engine: EngineDep) -> dict[str, Any]:
    """Disable an account; its tokens stop working at once."""
    with engine.begin() as conn:
        return disable_user(conn, name).as_dict()


@router.get("/keys", summary="API keys of the intake systems")
def get_keys(conn: ConnectionDep) -> list[dict[str, Any]]:
    """Return every key's record (never the secret)."""
    return [k.as_dict() for k in list_keys(conn)]


@router.post("/keys", status_code=201, summary="Make an API key (the secret is shown once)")
def post_key(
    request: Request, body: KeyIn, engine: EngineDep, settings: SettingsDep
) -> JSONResponse:
    """Make a key bound to one intake system; the answer is the only place the key appears."""
    system = check_system(body.system)
    with engine.begin() as conn:
        key, secret = create_key(
            conn,
            system=system,
            district_code=settings.district_code,
            created_by=_caller(request).name,
        )
    return JSONResponse({**key.as_dict(), "key": secret}, status_code=201)


@router.delete("/keys/{key_id}", summary="Revoke an API key")
def delete_key(key_id: Annotated[int, Path(ge=1, le=2**62)], engine: EngineDep) -> dict[str, Any]:
    """Revoke a key at once."""
    with engine.begin() as conn:
        return revoke_key(conn, key_id, now=datetime.now(UTC)).as_dict()


@router.get("/audit", summary="The audit log, newest first")
def get_audit(
    conn: ConnectionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=300, description="prefix, e.g. POST")] = None,
    since: Annotated[AwareDatetime | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Return audit rows: who, role, action, target, status, client, detail."""
    return recent(conn, limit=limit, who=who, action=action, since=since)
