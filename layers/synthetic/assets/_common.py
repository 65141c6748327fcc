"""Shared pieces of the asset strategies: counts per town, sampling, shapes, finishing a chunk.

Counts: a layer gets ``max(1, round(target × scale))`` features (``scales: false``: the target),
split over towns by largest remainder of each strategy's weights, so totals are exact and
deterministic; layers placed at town seats get at least one per town.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from shapely import STRtree

from layers.synthetic.admin import Division
from layers.synthetic.attributes import synthesize
from layers.synthetic.geography import METRIC_EPSG, urban_density
from layers.synthetic.plan import LayerPlan
from layers.synthetic.sites import TownSites, town_sites
from layers.synthetic.world import World
from schemas.catalog import Layer

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ObjArray = NDArray[np.object_]
#: Candidate polygons drawn per missing polygon, and rounds before giving up.
POLYGON_ROUNDS = 8

_TYPE_ID = {
    "Point": shapely.GeometryType.POINT,
    "LineString": shapely.GeometryType.LINESTRING,
    "Polygon": shapely.GeometryType.POLYGON,
}
_PROMOTE: dict[str, Callable[..., Any]] = {
    "Point": shapely.multipoints,
    "LineString": shapely.multilinestrings,
    "Polygon": shapely.multipolygons,
}


def total_count(plan: LayerPlan, scale: float) -> int:
    """Return the number of features of a layer at ``scale`` (at least 1)."""
    return max(1, int(round(plan.expected(scale))))


def allocate(n: int, weights: Any, minimum: int = 0) -> IntArray:
    """Split ``n`` over weights by largest remainder (each gets ``minimum`` first)."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    base = np.full(w.size, minimum, dtype=np.int64)
    rest = max(n - minimum * w.size, 0)
    if w.sum() <= 0:
        w = np.ones(w.size)
    quota = rest * w / w.sum()
    counts = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: rest - counts.sum()]] += 1
    result: IntArray = base + counts
    return result


def preference(density: FloatArray, urban: float) -> FloatArray:
    """Return weights from urban density: ``d**urban``, or ``(1-d)**-urban`` when negative."""
    d = np.clip(np.asarray(density, dtype=np.float64), 1e-3, 1 - 1e-3)
    result: FloatArray = d**urban if urban >= 0 else (1.0 - d) ** (-urban)
    return result


def ranks(counts: IntArray) -> IntArray:
    """Return 0, 1, … k-1 for each group of ``counts`` (``[2, 3]`` → ``[0, 1, 0, 1, 2]``)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    result: IntArray = np.arange(int(counts.sum()), dtype=np.int64) - starts
    return result


def weighted_order(weights: FloatArray, rng: np.random.Generator) -> IntArray:
    """Return a random order of items, heavier first on average (zero weights last)."""
    w = np.asarray(weights, dtype=np.float64)
    keys = np.where(w > 0, np.log(rng.random(w.size)) / np.maximum(w, 1e-300), -np.inf)
    result: IntArray = np.argsort(-keys, kind="stable")
    return result


def per_town(
    world: World, weight: Callable[[TownSites], float], n: int, minimum: int = 0
) -> Iterator[tuple[Division, TownSites, int]]:
    """Yield (town, sites, count) with ``n`` split over towns by ``weight``."""
    sites = [town_sites(world, t) for t in world.towns]
    counts = allocate(n, [weight(s) for s in sites], minimum)
    for town, site, count in zip(world.towns, sites, counts, strict=True):
        yield town, site, int(count)


def wrap(layer: Layer, geoms: Any) -> ObjArray:
    """Return geometries as the layer's type (singles promoted to Multi* one by one)."""
    arr = np.asarray(geoms, dtype=object)
    if not layer.geometry.is_multi or arr.size == 0:
        return arr
    single = layer.geometry.single.value
    singles = shapely.get_type_id(arr) == _TYPE_ID[single]
    out = arr.copy()
    if singles.any():
        out[singles] = _PROMOTE[single](arr[singles][:, None].tolist())
    return out


def finish(
    layer: Layer,
    plan: LayerPlan,
    world: World,
    town: Division,
    geoms: Any,
    rng: np.random.Generator,
    fixed: dict[str, Any] | None = None,
    *,
    in_town: bool = True,
) -> gpd.GeoDataFrame:
    """Return a chunk: geometries as declared plus every attribute synthesised."""
    shapes = wrap(layer, geoms)
    columns = synthesize(
        layer,
        len(shapes),
        rng,
        world=world,
        town=town,
        points=shapes,
        params=plan.params,
        fixed=fixed,
    )
    # Not strategies.frame: this module must not import strategies (which imports the assets).
    chunk = gpd.GeoDataFrame(dict(columns), geometry=shapes, crs=f"EPSG:{METRIC_EPSG}")
    if in_town:
        chunk.attrs["town_code"] = town.code
    return chunk


def village_weights(sites: TownSites, urban: float, spread: bool) -> FloatArray:
    """Return how many features each village should draw, relatively."""
    area = np.array([v.geometry.area for v in sites.villages]) / 1e6
    base = np.ones(area.size) if spread else area
    result: FloatArray = base * preference(sites.village_density, urban)
    return result


