"""Planner queries: what is near a point, what lies in an area, where coverage is missing.

Coordinates are given as x/y (lon/lat for geographic systems) in ``crs`` (default WGS84;
EPSG codes, OGC URIs, ``gcj02`` and ``bd09`` accepted); answers are GeoJSON in CRS84 with
distances in geodesic metres.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from api.deps import CatalogDep, ConnectionDep, SettingsDep
from api.links import json_response
from api.params import geojson_geometry, parse_int, parse_list, parse_number, source_crs
from api.readers import ReaderDep, note_layers
from layers.nearby import (
    MAX_K,
    MAX_WITHIN,
    Found,
    WithinResult,
    coverage,
    nearest,
    within_distance,
    within_geometry,
)
from schemas.errors import InvalidInput
from schemas.geodesy import CRS84, to_storage

router = APIRouter(tags=["planner"])
Text = str | None
CrsParam = Annotated[Text, Query(description="CRS of the coordinates (default WGS84 lon/lat)")]


def _point(
    lon: str | None, lat: str | None, crs: str | None, storage_epsg: int
) -> tuple[float, float]:
    if lon is None or lat is None:
        raise InvalidInput("give the point as lon= and lat= (x= and y= of a projected crs)")
    x, y = parse_number(lon, "lon"), parse_number(lat, "lat")
    sx, sy = to_storage(x, y, source_crs(crs), storage_epsg)
    return float(sx), float(sy)


def _metres(text: str | None, name: str) -> float | None:
    if text is None or text == "":
        return None
    return parse_number(text, name)


def _layers(text: str | None) -> list[str]:
    codes = list(parse_list(text, "layers") or ())
    if not codes:
        raise InvalidInput("name the layers to search: layers=school,hospital")
    return codes


def _collection(found: list[Found], **extra: Any) -> dict[str, Any]:
    features = [f.feature() for f in found]
    return {"type": "FeatureCollection", "numberReturned": len(features), **extra,
            "features": features}  # fmt: skip


@router.get("/nearby", summary="The nearest features of some layers to a point")
def nearby(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    lon: Annotated[Text, Query(description="longitude (or x)")] = None,
    lat: Annotated[Text, Query(description="latitude (or y)")] = None,
    crs: CrsParam = None,
    layers: Annotated[Text, Query(description="layer codes, comma-separated")] = None,
    k: Annotated[Text, Query(description=f"features per layer, 1..{MAX_K} (default 5)")] = None,
    radius_m: Annotated[Text, Query(description="only within this many metres")] = None,
) -> Any:
    """Return per layer the k nearest features (within radius_m), nearest first."""
    slon, slat = _point(lon, lat, crs, settings.storage_epsg)
    count = parse_int(k, "k", default=5, low=1, high=MAX_K)
    radius = _metres(radius_m, "radius_m")
    found = nearest(
        conn,
        catalog=catalog,
        lon=slon,
        lat=slat,
        layers=_layers(layers),
        k=count,
        radius_m=radius,
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    return json_response(
        {
            "point": {"lon": slon, "lat": slat, "crs": CRS84.uri},
            "k": count,
            "radius_m": radius,
            "layers": {code: _collection(items) for code, items in found.items()},
        }
    )


def _results(results: dict[str, WithinResult]) -> dict[str, Any]:
    return {
        code: _collection(result.features, truncated=result.truncated)
        for code, result in results.items()
    }


@router.post("/within", summary="Features of some layers inside an area")
def within(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    body: Annotated[
        dict[str, Any],
        Body(
            description='{"layers": [...], "geometry": GeoJSON} or {"layers": [...], '
            '"point": [lon, lat], "buffer_m": 500}; optional "limit" per layer',
            examples=[{"layers": ["school"], "point": [113.22, 23.40], "buffer_m": 1000}],
        ),
    ],
    crs: CrsParam = None,
) -> Any:
    """Return per layer the features intersecting the area (or within buffer_m of point)."""
    codes = body.get("layers")
    if isinstance(codes, str):
        codes = codes.split(",")
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        raise InvalidInput('"layers" must be a list of layer codes')
    note_layers(request, catalog, codes)
    limit = body.get("limit", 1000)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_WITHIN:
        raise InvalidInput(f'"limit" must be a whole number within 1..{MAX_WITHIN}')
    source = source_crs(crs)
    if "geometry" in body:
        area = geojson_geometry(body["geometry"], source, settings.storage_epsg)
        results = within_geometry(
            conn,
            catalog=catalog,
            area=area,
            layers=codes,
            limit=limit,
            storage_epsg=settings.storage_epsg,
            reader=reader,
        )
        return json_response({"layers": _results(results)})
    point, buffer_m = body.get("point"), body.get("buffer_m")
    numbers = (int, float)
    if (
        not isinstance(point, list)
        or len(point) != 2
        or not all(isinstance(v, numbers) and not isinstance(v, bool) for v in point)
        or not isinstance(buffer_m, numbers)
        or isinstance(buffer_m, bool)
    ):
        raise InvalidInput('give "geometry" (GeoJSON), or "point": [lon, lat] and "buffer_m"')
    slon, slat = (float(v) for v in to_storage(point[0], point[1], source, settings.storage_epsg))
    results = within_distance(
        conn,
        catalog=catalog,
        lon=slon,
        lat=slat,
        buffer_m=float(buffer_m),
        layers=codes,
        limit=limit,
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    return json_response(
        {"point": {"lon": slon, "lat": slat}, "buffer_m": buffer_m, "layers": _results(results)}
    )


@router.get("/coverage", summary="Grid cells farther than a distance from every feature")
def coverage_gaps(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    layer: Annotated[Text, Query(description="layer code (e.g. fire_station)")] = None,
    max_distance_m: Annotated[Text, Query(description="distance D in metres")] = None,
) -> Any:
    """Return the grid cells whose centroid is farther than D from the layer, with population."""
    if not layer:
        raise InvalidInput("name the layer: layer=fire_station")
    distance = _metres(max_distance_m, "max_distance_m")
    if distance is None:
        raise InvalidInput("give max_distance_m (metres)")
    result = coverage(
        conn,
        catalog=catalog,
        layer_code=layer,
        max_distance_m=distance,
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    return json_response(
        {
            "type": "FeatureCollection",
            "layer": result.layer,
            "max_distance_m": result.max_distance_m,
            "totals": {
                "cells": result.total_cells,
                "population": result.total_population,
                "uncovered_cells": len(result.cells),
                "uncovered_population": result.uncovered_population,
            },
            "numberReturned": len(result.cells),
            "features": result.cells,
        }
    )
