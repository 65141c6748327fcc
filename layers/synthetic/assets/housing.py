"""Real housing, rental housing, households and per-building statistics, from the buildings.

Housing units are drawn once per town from a shared generator (``housing_units``), so the
rental layer is exactly the rented units of the real-housing layer, with the same codes
(building code + 4-digit unit serial). Households split each building's residents of the
population layer, and the building statistics add them up again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from layers.synthetic.assets._common import (
    IntArray,
    ObjArray,
    allocate,
    finish,
    ranks,
    total_count,
)
from layers.synthetic.assets.buildings import address_columns
from layers.synthetic.blocks import blocks
from layers.synthetic.naming import zero_pad
from layers.synthetic.plan import LayerPlan, default_plan
from layers.synthetic.sites import TownSites, town_sites
from layers.synthetic.strategies import strategy
from layers.synthetic.world import World
from schemas.catalog import Layer

#: What a unit in a building of each use is (ground floor, upper floors).
UNIT_USE = {
    "residential": ("residential", "residential"),
    "mixed": ("shop", "residential"),
    "commercial": ("shop", "office"),
    "office": ("office", "office"),
    "industrial": ("factory", "dormitory"),
    "warehouse": ("warehouse", "warehouse"),
    "public": ("other", "other"),
}
MAX_UNITS = 9999
#: Usual floor area of one unit of each use (m²); a unit never exceeds its share of the building.
UNIT_AREA_M2 = {
    "residential": (45.0, 140.0),
    "shop": (15.0, 150.0),
    "office": (40.0, 400.0),
    "factory": (200.0, 3000.0),
    "dormitory": (20.0, 60.0),
    "warehouse": (200.0, 3000.0),
    "other": (30.0, 300.0),
}


def housing_units(
    world: World, town_index: int, params: Mapping[str, Any], target: int
) -> dict[str, Any]:
    """Return one town's housing units: building row, unit serial, floor, room, use, occupancy."""
    town = world.towns[town_index]
    sites = town_sites(world, town)
    b = sites.buildings
    weights = _floor_areas(world)
    count = int(allocate(target, weights)[town_index])
    rng = world.rng("housing_units", town.code)
    floor_area = b["area"] * b["floors"]
    nb = floor_area.size
    if nb == 0 or count == 0:
        units = np.zeros(nb, dtype=np.int64)
    elif count >= nb:
        units = 1 + rng.multinomial(count - nb, floor_area / floor_area.sum())
    else:
        units = np.zeros(nb, dtype=np.int64)
        units[rng.choice(nb, count, replace=False, p=floor_area / floor_area.sum())] = 1
    units = np.minimum(units, MAX_UNITS)
    row = np.repeat(np.arange(nb), units)
    serial = pd.Series(row).groupby(row).cumcount().to_numpy() + 1
    floors = b["floors"][row]
    floor = 1 + (serial - 1) * floors // np.maximum(units[row], 1)
    rank = pd.Series(row).groupby([row, floor]).cumcount().to_numpy() + 1
    # per building use, then per unit by index: no Python object per unit (millions at scale 10)
    uses, of_building = np.unique(b["use"], return_inverse=True)
    pairs = [UNIT_USE.get(str(u), ("other", "other")) for u in uses]
    ground = np.array([g for g, _ in pairs] + ["other"], dtype=object)
    upper = np.array([u for _, u in pairs] + ["other"], dtype=object)
    unit_kind = of_building.reshape(-1)[row] if row.size else np.zeros(0, dtype=np.int64)
    use = np.where(floor == 1, ground[unit_kind], upper[unit_kind])
    occupancy = np.empty(row.size, dtype=object)
    table = params.get("occupancy", {})
    for value in dict.fromkeys(use.tolist()):
        idx = np.flatnonzero(use == value)
        shares = table.get(value, table.get("default", {"other": 1.0}))
        p = np.array(list(shares.values()), dtype=float)
        occupancy[idx] = np.array(list(shares), dtype=object)[
            rng.choice(p.size, idx.size, p=p / p.sum())
        ]
    share = floor_area[row] / np.maximum(units[row], 1)
    bounds = np.array([UNIT_AREA_M2.get(u, (30.0, 300.0)) for u in UNIT_AREA_M2] + [(30.0, 300.0)])
    kind = pd.Series(use).map({u: i for i, u in enumerate(UNIT_AREA_M2)}).fillna(len(UNIT_AREA_M2))
    lo, hi = np.log(bounds[kind.to_numpy(dtype=np.int64)]).T
    typical = np.exp(rng.uniform(lo, hi)) if row.size else np.zeros(0)
    return {
        "row": row,
        "serial": serial,
        "floor": floor,
        "rank": rank,
        "use": use,
        "occupancy": occupancy,
        "area": np.round(np.minimum(share, typical), 1),
    }


def _floor_areas(world: World) -> list[float]:
    """Return the floor area of each town's buildings (computed once per run)."""
    areas: list[float] | None = world.extras.get("floor_areas")
    if areas is None:
        areas = []
        for town in world.towns:
            b = town_sites(world, town).buildings
            areas.append(float((b["area"] * b["floors"]).sum()))
        world.extras["floor_areas"] = areas
    return areas


