"""Load the layer catalog from its reviewed data files.

Each ``layers/catalog/*.yaml`` file declares one group and its layers. A file
that does not satisfy :mod:`schemas.catalog` fails start-up with a message that
names the file, the layer and the field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from schemas.catalog import Catalog, GroupFile
from schemas.error_location import describe_location
from schemas.errors import CatalogError

CATALOG_DIR = Path(__file__).with_name("catalog")
_NAMED_LISTS = {"layers": ("layer", "code"), "attributes": ("attribute", "name")}


def read_group_file(path: Path) -> GroupFile:
    """Read and validate one catalog file."""
    try:
        data = yaml.load(path.read_text("utf-8"), getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping with 'group' and 'layers'")
    try:
        group_file = GroupFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = describe_location(data, tuple(first["loc"]), _NAMED_LISTS)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise CatalogError(f"{path}: {where}: {first['msg']}{more}") from None
    layers = tuple(
        layer.model_copy(update={"group": group_file.group.code}) for layer in group_file.layers
    )
    return group_file.model_copy(update={"layers": layers})


def load_catalog(directory: Path | None = None) -> Catalog:
    """Read every catalog file of ``directory`` and validate the whole."""
    folder = directory or CATALOG_DIR
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CatalogError(f"{folder}: no catalog files (*.yaml) found")
    group_files = [read_group_file(path) for path in files]
    groups = tuple(sorted((gf.group for gf in group_files), key=lambda g: (g.order, g.code)))
    layers = tuple(layer for gf in group_files for layer in gf.layers)
    try:
        return Catalog(groups=groups, layers=layers)
    except ValidationError as exc:
        raise CatalogError(f"{folder}: {exc.errors()[0]['msg']}") from None


@lru_cache(maxsize=8)
def _cached(directory: Path) -> Catalog:
    return load_catalog(directory)


def default_catalog(directory: Path | None = None) -> Catalog:
    """Return the catalog of ``directory`` (default: the packaged one), read once per process."""
    return _cached((directory or CATALOG_DIR).resolve())