def village_points(
    sites: TownSites,
    counts: IntArray,
    rng: np.random.Generator,
    *,
    urban: float = 1.0,
    avoid_roads: float = 15.0,
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Return ``counts[v]`` density-weighted points in each village v, away from roads."""
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    owner: list[IntArray] = []
    for v, count in enumerate(counts):
        if count <= 0:
            continue
        x, y = _sample_in(sites, sites.villages[v].geometry, int(count), rng, urban, avoid_roads)
        xs.append(x)
        ys.append(y)
        owner.append(np.full(x.size, v, dtype=np.int64))
    if not xs:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(owner)


def _sample_in(
    sites: TownSites,
    area: Any,
    count: int,
    rng: np.random.Generator,
    urban: float,
    avoid_roads: float,
) -> tuple[FloatArray, FloatArray]:
    """Return ``count`` points inside ``area`` and the town, by rejection (relaxed if needed)."""
    x0, y0, x1, y1 = area.bounds
    got_x: list[float] = []
    got_y: list[float] = []
    for attempt in range(12):
        strict = attempt < 8
        m = max(8 * count, 32)
        x, y = rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)
        keep = shapely.contains_xy(area, x, y) & sites.inside(x, y)
        x, y = x[keep], y[keep]
        if strict and x.size:
            w = preference(urban_density(x, y), urban)
            keep = rng.random(x.size) < w / w.max()
            keep &= ~sites.near_road(x, y, avoid_roads)
            x, y = x[keep], y[keep]
        got_x.extend(x.tolist())
        got_y.extend(y.tolist())
        if len(got_x) >= count:
            break
    if len(got_x) < count:  # a sliver: fall back to points on its surface
        point = area.intersection(sites.town.geometry).representative_point()
        got_x.extend([point.x] * (count - len(got_x)))
        got_y.extend([point.y] * (count - len(got_y)))
    return np.array(got_x[:count]), np.array(got_y[:count])


def shapes(
    cx: FloatArray,
    cy: FloatArray,
    area: FloatArray,
    rng: np.random.Generator,
    kind: str = "blob",
    angle: FloatArray | None = None,
) -> ObjArray:
    """Return polygons of the given areas centred on points: irregular blobs or rectangles."""
    m = cx.size
    if m == 0:
        return np.zeros(0, dtype=object)
    theta = rng.uniform(0, np.pi, m) if angle is None else angle
    aspect = rng.uniform(1.0, 2.0, m)
    if kind == "rect":
        u = np.array([-1, 1, 1, -1, -1], dtype=float)[None, :] * aspect[:, None]
        v = np.array([-1, -1, 1, 1, -1], dtype=float)[None, :] * np.ones((m, 1))
    else:
        k = 9
        ang = np.sort(rng.uniform(0, 2 * np.pi, (m, k)), axis=1)
        ang = 0.6 * ang + 0.4 * np.linspace(0, 2 * np.pi, k, endpoint=False)[None, :]
        radius = rng.uniform(0.75, 1.0, (m, k))
        u = np.cos(ang) * radius * aspect[:, None]
        v = np.sin(ang) * radius
        u, v = np.hstack([u, u[:, :1]]), np.hstack([v, v[:, :1]])
    unit = shapely.polygons(np.stack([u, v], axis=2))
    factor = np.sqrt(area / shapely.area(unit))[:, None]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    px = cx[:, None] + factor * (u * cos - v * sin)
    py = cy[:, None] + factor * (u * sin + v * cos)
    return np.asarray(shapely.polygons(np.stack([px, py], axis=2)), dtype=object)


def place_polygons(
    sites: TownSites,
    n: int,
    rng: np.random.Generator,
    candidates: Callable[[int], tuple[ObjArray, dict[str, np.ndarray]]],
    *,
    avoid_built: bool,
) -> tuple[ObjArray, dict[str, np.ndarray]]:
    """Return ``n`` polygons (fewer if they do not fit) inside the town, none overlapping.

    ``candidates(m)`` draws m polygons and their per-polygon extras (e.g. the kind that sized
    them). With ``avoid_built``, early rounds only keep polygons crossing no road and covering no
    building; later rounds accept any that fit.
    """
    kept: list[Any] = []
    extras: dict[str, list[Any]] = {}
    for attempt in range(POLYGON_ROUNDS):
        missing = n - len(kept)
        if missing <= 0:
            break
        polys, extra = candidates(max(2 * missing, 8))
        ok = np.asarray(shapely.contains(sites.town.geometry, polys), dtype=bool)
        ok &= shapely.is_valid(polys)
        if avoid_built and attempt < POLYGON_ROUNDS // 2:
            ok &= ~_crosses_built(sites, polys)
        if kept:
            hit, _ = STRtree(np.array(kept, dtype=object)).query(polys, predicate="intersects")
            ok[hit] = False
        idx = np.flatnonzero(ok)
        left, right = STRtree(polys[idx]).query(polys[idx], predicate="intersects")
        clash: dict[int, list[int]] = {}
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if a != b:
                clash.setdefault(a, []).append(b)
        taken: set[int] = set()
        for j in range(idx.size):
            if len(kept) >= n:
                break
            if any(b in taken for b in clash.get(j, [])):
                continue
            taken.add(j)
            kept.append(polys[idx[j]])
            for name, values in extra.items():
                extras.setdefault(name, []).append(values[idx[j]])
    return (np.array(kept, dtype=object), {k: np.array(v, dtype=object) for k, v in extras.items()})


def _crosses_built(sites: TownSites, polys: ObjArray) -> NDArray[np.bool_]:
    """Return whether polygons cross a road or come near a building centroid."""
    bad = np.zeros(polys.size, dtype=bool)
    if sites.roads:
        hit, _ = sites.road_tree.query(polys, predicate="intersects")
        bad[hit] = True
    return bad | sites.near_building(polys, 8.0)
