"""The raster layers of a generated district: COGs of the DEM and flood risk, in the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from layers.synthetic import hydro
from layers.synthetic.manifest import ManifestEntry, SourceFormat, TrueCrs, sha256_file
from layers.synthetic.world import World
from schemas.catalog import Layer, LayerRole

RASTER_DIR = "rasters"


def raster_entries(
    world: World, layers: list[Layer], out_dir: Path
) -> Iterator[tuple[ManifestEntry, Layer]]:
    """Write the DEM and flood-risk COGs; yield their manifest entries."""
    if not layers:
        return
    written = hydro.write_cogs(world.terrain, world.flood_risk, out_dir / RASTER_DIR)
    by_role = {LayerRole.dem: "dem", LayerRole.flood_risk: "flood_risk"}
    for layer in layers:
        key = by_role.get(layer.role) if layer.role is not None else None
        if key is None or key not in written:
            raise ValueError(f"the generator makes no raster for {layer.code}")
        path = written[key]
        epsg = f"EPSG:{world.terrain.epsg}"
        yield (
            ManifestEntry(
                layer=layer.code,
                file=path.relative_to(out_dir).as_posix(),
                format=SourceFormat.cog,
                driver="GTiff",
                crs=TrueCrs(epsg),
                declared_crs=epsg,
                sha256=sha256_file(path),
            ),
            layer,
        )
