"""Strategies on buildings: features at addresses, unit entrances, building parts, structures.

``at_addresses`` params: ``weight`` (``uniform``, ``residents`` or ``floor_area``), ``uses``
(``{building use: weight}``), ``urban``, ``min_floors``/``max_floors``, ``village_kind``
(``village`` or ``community``), ``built_before`` (older buildings only), ``unique`` (one feature
per building, for layers keyed by the building code), ``at`` (``inside`` or ``front``: the shop
front behind the house number), ``cluster`` (MultiPoint layers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from layers.synthetic.assets._common import (
    FloatArray,
    IntArray,
    ObjArray,
    finish,
    per_town,
    preference,
    ranks,
    total_count,
)
from layers.synthetic.assets.points import clustered, rectangles
from layers.synthetic.naming import zero_pad
from layers.synthetic.plan import LayerPlan
from layers.synthetic.sites import TownSites
from layers.synthetic.strategies import strategy
from layers.synthetic.world import World
from schemas.catalog import Layer


def building_weights(sites: TownSites, p: Mapping[str, Any]) -> FloatArray:
    """Return each building's weight for a layer placed at addresses."""
    b = sites.buildings
    n = b["x"].size
    kind = p.get("weight", "uniform")
    if kind == "residents":
        w = b["residents"].astype(np.float64)
    elif kind == "floor_area":
        w = b["area"] * b["floors"]
    else:
        w = np.ones(n)
    uses = p.get("uses")
    if uses is not None:
        w = w * pd.Series(b["use"]).map(lambda u: float(uses.get(u, 0.0))).to_numpy()
    w = w * preference(b["density"], float(p.get("urban", 0.0)))
    if "min_floors" in p:
        w = np.where(b["floors"] >= int(p["min_floors"]), w, 0.0)
    if "max_floors" in p:
        w = np.where(b["floors"] <= int(p["max_floors"]), w, 0.0)
    if "village_kind" in p:
        w = np.where(b["village_kind"] == p["village_kind"], w, 0.0)
    if "built_before" in p:
        w = np.where(b["year"] < int(p["built_before"]), w, 0.0)
    result: FloatArray = w
    return result


def pick_buildings(w: FloatArray, count: int, rng: np.random.Generator, unique: bool) -> IntArray:
    """Return ``count`` building rows drawn by weight (without replacement when ``unique``)."""
    positive = int((w > 0).sum())
    if positive == 0:
        return np.zeros(0, dtype=np.int64)
    if unique:
        count = min(count, positive)
    rows: IntArray = rng.choice(w.size, count, replace=not unique, p=w / w.sum())
    return np.sort(rows)


def address_columns(sites: TownSites, rows: IntArray) -> dict[str, ObjArray]:
    """Return building code, address code, address text and road name of buildings ``rows``."""
    hn = sites.buildings["hn"][rows]
    found = sites.fetch("house_numbers", hn, ["address_code", "address", "road_name"])
    return {
        "building_code": sites.fetch("buildings", rows, ["code"])["code"].astype(object),
        "address_code": found["address_code"].astype(object),
        "address": found["address"].astype(object),
        "road_name": found["road_name"].astype(object),
    }


def front_points(sites: TownSites, rows: IntArray, inset: float) -> tuple[FloatArray, FloatArray]:
    """Return points ``inset`` m behind each building's house number, towards the building."""
    b, hn = sites.buildings, sites.house_numbers
    h = b["hn"][rows]
    hx, hy = hn["x"][h], hn["y"][h]
    dx, dy = b["x"][rows] - hx, b["y"][rows] - hy
    norm = np.maximum(np.hypot(dx, dy), 1e-9)
    return hx + dx / norm * inset, hy + dy / norm * inset


@strategy("at_addresses")
def at_addresses(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield features at buildings (inside them or at their street front), with their addresses."""
    p = plan.params
    unique = bool(p.get("unique", False))
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(building_weights(s, p).sum()), n):
        rng = world.rng(layer.code, town.code)
        rows = pick_buildings(building_weights(sites, p), count, rng, unique)
        if rows.size == 0:
            continue
        if p.get("at", "inside") == "front":
            x, y = front_points(sites, rows, 4.5)
        else:
            x, y = sites.buildings["x"][rows], sites.buildings["y"][rows]
        geoms = clustered(layer, x, y, rng, p, sites)
        yield finish(layer, plan, world, town, geoms, rng, address_columns(sites, rows))


@strategy("unit_entrances")
def unit_entrances(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the stairwell doors of apartment buildings, along each building's front."""
    p = plan.params
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(building_weights(s, p).sum()), n):
        rng = world.rng(layer.code, town.code)
        w = building_weights(sites, p)
        units = np.clip(np.rint(np.sqrt(sites.buildings["area"]) / 9), 1, 6).astype(np.int64)
        order = rng.permutation(np.flatnonzero(w > 0))
        take = order[: int(np.searchsorted(np.cumsum(units[order]), count)) + 1]
        rows = np.sort(take)
        if rows.size == 0:
            continue
        k = units[rows]
        row = np.repeat(rows, k)
        index = ranks(k) + 1
        share = (index - 0.5) / k.repeat(k) - 0.5
        fx, fy = front_points(sites, row, 3.5)
        b = sites.buildings
        dx, dy = b["x"][row] - fx, b["y"][row] - fy
        norm = np.maximum(np.hypot(dx, dy), 1e-9)
        span = np.sqrt(b["area"][row]) * 0.8
        x, y = fx - dy / norm * share * span, fy + dx / norm * share * span
        cols = address_columns(sites, row)
        floors = b["floors"][row]
        fixed = {
            "code": np.char.add(cols["building_code"].astype(str), zero_pad(index, 3)),
            "building_code": cols["building_code"],
            "address_code": cols["address_code"],
            "unit_label": np.char.add(index.astype(str), "单元").astype(object),
            "has_elevator": np.where(
                floors >= 7, rng.random(row.size) < 0.92, rng.random(row.size) < 0.05
            ),
        }
        yield finish(layer, plan, world, town, shapely.points(x, y), rng, fixed)


