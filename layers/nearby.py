"""Planner questions in geodesic metres: nearest features, features in an area, coverage.

Distances are ``ST_Distance`` on geography (the storage CRS's ellipsoid, CGCS2000 ≈
GRS80), so exact, not planar degrees. The GiST index on ``geom`` still does the
searching: a box in degrees that surely holds the distance (:func:`_expand_sql`, the same
bound as :func:`schemas.geodesy.metres_to_degrees_hint`) filters first, and exact
distances decide. For the k nearest without a radius, a KNN scan (``<->``, planar) finds k
candidates; the largest geodesic distance among them bounds the k-th nearest, and the
exact search within that bound orders the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import shapely
from sqlalchemy import Connection, text

from layers.access import served_layer
from schemas.catalog import Catalog, Layer, LayerRole
from schemas.errors import InvalidInput
from schemas.tables import LAYER_SCHEMA

MAX_K: Final = 100
MAX_RADIUS_M: Final = 100_000.0
MAX_WITHIN: Final = 10_000
MAX_COVERAGE_M: Final = 50_000.0
# Metres per degree: meridian minimum (equator) and equatorial parallel, as in geodesy.
_M_PER_DEG_LAT: Final = 110_574.0
_M_PER_DEG_LON: Final = math.radians(6378137.0)


def _quote(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise InvalidInput(f"{name!r} is not an identifier")
    return f'"{name}"'


def _table(layer: Layer) -> str:
    return f"{LAYER_SCHEMA}.{_quote(layer.code)}"


def _props(layer: Layer, alias: str) -> str:
    pairs = ", ".join(f"'{a.name}', {alias}.{_quote(a.name)}" for a in layer.attributes)
    return f"json_build_object({pairs})"


def _expand_sql(point: str, metres: str) -> str:
    """Return SQL for a box around ``point`` holding all within ``metres`` (both SQL)."""
    dlat = f"({metres}) / {_M_PER_DEG_LAT}"
    widest = f"least(abs(ST_Y({point})) + {dlat}, 89.0)"
    dlon = f"({metres}) / ({_M_PER_DEG_LON} * cos(radians({widest})))"
    return f"ST_Expand({point}, ({dlon}) * 1.001, ({dlat}) * 1.001)"


@dataclass(frozen=True)
class Found:
    """One feature found by a planner query."""

    layer: str
    fid: int
    properties: dict[str, Any]
    geometry: dict[str, Any]
    distance_m: float | None

    def feature(self) -> dict[str, Any]:
        """Return it as a GeoJSON Feature (distance among the properties)."""
        props = dict(self.properties)
        if self.distance_m is not None:
            props["distance_m"] = round(self.distance_m, 3)
        return {"type": "Feature", "id": self.fid, "geometry": self.geometry, "properties": props}


def _check_point(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) is not a longitude/latitude")


def nearest(
    conn: Connection,
    *,
    catalog: Catalog,
    lon: float,
    lat: float,
    layers: Sequence[str],
    k: int = 5,
    radius_m: float | None = None,
    storage_epsg: int = 4490,
) -> dict[str, list[Found]]:
    """Return, per layer, the k features nearest to a storage lon/lat point, nearest first."""
    _check_point(lon, lat)
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be within 1..{MAX_K}")
    if radius_m is not None and not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise InvalidInput(f"radius_m must be within (0, {MAX_RADIUS_M:g}]")
    found: dict[str, list[Found]] = {}
    for code in dict.fromkeys(layers):
        layer = served_layer(catalog, code)
        table = _table(layer)
        sql = f"""
            WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), {int(storage_epsg)}) AS g),
            cand AS (SELECT t.geom FROM {table} t ORDER BY t.geom <-> (SELECT g FROM pt) LIMIT :k),
            bound AS (
                SELECT least(max(ST_Distance(c.geom::geography, (SELECT g FROM pt)::geography)),
                             CAST(:radius AS double precision)) AS d
                FROM cand c)
            SELECT t.fid, {_props(layer, "t")} AS props, ST_AsGeoJSON(t.geom, 9, 0) AS geom,
                   ST_Distance(t.geom::geography, pt.g::geography) AS distance_m
            FROM pt, bound, {table} t
            WHERE t.geom && {_expand_sql("pt.g", "bound.d")}
              AND ST_Distance(t.geom::geography, pt.g::geography) <= bound.d
            ORDER BY distance_m, t.fid
            LIMIT :k"""
        rows = conn.execute(
            text(sql), {"lon": lon, "lat": lat, "k": k, "radius": radius_m or MAX_RADIUS_M * 100}
        ).all()
        found[layer.code] = [_found(layer, row) for row in rows]
    return found


def _found(layer: Layer, row: Any) -> Found:
    import json

    return Found(
        layer=layer.code,
        fid=int(row.fid),
        properties=dict(row.props),
        geometry=json.loads(row.geom),
        distance_m=None if getattr(row, "distance_m", None) is None else float(row.distance_m),
    )


@dataclass(frozen=True)
class WithinResult:
    """Features of one layer in the area, and whether the limit cut them short."""

    features: list[Found]
    truncated: bool


def within_geometry(
    conn: Connection,
    *,
    catalog: Catalog,
    area: shapely.Geometry,
    layers: Sequence[str],
    limit: int = 1000,
    storage_epsg: int = 4490,
) -> dict[str, WithinResult]:
    """Return, per layer, the features intersecting ``area`` (storage lon/lat), by fid."""
    if area.is_empty or not area.is_valid:
        reason = "empty" if area.is_empty else shapely.is_valid_reason(area)
        raise InvalidInput(f"the area is not a valid geometry: {reason}")
    if not 1 <= limit <= MAX_WITHIN:
        raise InvalidInput(f"limit must be within 1..{MAX_WITHIN}")
    wkb = shapely.to_wkb(area)
    out: dict[str, WithinResult] = {}
    for code in dict.fromkeys(layers):
        layer = served_layer(catalog, code)
        sql = f"""
            WITH a AS (SELECT ST_GeomFromWKB(:wkb, {int(storage_epsg)}) AS g)
            SELECT t.fid, {_props(layer, "t")} AS props, ST_AsGeoJSON(t.geom, 9, 0) AS geom
            FROM a, {_table(layer)} t
            WHERE ST_Intersects(t.geom, a.g)
            ORDER BY t.fid LIMIT :n"""
        rows = conn.execute(text(sql), {"wkb": wkb, "n": limit + 1}).all()
        out[layer.code] = WithinResult(
            [_found(layer, row) for row in rows[:limit]], len(rows) > limit
        )
    return out


def within_distance(
    conn: Connection,
    *,
    catalog: Catalog,
    lon: float,
    lat: float,
    buffer_m: float,
    layers: Sequence[str],
    limit: int = 1000,
    storage_epsg: int = 4490,
) -> dict[str, WithinResult]:
    """Return, per layer, the features within ``buffer_m`` geodesic metres of a point."""
    _check_point(lon, lat)
    if not (math.isfinite(buffer_m) and 0 <= buffer_m <= MAX_RADIUS_M):
        raise InvalidInput(f"buffer_m must be within [0, {MAX_RADIUS_M:g}]")
    if not 1 <= limit <= MAX_WITHIN:
        raise InvalidInput(f"limit must be within 1..{MAX_WITHIN}")
    out: dict[str, WithinResult] = {}
    for code in dict.fromkeys(layers):
        layer = served_layer(catalog, code)
        sql = f"""
            WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), {int(storage_epsg)}) AS g)
            SELECT t.fid, {_props(layer, "t")} AS props, ST_AsGeoJSON(t.geom, 9, 0) AS geom,
                   ST_Distance(t.geom::geography, pt.g::geography) AS distance_m
            FROM pt, {_table(layer)} t
            WHERE t.geom && {_expand_sql("pt.g", ":r")}
              AND ST_Distance(t.geom::geography, pt.g::geography) <= :r
            ORDER BY distance_m, t.fid LIMIT :n"""
        rows = conn.execute(
            text(sql), {"lon": lon, "lat": lat, "r": buffer_m, "n": limit + 1}
        ).all()
        out[layer.code] = WithinResult(
            [_found(layer, row) for row in rows[:limit]], len(rows) > limit
        )
    return out


@dataclass(frozen=True)
class Coverage:
    """Grid cells farther than the distance from every feature of a layer, with totals."""

    layer: str
    max_distance_m: float
    cells: list[dict[str, Any]]
    total_cells: int
    total_population: int
    uncovered_population: int


def coverage(
    conn: Connection,
    *,
    catalog: Catalog,
    layer_code: str,
    max_distance_m: float,
    storage_epsg: int = 4490,
) -> Coverage:
    """Return the grid cells whose centroid is farther than D from every feature of a layer."""
    if not (math.isfinite(max_distance_m) and 0 < max_distance_m <= MAX_COVERAGE_M):
        raise InvalidInput(f"max_distance_m must be within (0, {MAX_COVERAGE_M:g}]")
    layer = served_layer(catalog, layer_code)
    grid = served_layer(catalog, catalog.by_role(LayerRole.grid_cell).code)
    names = [a.name for a in grid.attributes]
    population = "c.population" if "population" in names else "NULL::bigint"
    sql = f"""
        WITH cells AS (
            SELECT c.fid, {_props(grid, "c")} AS props, c.geom, ST_Centroid(c.geom) AS cen,
                   {population} AS population
            FROM {_table(grid)} c)
        SELECT cells.fid, cells.props, ST_AsGeoJSON(cells.geom, 9, 0) AS geom,
               ST_X(cells.cen) AS cx, ST_Y(cells.cen) AS cy, cells.population
        FROM cells
        WHERE NOT EXISTS (
            SELECT 1 FROM {_table(layer)} f
            WHERE f.geom && {_expand_sql("cells.cen", ":d")}
              AND ST_Distance(f.geom::geography, cells.cen::geography) <= :d)
        ORDER BY cells.fid"""
    rows = conn.execute(text(sql), {"d": max_distance_m}).all()
    totals = conn.execute(
        text(f"SELECT count(*), coalesce(sum({population}), 0) FROM {_table(grid)} c")
    ).one()
    import json

    cells = [
        {
            "type": "Feature",
            "id": int(row.fid),
            "geometry": json.loads(row.geom),
            "properties": {**dict(row.props), "centroid": [float(row.cx), float(row.cy)]},
        }
        for row in rows
    ]
    return Coverage(
        layer=layer.code,
        max_distance_m=max_distance_m,
        cells=cells,
        total_cells=int(totals[0]),
        total_population=int(totals[1]),
        uncovered_population=sum(int(row.population or 0) for row in rows),
    )
