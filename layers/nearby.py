"""Planner questions in geodesic metres: nearest features, features in an area, coverage.

Distances are ``ST_Distance`` on geography (the storage CRS's ellipsoid, CGCS2000 ≈
GRS80), so exact, not planar degrees; 0 inside a polygon. The GiST index on ``geom`` does
the searching. The k nearest (:func:`nearest_rows`, used by :func:`nearest` and by
:func:`layers.assets.nearest_asset`): a KNN scan (``<->``, planar degrees) finds k
candidates; there are k features within the largest geodesic distance among them, so that
distance (or the radius, when smaller) bounds the k-th nearest; the features inside a box
in degrees that surely holds that distance (:func:`_expand_sql`, the bound of
:func:`schemas.geodesy.metres_to_degrees_hint`) are measured exactly and the k nearest
kept. All layers of a question go in one statement.

Which layers a caller may read, and whether their personal fields are masked, is
:class:`layers.access.Reader`'s to say.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import shapely
from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT

from layers.access import DEFAULT_READER, Reader, served_layer
from layers.masking import mask_properties
from layers.reads import one_statement
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
_NO_RADIUS: Final = MAX_RADIUS_M * 100


def quote(name: str) -> str:
    """Quote a catalog identifier (layer code, attribute name); refuse anything else."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise InvalidInput(f"{name!r} is not an identifier")
    return f'"{name}"'


def _table(layer: Layer) -> str:
    return f"{LAYER_SCHEMA}.{quote(layer.code)}"


def _props(layer: Layer, alias: str) -> str:
    pairs = ", ".join(f"'{a.name}', {alias}.{quote(a.name)}" for a in layer.attributes)
    return f"json_build_object({pairs})"


def _expand_sql(point: str, metres: str) -> str:
    """Return SQL for a box around ``point`` holding all within ``metres`` (both SQL)."""
    dlat = f"({metres}) / {_M_PER_DEG_LAT}"
    widest = f"least(abs(ST_Y({point})) + {dlat}, 89.0)"
    dlon = f"({metres}) / ({_M_PER_DEG_LON} * cos(radians({widest})))"
    return f"ST_Expand({point}, ({dlon}) * 1.001, ({dlat}) * 1.001)"


@dataclass(frozen=True)
class Probe:
    """One layer's part of a nearest question.

    ``columns``: the select list over alias ``t`` (catalog identifiers only, quoted);
    ``where``: conditions over ``t`` whose values are bound parameters named in ``binds``
    (lists are bound as text arrays). Every probe of one question selects the same columns.
    """

    layer: Layer
    columns: str
    where: tuple[str, ...] = ()
    binds: Mapping[str, Any] = field(default_factory=dict)


def _nearest_sql(code: str, columns: str, where: tuple[str, ...], index: int) -> str:
    """Return one probe's branch; ``p.g`` is the point, ``p.gg`` the same as geography."""
    table = f"{LAYER_SCHEMA}.{quote(code)}"
    cond = " AND ".join(where) or "true"
    return f"""(SELECT {index} AS probe, t.fid, {columns},
 ST_Distance(t.geom::geography, p.gg) AS distance_m
FROM p, LATERAL (SELECT least(max(ST_Distance(c.geom::geography, p.gg)), p.r) AS d
 FROM (SELECT t.geom FROM {table} t WHERE {cond} ORDER BY t.geom <-> p.g LIMIT :k) c) b,
 {table} t
WHERE {cond} AND t.geom && {_expand_sql("p.g", "b.d")}
 AND ST_Distance(t.geom::geography, p.gg) <= b.d
ORDER BY distance_m, t.fid LIMIT :k)"""


@functools.lru_cache(maxsize=256)
def _statement(
    branches: tuple[tuple[str, str, tuple[str, ...]], ...], arrays: tuple[str, ...], srid: int
) -> TextClause:
    """Return the statement of a question (cached: the same layers ask the same SQL)."""
    point = f"ST_SetSRID(ST_MakePoint(:lon, :lat), {int(srid)})"
    union = "\nUNION ALL\n".join(
        _nearest_sql(code, columns, where, i) for i, (code, columns, where) in enumerate(branches)
    )
    sql = f"""WITH p AS MATERIALIZED (SELECT {point} AS g, {point}::geography AS gg,
 CAST(:radius AS double precision) AS r)
{union}"""
    return text(sql).bindparams(*(bindparam(n, type_=ARRAY(TEXT)) for n in arrays))


