"""One mapping from domain errors to HTTP answers; unexpected errors get an id, not a trace."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.errors import (
    CatalogError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
    SibiaoError,
    TooManyRequests,
    Unauthenticated,
)

log = logging.getLogger("sibiao.api")

#: Seconds a client should wait before retrying a 503.
RETRY_AFTER = "5"

#: Most specific first: the first class an error is an instance of decides the status.
STATUS: dict[type[SibiaoError], int] = {
    NotFound: 404,
    Unauthenticated: 401,
    TooManyRequests: 429,
    InvalidInput: 400,
    Conflict: 409,
    Forbidden: 403,
    DatabaseUnavailable: 503,
    DatabaseError: 500,
    CatalogError: 500,
    SibiaoError: 400,
}


def status_for(exc: SibiaoError) -> int:
    """Return the HTTP status of a domain error."""
    for cls, status in STATUS.items():
        if isinstance(exc, cls):
            return status
    return 400


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    """Return an RFC 9457 problem document."""
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="sibiao"'}
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SibiaoError)
    status = status_for(exc)
    if status >= 500 and status != 503:
        error_id = uuid.uuid4().hex[:12]
        log.error("error %s on %s %s: %s", error_id, request.method, request.url.path, exc)
        return problem(
            status, "Server error", f"internal error, reference {error_id}", error_id=error_id
        )
    answer = problem(status, type(exc).__name__, exc.message)
    if isinstance(exc, TooManyRequests):
        answer.headers["Retry-After"] = str(exc.retry_after)
    return answer


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem(422, "Invalid request", f"{where}: {first['msg']}", errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, "HTTP error", str(exc.detail))


#: SQLSTATE classes of a server that went away: connection exceptions, operator intervention.
_OUTAGE_STATES = ("08", "57P")
OUTAGE_MESSAGE = "the database is unavailable; try again shortly"


def is_database_outage(exc: BaseException) -> bool:
    """Return whether an error means the database is unreachable or dropped the connection."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or str(state).startswith(_OUTAGE_STATES)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """Answer 503 + Retry-After when the database went away (the transaction rolled back)."""
    if not is_database_outage(exc):
        return await _unexpected(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(503, "DatabaseUnavailable", OUTAGE_MESSAGE)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    log.exception("error %s on %s %s", error_id, request.method, request.url.path)
    return problem(500, "Server error", f"internal error, reference {error_id}", error_id=error_id)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping on ``app``."""
    app.add_exception_handler(SibiaoError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _unexpected)
