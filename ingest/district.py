"""``sibiao load``: load every file of a delivered district (a manifest) in a sensible order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from ingest import batches
from ingest.pipeline import LoadRequest, LoadResult, Progress, run_load
from layers.synthetic.manifest import Manifest, ManifestEntry, read_manifest
from schemas.catalog import Catalog, LayerRole
from schemas.errors import InvalidInput, SibiaoError
from schemas.settings import Settings

#: Loaded first: every later feature is placed in a grid cell and village at load.
FIRST_ROLES = (LayerRole.district, LayerRole.town, LayerRole.village, LayerRole.grid_cell)


@dataclass(frozen=True)
class DistrictLoad:
    """What happened to one file of the district."""

    layer: str
    file: str
    result: LoadResult | None
    error: str | None


def find_manifest(path: Path) -> tuple[Path, Manifest]:
    """Return the folder and manifest of a generated district (folder or manifest.json)."""
    manifest_file = path / "manifest.json" if path.is_dir() else path
    if not manifest_file.exists():
        raise InvalidInput(f"{path}: no manifest.json here; run `sibiao generate` first")
    return manifest_file.parent, read_manifest(manifest_file)


def load_order(catalog: Catalog, manifest: Manifest) -> list[ManifestEntry]:
    """Return the entries with boundaries and grid first, then the catalog's order."""
    first = [catalog.by_role(role).code for role in FIRST_ROLES]
    order: dict[str, int] = {}
    for code in first + [lyr.code for lyr in catalog.layers]:
        order.setdefault(code, len(order))
    return sorted(manifest.entries, key=lambda e: order.get(e.layer, len(order)))


def _source_crs(entry: ManifestEntry) -> str | None:
    """Return the CRS to force: only where the file says nothing or the wrong thing."""
    truth = entry.crs.value
    return None if entry.declared_crs == truth else truth


def load_district(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    path: Path,
    *,
    on_file: Callable[[ManifestEntry, int, int], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[DistrictLoad]:
    """Load every file listed in the manifest; a file that fails does not stop the others."""
    folder, manifest = find_manifest(path)
    batches.reap_stale(engine)
    entries = load_order(catalog, manifest)
    outcomes: list[DistrictLoad] = []
    for index, entry in enumerate(entries, start=1):
        if on_file is not None:
            on_file(entry, index, len(entries))
        request = LoadRequest(
            path=folder / entry.file,
            layer=entry.layer,
            mode="replace",
            source_crs=_source_crs(entry),
            user="sibiao load",
            file_name=entry.file,
        )
        try:
            if catalog.has_layer(entry.layer) and catalog.layer(entry.layer).is_raster:
                from ingest.rasters import load_raster

                raster = load_raster(engine, settings, catalog, request)
                outcomes.append(
                    DistrictLoad(entry.layer, entry.file, None, None)
                    if raster is not None
                    else DistrictLoad(entry.layer, entry.file, None, "no raster")
                )
                continue
            result = run_load(engine, settings, catalog, request, on_progress=on_progress)
            outcomes.append(DistrictLoad(entry.layer, entry.file, result, None))
        except SibiaoError as exc:
            outcomes.append(DistrictLoad(entry.layer, entry.file, None, exc.message))
    return outcomes
