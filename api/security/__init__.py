"""Authentication, the one authorization policy, and the audit log, wired into the app.

``create_app`` does two things, whatever routers it includes:

- ``FastAPI(dependencies=route_guards(settings))``: the guard runs first on every API route
  (:mod:`api.security.guard`); nothing is added when authentication is off;
- ``install_security(app)`` at the end: the request body limit (:mod:`api.security.bodylimit`),
  the middleware that recognises the caller, refuses early and audits
  (:mod:`api.security.middleware`), the policy, the rate limiter, and the security schemes of
  the OpenAPI document.

Routers never check roles: they read ``request.state.principal`` when they need to know
who calls (for example to limit cases to a dispatcher's towns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.params import Depends as DependsParam

from api.security.bodylimit import BodyLimitMiddleware
from api.security.guard import authorize
from api.security.middleware import SecurityMiddleware
from api.security.policy import Policy, default_policy
from api.security.ratelimit import RateLimiter
from cases.sources import SourceSystem
from schemas.errors import InvalidInput
from schemas.settings import Settings

__all__ = ["check_system", "install_security", "route_guards"]

SECURITY_SCHEMES: dict[str, Any] = {
    "password": {
        "type": "oauth2",
        "description": "a user name and password at POST /auth/token give a bearer token",
        "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}},
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "an intake system's key (sibiao keys add --system SYSTEM)",
    },
}


def route_guards(settings: Settings) -> list[DependsParam]:
    """Return the app-wide dependencies: the guard when authentication is on."""
    return [Depends(authorize)] if settings.auth_enabled else []


def install_security(app: FastAPI, policy: Policy | None = None) -> None:
    """Add the middleware, the policy and the rate limiter to ``app``; document the schemes."""
    settings: Settings = app.state.settings
    app.state.policy = policy or default_policy()
    app.state.rate_limiter = RateLimiter()
    # Added first, so it runs inside the security middleware: its refusals are audited too.
    app.add_middleware(BodyLimitMiddleware, max_upload_bytes=settings.max_upload_bytes)
    app.add_middleware(SecurityMiddleware, settings=settings)
    if settings.auth_enabled:
        _document_schemes(app)


def _document_schemes(app: FastAPI) -> None:
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(
            SECURITY_SCHEMES
        )
        schema["security"] = [{"password": []}, {"apiKey": []}, {}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def check_system(system: str) -> str:
    """Return ``system`` if it names an intake system; raise InvalidInput otherwise."""
    try:
        return SourceSystem(system).value
    except ValueError:
        known = ", ".join(s.value for s in SourceSystem)
        raise InvalidInput(f"no intake system {system[:40]!r}; one of {known}") from None
