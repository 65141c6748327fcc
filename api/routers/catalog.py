"""The layer catalog: groups and full layer declarations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import CatalogDep
from layers.catalog_view import group_summaries, layer_declaration, layer_summaries

router = APIRouter(prefix="/catalog", tags=["catalog"])


@router.get("/groups", summary="Layer groups")
def groups(catalog: CatalogDep) -> list[dict[str, Any]]:
    """Return every group with its layer count."""
    return group_summaries(catalog)


@router.get("/layers", summary="Layers of the catalog")
def layers(
    catalog: CatalogDep,
    group: Annotated[str | None, Query(description="only the layers of this group")] = None,
) -> list[dict[str, Any]]:
    """Return a summary of each layer, optionally of one group."""
    return layer_summaries(catalog, group=group)


@router.get("/layers/{code}", summary="One layer's full declaration")
def layer(
    catalog: CatalogDep,
    code: Annotated[str, Path(description="layer code", max_length=64)],
) -> dict[str, Any]:
    """Return the declaration: attributes (types, enums, ranges), key, geometry, sensitivity."""
    return layer_declaration(catalog, code)
