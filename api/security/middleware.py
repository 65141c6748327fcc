"""Who is calling, an early refusal before any body is read, and the audit row of each request.

The ASGI middleware runs before routing:

1. It recognises the caller from ``Authorization: Bearer <token>``, ``X-API-Key`` or, on
   Open311 POSTs only, the form's ``api_key`` field, and puts the :class:`Principal` in
   ``scope["state"]["principal"]`` (``request.state.principal``). Credentials that do not
   hold answer 401 at once. ``X-Sibiao-User`` (the actor the dispatch routers record) is
   replaced by the caller's name, so nobody can act in another's name.
2. It matches the path against the policy's templates and, when every template it matches
   refuses the caller, answers 401/403 before the router reads a body (an anonymous upload
   of 2 GB is refused before it is spooled). The authoritative decision is the guard's
   (:mod:`api.security.guard`), after routing, on the route that was really chosen.
3. When the answer starts it writes the audit row (writes, and reads of restricted layers),
   with the guard's decision when there is one.

Its refusals are ``application/problem+json``, except on ``/open311/...`` paths, where they are
GeoReport v2's error list (``[{"code", "description"}]``, XML when the path ends in ``.xml``):
a mini-program speaks one format whatever refuses it (the guard's refusals there go through
the Open311 router's own error handling).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.open311_format import error_response
from api.security.policy import WRITE_METHODS, Decision, Policy
from api.security.tokens import read_token
from schemas.accounts import ANONYMOUS, Principal, find_key, principal_of, unrestricted
from schemas.audit import AuditEntry, record
from schemas.catalog import Catalog
from schemas.errors import DatabaseUnavailable, Unauthenticated
from schemas.settings import Settings

log = logging.getLogger("sibiao.security")
ACTOR_HEADER = b"x-sibiao-user"
OPEN311_PREFIX = "/open311/"
MAX_FORM_PEEK = 64 * 1024
DECISION_KEY = "decision"
DETAIL_KEY = "audit_detail"
RETRY_KEY = "retry_after"


def challenge(error: str | None = None) -> dict[str, str]:
    """Return the WWW-Authenticate header of a 401."""
    value = 'Bearer realm="sibiao"' + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}


def refusal(path: str, status: int, title: str, detail: str) -> Response:
    """Return a refusal in the format of ``path``: GeoReport's error list on Open311 paths."""
    if not path.startswith(OPEN311_PREFIX):
        return problem(status, title, detail)
    answer = error_response("xml" if path.endswith(".xml") else "json", status, detail)
    if status == 401:
        answer.headers.update(challenge())
    return answer