@strategy("building_parts")
def building_parts(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield podium and tower parts of tall buildings (the footprint cut across its depth)."""
    p = plan.params
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(building_weights(s, p).sum()), n):
        rng = world.rng(layer.code, town.code)
        rows = pick_buildings(building_weights(sites, p), (count + 1) // 2, rng, unique=True)
        if rows.size == 0:
            continue
        b = sites.buildings
        found = sites.fetch("buildings", rows, ["code", "geometry"])
        fx, fy = front_points(sites, rows, 0.0)
        share = rng.uniform(0.35, 0.55, rows.size)
        podium, tower = [], []
        for i, shape in enumerate(found["geometry"]):
            cut = _cut(shape, fx[i], fy[i], b["x"][rows[i]], b["y"][rows[i]], share[i])
            podium.append(cut[0])
            tower.append(cut[1])
        ok = np.array([a is not None for a in podium])
        rows, codes = rows[ok], found["code"][ok]
        geoms = np.concatenate(
            [np.array(podium, dtype=object)[ok], np.array(tower, dtype=object)[ok]]
        )
        floors = b["floors"][rows]
        low = np.minimum(floors, rng.integers(2, 6, rows.size))
        part_floors = np.concatenate([low, floors])
        fixed = {
            "code": np.concatenate(
                [np.char.add(codes.astype(str), "01"), np.char.add(codes.astype(str), "02")]
            ).astype(object),
            "building_code": np.concatenate([codes, codes]).astype(object),
            "kind": np.array(["podium"] * rows.size + ["tower"] * rows.size, dtype=object),
            "floors": part_floors,
            "height_m": np.round(part_floors * rng.uniform(3.0, 3.6, 2 * rows.size), 1),
            "floor_area_m2": np.round(shapely.area(geoms) * part_floors, 1),
        }
        keep = np.arange(min(count, geoms.size))
        yield finish(
            layer, plan, world, town, geoms[keep], rng, {k: v[keep] for k, v in fixed.items()}
        )


def _cut(shape: Any, fx: float, fy: float, cx: float, cy: float, share: float) -> tuple[Any, Any]:
    """Return the front and back pieces of a footprint, cut across its depth at ``share``."""
    dx, dy = cx - fx, cy - fy
    depth = 2 * np.hypot(dx, dy)
    if depth < 1e-6:
        return None, None
    ux, uy = dx / np.hypot(dx, dy), dy / np.hypot(dx, dy)
    big = 200.0
    mx, my = fx + ux * depth * share, fy + uy * depth * share
    front = shapely.Polygon(
        [
            (mx - uy * big, my + ux * big),
            (mx + uy * big, my - ux * big),
            (mx + uy * big - ux * big, my - ux * big - uy * big),
            (mx - uy * big - ux * big, my + ux * big - uy * big),
        ]
    )
    geom = shape.geoms[0] if shape.geom_type == "MultiPolygon" else shape
    a, b = geom.intersection(front), geom.difference(front)
    if a.geom_type != "Polygon" or b.geom_type != "Polygon" or a.area < 4 or b.area < 4:
        return None, None
    return a, b


@strategy("near_buildings")
def near_buildings(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield small structures behind buildings, clear of buildings, roads and each other."""
    p = plan.params
    n = total_count(plan, world.scale)
    lo, hi = p.get("side_m", [3.0, 12.0])
    for town, sites, count in per_town(world, lambda s: float(building_weights(s, p).sum()), n):
        rng = world.rng(layer.code, town.code)
        rows = pick_buildings(building_weights(sites, p), int(count * 1.6) + 4, rng, unique=True)
        if rows.size == 0:
            continue
        b = sites.buildings
        fx, fy = front_points(sites, rows, 0.0)
        dx, dy = b["x"][rows] - fx, b["y"][rows] - fy
        half_depth = np.hypot(dx, dy)
        norm = np.maximum(half_depth, 1e-9)
        side = rng.uniform(lo, hi, rows.size)
        gap = half_depth + 2.0 + side / 2
        cx, cy = b["x"][rows] + dx / norm * gap, b["y"][rows] + dy / norm * gap
        squares = rectangles(
            cx, cy, np.arctan2(dy, dx), side, side * rng.uniform(0.6, 1.0, rows.size)
        )
        footprints = sites.fetch("buildings", np.arange(b["x"].size), ["geometry"])["geometry"]
        ok = np.asarray(shapely.contains(sites.town.geometry, squares), dtype=bool)
        hit, _ = STRtree(footprints).query(squares, predicate="intersects")
        ok[hit] = False
        if sites.roads:
            near, _ = sites.road_tree.query(squares, predicate="dwithin", distance=3.0)
            ok[near] = False
        left, right = STRtree(squares).query(squares, predicate="intersects")
        ok[np.unique(np.maximum(left, right)[left != right])] = False
        keep = np.flatnonzero(ok)[:count]
        codes = sites.fetch("buildings", rows[keep], ["code"])["code"].astype(object)
        yield finish(layer, plan, world, town, squares[keep], rng, {"building_code": codes})
