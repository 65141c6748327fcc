"""The shared state of one generator run: geometry built once, per-town data spilled to disk.

Strategies (``layers.synthetic.strategies``) read from a :class:`World` to place the
features of a layer, one town at a time, so that memory stays bounded at any scale:
what several layers need per town (house numbers, buildings, population) is computed
once and kept in GeoParquet files in the run's spill folder.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from layers.synthetic import hydro
from layers.synthetic.addresses import TownAddresses, town_addresses
from layers.synthetic.admin import AdminGeometry, Division, build_admin
from layers.synthetic.grid import GridCellSpec, build_grid
from layers.synthetic.roads import Road, build_roads
from layers.synthetic.terrain import Terrain, build_terrain
from layers.synthetic.utilities import Serials
from schemas.catalog import Catalog

_ADDRESS_LAYERS = ("house_numbers", "buildings", "population")


@dataclass
class World:
    """Everything a strategy may look at, for one (scale, seed)."""

    catalog: Catalog
    scale: float
    seed: int
    spill_dir: Path
    serials: Serials = field(default_factory=Serials)
    extras: dict[str, Any] = field(default_factory=dict)

    def rng(self, *keys: str) -> np.random.Generator:
        """Return a generator that depends only on the seed and ``keys`` (not on call order)."""
        words = [zlib.crc32(key.encode("utf-8")) for key in keys]
        return np.random.default_rng([self.seed, *words])

    @cached_property
    def admin(self) -> AdminGeometry:
        """Return the district, towns and villages (EPSG:4547)."""
        return build_admin(self.seed)

    @property
    def towns(self) -> tuple[Division, ...]:
        """Return the towns in code order (the order chunks are written in)."""
        return tuple(sorted(self.admin.towns, key=lambda t: t.code))

    def villages_of(self, town_code: str) -> list[Division]:
        """Return the villages of a town in code order."""
        return sorted(self.admin.villages_of(town_code), key=lambda v: v.code)

    @cached_property
    def grid(self) -> list[GridCellSpec]:
        """Return the basic grid cells (EPSG:4547)."""
        return build_grid(self.admin, self.scale, self.seed)

    @cached_property
    def roads(self) -> list[Road]:
        """Return the road network cut by town."""
        return build_roads(self.admin, self.scale, self.seed)

    def roads_of(self, town_code: str) -> list[Road]:
        """Return the roads of one town."""
        return [road for road in self.roads if road.town_code == town_code]

    def spill_path(self, name: str, town_code: str) -> Path:
        """Return the spill file of one town's house numbers, buildings or population."""
        return self.spill_dir / f"{name}_{town_code}.parquet"

    @cached_property
    def terrain(self) -> Terrain:
        """Return the DEM with its rivers (EPSG:4547)."""
        return build_terrain(self.admin, self.seed)

    @cached_property
    def rivers(self) -> gpd.GeoDataFrame:
        """Return the rivers inside the district, with the catalog's attributes."""
        return hydro.rivers(self.terrain)

    @cached_property
    def water_bodies(self) -> gpd.GeoDataFrame:
        """Return reservoirs, lakes and ponds, with the catalog's attributes."""
        return hydro.water_bodies(self.terrain, self.admin, self.scale, self.seed)

    @cached_property
    def flood_risk(self) -> np.ndarray:
        """Return the flood-risk classes on the DEM's grid."""
        return hydro.flood_risk(self.terrain, self.rivers, self.water_bodies)

    def addresses_of(self, town: Division) -> TownAddresses:
        """Return one town's house numbers, buildings and population (computed once, spilled)."""
        paths = {name: self.spill_path(name, town.code) for name in _ADDRESS_LAYERS}
        if all(path.exists() for path in paths.values()):
            frames = {name: gpd.read_parquet(path) for name, path in paths.items()}
            return TownAddresses(**frames)
        result = town_addresses(
            town,
            self.villages_of(town.code),
            self.roads_of(town.code),
            scale=self.scale,
            rng=self.rng("addresses", town.code),
        )
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        for name, path in paths.items():
            getattr(result, name).to_parquet(path)
        return result
