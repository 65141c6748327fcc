"""Helpers the OGC routers share: links, JSON answers, the per-app layer caches."""

from __future__ import annotations

import json
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import Response

from layers.live import LiveLayers

JSON: Final = "application/json"
GEOJSON: Final = "application/geo+json"
SCHEMA_JSON: Final = "application/schema+json"
OPENAPI_30: Final = "application/vnd.oai.openapi+json;version=3.0"
MVT: Final = "application/vnd.mapbox-vector-tile"


def get_live(request: Request) -> LiveLayers:
    """Return the app's layer caches."""
    live: LiveLayers = request.app.state.live
    return live


LiveDep = Annotated[LiveLayers, Depends(get_live)]


def base_url(request: Request) -> str:
    """Return the service root URL without a trailing slash."""
    return str(request.base_url).rstrip("/")


def url(request: Request, path: str, params: dict[str, Any] | None = None) -> str:
    """Return an absolute URL under the service root, with query parameters."""
    query = {k: v for k, v in (params or {}).items() if v is not None}
    suffix = f"?{urlencode(query)}" if query else ""
    return f"{base_url(request)}{path}{suffix}"


def link(href: str, rel: str, type_: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """Return one link object."""
    out: dict[str, Any] = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    out.update(extra)
    return out


def json_response(
    body: Any, *, media_type: str = JSON, headers: dict[str, str] | None = None
) -> Response:
    """Return a JSON answer with an explicit media type (no Chinese escaped)."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    return Response(content.encode(), media_type=media_type, headers=headers)
