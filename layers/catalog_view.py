"""Plain-data views of the catalog for the CLI and the API."""

from __future__ import annotations

from typing import Any

from schemas.catalog import Catalog
from schemas.errors import NotFound


def _known_group(catalog: Catalog, group: str) -> None:
    if not any(g.code == group for g in catalog.groups):
        known = ", ".join(g.code for g in catalog.groups)
        raise NotFound(f"no layer group {group!r}; groups are: {known}")


def layer_summaries(catalog: Catalog, *, group: str | None = None) -> list[dict[str, Any]]:
    """Return one summary row per layer (of ``group`` when given), in catalog order."""
    if group is not None:
        _known_group(catalog, group)
    return [
        {
            "code": layer.code,
            "zh": layer.zh,
            "en": layer.en,
            "group": layer.group,
            "geometry": layer.geometry.value,
            "sensitivity": layer.sensitivity.value,
            "department": layer.department,
            "cadence": layer.cadence.value,
            "attributes": len(layer.attributes),
            "natural_key": list(layer.natural_key),
        }
        for layer in catalog.layers
        if group is None or layer.group == group
    ]


def group_summaries(catalog: Catalog) -> list[dict[str, Any]]:
    """Return each group with its number of layers."""
    return [
        {**g.model_dump(mode="json", exclude_none=True), "layers": len(catalog.in_group(g.code))}
        for g in catalog.groups
    ]


def layer_declaration(catalog: Catalog, code: str) -> dict[str, Any]:
    """Return a layer's full declaration, or raise NotFound."""
    if not catalog.has_layer(code):
        raise NotFound(f"no layer {code!r} in the catalog; `sibiao layers list` shows them")
    return catalog.declaration(code)
