"""Raster layers: the value at a point, statistics inside a polygon."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from sqlalchemy import Connection

from api.deps import CatalogDep, ConnectionDep, SettingsDep
from api.links import json_response
from api.params import geojson_geometry, parse_number, source_crs
from ingest.rasters import RasterInfo, current_raster
from layers.access import served_raster
from layers.rasters_read import point_values, polygon_stats
from schemas.catalog import Catalog, Layer
from schemas.errors import InvalidInput, NotFound
from schemas.geodesy import CRS84, to_storage

router = APIRouter(prefix="/rasters", tags=["rasters"])
Code = Annotated[str, Path(description="raster layer code (dem, flood_risk)")]
Text = str | None


def _current(conn: Connection, catalog: Catalog, code: str) -> tuple[Layer, RasterInfo]:
    layer = served_raster(catalog, code)
    info = current_raster(conn, layer.code)
    if info is None:
        raise NotFound(f"raster layer {layer.code} has not been loaded yet")
    return layer, info


@router.get("/{code}/point", summary="Raster values at a point")
def raster_point(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    code: Code,
    lon: Annotated[Text, Query(description="longitude (or x)")] = None,
    lat: Annotated[Text, Query(description="latitude (or y)")] = None,
    crs: Annotated[Text, Query(description="CRS of lon/lat (default WGS84)")] = None,
) -> Any:
    """Return the pixel value(s) at the point with the layer's unit; nodata is null."""
    if lon is None or lat is None:
        raise InvalidInput("give the point as lon= and lat=")
    x, y = parse_number(lon, "lon"), parse_number(lat, "lat")
    slon, slat = (float(v) for v in to_storage(x, y, source_crs(crs), settings.storage_epsg))
    layer, info = _current(conn, catalog, code)
    assert layer.raster is not None
    found = point_values(
        info.file(settings.data_dir),
        spec=layer.raster,
        lon=slon,
        lat=slat,
        storage_epsg=settings.storage_epsg,
    )
    return json_response(
        {
            "layer": layer.code,
            "version": info.version,
            "point": {"lon": slon, "lat": slat, "crs": CRS84.uri},
            "inside": found.inside,
            "unit": layer.raster.unit,
            "values": found.values,
            "value": next(iter(found.values.values()), None),
            "pixel": None if found.row is None else {"row": found.row, "col": found.col},
            "raster_crs": info.crs,
        }
    )


@router.post("/{code}/stats", summary="Raster statistics inside a polygon")
def raster_stats(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    code: Code,
    body: Annotated[
        dict[str, Any],
        Body(
            description="a GeoJSON Polygon or MultiPolygon (or a Feature holding one)",
            examples=[
                {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [113.2, 23.38],
                            [113.23, 23.38],
                            [113.23, 23.41],
                            [113.2, 23.41],
                            [113.2, 23.38],
                        ]
                    ],
                }
            ],
        ),
    ],
    crs: Annotated[Text, Query(description="CRS of the polygon (default CRS84 lon/lat)")] = None,
) -> Any:
    """Return count, min, max, mean, std and percentiles of the pixels inside the polygon."""
    area = geojson_geometry(body, source_crs(crs), settings.storage_epsg)
    layer, info = _current(conn, catalog, code)
    assert layer.raster is not None
    stats = polygon_stats(
        info.file(settings.data_dir),
        spec=layer.raster,
        area=area,
        storage_epsg=settings.storage_epsg,
    )
    return json_response(
        {
            "layer": layer.code,
            "version": info.version,
            "unit": layer.raster.unit,
            "nodata": info.nodata,
            **stats,
        }
    )
