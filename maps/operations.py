"""The dispatcher's and the planner's map pages (folium maps driven by static scripts).

Both pages read the API from the browser; nothing of the data is inlined in the HTML:

- ``/maps/dispatch`` (:func:`dispatch_page`, ``static/sibiao/dispatch.js``): cases read from
  ``GET /cases/points`` (compact GeoJSON) page by page (``limit`` 5000), coloured by step
  of the five-step loop, overdue ones outlined in pulsing red, clustered at low zoom
  (Leaflet.markercluster); grid cells, village and town boundaries from the platform's
  vector tiles; filters that re-query the API; the case card from ``GET /cases/{id}``;
  a refresh every ``refreshMs``.
- ``/maps/planner`` (:func:`planner_page`, ``static/sibiao/planner.js``): an incident point,
  the nearest features of chosen layers (``GET /nearby``) with distance lines and labels,
  radius rings, the values of the flood-risk and DEM rasters sampled at the point
  (``GET /rasters/{code}/point``), the rasters themselves as optional overlays in the layer
  control with a legend (PNG tiles, ``GET /rasters/{code}/tiles/WebMercatorQuad/{z}/{y}/{x}.png``,
  coloured by ``layers/data/raster_ramps.yaml``), and the coverage gaps of a chosen layer
  (``GET /coverage``).
"""

from __future__ import annotations

from typing import Any, Final

from branca.element import Element

from cases.models import STEP, Status
from cases.rules import load_routing_rules
from layers.access import is_served
from layers.divisions import default_divisions
from layers.raster_tiles import ramp_for
from maps.assets import assets, check_offline
from maps.basemap import TMS, basemap_config, layer_spec
from maps.pages import PageScript, folium_map
from schemas.catalog import Catalog, Layer, LayerRole
from schemas.errors import CatalogError, InvalidInput, NotFound
from schemas.settings import Settings

#: Overlays of the dispatcher's map, bottom first (by catalog role, not code).
DISPATCH_OVERLAYS: Final = (LayerRole.town, LayerRole.village, LayerRole.grid_cell)
#: Colours of the five steps (1 reported … 5 closed) and of merged duplicates (0).
STEP_COLOURS: Final = {
    1: "#1e88e5",
    2: "#8e24aa",
    3: "#fb8c00",
    4: "#43a047",
    5: "#757575",
    0: "#bdbdbd",
}
STEP_NAMES: Final = {
    1: "巡查报告 reported",
    2: "调度派遣 dispatched",
    3: "协调处置 handling",
    4: "跟踪回访 follow-up",
    5: "评价结案 closed",
    0: "已合并 merged",
}
PAGE_SIZE: Final = 5000
REFRESH_MS: Final = 60_000
#: Layers the planner shows by default (those of them the catalog serves).
PLANNER_LAYERS: Final = (
    "emergency_stockpile",
    "emergency_shelter",
    "fire_hydrant",
    "pumping_station",
    "hospital",
)
PLANNER_RASTERS: Final = (LayerRole.flood_risk, LayerRole.dem)
RINGS_M: Final = (500, 1000, 2000)
MAX_PLANNER_LAYERS: Final = 10


def role_codes(catalog: Catalog, roles: tuple[LayerRole, ...]) -> list[str]:
    """Return the codes of the layers playing ``roles``, in order (roles nobody plays left out)."""
    codes = []
    for role in roles:
        try:
            codes.append(catalog.by_role(role).code)
        except KeyError:
            continue
    return codes


def _overlay_spec(catalog: Catalog, code: str) -> dict[str, Any] | None:
    try:
        layer = catalog.layer(code)
    except KeyError:
        return None
    if not is_served(layer) or layer.is_raster:
        return None
    spec = layer_spec(layer)
    spec["tiles"] = f"/collections/{code}/tiles/{TMS}/{{z}}/{{y}}/{{x}}"
    spec["items"] = f"/collections/{code}/items"
    spec["overlayMinZoom"] = 0
    return spec


def _towns() -> list[dict[str, str]]:
    try:
        return [{"code": d.code, "name": d.name} for d in default_divisions() if d.level == "town"]
    except CatalogError:
        return []


def _categories() -> list[dict[str, str]]:
    try:
        rules = load_routing_rules()
    except CatalogError:
        return []
    return [{"code": c.code, "name": f"{c.zh} {c.en}"} for c in rules.categories]


