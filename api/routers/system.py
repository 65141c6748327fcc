"""Landing and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import ConnectionDep, SettingsDep
from api.links import JSON, OPENAPI_30, json_response, link, url
from layers.status import database_status

router = APIRouter(tags=["system"])
TMS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"


@router.get("/", summary="Landing page")
def landing(request: Request, settings: SettingsDep) -> Response:
    """Return the service title and its links (OGC API landing page)."""
    body = {
        "title": "Sibiao 四标 — base layers and case dispatch",
        "description": "Base layers of the district (四标四实) as OGC API Features and Tiles, "
        "planner queries (nearby, within, coverage) and raster values.",
        "district_code": settings.district_code,
        "links": [
            link(url(request, "/"), "self", JSON, "this document"),
            link(url(request, "/api"), "service-desc", OPENAPI_30, "the API definition"),
            link(url(request, "/docs"), "service-doc", "text/html", "the API documentation"),
            link(url(request, "/conformance"), "conformance", JSON, "conformance classes"),
            link(url(request, "/collections"), "data", JSON, "feature collections"),
            link(url(request, "/tileMatrixSets"), TMS_REL, JSON, "tile matrix sets"),
            link(url(request, "/catalog/layers"), "catalog", JSON, "the layer catalog"),
            link(url(request, "/health"), "status", JSON, "database and schema health"),
        ],
    }
    return json_response(body)


@router.get("/health", summary="Database and schema health")
def health(conn: ConnectionDep) -> dict[str, Any]:
    """Return the schema revision, PostGIS version and layer tables."""
    status = database_status(conn)
    return {
        "status": "ok",
        "revision": status.revision,
        "postgis": status.postgis,
        "layer_tables": status.layer_tables,
    }
