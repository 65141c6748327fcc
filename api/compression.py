"""Gzip for the large text answers the map pages read: case points and the pages' assets.

Starlette's :class:`~starlette.middleware.gzip.GZipMiddleware` does the work, only for the
path prefixes of :data:`GZIP_PATHS` (other routes, such as the vector tiles, negotiate
their own encoding) and only for clients that take gzip (``gzip;q=0`` refuses it).
With 12,000 cases the dispatcher's map reads ~3 MB of GeoJSON points: ~0.2 MB gzipped.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

#: Path prefixes whose answers are compressed.
GZIP_PATHS: Final = ("/cases/points", "/maps/")
MINIMUM_SIZE: Final = 1024
LEVEL: Final = 5


def accepts_gzip(header: str) -> bool:
    """Return whether an ``Accept-Encoding`` value takes gzip (a q of 0 refuses it)."""
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


class GzipSomePaths:
    """Apply GZipMiddleware to the requests under some path prefixes that accept gzip."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = GZIP_PATHS) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_SIZE, compresslevel=LEVEL)
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the request through gzip or straight on."""
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefixes):
            header = dict(scope.get("headers") or []).get(b"accept-encoding", b"")
            if accepts_gzip(header.decode("latin-1")):
                await self.gzip(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_compression(app: FastAPI) -> None:
    """Compress the map pages' large answers (see the module)."""
    app.add_middleware(GzipSomePaths)