def dispatch_config(
    catalog: Catalog, settings: Settings, *, embedded: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return the dispatcher page's configuration (no cases: the page reads them).

    ``embedded`` (an exported page, :func:`maps.export.dispatch_page`) holds ``points`` (the
    cases), ``overlays`` and ``base`` (FeatureCollections by layer code) and ``exportedAt``.
    """
    overlays = [
        s for s in (_overlay_spec(catalog, c) for c in role_codes(catalog, DISPATCH_OVERLAYS)) if s
    ]
    statuses = [{"value": s.value, "step": STEP[s]} for s in Status]
    base = basemap_config(catalog, settings)
    if embedded is not None:
        platform = settings.model_copy(update={"basemap": "platform"})
        base = basemap_config(catalog, platform)
        drawn = embedded.get("overlays", {})
        overlays = [
            {**spec, "data": drawn[spec["code"]]} for spec in overlays if spec["code"] in drawn
        ]
    return {
        "embedded": embedded,
        "basemap": base,
        "overlays": overlays,
        "steps": [
            {"step": k, "name": STEP_NAMES[k], "color": STEP_COLOURS[k]} for k in STEP_COLOURS
        ],
        "statuses": statuses,
        "towns": _towns(),
        "categories": _categories(),
        "pageSize": PAGE_SIZE,
        "refreshMs": REFRESH_MS,
        "api": {"cases": "/cases", "points": "/cases/points", "case": "/cases/{id}"},
    }


def dispatch_page(
    catalog: Catalog, settings: Settings, *, embedded: dict[str, Any] | None = None
) -> str:
    """Return the dispatcher's map page (cases clustered, filters, case card, refresh)."""
    config = dispatch_config(catalog, settings, embedded=embedded)
    a = assets()
    figure, fmap = folium_map(
        settings,
        title="调度地图 Dispatch map",
        crs=config["basemap"]["crs"],
        scripts=(("markercluster", a.markercluster_js), ("sibiao_dispatch", a.dispatch_js)),
    )
    fmap.default_css = [
        *fmap.default_css,
        ("markercluster_css", a.markercluster_css),
        ("markercluster_default_css", a.markercluster_default_css),
    ]
    figure.html.add_child(
        Element('<div id="sibiao-panel" class="sibiao-panel sibiao-ops-panel"></div>'),
        name="sibiao_panel",
    )
    fmap.add_child(PageScript("dispatchPage", config))
    return check_offline(figure.render())


def planner_layers(catalog: Catalog, codes: str | None) -> list[dict[str, Any]]:
    """Return the specs of the layers asked for (comma-separated) or the served defaults."""
    if codes:
        wanted = [c.strip() for c in codes.split(",") if c.strip()]
        if len(wanted) > MAX_PLANNER_LAYERS:
            raise InvalidInput(f"at most {MAX_PLANNER_LAYERS} layers")
        found = []
        for code in wanted:
            spec = _overlay_spec(catalog, code)
            if spec is None:
                raise InvalidInput(f"{code!r} is not a served vector layer")
            found.append(spec)
        return found
    return [s for s in (_overlay_spec(catalog, c) for c in PLANNER_LAYERS) if s]


def _raster_spec(layer: Layer) -> dict[str, Any]:
    """Return a raster's entry in the planner's config: names, tile URL, legend, opacity."""
    spec: dict[str, Any] = {"code": layer.code, "zh": layer.zh, "en": layer.en}
    try:
        ramp = ramp_for(layer)
    except (NotFound, CatalogError):
        return spec  # no ramp: sampled at the point, never drawn
    spec["tiles"] = f"/rasters/{layer.code}/tiles/{TMS}/{{z}}/{{y}}/{{x}}.png"
    spec["legend"] = ramp.legend()
    spec["unit"] = ramp.unit
    spec["opacity"] = layer.style.opacity
    return spec


def planner_config(
    catalog: Catalog,
    settings: Settings,
    *,
    lon: float | None = None,
    lat: float | None = None,
    crs: str | None = None,
    layers: str | None = None,
    embedded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the planner page's configuration: the point, the layers, rasters, rings.

    ``embedded`` (an exported page, :func:`maps.export.planner_page`) holds ``nearby`` (as
    ``GET /nearby`` answers), ``coverage`` (as ``GET /coverage``, or None), ``base`` and
    ``exportedAt``.
    """
    rasters = []
    for code in role_codes(catalog, PLANNER_RASTERS):
        layer = catalog.layer(code)
        if layer.is_raster:
            rasters.append(_raster_spec(layer))
    west, south, east, north = settings.district_extent
    point = None
    if lon is not None and lat is not None:
        point = {"lon": lon, "lat": lat, "crs": crs or "EPSG:4326"}
    base = basemap_config(catalog, settings)
    if embedded is not None:
        base = basemap_config(catalog, settings.model_copy(update={"basemap": "platform"}))
    return {
        "embedded": embedded,
        "basemap": base,
        "point": point,
        "centre": [(west + east) / 2, (south + north) / 2],
        "layers": planner_layers(catalog, layers),
        "rasters": rasters,
        "rasterTiles": embedded is None,
        "ringsM": list(RINGS_M),
        "k": 3,
        "coverageM": 1000,
        "api": {
            "nearby": "/nearby",
            "coverage": "/coverage",
            "rasterPoint": "/rasters/{code}/point",
        },
    }


def planner_page(
    catalog: Catalog,
    settings: Settings,
    *,
    lon: float | None = None,
    lat: float | None = None,
    crs: str | None = None,
    layers: str | None = None,
    embedded: dict[str, Any] | None = None,
) -> str:
    """Return the planner's map page around an incident point (click the map to move it)."""
    config = planner_config(
        catalog, settings, lon=lon, lat=lat, crs=crs, layers=layers, embedded=embedded
    )
    figure, fmap = folium_map(
        settings,
        title="应急规划地图 Planner map",
        crs=config["basemap"]["crs"],
        scripts=(("sibiao_planner", assets().planner_js),),
    )
    figure.html.add_child(
        Element('<div id="sibiao-panel" class="sibiao-panel sibiao-ops-panel"></div>'),
        name="sibiao_panel",
    )
    fmap.add_child(PageScript("plannerPage", config))
    return check_offline(figure.render())
