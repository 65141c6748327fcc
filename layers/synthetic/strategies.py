"""Placement strategies: how the features of a layer are made, chunk by chunk (per town).

A strategy takes the layer declaration, its plan entry and the run's :class:`World`
and yields GeoDataFrames in EPSG:4547 whose columns are the layer's attribute names.
Strategies named in ``plan.yaml`` are looked up in :data:`STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from layers.synthetic.geography import METRIC_EPSG
from layers.synthetic.plan import LayerPlan
from layers.synthetic.utilities import manhole_cover_kinds, street_lamps
from layers.synthetic.world import World
from schemas.catalog import Layer

Strategy = Callable[[Layer, LayerPlan, World], Iterator[gpd.GeoDataFrame]]
STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Register a strategy under ``name``."""

    def register(func: Strategy) -> Strategy:
        STRATEGIES[name] = func
        return func

    return register


def frame(columns: dict[str, object], geometry: object) -> gpd.GeoDataFrame:
    """Return a GeoDataFrame in the generator's metric CRS."""
    return gpd.GeoDataFrame(columns, geometry=geometry, crs=f"EPSG:{METRIC_EPSG}")


def _multi(geoms: list[Any]) -> np.ndarray:
    return np.array(
        [shapely.multipolygons([g]) if g.geom_type == "Polygon" else g for g in geoms], dtype=object
    )


@strategy("district")
def district(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the district outline."""
    d = world.admin.district
    yield frame(
        {"code": [d.code], "name": [d.name], "area_km2": [round(d.area_km2, 3)]},
        _multi([d.geometry]),
    )


@strategy("towns")
def towns(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the towns and subdistricts."""
    rows = world.towns
    yield frame(
        {
            "code": [t.code for t in rows],
            "name": [t.name for t in rows],
            "kind": [t.kind for t in rows],
            "parent_code": [t.parent_code for t in rows],
            "area_km2": [round(t.area_km2, 3) for t in rows],
        },
        _multi([t.geometry for t in rows]),
    )


@strategy("villages")
def villages(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the villages and communities, town by town."""
    for town in world.towns:
        rows = world.villages_of(town.code)
        yield frame(
            {
                "code": [v.code for v in rows],
                "name": [v.name for v in rows],
                "kind": [v.kind for v in rows],
                "town_code": [v.parent_code for v in rows],
                "area_km2": [round(v.area_km2, 4) for v in rows],
            },
            _multi([v.geometry for v in rows]),
        )


@strategy("grid_cells")
def grid_cells(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the basic grid cells, town by town."""
    names = {v.code: v.name for v in world.admin.villages}
    for town in world.towns:
        cells = [c for c in world.grid if c.town_code == town.code]
        rng = world.rng(layer.code, town.code)
        n = len(cells)
        yield frame(
            {
                "code": [c.code for c in cells],
                "name": [f"{names[c.village_code]}第{c.serial}网格" for c in cells],
                "village_code": [c.village_code for c in cells],
                "grid_chief": list(_chiefs(rng, n)),
                "worker_count": rng.integers(1, 6, n),
                "population": _residents_per_cell(world, town, cells),
                "area_km2": [round(c.geometry.area / 1e6, 4) for c in cells],
            },
            _multi([c.geometry for c in cells]),
        )


def _residents_per_cell(world: World, town: Any, cells: list[Any]) -> np.ndarray:
    """Return the residents living in each cell (from the whole population register)."""
    totals: dict[str, int] | None = world.extras.get("cell_residents")
    if totals is None:
        grid = world.grid
        tree = shapely.STRtree([c.geometry for c in grid])
        sums = np.zeros(len(grid), dtype=np.int64)
        for each in world.towns:
            for people in world.spilled("population", each, ["residents", "geometry"]):
                if people.empty:
                    continue
                point_i, cell_i = tree.query(people.geometry.to_numpy(), predicate="intersects")
                first = np.full(len(people), -1)
                first[point_i[::-1]] = cell_i[::-1]
                placed = first >= 0
                np.add.at(sums, first[placed], people["residents"].to_numpy()[placed])
        totals = {c.code: int(v) for c, v in zip(grid, sums, strict=True)}
        world.extras["cell_residents"] = totals
    return np.array([totals.get(c.code, 0) for c in cells], dtype=np.int64)


def _chiefs(rng: np.random.Generator, n: int) -> np.ndarray:
    from layers.synthetic.naming import person_names

    return person_names(rng, n)


@strategy("roads")
def roads(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the road centrelines, town by town."""
    for town in world.towns:
        rows = world.roads_of(town.code)
        yield frame(
            {
                "code": [r.code for r in rows],
                "name": [r.name for r in rows],
                "grade": [r.grade for r in rows],
                "lanes": [r.lanes for r in rows],
                "width_m": [r.width_m for r in rows],
                "surface": [r.surface for r in rows],
                "one_way": [r.one_way for r in rows],
                "length_m": [round(r.length_m, 1) for r in rows],
            },
            np.array([r.geometry for r in rows], dtype=object),
        )


@strategy("house_numbers")
def house_numbers(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the standard address points, town by town."""
    for town in world.towns:
        yield from world.spilled("house_numbers", town)


@strategy("buildings")
def buildings(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the buildings, town by town."""
    for town in world.towns:
        yield from world.spilled("buildings", town)


@strategy("population")
def population(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the real-population records (one per inhabited building), town by town."""
    for town in world.towns:
        yield from world.spilled("population", town)


@strategy("street_lamps")
def lamps(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield street lamps along lit roads, town by town."""
    for town in world.towns:
        yield street_lamps(
            world.roads_of(town.code),
            scale=world.scale,
            serials=world.serials,
            rng=world.rng(layer.code, town.code),
        )


@strategy("manhole_covers")
def covers(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield manhole covers of every kind along roads, town by town."""
    for town in world.towns:
        yield from manhole_cover_kinds(
            world.roads_of(town.code),
            scale=world.scale,
            serials=world.serials,
            rng=world.rng(layer.code, town.code),
        )


# Importing these registers their strategies (they import this module's registry).
from layers.synthetic import assets, water  # noqa: E402,F401
