"""Read what the case stream needs from a generated district's clean ``truth`` files."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely import Polygon

from cases.rules import load_routing_rules
from cases.synthetic import AddressPoint
from layers.divisions import default_divisions
from schemas.catalog import Catalog, LayerRole
from schemas.errors import InvalidInput

TRUTH_DIR = "truth"


def asset_layer_codes() -> set[str]:
    """Return the layers the routing rules attach cases to (kept as truth by the generator)."""
    return set(load_routing_rules().asset_layer_codes)


def _read(folder: Path, code: str) -> gpd.GeoDataFrame | None:
    path = folder / TRUTH_DIR / f"{code}.parquet"
    return gpd.read_parquet(path) if path.exists() else None


def case_inputs(
    folder: Path, catalog: Catalog
) -> tuple[list[AddressPoint], dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Polygon]]:
    """Return house numbers, asset points and village polygons of a generated district."""
    houses = _read(folder, catalog.by_role(LayerRole.house_number).code)
    villages = _read(folder, catalog.by_role(LayerRole.village).code)
    if houses is None or villages is None:
        raise InvalidInput(
            f"{folder}: no truth/ files of a generated district; run `sibiao generate` there first"
        )
    towns = {d.code: d.name for d in default_divisions() if d.level == "town"}
    addresses = [
        AddressPoint(
            address=row.address,
            road=row.road_name or "",
            number=row.number,
            town_code=row.town_code,
            town_name=towns.get(row.town_code, ""),
            village_code=row.village_code or "",
            lon=pt.x,
            lat=pt.y,
        )
        for row, pt in zip(houses.itertuples(), houses.geometry, strict=True)
        if row.village_code
    ]
    assets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for code in sorted(asset_layer_codes()):
        frame = _read(folder, code)
        if frame is not None and len(frame):
            anchors = shapely.point_on_surface(frame.geometry.to_numpy())
            assets[code] = (shapely.get_x(anchors), shapely.get_y(anchors))
    polygons = {
        row.code: geom for row, geom in zip(villages.itertuples(), villages.geometry, strict=True)
    }
    return addresses, assets, polygons
