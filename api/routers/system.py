"""Landing and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import ConnectionDep, SettingsDep
from layers.status import database_status

router = APIRouter(tags=["system"])


@router.get("/", summary="Landing page")
def landing(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Return the service title and its main links."""
    base = str(request.base_url).rstrip("/")
    return {
        "title": "Sibiao 四标 — base layers and case dispatch",
        "district_code": settings.district_code,
        "links": [
            {"rel": "service-doc", "href": f"{base}/docs", "type": "text/html"},
            {"rel": "catalog", "href": f"{base}/catalog/layers", "type": "application/json"},
            {"rel": "status", "href": f"{base}/health", "type": "application/json"},
        ],
    }


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
