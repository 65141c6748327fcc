"""Where things can go in one town: road segments, crossings, buildings, house numbers, villages.

Asset strategies look here many times per run. Each town's :class:`TownSites` is built once per
:class:`~layers.synthetic.world.World` (kept in ``world.extras``) and holds only numbers that grow
with the road network: villages, road segments, crossings. What grows with the scale (per
building and per house number: position, use, floors, residents, and the trees over them) lives
in a :class:`TownStock`, of which a World keeps only the most recently used towns, up to
:data:`STOCK_BUDGET_ROWS` rows; a stock dropped is read back from the run's spill folder (the
per-building numbers are spilled as ``.npy`` files once computed). Text columns of the spilled
house numbers and buildings are read with pyarrow for just the rows a layer picks
(:meth:`TownSites.fetch`), so memory stays bounded at any scale.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from numpy.typing import NDArray
from shapely import STRtree

from layers.synthetic.addresses import first_cover
from layers.synthetic.admin import Division
from layers.synthetic.geography import load_geography, town_anchors, urban_density
from layers.synthetic.roads import Road
from layers.synthetic.world import World

Source = Literal["house_numbers", "buildings", "population"]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

_KEY = "sites"
_STOCK_KEY = "sites:stock"
#: Buildings plus house numbers whose lookups a World keeps in memory at once (about 350 bytes
#: each with their trees): every town at scale 1, the few most recent ones at larger scales.
STOCK_BUDGET_ROWS = 900_000
#: What a building or house number costs in a stock, with its tree (to count columns read).
_BYTES_PER_ROW = 350


def town_sites(world: World, town: Division) -> TownSites:
    """Return the (cached) sites of one town."""
    cache: dict[str, TownSites] = world.extras.setdefault(_KEY, {})
    if town.code not in cache:
        cache[town.code] = TownSites(world, town)
    return cache[town.code]


def place_name(village: Division) -> str:
    """Return how a village is called in place names: 联安村委会 → 联安村, 云山居委会 → 云山社区."""
    return short_name(village.name) + ("村" if village.kind == "village" else "社区")


def short_name(name: str) -> str:
    """Return a division name without its generic suffix (新华街道 → 新华, 联安村 → 联安)."""
    for suffix in (
        "社区居民委员会",
        "居民委员会",
        "村民委员会",
        "街道",
        "居委会",
        "社区",
        "村委会",
        "镇",
        "村",
    ):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return short_name(name[: -len(suffix)])
    return name


class TownSites:
    """Numeric lookups over one town (EPSG:4547), built lazily piece by piece."""

    def __init__(self, world: World, town: Division) -> None:
        self.world = world
        self.town = town
        self.villages = world.villages_of(town.code)
        self.roads: list[Road] = world.roads_of(town.code)
        shapely.prepare(town.geometry)

    # -- the town and its villages ------------------------------------------------------------
    @cached_property
    def anchor(self) -> tuple[float, float]:
        """Return the town seat (anchor of ``huadu_geography.yaml``)."""
        return town_anchors()[self.town.code]

    @cached_property
    def sigma_m(self) -> float:
        """Return how far the seat's built-up area spreads (m)."""
        return load_geography().town(self.town.code).sigma_km * 1000.0

    @cached_property
    def village_tree(self) -> STRtree:
        """Return a tree over the village polygons."""
        return STRtree([v.geometry for v in self.villages])

    @cached_property
    def village_density(self) -> FloatArray:
        """Return each village's mean urban density (on a fixed 9×9 lattice, no randomness)."""
        out = np.zeros(len(self.villages))
        for i, village in enumerate(self.villages):
            x0, y0, x1, y1 = village.geometry.bounds
            gx, gy = np.meshgrid(np.linspace(x0, x1, 9), np.linspace(y0, y1, 9))
            inside = shapely.contains_xy(village.geometry, gx.ravel(), gy.ravel())
            rep = village.geometry.representative_point()
            xs = np.append(gx.ravel()[inside], rep.x)
            ys = np.append(gy.ravel()[inside], rep.y)
            out[i] = float(urban_density(xs, ys).mean())
        return out

    def village_of(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Return the index of the village each point lies in (nearest when on no village)."""
        if x.size == 0:
            return np.zeros(0, dtype=np.int64)
        points = shapely.points(x, y)
        found = first_cover(points, [v.geometry for v in self.villages])
        found[found == len(self.villages)] = -1
        lost = np.flatnonzero(found < 0)
        if lost.size:
            found[lost] = self.village_tree.query_nearest(
                points[lost], return_distance=False, all_matches=False
            )[1]
        return found

    def inside(self, x: FloatArray, y: FloatArray) -> NDArray[np.bool_]:
        """Return whether points lie inside the town."""
        return np.asarray(shapely.contains_xy(self.town.geometry, x, y), dtype=bool)

    # -- roads ----------------------------------------------------------------------------------
    @cached_property
    def road_tree(self) -> STRtree:
        """Return a tree over the town's road centrelines."""
        return STRtree([r.geometry for r in self.roads])

    def near_road(self, x: FloatArray, y: FloatArray, distance: float) -> NDArray[np.bool_]:
        """Return whether points lie within ``distance`` m of a road centreline."""
        hit = np.zeros(x.size, dtype=bool)
        if x.size and self.roads and distance > 0:
            idx, _ = self.road_tree.query(
                shapely.points(x, y), predicate="dwithin", distance=distance
            )
            hit[idx] = True
        return hit

    def nearest_road(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Return the index of the nearest road of each point (-1 when the town has none)."""
        if not self.roads or x.size == 0:
            return np.full(x.size, -1, dtype=np.int64)
        _, road_i = self.road_tree.query_nearest(shapely.points(x, y), all_matches=False)
        return np.asarray(road_i, dtype=np.int64)

    @cached_property
    def segments(self) -> dict[str, Any]:
        """Return every vertex-to-vertex road segment with its road, part, offset and density."""
        ax, ay, bx, by, road, start, parts = [], [], [], [], [], [], []
        for i, r in enumerate(self.roads):
            for part in r.geometry.geoms:
                xy = shapely.get_coordinates(part)
                if len(xy) < 2:
                    continue
                steps = np.hypot(*np.diff(xy, axis=0).T)
                ax.append(xy[:-1, 0])
                ay.append(xy[:-1, 1])
                bx.append(xy[1:, 0])
                by.append(xy[1:, 1])
                road.append(np.full(len(steps), i))
                start.append(np.concatenate([[0.0], np.cumsum(steps)[:-1]]))
                parts.append(np.full(len(steps), part, dtype=object))
        if not ax:
            empty = np.zeros(0)
            return {
                "ax": empty,
                "ay": empty,
                "bx": empty,
                "by": empty,
                "len": empty,
                "road": empty.astype(np.int64),
                "start": empty,
                "part": np.zeros(0, dtype=object),
                "density": empty,
            }
        seg = {
            "ax": np.concatenate(ax),
            "ay": np.concatenate(ay),
            "bx": np.concatenate(bx),
            "by": np.concatenate(by),
            "road": np.concatenate(road),
            "start": np.concatenate(start),
            "part": np.concatenate(parts),
        }
        seg["len"] = np.hypot(seg["bx"] - seg["ax"], seg["by"] - seg["ay"])
        seg["density"] = urban_density((seg["ax"] + seg["bx"]) / 2, (seg["ay"] + seg["by"]) / 2)
        return seg

    @cached_property
    def crossings(self) -> dict[str, FloatArray | IntArray]:
        """Return the points where two differently named roads meet, inside the town."""
        geoms = np.array([r.geometry for r in self.roads], dtype=object)
        names = np.array([r.name for r in self.roads], dtype=object)
        xs: list[float] = []
        ys: list[float] = []
        ri: list[int] = []
        rj: list[int] = []
        if geoms.size:
            left, right = STRtree(geoms).query(geoms, predicate="intersects")
            keep = (left < right) & (names[left] != names[right])
            left, right = left[keep], right[keep]
            for i, j, where in zip(
                left, right, shapely.intersection(geoms[left], geoms[right]), strict=True
            ):
                for part in shapely.get_parts(where):
                    if part.geom_type == "Point":
                        xs.append(part.x)
                        ys.append(part.y)
                        ri.append(int(i))
                        rj.append(int(j))
        x, y = np.array(xs), np.array(ys)
        keep_in = self.inside(x, y) if x.size else np.zeros(0, dtype=bool)
        return {
            "x": x[keep_in],
            "y": y[keep_in],
            "road_i": np.array(ri, dtype=np.int64)[keep_in],
            "road_j": np.array(rj, dtype=np.int64)[keep_in],
        }

    # -- buildings and house numbers ------------------------------------------------------------
    def source_path(self, source: Source) -> Path:
        """Return the spill file of ``source``, making the town's addresses first if needed."""
        path = self.world.spill_path(source, self.town.code)
        if not path.exists():
            self.world.spill_addresses(self.town)
        return path

    def fetch(self, source: Source, rows: IntArray, columns: list[str]) -> dict[str, np.ndarray]:
        """Return ``columns`` of the spilled ``source`` for ``rows`` (geometry decoded)."""
        stock = self.stock
        out: dict[str, np.ndarray] = {}
        for name in columns:
            values = stock.column(source, name).take(np.asarray(rows))
            array = values.to_numpy(zero_copy_only=False)
            out[name] = shapely.from_wkb(array) if name == "geometry" else array
        return out

    @property
    def stock(self) -> TownStock:
        """Return the town's per-building and per-house-number lookups (most recently used)."""
        cache: OrderedDict[str, TownStock] = self.world.extras.setdefault(_STOCK_KEY, OrderedDict())
        code = self.town.code
        stock = cache.get(code)
        if stock is not None:
            cache.move_to_end(code)
            return stock
        stock = cache[code] = TownStock(self)  # a new town: drop the least recent beyond budget
        held = sum(s.rows for s in cache.values())
        while held > STOCK_BUDGET_ROWS and len(cache) > 1:
            _, dropped = cache.popitem(last=False)
            held -= dropped.rows
        return stock

    @property
    def buildings(self) -> dict[str, np.ndarray]:
        """Return per building: centroid, use, floors, year, footprint area, density, residents."""
        return self.stock.buildings

    @property
    def house_numbers(self) -> dict[str, np.ndarray]:
        """Return per house number: position and address code."""
        return self.stock.house_numbers

    @property
    def house_number_tree(self) -> STRtree:
        """Return a tree over the house-number points."""
        return self.stock.house_number_tree

    @property
    def building_tree(self) -> STRtree:
        """Return a tree over the building centroids."""
        return self.stock.building_tree

    def nearest_house_number(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Return the row of the nearest house number of each point (-1 when there is none)."""
        if self.house_numbers["x"].size == 0 or x.size == 0:
            return np.full(x.size, -1, dtype=np.int64)
        _, rows = self.house_number_tree.query_nearest(shapely.points(x, y), all_matches=False)
        return np.asarray(rows, dtype=np.int64)

    def nearest_building(self, x: FloatArray, y: FloatArray) -> IntArray:
        """Return the row of the nearest building of each point (-1 when there is none)."""
        if self.buildings["x"].size == 0 or x.size == 0:
            return np.full(x.size, -1, dtype=np.int64)
        _, rows = self.building_tree.query_nearest(shapely.points(x, y), all_matches=False)
        return np.asarray(rows, dtype=np.int64)

    def near_building(self, geoms: np.ndarray, distance: float) -> NDArray[np.bool_]:
        """Return whether geometries come within ``distance`` m of a building centroid."""
        hit = np.zeros(len(geoms), dtype=bool)
        if len(geoms) and self.buildings["x"].size:
            idx, _ = self.building_tree.query(geoms, predicate="dwithin", distance=distance)
            hit[idx] = True
        return hit


class TownStock:
    """The lookups of one town that grow with the scale: buildings, house numbers, their trees."""

    def __init__(self, sites: TownSites) -> None:
        self.sites = sites
        self._columns: dict[tuple[str, str], pa.ChunkedArray] = {}

    @property
    def rows(self) -> int:
        """Return how many buildings and house numbers this stock holds (columns read count)."""
        held = [self.__dict__.get(name) for name in ("buildings", "house_numbers")]
        rows = sum(int(part["x"].size) for part in held if part is not None)
        return rows + sum(c.nbytes for c in self._columns.values()) // _BYTES_PER_ROW

    def column(self, source: Source, name: str) -> pa.ChunkedArray:
        """Return one column of a spilled source, read once while this stock is kept."""
        key = (source, name)
        if key not in self._columns:
            path = self.sites.source_path(source)
            self._columns[key] = pq.read_table(path, columns=[name]).column(name)
        return self._columns[key]

    def _spill(self, name: str) -> Path:
        """Return the folder of one town's spilled lookup arrays."""
        return self.sites.world.spill_path(f"sites_{name}", self.sites.town.code).with_suffix("")

    @cached_property
    def buildings(self) -> dict[str, np.ndarray]:
        """Return per building: centroid, use, floors, year, footprint area, density, residents."""
        folder = self._spill("buildings")
        if folder.is_dir():
            return {path.stem: np.load(path) for path in sorted(folder.glob("*.npy"))}
        made = self._buildings()
        folder.mkdir(parents=True)
        for name, values in made.items():
            np.save(folder / f"{name}.npy", values, allow_pickle=False)
        return made

    def _buildings(self) -> dict[str, np.ndarray]:
        """Compute the per-building lookups from the spilled buildings and population."""
        cols = ["code", "address_code", "use", "floors", "built_year", "geometry"]
        table = pq.read_table(self.sites.source_path("buildings"), columns=cols)
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        xy = shapely.get_coordinates(shapely.centroid(geoms)) if len(geoms) else np.zeros((0, 2))
        codes = pd.Index(table.column("code").to_numpy(zero_copy_only=False))
        pop = pq.read_table(
            self.sites.source_path("population"), columns=["building_code", "residents", "migrants"]
        )
        at = codes.get_indexer(pop.column("building_code").to_numpy(zero_copy_only=False))
        residents = np.zeros(len(codes), dtype=np.int64)
        migrants = np.zeros(len(codes), dtype=np.int64)
        residents[at] = pop.column("residents").to_numpy()
        migrants[at] = pop.column("migrants").to_numpy()
        hn = pd.Index(self.house_numbers["address_code"])
        use = table.column("use").to_numpy(zero_copy_only=False).astype(str)
        village = self.sites.village_of(xy[:, 0], xy[:, 1])
        kinds = np.array([v.kind for v in self.sites.villages] + ["village"])
        return {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "use": use,
            "floors": table.column("floors").to_numpy(),
            "year": table.column("built_year").to_numpy(),
            "area": shapely.area(geoms),
            "density": urban_density(xy[:, 0], xy[:, 1]),
            "residents": residents,
            "migrants": migrants,
            "hn": hn.get_indexer(table.column("address_code").to_numpy(zero_copy_only=False)),
            "village": village,
            "village_kind": kinds[village],
        }

    @cached_property
    def house_numbers(self) -> dict[str, np.ndarray]:
        """Return per house number: position and address code."""
        table = pq.read_table(
            self.sites.source_path("house_numbers"), columns=["address_code", "geometry"]
        )
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        xy = shapely.get_coordinates(geoms) if len(geoms) else np.zeros((0, 2))
        return {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "address_code": table.column("address_code").to_numpy(zero_copy_only=False),
        }

    @cached_property
    def house_number_tree(self) -> STRtree:
        """Return a tree over the house-number points."""
        hn = self.house_numbers
        return STRtree(shapely.points(hn["x"], hn["y"]))

    @cached_property
    def building_tree(self) -> STRtree:
        """Return a tree over the building centroids."""
        b = self.buildings
        return STRtree(shapely.points(b["x"], b["y"]))
