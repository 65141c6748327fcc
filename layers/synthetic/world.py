"""The shared state of one generator run: geometry built once, per-town data spilled to disk.

Strategies (``layers.synthetic.strategies``) read from a :class:`World` to place the
features of a layer, one town at a time, so that memory stays bounded at any scale:
what several layers need per town (house numbers, buildings, population) is computed
once and kept in GeoParquet files in the run's spill folder.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from layers.registry import default_catalog
from layers.synthetic import hydro
from layers.synthetic.addresses import TownAddresses, town_address_blocks
from layers.synthetic.admin import AdminGeometry, Division, build_admin
from layers.synthetic.cache import cached
from layers.synthetic.geography import METRIC_EPSG
from layers.synthetic.grid import GridCellSpec, build_grid
from layers.synthetic.roads import Road, build_roads
from layers.synthetic.terrain import Terrain, build_terrain
from layers.synthetic.utilities import Serials
from schemas.catalog import Catalog

_ADDRESS_LAYERS = ("house_numbers", "buildings", "population")
#: Rows read back at once from a spilled file.
SPILL_BATCH_ROWS = 50_000


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
        return cached("admin", self.seed, "", lambda: build_admin(self.seed))

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
        spec = repr(default_catalog().by_role("dem").raster)  # what build_terrain reads
        return cached("terrain", self.seed, spec, lambda: build_terrain(self.admin, self.seed))

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

    def spilled(
        self, name: str, town: Division, columns: list[str] | None = None
    ) -> Iterator[gpd.GeoDataFrame]:
        """Yield one town's spilled house numbers, buildings or population, a batch at a time."""
        path = self.spill_path(name, town.code)
        if not path.exists():
            self.spill_addresses(town)
        source = pq.ParquetFile(path)
        batches = source.iter_batches(batch_size=SPILL_BATCH_ROWS, columns=columns)
        if not source.metadata.num_rows:
            empty = pa.RecordBatch.from_pylist([], schema=source.schema_arrow)
            batches = iter([empty if columns is None else empty.select(columns)])
        for batch in batches:
            frame = batch.to_pandas()
            geometry = shapely.from_wkb(frame.pop("geometry").to_numpy())
            yield gpd.GeoDataFrame(frame, geometry=geometry, crs=f"EPSG:{METRIC_EPSG}")

    def addresses_of(self, town: Division) -> TownAddresses:
        """Return one town's house numbers, buildings and population (computed once, spilled)."""
        frames = {
            name: pd.concat(list(self.spilled(name, town)), ignore_index=True)
            for name in _ADDRESS_LAYERS
        }
        return TownAddresses(**frames)

    def spill_addresses(self, town: Division) -> None:
        """Make one town's house numbers, buildings and population, block by block, to disk."""
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            for block in town_address_blocks(
                town,
                self.villages_of(town.code),
                self.roads_of(town.code),
                scale=self.scale,
                rng=self.rng("addresses", town.code),
            ):
                for name in _ADDRESS_LAYERS:
                    table = _spill_table(getattr(block, name))
                    if name not in writers:
                        table = table.cast(_strings_for_nulls(table.schema))
                        path = self.spill_path(name, town.code)
                        writers[name] = pq.ParquetWriter(path.with_suffix(".part"), table.schema)
                    writers[name].write_table(table.cast(writers[name].schema))
        except BaseException:
            for writer in writers.values():
                writer.close()
            raise
        for name, writer in writers.items():
            writer.close()
            path = self.spill_path(name, town.code)
            path.with_suffix(".part").replace(path)


def _spill_table(frame: gpd.GeoDataFrame) -> pa.Table:
    """Return a frame as an Arrow table with its geometry as WKB (no index)."""
    columns = frame.drop(columns=frame.geometry.name)
    table = pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False)
    wkb = shapely.to_wkb(frame.geometry.to_numpy())
    return table.append_column("geometry", pa.array(wkb, type=pa.binary()))


def _strings_for_nulls(schema: pa.Schema) -> pa.Schema:
    """Return the schema with all-null columns typed as text (later blocks may hold some)."""
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)
