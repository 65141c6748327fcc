"""Point (and small-footprint) strategies: beside roads, at crossings, at buildings, in villages.

Params shared by these strategies (all optional):

``grades``      ``{grade: weight}`` of roads (absent grades get nothing); ``lit_only``.
``urban``       density preference: weight ``d**urban`` (negative: ``(1-d)**-urban``).
``side``        ``both`` (default), ``left``, ``right`` or ``centre`` of the road;
``offset``      ``[lo, hi]`` m beyond the carriageway edge.
``footprint``   ``[[l_lo, l_hi], [w_lo, w_hi]]``: a rectangle along the road (polygon layers).
``cluster``     ``[lo, hi, radius_m]``: points per MultiPoint feature.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely import STRtree

from layers.synthetic.assets._common import (
    FloatArray,
    IntArray,
    ObjArray,
    allocate,
    finish,
    per_town,
    preference,
    ranks,
    total_count,
    village_points,
    village_weights,
    weighted_order,
)
from layers.synthetic.geography import urban_density
from layers.synthetic.plan import LayerPlan
from layers.synthetic.sites import TownSites
from layers.synthetic.strategies import strategy
from layers.synthetic.world import World
from schemas.catalog import GeometryType, Layer


def road_weights(sites: TownSites, p: Mapping[str, Any]) -> FloatArray:
    """Return each road segment's share of a layer: length × grade weight × density preference."""
    seg = sites.segments
    if seg["len"].size == 0:
        return np.zeros(0)
    grades = p.get("grades")
    road_grade = np.array([r.grade for r in sites.roads])[seg["road"]]
    w = seg["len"].copy()
    if grades is not None:
        w *= np.array([float(grades.get(g, 0.0)) for g in road_grade])
    if p.get("lit_only"):
        w *= np.array([r.lit for r in sites.roads], dtype=float)[seg["road"]]
    result: FloatArray = w * preference(seg["density"], float(p.get("urban", 0.0)))
    return result


def positions_along(
    sites: TownSites, count: int, rng: np.random.Generator, p: Mapping[str, Any]
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """Return ``count`` positions evenly spread along weighted roads: x, y, bearing, road index."""
    seg = sites.segments
    w = road_weights(sites, p)
    if w.sum() <= 0:
        w = seg["len"].copy()
    m = int(count * 1.3) + 2
    cum = np.cumsum(w)
    u = (np.arange(m) + rng.uniform(0.1, 0.9, m)) * cum[-1] / m
    i = np.minimum(np.searchsorted(cum, u, side="right"), w.size - 1)
    frac = np.clip((u - (cum[i] - w[i])) / np.where(w[i] > 0, w[i], 1.0), 0.0, 1.0)
    dx, dy = seg["bx"][i] - seg["ax"][i], seg["by"][i] - seg["ay"][i]
    x, y = seg["ax"][i] + frac * dx, seg["ay"][i] + frac * dy
    return x, y, np.arctan2(dy, dx), seg["road"][i]


def _sides(p: Mapping[str, Any], rng: np.random.Generator, m: int) -> FloatArray:
    """Return +1 (left), -1 (right) or 0 (centre) per position."""
    side = p.get("side", "both")
    if side == "centre":
        return np.zeros(m)
    if side in ("left", "right"):
        return np.full(m, 1.0 if side == "left" else -1.0)
    return rng.choice(np.array([-1.0, 1.0]), m)


def rectangles(
    cx: FloatArray, cy: FloatArray, angle: FloatArray, length: FloatArray, width: FloatArray
) -> ObjArray:
    """Return rectangles ``length × width`` centred on points, long side at ``angle``."""
    ux, uy = np.cos(angle)[:, None], np.sin(angle)[:, None]
    su = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])[None, :] * length[:, None]
    sv = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])[None, :] * width[:, None]
    px = cx[:, None] + su * ux - sv * uy
    py = cy[:, None] + su * uy + sv * ux
    return np.asarray(shapely.polygons(np.stack([px, py], axis=2)), dtype=object)


def _spread_pick(valid: np.ndarray, count: int) -> IntArray:
    """Return ``count`` of the valid positions, evenly spread in their order."""
    idx = np.flatnonzero(valid)
    if idx.size <= count:
        return idx
    return idx[np.unique(np.linspace(0, idx.size - 1, count).round().astype(np.int64))]


def beside_roads(
    layer: Layer, sites: TownSites, count: int, rng: np.random.Generator, p: Mapping[str, Any]
) -> tuple[ObjArray, dict[str, Any]]:
    """Return ``count`` features beside the town's roads (points, or footprints along them)."""
    if sites.segments["len"].size == 0:
        return in_villages_points(layer, sites, count, rng, p)
    x, y, bearing, road = positions_along(sites, count, rng, p)
    m = x.size
    side = _sides(p, rng, m)
    lo, hi = p.get("offset", [1.0, 3.0])
    footprint = p.get("footprint")
    half = np.array([r.width_m / 2 for r in sites.roads])[road]
    extra = rng.uniform(float(lo), float(hi), m)
    if footprint is not None:
        length = rng.uniform(float(footprint[0][0]), float(footprint[0][1]), m)
        width = rng.uniform(float(footprint[1][0]), float(footprint[1][1]), m)
        extra = extra + width / 2
    nx, ny = -np.sin(bearing), np.cos(bearing)
    px, py = x + nx * side * (half + extra), y + ny * side * (half + extra)
    moved = ~sites.inside(px, py)
    px[moved], py[moved] = x[moved], y[moved]
    valid = sites.inside(px, py)
    if footprint is None:
        pick = _spread_pick(valid, count)
        geoms = shapely.points(px[pick], py[pick])
    else:
        polys = rectangles(px, py, bearing, length, width)
        valid &= np.asarray(shapely.contains(sites.town.geometry, polys), dtype=bool)
        valid &= _first_of_overlaps(polys)
        pick = _spread_pick(valid, count)
        geoms = polys[pick]
    names = np.array([r.name for r in sites.roads], dtype=object)
    return np.asarray(geoms, dtype=object), {"road_name": names[road[pick]]}


