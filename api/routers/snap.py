"""Which grid cell, village, town a point is in (``layers.snap``), one point or a batch."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CatalogDep, ConnectionDep
from layers.snap import DEFAULT_TOLERANCE_M, SnapResult, snap, snap_many
from schemas.errors import InvalidInput
from schemas.geodesy import parse_crs, to_storage

router = APIRouter(tags=["dispatch"])
MAX_POINTS = 10_000
Finite = Annotated[float, Field(allow_inf_nan=False)]
Tolerance = Annotated[float, Field(ge=0, le=5_000, allow_inf_nan=False)]


class SnapOut(BaseModel):
    """Where a point belongs."""

    model_config = ConfigDict(frozen=True)

    lon: float = Field(description="the point in the storage CRS")
    lat: float
    crs: str
    grid_code: str | None
    grid_name: str | None
    village_code: str
    village_name: str | None
    town_code: str
    town_name: str | None
    district_code: str
    district_name: str | None
    distance_m: float = Field(description="0 inside a cell, else metres to the nearest")
    on_boundary: bool


class SnapBatchIn(BaseModel):
    """Points to snap, all in one CRS."""

    model_config = ConfigDict(extra="forbid")

    points: list[tuple[Finite, Finite]] = Field(max_length=MAX_POINTS, description="[lon, lat]")
    crs: str = Field(default="EPSG:4490", max_length=100)
    tolerance_m: Tolerance = DEFAULT_TOLERANCE_M


class SnapBatchOut(BaseModel):
    """One answer per point, in order; null where the point is outside the district."""

    model_config = ConfigDict(frozen=True)

    crs: str
    matched: int
    results: list[SnapOut | None]


def _to_storage(
    points: list[tuple[float, float]], crs: str, srid: int
) -> list[tuple[float, float]]:
    """Return the points in storage lon/lat; InvalidInput where they cannot be moved."""
    if not points:
        return []
    xs, ys = to_storage([p[0] for p in points], [p[1] for p in points], parse_crs(crs), srid)
    out = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    for k, (x, y) in enumerate(out):
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidInput(f"point {k} {points[k]} cannot be expressed in EPSG:{srid}")
    return out


def _out(lon: float, lat: float, srid: int, hit: SnapResult) -> SnapOut:
    return SnapOut(
        lon=round(lon, 8),
        lat=round(lat, 8),
        crs=f"EPSG:{srid}",
        grid_code=hit.grid_code,
        grid_name=hit.names.grid,
        village_code=hit.village_code,
        village_name=hit.names.village,
        town_code=hit.town_code,
        town_name=hit.names.town,
        district_code=hit.district_code,
        district_name=hit.names.district,
        distance_m=hit.distance_m,
        on_boundary=hit.on_boundary,
    )


@router.get(
    "/snap",
    response_model=SnapOut,
    responses={400: {"description": "outside the district, or not a point"}},
    summary="Snap one point to the grid",
)
def get_snap(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    lon: Annotated[float, Query(allow_inf_nan=False, description="longitude (or x)")],
    lat: Annotated[float, Query(allow_inf_nan=False, description="latitude (or y)")],
    crs: Annotated[str, Query(max_length=100, description="EPSG code, wgs84, gcj02, bd09")] = (
        "EPSG:4490"
    ),
    tolerance_m: Annotated[float, Query(ge=0, le=5_000, allow_inf_nan=False)] = (
        DEFAULT_TOLERANCE_M
    ),
) -> JSONResponse:
    """Return the cell, village, town and district of a point given in ``crs``."""
    srid = request.app.state.settings.storage_epsg
    ((x, y),) = _to_storage([(lon, lat)], crs, srid)
    hit = snap(conn, catalog, x, y, tolerance_m=tolerance_m, srid=srid)
    return JSONResponse(_out(x, y, srid, hit).model_dump(mode="json"))


@router.post("/snap", response_model=SnapBatchOut, summary="Snap up to 10,000 points")
def post_snap(
    request: Request, body: SnapBatchIn, conn: ConnectionDep, catalog: CatalogDep
) -> JSONResponse:
    """Return, in order, where each point belongs (null outside the district)."""
    srid = request.app.state.settings.storage_epsg
    points = _to_storage(body.points, body.crs, srid)
    hits = snap_many(conn, catalog, points, tolerance_m=body.tolerance_m, srid=srid)
    results = [
        None if hit is None else _out(x, y, srid, hit)
        for (x, y), hit in zip(points, hits, strict=True)
    ]
    out = SnapBatchOut(
        crs=f"EPSG:{srid}", matched=sum(r is not None for r in results), results=results
    )
    return JSONResponse(out.model_dump(mode="json"))
