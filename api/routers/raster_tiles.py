"""Raster layers as coloured PNG map tiles (the planner map's DEM and flood-risk overlays)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response

from api.deps import CatalogDep, ConnectionDep, SettingsDep
from ingest.rasters import current_raster
from layers.access import served_raster
from layers.raster_tiles import TMS_ID, parse_tile, ramp_for, render_tile, tile_etag
from schemas.errors import InvalidInput, NotFound

router = APIRouter(prefix="/rasters", tags=["rasters"])
#: Browsers and proxies may keep a tile five minutes, then revalidate it by its ETag.
CACHE_CONTROL: Final = "public, max-age=300"
PNG: Final = "image/png"
Code = Annotated[str, Path(description="raster layer code (dem, flood_risk)", max_length=64)]
Coord = Annotated[str, Path(max_length=20)]


@router.get(
    "/{code}/tiles/{tileMatrixSetId}/{z}/{y}/{x}.png",
    summary="A raster layer as a coloured PNG map tile",
    response_class=Response,
    responses={200: {"content": {PNG: {}}}, 304: {"description": "not modified"}},
)
def raster_tile(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    code: Code,
    tileMatrixSetId: Annotated[str, Path(max_length=64)],  # noqa: N803 (OGC's name)
    z: Coord,
    y: Coord,
    x: Coord,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """Return the 256x256 PNG tile, coloured by the layer's ramp; nodata is transparent."""
    if tileMatrixSetId != TMS_ID:
        raise InvalidInput(f"tile matrix set {tileMatrixSetId[:64]!r} is not {TMS_ID}")
    zi, yi, xi = parse_tile(z, y, x)
    layer = served_raster(catalog, code)
    ramp = ramp_for(layer)
    info = current_raster(conn, layer.code)
    if info is None:
        raise NotFound(f"raster layer {layer.code} has not been loaded yet")
    etag = tile_etag(layer=layer.code, version=info.version, sha256=info.sha256, z=zi, y=yi, x=xi)
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if if_none_match and etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    png = render_tile(info.file(settings.data_dir), ramp=ramp, z=zi, y=yi, x=xi)
    return Response(png, media_type=PNG, headers=headers)