def _first_of_overlaps(polys: ObjArray) -> np.ndarray:
    """Return a mask keeping polygons that overlap no earlier polygon."""
    left, right = STRtree(polys).query(polys, predicate="intersects")
    keep = np.ones(polys.size, dtype=bool)
    keep[np.unique(np.maximum(left, right)[left != right])] = False
    return keep


def in_villages_points(
    layer: Layer, sites: TownSites, count: int, rng: np.random.Generator, p: Mapping[str, Any]
) -> tuple[ObjArray, dict[str, Any]]:
    """Return ``count`` density-weighted points inside the town's villages, off the roads."""
    weights = village_weights(sites, float(p.get("urban", 1.0)), bool(p.get("spread", False)))
    weights = weights * rng.uniform(0.9, 1.1, weights.size)  # break ties between equal villages
    counts = allocate(count, weights)
    x, y, _ = village_points(
        sites,
        counts,
        rng,
        urban=float(p.get("urban", 1.0)),
        avoid_roads=float(p.get("avoid_roads", 15.0)),
    )
    return clustered(layer, x, y, rng, p, sites), {}


def clustered(
    layer: Layer,
    x: FloatArray,
    y: FloatArray,
    rng: np.random.Generator,
    p: Mapping[str, Any],
    sites: TownSites,
) -> ObjArray:
    """Return points, or MultiPoints of a few points around each (MultiPoint layers)."""
    if layer.geometry is not GeometryType.multipoint:
        return np.asarray(shapely.points(x, y), dtype=object)
    lo, hi, radius = p.get("cluster", [2, 10, 15.0])
    out = np.empty(x.size, dtype=object)
    for i in range(x.size):
        k = int(rng.integers(int(lo), int(hi) + 1))
        ox = x[i] + rng.uniform(-radius, radius, k)
        oy = y[i] + rng.uniform(-radius, radius, k)
        inside = sites.inside(ox, oy)
        ox, oy = np.append(x[i], ox[inside]), np.append(y[i], oy[inside])
        out[i] = shapely.multipoints(np.column_stack([ox, oy]))
    return out


@strategy("along_roads")
def along_roads(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield features beside roads, evenly spaced in road length weighted by grade and density."""
    p = plan.params
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(road_weights(s, p).sum()), n):
        if count:
            rng = world.rng(layer.code, town.code)
            geoms, fixed = beside_roads(layer, sites, count, rng, p)
            yield finish(layer, plan, world, town, geoms, rng, fixed)


def crossing_weights(sites: TownSites, p: Mapping[str, Any]) -> FloatArray:
    """Return the weight of each road crossing (grades of both roads × density preference)."""
    cr = sites.crossings
    if cr["x"].size == 0:
        return np.zeros(0)
    grades = p.get("grades", {})
    gw = np.array([float(grades.get(r.grade, 0.0)) if grades else 1.0 for r in sites.roads])
    dens = preference(urban_density(cr["x"], cr["y"]), float(p.get("urban", 0.0)))
    result: FloatArray = gw[cr["road_i"]] * gw[cr["road_j"]] * dens
    return result


@strategy("at_intersections")
def at_intersections(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield a few features around each chosen road crossing (signals at junctions)."""
    p = plan.params
    lo, hi = p.get("per_site", [2, 4])
    radius = float(p.get("radius", 12.0))
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(crossing_weights(s, p).sum()), n):
        if not count:
            continue
        rng = world.rng(layer.code, town.code)
        w = crossing_weights(sites, p)
        if w.sum() <= 0:
            geoms, fixed = beside_roads(layer, sites, count, rng, p)
            yield finish(layer, plan, world, town, geoms, rng, fixed)
            continue
        cr = sites.crossings
        k = rng.integers(int(lo), int(hi) + 1, w.size)
        order = weighted_order(w, rng)
        chosen = order[: int(np.searchsorted(np.cumsum(k[order]), count)) + 1]
        site = np.repeat(chosen, k[chosen])[:count]
        j = ranks(k[chosen])[:count]
        angle = rng.uniform(0, 2 * np.pi, w.size)[site] + 2 * np.pi * j / k[site]
        x = cr["x"][site] + radius * np.cos(angle)
        y = cr["y"][site] + radius * np.sin(angle)
        out = ~sites.inside(x, y)
        x[out], y[out] = cr["x"][site][out], cr["y"][site][out]
        names = np.array([r.name for r in sites.roads], dtype=object)
        fixed = {
            "road_name": names[cr["road_i"][site]],
            "intersection": np.char.add(
                np.char.add(names[cr["road_i"][site]].astype(str), "与"),
                np.char.add(names[cr["road_j"][site]].astype(str), "交叉口"),
            ).astype(object),
        }
        yield finish(layer, plan, world, town, shapely.points(x, y), rng, fixed)


@strategy("in_villages")
def in_villages(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield density-weighted points inside villages, away from roads (``spread``: per village)."""
    p = plan.params
    urban, spread = float(p.get("urban", 1.0)), bool(p.get("spread", False))
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(
        world, lambda s: float(village_weights(s, urban, spread).sum()), n
    ):
        if count:
            rng = world.rng(layer.code, town.code)
            geoms, fixed = in_villages_points(layer, sites, count, rng, p)
            yield finish(layer, plan, world, town, geoms, rng, fixed)
