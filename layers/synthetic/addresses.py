"""Standard addresses along streets, buildings behind them, and the people who live there.

For one town at a time (the generator's chunk): house numbers on both sides of each
road, odd on the left and even on the right, increasing from the road's start; a
building behind each number; one real-population record per inhabited building.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from layers.synthetic.admin import Division
from layers.synthetic.blocks import BLOCK_ROWS, blocks
from layers.synthetic.geography import METRIC_EPSG, urban_density
from layers.synthetic.naming import dates_between, id_numbers, person_names, phones, zero_pad
from layers.synthetic.roads import Road

PROVINCE_CITY = "广东省广州市"
#: Mean residents per floor of a residential building, tuned so scale 1 gives ~1.6 M people.
RESIDENTS_PER_FLOOR = 1.28
HOUSE_SPACING_BASE_M = 9.0
HOUSE_SPACING_SLOPE_M = 40.0


@dataclass(frozen=True)
class TownAddresses:
    """House numbers, buildings and population records of one town (EPSG:4547)."""

    house_numbers: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    population: gpd.GeoDataFrame


def _sample_positions(
    roads: list[Road], scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (road index, part line, distance along part, number rank, spacing) for each slot."""
    road_idx, parts, dists, ranks, spacing_all = [], [], [], [], []
    for i, road in enumerate(roads):
        mid = road.geometry.interpolate(0.5, normalized=True)
        density = float(urban_density(mid.x, mid.y))
        spacing = (HOUSE_SPACING_BASE_M + HOUSE_SPACING_SLOPE_M * (1 - density)) / math.sqrt(scale)
        offset = 0.0
        for part in road.geometry.geoms:
            n = int(part.length // spacing)
            if n == 0:
                offset += part.length
                continue
            d = spacing / 2 + spacing * np.arange(n)
            road_idx.append(np.full(n, i))
            parts.append(np.full(n, part, dtype=object))
            dists.append(d)
            ranks.append(((offset + d) // spacing).astype(int))
            spacing_all.append(np.full(n, spacing))
            offset += part.length
    if not parts:
        empty = np.array([], dtype=float)
        return empty.astype(int), np.array([], dtype=object), empty, empty.astype(int), empty
    return (
        np.concatenate(road_idx),
        np.concatenate(parts),
        np.concatenate(dists),
        np.concatenate(ranks),
        np.concatenate(spacing_all),
    )


def _frame(columns: dict[str, object], geometry: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=geometry, crs=f"EPSG:{METRIC_EPSG}")


def town_addresses(
    town: Division,
    villages: list[Division],
    roads: list[Road],
    *,
    scale: float,
    rng: np.random.Generator,
) -> TownAddresses:
    """Return the house numbers, buildings and population of one town (all blocks joined)."""
    parts = list(town_address_blocks(town, villages, roads, scale=scale, rng=rng))
    joined = [
        pd.concat([getattr(part, name) for part in parts], ignore_index=True)
        for name in ("house_numbers", "buildings", "population")
    ]
    return TownAddresses(*joined)


def town_address_blocks(
    town: Division,
    villages: list[Division],
    roads: list[Road],
    *,
    scale: float,
    rng: np.random.Generator,
    block_rows: int = BLOCK_ROWS,
) -> Iterator[TownAddresses]:
    """Yield the house numbers, buildings and population of one town, a block of roads at a time.

    Blocks hold whole roads, in road order, so numbers still run along each road; a building
    that would overlap one kept in an earlier block is left out, as within a block.
    """
    road_idx, parts, dist, rank, spacing = _sample_positions(roads, scale)
    shapely.prepare(town.geometry)  # contains(town, x) is within(x, town), prepared: fast
    per_road = np.bincount(road_idx, minlength=len(roads)) if road_idx.size else np.zeros(0)
    starts = np.concatenate([[0], np.cumsum(per_road)]).astype(np.int64)
    earlier: list[np.ndarray] = []
    for roads_part in blocks(per_road, max(block_rows // 2, 1)) if road_idx.size else [slice(0, 0)]:
        at = slice(int(starts[roads_part.start]), int(starts[roads_part.stop]))
        block = _block(
            town,
            (road_idx[at], parts[at], dist[at], rank[at], spacing[at]),
            rng,
            earlier,
        )
        yield _assemble(town, villages, roads, *block, rng)


_Placed = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _block(
    town: Division,
    slots: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    earlier: list[np.ndarray],
) -> _Placed:
    """Place numbers and buildings on both sides of a block's slots; remember kept footprints."""
    road_idx, parts, dist, rank, spacing = slots
    n = dist.size
    # Two sides per slot: left (odd numbers) and right (even numbers).
    side = np.concatenate([np.ones(n), -np.ones(n)])
    road_idx, parts, dist, rank, spacing = (
        np.concatenate([a, a]) for a in (road_idx, parts, dist, rank, spacing)
    )
    number = np.where(side > 0, 2 * rank + 1, 2 * rank + 2)
    here = shapely.line_interpolate_point(parts, dist)
    ahead = shapely.line_interpolate_point(parts, dist + 1.0)
    hx, hy = shapely.get_x(here), shapely.get_y(here)
    tx, ty = shapely.get_x(ahead) - hx, shapely.get_y(ahead) - hy
    norm = np.hypot(tx, ty)
    norm[norm == 0] = 1.0
    tx, ty = tx / norm, ty / norm
    nx, ny = -ty * side, tx * side
    density = urban_density(hx, hy)
    keep = rng.random(side.size) < np.clip(0.15 + 1.6 * density, 0, 1)
    setback = rng.uniform(6.0, 11.0, side.size)
    px, py = hx + nx * setback, hy + ny * setback
    points = shapely.points(px, py)
    keep &= shapely.contains(town.geometry, points)
    # Buildings: a rectangle behind each number, aligned with the street.
    width = np.minimum(spacing * rng.uniform(0.6, 0.85, side.size), 40.0)
    depth = np.where(density > 0.45, rng.uniform(12, 30, side.size), rng.uniform(8, 16, side.size))
    cx, cy = px + nx * (3 + depth / 2), py + ny * (3 + depth / 2)
    corners = np.stack(
        [
            np.column_stack(
                [
                    cx + sx * tx * width / 2 + sy * nx * depth / 2,
                    cy + sx * ty * width / 2 + sy * ny * depth / 2,
                ]
            )
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
        ],
        axis=1,
    )
    footprints = shapely.polygons(corners)
    idx = np.flatnonzero(keep)
    has_building = np.zeros(side.size, dtype=bool)
    inside = shapely.contains(town.geometry, footprints[idx])
    candidates = idx[inside]
    tree = STRtree(footprints[candidates])
    left, right = tree.query(footprints[candidates], predicate="intersects")
    clash = np.unique(np.maximum(left, right)[left != right])
    built = np.delete(candidates, clash)
    if earlier and built.size:
        hit, _ = STRtree(np.concatenate(earlier)).query(footprints[built], "intersects")
        built = np.delete(built, np.unique(hit))
    has_building[built] = True
    earlier.append(footprints[built])
    return idx, has_building, road_idx, number, points, footprints, density


def _assemble(
    town: Division,
    villages: list[Division],
    roads: list[Road],
    idx: np.ndarray,
    has_building: np.ndarray,
    road_idx: np.ndarray,
    number: np.ndarray,
    points: np.ndarray,
    footprints: np.ndarray,
    density: np.ndarray,
    rng: np.random.Generator,
) -> TownAddresses:
    """Turn the kept slots into the three layers' rows."""
    suffix = town.code[6:]
    order = idx[np.lexsort((number[idx], road_idx[idx]))]
    road_code = np.array([roads[i].code[9:] for i in road_idx[order]])
    road_name = np.array([roads[i].name for i in road_idx[order]])
    num = number[order]
    address_code = np.char.add(np.char.add("440114" + suffix, road_code), zero_pad(num, 6))
    building_code = np.char.add(np.char.add("440114" + suffix, road_code), zero_pad(num, 5))
    village_code = _village_of(points[order], villages)
    text = np.char.add(
        np.char.add(PROVINCE_CITY + "花都区" + town.name, road_name),
        np.char.add(num.astype(str), "号"),
    )
    built = has_building[order]
    count = order.size
    house_numbers = _frame(
        {
            "address_code": address_code,
            "address": text,
            "road_name": road_name,
            "number": np.char.add(num.astype(str), "号"),
            "town_code": np.full(count, town.code),
            "village_code": village_code,
            "building_code": _where_built(building_code, built),
            "plate_installed": rng.random(count) < 0.96,
            "assigned_on": dates_between(rng, count, date(2012, 1, 1), date(2025, 12, 31)),
        },
        points[order],
    )
    b = order[built]
    dens = density[b]
    nb = b.size
    floors = np.where(
        dens > 0.55,
        np.clip(rng.lognormal(2.0, 0.6, nb), 2, 45),
        np.clip(rng.lognormal(0.9, 0.4, nb), 1, 8),
    ).astype(int)
    area = shapely.area(footprints[b])
    use = np.where(
        rng.random(nb) < 0.78,
        "residential",
        rng.choice(["commercial", "mixed", "industrial", "warehouse", "office", "public"], nb),
    )
    structure = np.where(
        floors >= 7,
        "reinforced_concrete",
        np.where(
            floors >= 3,
            "masonry_concrete",
            rng.choice(["brick_wood", "masonry_concrete", "simple"], nb),
        ),
    )
    buildings = _frame(
        {
            "code": building_code[built],
            "name": None,
            "address_code": address_code[built],
            "floors": floors,
            "underground_floors": np.where(floors >= 10, rng.integers(1, 3, nb), 0),
            "structure": structure,
            "use": use,
            "height_m": np.round(floors * rng.uniform(2.9, 3.4, nb), 1),
            "floor_area_m2": np.round(area * floors, 1),
            "built_year": rng.integers(1978, 2025, nb),
        },
        shapely.multipolygons(footprints[b][:, None].tolist())
        if nb
        else np.array([], dtype=object),
    )
    residential = np.isin(use, ["residential", "mixed"])
    residents = np.where(residential, rng.poisson(floors * RESIDENTS_PER_FLOOR), 0)
    return TownAddresses(
        house_numbers, buildings, _population(buildings, residents, house_numbers, rng)
    )


def _population(
    buildings: gpd.GeoDataFrame,
    residents: np.ndarray,
    house_numbers: gpd.GeoDataFrame,
    rng: np.random.Generator,
) -> gpd.GeoDataFrame:
    """Return one record per inhabited building, with its household head's personal data."""
    lived = residents > 0
    rows = buildings[lived]
    count = len(rows)
    people = residents[lived]
    migrants = rng.binomial(people, 0.45)
    male = rng.random(count) < 0.52
    points = shapely.point_on_surface(rows.geometry.values)
    return _frame(
        {
            "record_id": np.char.add("P", rows["code"].to_numpy().astype(str)),
            "person_name": person_names(rng, count),
            "id_number": id_numbers(rng, count, home_share=0.55, home_region="440114", male=male),
            "phone": phones(rng, count),
            "gender": np.where(male, "male", "female"),
            "residence_type": np.where(migrants * 2 > people, "migrant", "registered"),
            "address_code": rows["address_code"].to_numpy(),
            "building_code": rows["code"].to_numpy(),
            "residents": people,
            "migrants": migrants,
            "registered_on": dates_between(rng, count, date(2015, 1, 1), date(2025, 12, 31)),
        },
        points,
    )


def _where_built(codes: np.ndarray, built: np.ndarray) -> np.ndarray:
    """Return the codes as objects, None where no building stands."""
    out = codes.astype(object)
    out[~built] = None
    return out


def _village_of(points: np.ndarray, villages: list[Division]) -> np.ndarray:
    """Return the code of the village each point lies in (None outside all)."""
    codes = np.array([v.code for v in villages] + [None], dtype=object)
    if points.size == 0:
        return np.array([], dtype=object)
    return codes[first_cover(points, [v.geometry for v in villages])]


def first_cover(points: np.ndarray, areas: list[Any]) -> np.ndarray:
    """Return the index of the first area each point intersects (``len(areas)`` when none).

    The tree is built over the points and queried with the areas, which GEOS then prepares:
    much faster than testing each point against unprepared, densified polygons.
    """
    found = np.full(len(points), len(areas), dtype=np.int64)
    if len(points) and areas:
        area_i, point_i = STRtree(points).query(np.asarray(areas, dtype=object), "intersects")
        np.minimum.at(found, point_i, area_i)  # first area wins on shared boundaries
    return found