def nearest_rows(
    conn: Connection,
    *,
    probes: Sequence[Probe],
    lon: float,
    lat: float,
    k: int,
    radius_m: float | None,
    storage_epsg: int,
) -> list[list[Any]]:
    """Return, per probe, the k rows nearest to lon/lat (within ``radius_m``), nearest first.

    Ties in distance go to the smaller fid. Each row has ``fid``, the probe's columns and
    ``distance_m`` (geodesic metres).
    """
    if not probes:
        return []
    values: dict[str, Any] = {
        "lon": float(lon),
        "lat": float(lat),
        "k": int(k),
        "radius": _NO_RADIUS if radius_m is None else float(radius_m),
    }
    arrays: list[str] = []
    for probe in probes:
        for name, value in probe.binds.items():
            values[name] = value
            if isinstance(value, list):
                arrays.append(name)
    branches = tuple((p.layer.code, p.columns, p.where) for p in probes)
    stmt = _statement(branches, tuple(arrays), storage_epsg)
    out: list[list[Any]] = [[] for _ in probes]
    with one_statement(conn):
        rows = conn.execute(stmt, values).all()
    for row in rows:
        out[int(row.probe)].append(row)
    return out


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


def check_point(lon: float, lat: float) -> None:
    """Refuse a point that is not a longitude/latitude."""
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
    reader: Reader = DEFAULT_READER,
) -> dict[str, list[Found]]:
    """Return, per layer, the k features nearest to a storage lon/lat point, nearest first."""
    check_point(lon, lat)
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be within 1..{MAX_K}")
    if radius_m is not None and not (math.isfinite(radius_m) and 0 < radius_m <= MAX_RADIUS_M):
        raise InvalidInput(f"radius_m must be within (0, {MAX_RADIUS_M:g}]")
    chosen = [served_layer(catalog, code, reader=reader) for code in dict.fromkeys(layers)]
    probes = [
        Probe(lyr, f"{_props(lyr, 't')} AS props, ST_AsGeoJSON(t.geom, 9, 0) AS geom")
        for lyr in chosen
    ]
    rows = nearest_rows(
        conn,
        probes=probes,
        lon=lon,
        lat=lat,
        k=k,
        radius_m=radius_m,
        storage_epsg=storage_epsg,
    )
    return {
        lyr.code: [_found(lyr, row, reader) for row in found]
        for lyr, found in zip(chosen, rows, strict=True)
    }


def _found(layer: Layer, row: Any, reader: Reader) -> Found:
    props = dict(row.props)
    return Found(
        layer=layer.code,
        fid=int(row.fid),
        properties=mask_properties(layer, props) if reader.masks(layer) else props,
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
    reader: Reader = DEFAULT_READER,
) -> dict[str, WithinResult]:
    """Return, per layer, the features intersecting ``area`` (storage lon/lat), by fid."""
    if area.is_empty or not area.is_valid:
        reason = "empty" if area.is_empty else shapely.is_valid_reason(area)
        raise InvalidInput(f"the area is not a valid geometry: {reason}")
    if not 1 <= limit <= MAX_WITHIN:
        raise InvalidInput(f"limit must be within 1..{MAX_WITHIN}")
    wkb = shapely.to_wkb(area)
    chosen = [served_layer(catalog, code, reader=reader) for code in dict.fromkeys(layers)]
    out: dict[str, WithinResult] = {}
    for layer in chosen:
        sql = f"""
            WITH a AS (SELECT ST_GeomFromWKB(:wkb, {int(storage_epsg)}) AS g)
            SELECT t.fid, {_props(layer, "t")} AS props, ST_AsGeoJSON(t.geom, 9, 0) AS geom
            FROM a, {_table(layer)} t
            WHERE ST_Intersects(t.geom, a.g)
            ORDER BY t.fid LIMIT :n"""
        rows = conn.execute(text(sql), {"wkb": wkb, "n": limit + 1}).all()
        out[layer.code] = WithinResult(
            [_found(layer, row, reader) for row in rows[:limit]], len(rows) > limit
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
    reader: Reader = DEFAULT_READER,
) -> dict[str, WithinResult]:
    """Return, per layer, the features within ``buffer_m`` geodesic metres of a point."""
    check_point(lon, lat)
    if not (math.isfinite(buffer_m) and 0 <= buffer_m <= MAX_RADIUS_M):
        raise InvalidInput(f"buffer_m must be within [0, {MAX_RADIUS_M:g}]")
    if not 1 <= limit <= MAX_WITHIN:
        raise InvalidInput(f"limit must be within 1..{MAX_WITHIN}")
    chosen = [served_layer(catalog, code, reader=reader) for code in dict.fromkeys(layers)]
    out: dict[str, WithinResult] = {}
    for layer in chosen:
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
            [_found(layer, row, reader) for row in rows[:limit]], len(rows) > limit
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
    reader: Reader = DEFAULT_READER,
) -> Coverage:
    """Return the grid cells whose centroid is farther than D from every feature of a layer."""
    if not (math.isfinite(max_distance_m) and 0 < max_distance_m <= MAX_COVERAGE_M):
        raise InvalidInput(f"max_distance_m must be within (0, {MAX_COVERAGE_M:g}]")
    layer = served_layer(catalog, layer_code, reader=reader)
    grid = served_layer(catalog, catalog.by_role(LayerRole.grid_cell).code, reader=reader)
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
