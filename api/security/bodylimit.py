"""The largest request body the API reads (413 past it), and no NUL in a URL (400).

Layer uploads (``POST /layers/{code}/loads``) may carry ``settings.max_upload_bytes`` (plus
the multipart framing); every other request at most :data:`MAX_BODY_BYTES`, far above the
largest legitimate one (10,000 snap points are about 0.4 MB). A ``Content-Length`` over the
limit is refused before anything is read; a body sent without one (chunked) is counted as it
arrives and refused when it passes the limit (the router's body parsing turns the raised
``HTTPException`` into the 413). Refusals use the format of the path (GeoReport's error list
on Open311 paths, problem+json elsewhere). This runs whether authentication is on or off.

A NUL character (``%00``) in the path or the query is refused with 400 here, for every route:
no parameter may hold one, and PostgreSQL cannot compare text with it (a NUL that reached a
query would be a 500). JSON bodies are checked by the routers (``api.dispatch.check_values``).
"""

from __future__ import annotations

import re
from typing import Final

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security.middleware import refusal

MAX_BODY_BYTES: Final = 8 * 2**20
MULTIPART_SLACK: Final = 2**20
UPLOAD_PATH: Final = re.compile(r"^/layers/[^/]+/loads/?$")


def body_limit(method: str, path: str, max_upload_bytes: int) -> int:
    """Return the largest body a request may send."""
    if method == "POST" and UPLOAD_PATH.match(path):
        return max_upload_bytes + MULTIPART_SLACK
    return MAX_BODY_BYTES


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes, the most this route reads"


class BodyLimitMiddleware:
    """Refuse request bodies over the limit of their route (see the module's docstring)."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            answer = refusal(path, 400, "Bad request", "the URL must not contain NUL (%00)")
            await answer(scope, receive, send)
            return
        limit = body_limit(scope["method"], path, self.max_upload_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                answer = refusal(path, 400, "Bad request", "Content-Length must be a byte count")
                await answer(scope, receive, send)
                return
            if size > limit:
                answer = refusal(path, 413, "Content too large", _too_large(limit))
                answer.headers["Connection"] = "close"
                await answer(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except HTTPException as exc:  # raised by `counted` outside a router (a middleware's read)
            if exc.status_code != 413 or started:
                raise
            answer = refusal(path, 413, "Content too large", str(exc.detail))
            answer.headers["Connection"] = "close"
            await answer(scope, receive, send)
