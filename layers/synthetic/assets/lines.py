"""Line layers: pieces of roads (guardrails, greenways), rail corridors, street names, routes.

* ``lines_along_roads``: road pieces of ``length`` m (log-uniform), starting at positions
  spread like ``along_roads`` (``grades``, ``urban``), moved ``offset`` m to a side unless
  ``side: centre``.
* ``corridors``: fixed lines from ``params.lines`` (lon/lat waypoints, smoothed), cut by town.
* ``streets``: one feature per road name, all its pieces together, in the town of its longest.
* ``evacuation_routes``: from a road near a shelter of ``params.shelters`` to the shelter.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
import shapely.ops

from layers.synthetic.assets._common import (
    FloatArray,
    allocate,
    finish,
    per_town,
    total_count,
)
from layers.synthetic.assets.points import road_weights
from layers.synthetic.geography import to_metric
from layers.synthetic.plan import LayerPlan, default_plan
from layers.synthetic.sites import place_name, town_sites
from layers.synthetic.strategies import STRATEGIES, strategy
from layers.synthetic.utilities import Serials
from layers.synthetic.world import World
from schemas.catalog import Layer

SUFFIX_KINDS = {
    "大道": "avenue",
    "大街": "street",
    "街": "street",
    "公路": "road",
    "路": "road",
    "村道": "other",
    "巷": "lane",
    "里": "alley",
}


@strategy("lines_along_roads")
def lines_along_roads(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield road pieces (guardrails, greenways), beside or on the centreline."""
    p = plan.params
    lo, hi = p.get("length", [100.0, 600.0])
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(road_weights(s, p).sum()), n):
        if not count or sites.segments["len"].size == 0:
            continue
        rng = world.rng(layer.code, town.code)
        seg = sites.segments
        w = road_weights(sites, p)
        w = w if w.sum() > 0 else seg["len"]
        cum = np.cumsum(w)
        u = (np.arange(count) + rng.uniform(0.1, 0.9, count)) * cum[-1] / count
        i = np.minimum(np.searchsorted(cum, u, side="right"), w.size - 1)
        along = seg["start"][i] + rng.uniform(0, 1, count) * seg["len"][i]
        length = np.exp(rng.uniform(np.log(lo), np.log(hi), count))
        side = {"centre": 0.0, "left": 1.0, "right": -1.0}.get(p.get("side", "both"))
        sides = rng.choice([-1.0, 1.0], count) if side is None else np.full(count, side)
        off_lo, off_hi = p.get("offset", [0.5, 1.5])
        lines = []
        for k in range(count):
            part = seg["part"][i[k]]
            end = min(along[k] + length[k], part.length)
            start = max(0.0, min(along[k], end - length[k]))
            piece = shapely.ops.substring(part, start, end)
            road = sites.roads[seg["road"][i[k]]]
            if sides[k] and piece.geom_type == "LineString":
                moved = shapely.offset_curve(
                    piece, sides[k] * (road.width_m / 2 + rng.uniform(off_lo, off_hi))
                )
                if moved.geom_type == "LineString" and sites.town.geometry.contains(moved):
                    piece = moved
            lines.append(piece)
        geoms = np.array(lines, dtype=object)
        good = (shapely.get_type_id(geoms) == 1) & (shapely.length(geoms) > 1.0)
        names = np.array([r.name for r in sites.roads], dtype=object)[seg["road"][i]]
        yield finish(layer, plan, world, town, geoms[good], rng, {"road_name": names[good]})


