"""The grid page lists the asset layers of the rules in force, not of the packaged file."""

from __future__ import annotations

from cases.routing import packaged_rules
from layers.registry import default_catalog
from maps.grid import asset_layers


def test_asset_layers_follow_the_rules_version_given():
    catalog = default_catalog()
    packaged = packaged_rules()
    before = {layer["code"] for layer in asset_layers(catalog, packaged)}
    assert before and before <= set(packaged.asset_layer_codes)
    # an admin's new version: items that named assets now name none
    bare = packaged.model_copy(
        update={
            "version": packaged.version + 1,
            "items": tuple(
                item.model_copy(update={"asset_layers": (), "asset_filter": None})
                for item in packaged.items
            ),
        }
    )
    assert asset_layers(catalog, bare) == []