class SecurityMiddleware:
    """Authenticate, refuse early, audit (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        headers = Headers(scope=scope)
        if not self.settings.auth_enabled:
            state["principal"] = unrestricted(headers.get("x-sibiao-user", "").strip()[:64])
            await self.app(scope, receive, send)
            return

        method = scope["method"]
        path = _route_path(scope)
        receive, form_key = await _open311_key(scope, receive, method, path, headers)
        try:
            principal = await self._authenticate(scope, headers, form_key)
        except Unauthenticated as exc:
            state["principal"] = ANONYMOUS
            response = refusal(path, 401, "Unauthenticated", exc.message)
            response.headers.update(challenge("invalid_token"))
            await self._answer(scope, receive, send, response, ANONYMOUS, None)
            return
        except (DatabaseUnavailable, SQLAlchemyError):
            log.exception("cannot check credentials on %s %s", method, path)
            response = refusal(path, 503, "Database unavailable", "cannot check credentials now")
            await response(scope, receive, send)
            return
        state["principal"] = principal
        _set_actor(scope, principal.name)

        early = self._early(scope, principal, method, path)
        if early is not None:
            title = "Unauthenticated" if early.status == 401 else "Forbidden"
            response = refusal(path, early.status, title, early.reason)
            await self._answer(scope, receive, send, response, principal, early)
            return

        audited = False

        async def send_and_audit(message: Message) -> None:
            nonlocal audited
            if message["type"] == "http.response.start":
                message = _refusal_headers(message, state)
                if not audited:
                    audited = True
                    await self._audit(scope, principal, int(message["status"]), None)
            await send(message)

        try:
            await self.app(scope, receive, send_and_audit)
        except Exception:
            if not audited:
                audited = True
                await self._audit(scope, principal, 500, None)
            raise

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: Any,
        principal: Principal,
        decision: Decision | None,
    ) -> None:
        await self._audit(scope, principal, response.status_code, decision)
        await response(scope, receive, send)

    async def _authenticate(
        self, scope: Scope, headers: Headers, form_key: str | None
    ) -> Principal:
        authorization = headers.get("authorization")
        key = headers.get("x-api-key")
        if authorization and key:
            raise Unauthenticated("send a bearer token or an API key, not both")
        engine: Engine = scope["app"].state.engine
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("use Authorization: Bearer <access token>")
            claims = read_token(token.strip(), self.settings)
            found = await run_in_threadpool(_user_principal, engine, str(claims["sub"]))
            if found is None:
                raise Unauthenticated("the account of this token is disabled or gone")
            return found
        if key:
            found = await run_in_threadpool(_key_principal, engine, key.strip(), "api_key")
            if found is None:
                raise Unauthenticated("the API key is not valid or was revoked")
            return found
        if form_key:
            # Open311's api_key identifies a client; one that is not ours is just anonymous.
            found = await run_in_threadpool(_key_principal, engine, form_key, "open311_api_key")
            return found or ANONYMOUS
        return ANONYMOUS

    def _early(self, scope: Scope, principal: Principal, method: str, path: str) -> Decision | None:
        policy: Policy = scope["app"].state.policy
        candidates = policy.candidates(path, method)
        if not candidates:
            return None
        catalog: Catalog = scope["app"].state.catalog
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        decisions = [
            policy.decide(
                principal,
                method=method,
                template=template,
                rule=rule,
                path_params=params,
                query=query,
                catalog=catalog,
            )
            for template, rule, params in candidates
        ]
        if any(d.allowed for d in decisions):
            return None
        return decisions[0]

    async def _audit(
        self, scope: Scope, principal: Principal, status: int, decision: Decision | None
    ) -> None:
        state = scope.get("state", {})
        decision = decision or state.get(DECISION_KEY)
        method = scope["method"]
        if decision is not None:
            if not decision.audit:
                return
            action, target = decision.action, decision.target
            detail: dict[str, Any] = {"layers": list(decision.layers)} if decision.layers else {}
            if decision.layers:
                detail["sensitivity"] = decision.sensitivity.value
            if not decision.allowed:
                detail["refused"] = decision.reason
        else:
            if method not in WRITE_METHODS:
                return
            route = scope.get("route")
            action = f"{method} {getattr(route, 'path', None) or '<no route>'}"
            params = scope.get("path_params") or {}
            target = "&".join(f"{k}={v}" for k, v in params.items()) or None
            if route is None:  # refused before routing (body limit, NUL): name the path
                target = _route_path(scope)[:500]
            detail = {}
        if scope.get("query_string"):
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            detail["query"] = dict(query[:20])
        extra = state.get(DETAIL_KEY)
        if isinstance(extra, dict):
            detail.update(extra)
        if principal.system:
            detail["system"] = principal.system
        client = scope.get("client")
        entry = AuditEntry(
            who=_storable(principal.name),
            role=principal.role.value,
            action=_storable(action),
            target=None if target is None else _storable(target),
            status=status,
            client=client[0] if client else None,
            detail=_storable(detail),
        )
        try:
            await run_in_threadpool(_write, scope["app"].state.engine, entry, self.settings)
        except Exception:  # noqa: BLE001 - the answer is already decided; the loss is logged
            log.exception("audit row lost: %s %s %s", entry.who, entry.action, entry.status)


def _refusal_headers(message: Message, state: dict[str, Any]) -> Message:
    """Add the headers a 401 or 429 must carry when the answer lacks them.

    The guard's refusals on Open311 routes are rendered by that router's error handling,
    which writes the GeoReport body but knows nothing of challenges or retry delays.
    """
    status = int(message["status"])
    if status not in (401, 429):
        return message
    headers = list(message.get("headers", []))
    names = {k.lower() for k, _ in headers}
    if status == 401 and b"www-authenticate" not in names:
        headers.append((b"www-authenticate", challenge()["WWW-Authenticate"].encode()))
    if status == 429 and b"retry-after" not in names and state.get(RETRY_KEY):
        headers.append((b"retry-after", str(state[RETRY_KEY]).encode()))
    return {**message, "headers": headers}


def _storable(value: Any) -> Any:
    """Return ``value`` with text PostgreSQL can store: no NUL, no lone surrogate.

    A request must not escape the audit log by putting ``%00`` in its query or path.
    """
    if isinstance(value, str):
        text = value.replace("\x00", "\ufffd")
        return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def _set_actor(scope: Scope, name: str) -> None:
    kept = [(k, v) for k, v in scope["headers"] if k.lower() != ACTOR_HEADER]
    scope["headers"] = [*kept, (ACTOR_HEADER, name.encode("latin-1", "replace"))]


async def _open311_key(
    scope: Scope, receive: Receive, method: str, path: str, headers: Headers
) -> tuple[Receive, str | None]:
    """Read ``api_key`` from an Open311 form POST; return a receive that replays the body."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if (
        method != "POST"
        or not path.startswith(OPEN311_PREFIX)
        or kind != "application/x-www-form-urlencoded"
    ):
        return receive, None
    messages: list[Message] = []
    size = 0
    complete = False
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            complete = True
            break
        if size > MAX_FORM_PEEK:
            break
    key = None
    if complete:
        body = b"".join(m.get("body", b"") for m in messages)
        values = [v for k, v in parse_qsl(body.decode("utf-8", "replace")) if k == "api_key"]
        key = values[0].strip() if values else None
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay, key


# Each of these is one statement (the key's rare last-used touch aside), run in autocommit:
# a transaction around it would cost a BEGIN and a COMMIT round trip on every request.


def _user_principal(engine: Engine, name: str) -> Principal | None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return principal_of(conn, name)


def _key_principal(engine: Engine, secret: str, via: str) -> Principal | None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        key = find_key(conn, secret, now=datetime.now(UTC))
    return None if key is None else key.principal(via=via)


def _write(engine: Engine, entry: AuditEntry, settings: Settings) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        record(conn, entry, district_code=settings.district_code)
