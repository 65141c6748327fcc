"""The page of one basic grid cell: its outline and divisions, the assets inside it, its cases.

``/maps/grid/{grid_code}`` (:func:`grid_page`, ``static/sibiao/grid.js``). The route looks the
cell up once (:func:`find_cell`, through :func:`layers.features.items`, so an unknown cell
answers a 404 page); the page then reads the API from the browser:

- the assets inside the cell, by layer: ``POST /within`` with the cell's polygon and the
  asset layers the routing rules name (street lamps, manhole covers …) that the catalog
  serves;
- its cases: ``GET /cases/points?grid=<code>``, coloured by step, overdue ones outlined;
  a click shows the case's card from ``GET /cases/{id}``.

The cell's outline (one polygon) and its village and town names (the divisions register)
are in the page's configuration.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from branca.element import Element
from sqlalchemy import Connection

from cases.models import STEP, Status
from cases.rules import RoutingRules
from layers.access import is_served
from layers.divisions import default_divisions
from layers.features import ItemsQuery, items
from layers.live import LiveLayers
from maps.assets import assets, check_offline
from maps.basemap import basemap_config
from maps.operations import STEP_COLOURS, STEP_NAMES
from maps.pages import PageScript, folium_map
from schemas.catalog import Catalog
from schemas.errors import CatalogError, NotFound
from schemas.settings import Settings

GRID_LAYER: Final = "grid_cell"
GRID_CODE: Final = re.compile(r"^\d{15}$")
#: Assets read per layer inside one cell (the /within limit).
ASSETS_PER_LAYER: Final = 2000


@dataclass(frozen=True)
class Cell:
    """A grid cell: its code, GeoJSON feature (storage lon/lat) and division names."""

    code: str
    feature: dict[str, Any]
    village_code: str | None
    village_name: str | None
    town_code: str | None
    town_name: str | None


def _names() -> dict[str, str]:
    try:
        return {d.code: d.name for d in default_divisions()}
    except CatalogError:
        return {}


def find_cell(
    conn: Connection, *, catalog: Catalog, live: LiveLayers, code: str, storage_epsg: int
) -> Cell:
    """Return the grid cell ``code`` with its village and town; raise NotFound."""
    if not GRID_CODE.match(code):
        raise NotFound(f"no grid cell {code[:40]!r}: a grid code has 15 digits")
    page = items(
        conn,
        catalog=catalog,
        live=live,
        code=GRID_LAYER,
        query=ItemsQuery(limit=1, filter=f"code = '{code}'", filter_lang="cql2-text"),
        storage_epsg=storage_epsg,
    )
    if page.returned == 0:
        raise NotFound(f"no grid cell {code}")
    feature = json.loads(f"[{page.features}]")[0]
    village = feature.get("properties", {}).get("village_code")
    town = village[:9] if village else None
    names = _names()
    return Cell(
        code=code,
        feature=feature,
        village_code=village,
        village_name=names.get(village) if village else None,
        town_code=town,
        town_name=names.get(town) if town else None,
    )


def asset_layers(catalog: Catalog, rules: RoutingRules) -> list[dict[str, str]]:
    """Return the served asset layers the routing rules name (code, zh, en), catalog order.

    ``rules`` are the version in force (``cases.routing.current_rules``): an admin's change of
    an item's asset layers shows on the next page.
    """
    named = {code for item in rules.items for code in item.asset_layers or ()}
    found = []
    for layer in catalog.layers:
        if layer.code in named and is_served(layer) and not layer.is_raster:
            found.append({"code": layer.code, "zh": layer.zh, "en": layer.en})
    return found


def grid_config(
    catalog: Catalog, settings: Settings, cell: Cell, rules: RoutingRules
) -> dict[str, Any]:
    """Return the grid page's configuration: the cell, asset layers, step colours, API URLs."""
    return {
        "basemap": basemap_config(catalog, settings, exclude=GRID_LAYER),
        "cell": {
            "code": cell.code,
            "feature": cell.feature,
            "village": {"code": cell.village_code, "name": cell.village_name},
            "town": {"code": cell.town_code, "name": cell.town_name},
        },
        "assetLayers": asset_layers(catalog, rules),
        "assetsPerLayer": ASSETS_PER_LAYER,
        "steps": [
            {"step": k, "name": STEP_NAMES[k], "color": STEP_COLOURS[k]} for k in STEP_COLOURS
        ],
        "statuses": {s.value: STEP[s] for s in Status},
        "api": {
            "within": "/within",
            "points": f"/cases/points?grid={cell.code}&limit=5000",
            "case": "/cases/{id}",
            "dispatch": "/maps/dispatch",
        },
    }


def grid_page(catalog: Catalog, settings: Settings, cell: Cell, rules: RoutingRules) -> str:
    """Return the page of one grid cell (outline, divisions, assets by layer, cases)."""
    config = grid_config(catalog, settings, cell, rules)
    figure, fmap = folium_map(
        settings,
        title=f"网格 Grid cell {cell.code}",
        crs=config["basemap"]["crs"],
        scripts=(("sibiao_grid", assets().grid_js),),
    )
    figure.html.add_child(
        Element('<div id="sibiao-panel" class="sibiao-panel sibiao-ops-panel"></div>'),
        name="sibiao_panel",
    )
    fmap.add_child(PageScript("gridPage", config))
    return check_offline(figure.render())


def missing_cell_page(code: str, reason: str) -> str:
    """Return the small HTML page of an unknown grid cell (served with status 404)."""
    a = assets()
    text = html.escape(reason)
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>无此网格 No such grid cell</title>
<link rel="stylesheet" href="{a.sibiao_css}"></head>
<body class="sibiao-doc"><main class="sibiao-main">
<h1 id="sibiao-not-found">无此网格 No such grid cell</h1>
<p>{text}</p>
<p><code>{html.escape(code[:40])}</code></p>
<p><a href="/maps/dispatch">调度地图 Dispatch map</a> · <a href="/maps/">图层 Layers</a></p>
</main></body></html>"""
    return check_offline(page)