def chaikin(xy: FloatArray, rounds: int = 3) -> FloatArray:
    """Return a polyline smoothed by corner cutting (ends kept)."""
    for _ in range(rounds):
        a, b = xy[:-1], xy[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2], cut[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        xy = np.vstack([xy[:1], cut, xy[-1:]])
    return xy


@strategy("corridors")
def corridors(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the fixed lines of ``params.lines`` (railways, metro), one feature per town."""
    lines = []
    for spec in plan.params["lines"]:
        lon, lat = np.array(spec["path"], dtype=float).T
        x, y = to_metric(lon, lat)
        lines.append(shapely.LineString(chaikin(np.column_stack([x, y]))))
    for town in world.towns:
        geoms, rows = [], []
        for spec, line in zip(plan.params["lines"], lines, strict=True):
            parts = [
                g
                for g in shapely.get_parts(line.intersection(town.geometry))
                if g.geom_type == "LineString" and g.length > 50
            ]
            if parts:
                geoms.append(shapely.MultiLineString(parts))
                rows.append(spec)
        if geoms:
            fixed = {
                key: np.array([r.get(key) for r in rows], dtype=object)
                for key in ("name", "kind", "structure", "tracks", "operator")
            }
            fixed["tracks"] = np.array([int(r["tracks"]) for r in rows])
            rng = world.rng(layer.code, town.code)
            yield finish(layer, plan, world, town, geoms, rng, fixed)


@strategy("streets")
def streets(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield one record per road name: all its pieces, filed with the town of the longest."""
    pieces: dict[str, list[Any]] = {}
    for road in world.roads:
        pieces.setdefault(road.name, []).append(road)
    home: dict[str, list[str]] = {t.code: [] for t in world.towns}
    for name, roads in pieces.items():
        home[max(roads, key=lambda r: r.length_m).town_code].append(name)
    for town in world.towns:
        names = sorted(home[town.code])
        if not names:
            continue
        sites = town_sites(world, town)
        village_names = [place_name(v) for v in sites.villages]
        geoms, starts, ends, kinds = [], [], [], []
        for name in names:
            parts = [g for r in pieces[name] for g in r.geometry.geoms]
            geoms.append(shapely.MultiLineString(parts))
            longest = max(parts, key=lambda g: g.length)
            xy = shapely.get_coordinates(longest)[[0, -1]]
            v = sites.village_of(xy[:, 0], xy[:, 1])
            starts.append(village_names[v[0]])
            ends.append(village_names[v[1]])
            kinds.append(
                next(
                    (
                        k
                        for s, k in sorted(SUFFIX_KINDS.items(), key=lambda i: -len(i[0]))
                        if name.endswith(s)
                    ),
                    "other",
                )
            )
        fixed = {
            "name": np.array(names, dtype=object),
            "kind": np.array(kinds, dtype=object),
            "start_point": np.array(starts, dtype=object),
            "end_point": np.array(ends, dtype=object),
        }
        rng = world.rng(layer.code, town.code)
        yield finish(layer, plan, world, town, geoms, rng, fixed, in_town=False)


def shelters(world: World, code: str) -> dict[str, gpd.GeoDataFrame]:
    """Return the chunks of shelter layer ``code`` by town, made as the generator makes them.

    They are made on a shallow copy of the world with fresh serials: the codes are those the
    shelter layer itself gets in a run (its code prefixes are its own), and the run's counters
    stay untouched.
    """
    key = f"chunks:{code}"
    if key not in world.extras:
        shadow = copy.copy(world)
        shadow.serials = Serials()
        layer, plan = world.catalog.layer(code), default_plan().layers[code]
        chunks = STRATEGIES[plan.strategy](layer, plan, shadow)
        world.extras[key] = {c.attrs["town_code"]: c for c in chunks}
    result: dict[str, gpd.GeoDataFrame] = world.extras[key]
    return result


@strategy("evacuation_routes")
def evacuation_routes(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield routes along a road to a shelter of the same town, ending with the walk in."""
    p = plan.params
    lo, hi = p.get("length", [500.0, 3000.0])
    by_town = shelters(world, str(p["shelters"]))
    n = total_count(plan, world.scale)
    weights = [len(by_town.get(t.code, ())) for t in world.towns]
    for town, count in zip(world.towns, allocate(n, weights), strict=True):
        chunk = by_town.get(town.code)
        sites = town_sites(world, town)
        if not count or chunk is None or not len(chunk) or not sites.roads:
            continue
        rng = world.rng(layer.code, town.code)
        target = rng.integers(0, len(chunk), count)
        geoms, codes = [], []
        for t in target:
            shelter = chunk.geometry.iloc[t]
            centre = shelter.representative_point()
            road = sites.roads[sites.nearest_road(np.array([centre.x]), np.array([centre.y]))[0]]
            part = min(road.geometry.geoms, key=lambda g: g.distance(centre))
            at = part.project(centre)
            length = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            start, end = (
                (max(0.0, at - length), at)
                if at > part.length / 2
                else (min(part.length, at + length), at)
            )
            piece = shapely.ops.substring(part, start, end)
            if piece.geom_type != "LineString" or piece.length < 1.0:
                continue
            walk = shapely.LineString(shapely.ops.nearest_points(part.interpolate(end), shelter))
            parts = [piece]
            if walk.length > 1.0 and town.geometry.contains(walk):
                parts.append(walk)
            geoms.append(shapely.MultiLineString(parts))
            codes.append(chunk["code"].iloc[t])
        if geoms:
            yield finish(
                layer,
                plan,
                world,
                town,
                geoms,
                rng,
                {"shelter_code": np.array(codes, dtype=object)},
            )
