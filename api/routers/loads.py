"""Layer loads over HTTP: upload a file, watch its progress, read its rejected rows.

Uploads and rollbacks record who made them (the signed-in caller; with authentication off,
the name of ``X-Sibiao-User`` if one is given) on the batch, and the load's id in the audit row.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import CatalogDep, ConnectionDep, EngineDep, SettingsDep
from api.security.middleware import DETAIL_KEY
from ingest.fields import parse_overrides
from ingest.jobs import LoadJobs, batch_status, layer_loads
from ingest.rejects import MAX_GEOJSON_REJECTS, rejects_geojson, report_csv
from ingest.versions import layer_history, rollback_layer
from schemas.accounts import Principal, Role

router = APIRouter(tags=["loads"])
LayerCode = Annotated[str, Path(description="layer code", max_length=64)]


def _jobs(request: Request) -> LoadJobs:
    jobs: LoadJobs = request.app.state.jobs
    return jobs


def _uploader(request: Request) -> str | None:
    """Return who calls (None for an anonymous caller, who the policy refuses anyway)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or principal.role is Role.anonymous or principal.name == "anonymous":
        return None
    return principal.name[:64]


def _audit(request: Request, **detail: Any) -> None:
    request.scope.setdefault("state", {})[DETAIL_KEY] = detail


def _links(request: Request, batch_id: int) -> list[dict[str, str]]:
    base = str(request.base_url).rstrip("/")
    return [
        {"rel": "self", "href": f"{base}/loads/{batch_id}", "type": "application/json"},
        {"rel": "rejects", "href": f"{base}/loads/{batch_id}/rejects.csv", "type": "text/csv"},
    ]


@router.post("/layers/{code}/loads", status_code=202, summary="Upload a file into a layer")
def upload(
    request: Request,
    code: LayerCode,
    file: Annotated[
        UploadFile, File(description="GPKG, zipped Shapefile, GeoJSON, CSV, KML, GeoTIFF")
    ],
    mode: Annotated[str, Form(description="replace, append or upsert")] = "replace",
    source_crs: Annotated[str | None, Form(description="EPSG code, gcj02 or bd09")] = None,
    field_map: Annotated[
        list[str] | None, Form(alias="map", description="SOURCE=attribute")
    ] = None,
) -> JSONResponse:
    """Store the upload and load it in the background; answer 202 with the load's id."""
    batch_id = _jobs(request).submit(
        layer=code,
        stream=file.file,
        file_name=file.filename,
        mode=mode,
        source_crs=source_crs or None,
        field_map=parse_overrides(field_map or []),
        user=_uploader(request),
    )
    _audit(request, load_id=batch_id, file=(file.filename or "")[:200])
    body = {"id": batch_id, "layer": code, "state": "queued", "links": _links(request, batch_id)}
    return JSONResponse(body, status_code=202, headers={"Location": f"/loads/{batch_id}"})


@router.get("/loads/{load_id}", summary="State and progress of a load")
def load_status(
    request: Request, engine: EngineDep, load_id: Annotated[int, Path(ge=1, le=2**62)]
) -> dict[str, Any]:
    """Return state (queued, running, committed, failed), progress and counts."""
    return {**batch_status(engine, load_id), "links": _links(request, load_id)}


@router.get(
    "/loads/{load_id}/rejects.csv",
    summary="Rejected rows of a load",
    response_class=PlainTextResponse,
)
def load_rejects(
    conn: ConnectionDep, load_id: Annotated[int, Path(ge=1, le=2**62)]
) -> PlainTextResponse:
    """Return the rejected rows as CSV: row, field, reason, value."""
    from ingest.batches import get

    get(conn, load_id)
    return PlainTextResponse(
        report_csv(conn, load_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="load-{load_id}-rejects.csv"'},
    )


@router.get(
    "/loads/{load_id}/rejects.geojson",
    summary="Rejected rows of a load as GeoJSON (with the location they had)",
    response_class=JSONResponse,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def load_rejects_geojson(
    conn: ConnectionDep,
    load_id: Annotated[int, Path(ge=1, le=2**62)],
    limit: Annotated[
        int, Query(ge=1, le=MAX_GEOJSON_REJECTS, description="rejects to return, in row order")
    ] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**62, description="rejects to skip")] = 0,
    located: Annotated[
        bool, Query(description="only rows that kept a geometry (others have geometry null)")
    ] = False,
) -> JSONResponse:
    """Return rejected rows as a FeatureCollection: row, field, reason, value; numberMatched."""
    from ingest.batches import get

    get(conn, load_id)
    body = rejects_geojson(conn, load_id, limit=limit, offset=offset, located=located)
    return JSONResponse(body, media_type="application/geo+json")


@router.get("/layers/{code}/loads", summary="Latest loads of a layer")
def recent_loads(
    request: Request,
    engine: EngineDep,
    catalog: CatalogDep,
    code: LayerCode,
    limit: Annotated[int, Query(ge=1, le=100, description="loads to return, newest first")] = 10,
) -> list[dict[str, Any]]:
    """Return the layer's latest loads (any state), newest first, as GET /loads/{id} shows them."""
    loads = layer_loads(engine, catalog, code, limit=limit)
    return [{**load, "links": _links(request, int(load["id"]))} for load in loads]


@router.get("/layers/{code}/versions", summary="Versions of a layer")
def versions(conn: ConnectionDep, catalog: CatalogDep, code: LayerCode) -> list[dict[str, Any]]:
    """Return the layer's versions, newest first, with the loads that made them."""
    return layer_history(conn, catalog, code)


@router.post("/layers/{code}/rollback", summary="Restore an earlier version")
def rollback(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    code: LayerCode,
    to: Annotated[int, Query(ge=0, le=2**31 - 1, description="version to restore")],
) -> dict[str, Any]:
    """Make an earlier version current again (as a new version)."""
    published = rollback_layer(engine, settings, catalog, code, to, user=_uploader(request))
    _audit(request, version=published.version, restored=to)
    return {
        "layer": code,
        "version": published.version,
        "features": published.features,
        "restored": to,
    }
