"""Areas and seats: non-overlapping polygons in villages, and facilities at the town seats.

``polygons`` params: ``sizes`` (``[lo, hi]`` m², log-uniform, or ``{by: kind, <kind>: [lo, hi]}``),
``shape`` (``blob`` or ``rect``), ``urban``, ``avoid_built`` (default true: keep clear of roads
and buildings while it fits), ``centres: buildings`` (centred on buildings chosen like
``at_addresses``) and ``contents`` (count the buildings and households a polygon covers).

``town_seats`` params: ``spread_km`` (default: the town's built-up radius), ``seat``
(attribute values of each town's first feature, at the seat), ``urban``, and the polygon params
for polygon layers (emergency shelters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from layers.synthetic.assets._common import (
    FloatArray,
    ObjArray,
    allocate,
    finish,
    per_town,
    place_polygons,
    shapes,
    total_count,
    village_points,
    village_weights,
)
from layers.synthetic.assets.buildings import building_weights, pick_buildings
from layers.synthetic.attributes import draw_enum
from layers.synthetic.plan import LayerPlan
from layers.synthetic.sites import TownSites
from layers.synthetic.strategies import strategy
from layers.synthetic.world import World
from schemas.catalog import Layer

Centres = Callable[[int], tuple[FloatArray, FloatArray]]


def _areas(
    layer: Layer, p: Mapping[str, Any], m: int, rng: np.random.Generator
) -> tuple[FloatArray, dict[str, np.ndarray]]:
    """Return m polygon areas (m²) and, when sized by an attribute, its drawn values."""
    sizes = p.get("sizes", [1000, 20000])
    if isinstance(sizes, Mapping):
        by = str(sizes["by"])
        values = draw_enum(layer.attribute(by), m, rng, p)
        ranges = np.array([sizes.get(v, sizes.get("default")) for v in values], dtype=float)
        lo, hi = ranges[:, 0], ranges[:, 1]
        extra = {by: values}
    else:
        lo, hi = np.full(m, float(sizes[0])), np.full(m, float(sizes[1]))
        extra = {}
    return np.exp(rng.uniform(np.log(lo), np.log(hi))), extra


def polygons_from(
    layer: Layer,
    sites: TownSites,
    count: int,
    rng: np.random.Generator,
    p: Mapping[str, Any],
    centres: Centres,
) -> tuple[ObjArray, dict[str, Any]]:
    """Return up to ``count`` non-overlapping polygons around centres drawn by ``centres``."""

    def candidates(m: int) -> tuple[ObjArray, dict[str, np.ndarray]]:
        x, y = centres(m)
        area, extra = _areas(layer, p, x.size, rng)
        return shapes(x, y, area, rng, kind=str(p.get("shape", "blob"))), extra

    polys, extra = place_polygons(
        sites, count, rng, candidates, avoid_built=bool(p.get("avoid_built", True))
    )
    fixed: dict[str, Any] = dict(extra)
    if p.get("contents") and polys.size:
        b = sites.buildings
        hit, which = sites.building_tree.query(polys, predicate="contains")
        fixed["buildings"] = np.bincount(hit, minlength=polys.size)
        residents = np.bincount(hit, weights=b["residents"][which], minlength=polys.size)
        fixed["households"] = np.rint(residents / 2.8).astype(np.int64)
    return polys, fixed


def village_centres(sites: TownSites, rng: np.random.Generator, urban: float) -> Centres:
    """Return a sampler of density-weighted points in the town's villages."""
    weights = village_weights(sites, urban, spread=False)

    def draw(m: int) -> tuple[FloatArray, FloatArray]:
        counts = allocate(m, weights * rng.uniform(0.5, 1.5, weights.size))
        x, y, _ = village_points(sites, counts, rng, urban=urban, avoid_roads=0.0)
        order = rng.permutation(x.size)
        return x[order], y[order]

    return draw