def _points(sites: TownSites, rows: IntArray) -> ObjArray:
    """Return each unit's point: its building's centroid."""
    b = sites.buildings
    return np.asarray(shapely.points(b["x"][rows], b["y"][rows]), dtype=object)


def _codes(sites: TownSites, rows: IntArray, serial: IntArray) -> dict[str, ObjArray]:
    """Return unit codes (building code + 4 digits) and the building's address columns."""
    unique, inverse = np.unique(rows, return_inverse=True)
    cols = address_columns(sites, unique)
    building = cols["building_code"][inverse].astype(str)
    return {
        "code": np.char.add(building, zero_pad(serial, 4)).astype(object),
        "building_code": building.astype(object),
        "address_code": cols["address_code"][inverse],
        "address": cols["address"][inverse],
    }


@strategy("housing_units")
def real_housing(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield every housing unit (flat, shop, office …) of every building, at the building."""
    target = total_count(plan, world.scale)
    for i, town in enumerate(world.towns):
        units = housing_units(world, i, plan.params, target)
        if units["row"].size == 0:
            continue
        sites = town_sites(world, town)
        rng = world.rng(layer.code, town.code)
        for part in blocks(np.ones(units["row"].size, dtype=np.int64)):
            unit = {name: values[part] for name, values in units.items()}
            fixed: dict[str, Any] = _codes(sites, unit["row"], unit["serial"])
            fixed |= {
                "room_no": np.char.add(unit["floor"].astype(str), zero_pad(unit["rank"], 2)).astype(
                    object
                ),
                "floor": unit["floor"],
                "use": unit["use"],
                "occupancy": unit["occupancy"],
                "floor_area_m2": unit["area"],
            }
            yield finish(layer, plan, world, town, _points(sites, unit["row"]), rng, fixed)


@strategy("rented_units")
def rental_housing(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the rented homes among the housing units of ``params.units_of`` (same codes)."""
    source = default_plan().layers[str(plan.params["units_of"])]
    target = total_count(source, world.scale)
    for i, town in enumerate(world.towns):
        units = housing_units(world, i, source.params, target)
        rented = (units["occupancy"] == "rented") & np.isin(
            units["use"], ["residential", "dormitory"]
        )
        if not rented.any():
            continue
        sites = town_sites(world, town)
        rows, serial = units["row"][rented], units["serial"][rented]
        rng = world.rng(layer.code, town.code)
        for part in blocks(np.ones(rows.size, dtype=np.int64)):
            codes = _codes(sites, rows[part], serial[part])
            fixed = {"house_code": codes["code"], "address_code": codes["address_code"]}
            yield finish(layer, plan, world, town, _points(sites, rows[part]), rng, fixed)


def households_of(world: World, sites: TownSites) -> tuple[IntArray, IntArray]:
    """Return the households of each building with residents: building rows and counts."""
    b = sites.buildings
    rows = np.flatnonzero(b["residents"] > 0)
    rng = world.rng("households", sites.town.code)
    size = rng.uniform(2.3, 3.3, rows.size)
    count = np.maximum(1, np.rint(b["residents"][rows] / size)).astype(np.int64)
    return rows, np.minimum(count, b["residents"][rows])


@strategy("households")
def households(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the households living in each building (members add up to its residents)."""
    for town in world.towns:
        sites = town_sites(world, town)
        all_rows, all_count = households_of(world, sites)
        rng = world.rng(layer.code, town.code)
        for part in blocks(all_count):
            rows, count = all_rows[part], all_count[part]
            row = np.repeat(rows, count)
            index = ranks(count)
            residents = sites.buildings["residents"][row]
            per = np.repeat(count, count)
            members = residents // per + (index < residents % per)
            codes = _codes(sites, row, index + 1)
            fixed = {
                "household_id": np.char.add(
                    np.char.add("H", codes["building_code"].astype(str)), zero_pad(index + 1, 3)
                ).astype(object),
                "address_code": codes["address_code"],
                "members": members,
                "kind": np.where(members >= 7, "collective", "family").astype(object),
            }
            yield finish(layer, plan, world, town, _points(sites, row), rng, fixed)


@strategy("building_stats")
def building_stats(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield one statistics point per inhabited building: residents by kind and households."""
    for town in world.towns:
        sites = town_sites(world, town)
        all_rows, all_count = households_of(world, sites)
        rng = world.rng(layer.code, town.code)
        b = sites.buildings
        for part in blocks(np.ones(all_rows.size, dtype=np.int64)):
            rows, count = all_rows[part], all_count[part]
            residents, migrants = b["residents"][rows], b["migrants"][rows]
            overseas = np.minimum(rng.binomial(residents, 0.004), residents - migrants)
            codes = _codes(sites, rows, np.ones(rows.size, dtype=np.int64))
            fixed = {
                "building_code": codes["building_code"],
                "address": codes["address"],
                "residents": residents,
                "migrants": migrants,
                "overseas": overseas,
                "registered": residents - migrants - overseas,
                "households": count,
            }
            yield finish(layer, plan, world, town, _points(sites, rows), rng, fixed)
