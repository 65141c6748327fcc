"""Load the layer catalog from its reviewed data files.

Each ``layers/catalog/*.yaml`` file declares one group and its layers. A file
that does not satisfy :mod:`schemas.catalog` fails start-up with a message that
names the file, the layer and the field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.catalog import Catalog, GroupFile
from schemas.errors import CatalogError

CATALOG_DIR = Path(__file__).with_name("catalog")


def _locate(data: Any, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into 'layer X, field Y' words."""
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key == "layers" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = int(loc[i + 1])
            try:
                code = node["layers"][index].get("code", f"#{index + 1}")
                node = node["layers"][index]
            except (KeyError, IndexError, TypeError, AttributeError):
                code = f"#{index + 1}"
                node = None
            parts.append(f"layer {code}")
            i += 2
            continue
        if key == "attributes" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = int(loc[i + 1])
            try:
                name = node["attributes"][index].get("name", f"#{index + 1}")
                node = node["attributes"][index]
            except (KeyError, IndexError, TypeError, AttributeError):
                name = f"#{index + 1}"
                node = None
            parts.append(f"attribute {name}")
            i += 2
            continue
        parts.append(f"field {key}")
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
        i += 1
    return ", ".join(parts) if parts else "top level"


def read_group_file(path: Path) -> GroupFile:
    """Read and validate one catalog file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping with 'group' and 'layers'")
    try:
        group_file = GroupFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _locate(data, tuple(first["loc"]))
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