def building_centres(sites: TownSites, rng: np.random.Generator, p: Mapping[str, Any]) -> Centres:
    """Return a sampler of building centroids chosen like ``at_addresses``."""
    w = building_weights(sites, p)

    def draw(m: int) -> tuple[FloatArray, FloatArray]:
        rows = rng.permutation(pick_buildings(w, m, rng, unique=False))
        return sites.buildings["x"][rows], sites.buildings["y"][rows]

    return draw


@strategy("polygons")
def polygons(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield non-overlapping polygons sized by kind, placed by urban density in each town."""
    p = plan.params
    urban = float(p.get("urban", 1.0))
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(
        world, lambda s: float(village_weights(s, urban, False).sum()), n
    ):
        if not count:
            continue
        rng = world.rng(layer.code, town.code)
        centres = (
            building_centres(sites, rng, p)
            if p.get("centres") == "buildings"
            else village_centres(sites, rng, urban)
        )
        polys, fixed = polygons_from(layer, sites, count, rng, p, centres)
        if polys.size:
            yield finish(layer, plan, world, town, polys, rng, fixed)


def seat_points(
    sites: TownSites, count: int, rng: np.random.Generator, spread: float, avoid: float
) -> tuple[FloatArray, FloatArray]:
    """Return ``count`` points: the first near the town seat, the others spread around it."""
    ax, ay = sites.anchor
    xs: list[float] = []
    ys: list[float] = []
    for attempt in range(16):
        need = count - len(xs)
        if need <= 0:
            break
        sigma = spread * (1 + attempt // 4)
        m = max(8 * need, 64)
        if not xs:
            radius = min(300.0 * 2 ** (attempt // 2), 5 * spread)
            r, t = radius * np.sqrt(rng.random(m)), rng.uniform(0, 2 * np.pi, m)
            x, y = ax + r * np.cos(t), ay + r * np.sin(t)
        else:
            x, y = rng.normal(ax, sigma, m), rng.normal(ay, sigma, m)
        keep = sites.inside(x, y)
        if attempt < 12:
            keep &= ~sites.near_road(x, y, avoid)
        x, y = x[keep], y[keep]
        take = 1 if not xs else need
        xs.extend(x[:take].tolist())
        ys.extend(y[:take].tolist())
    if len(xs) < count:
        point = sites.town.geometry.representative_point()
        xs.extend([point.x] * (count - len(xs)))
        ys.extend([point.y] * (count - len(ys)))
    return np.array(xs), np.array(ys)


@strategy("town_seats")
def town_seats(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield facilities around each town seat, at least one per town, the first at the seat."""
    p = plan.params
    urban = float(p.get("urban", 1.0))
    n = total_count(plan, world.scale)
    polygonal = layer.geometry.single.value == "Polygon"
    for town, sites, count in per_town(
        world, lambda s: float(village_weights(s, urban, False).sum()), n, minimum=1
    ):
        rng = world.rng(layer.code, town.code)
        spread = float(p.get("spread_km", sites.sigma_m / 1000)) * 1000
        avoid = float(p.get("avoid_roads", 15.0))
        if polygonal:

            def centres(
                m: int,
                sites: TownSites = sites,
                spread: float = spread,
                rng: np.random.Generator = rng,
            ) -> tuple[FloatArray, FloatArray]:
                return seat_points(sites, m, rng, spread, 0.0)

            geoms, fixed = polygons_from(layer, sites, count, rng, p, centres)
        else:
            x, y = seat_points(sites, count, rng, spread, avoid)
            geoms, fixed = np.asarray(shapely.points(x, y), dtype=object), {}
        for name, value in p.get("seat", {}).items():
            attr = layer.attribute(name)
            if not attr.enum:
                raise ValueError(f"{layer.code}: params.seat only sets enum attributes")
            column = fixed.get(name)
            if column is None:
                column = draw_enum(attr, geoms.size, rng, p)
            column = np.asarray(column, dtype=object).copy()
            column[:1] = value
            fixed[name] = column
        if geoms.size:
            yield finish(layer, plan, world, town, geoms, rng, fixed)
