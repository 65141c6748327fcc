"""The analyst's pages: the map index, the upload page and the layer page.

Pages are HTML strings that read the API from the browser (tiles, GeoJSON, loads); they hold
no data access of their own. The layer page is a folium map (so later pages, the dispatcher's
and the planner's, can add folium elements the same way) plus a side panel; its behaviour is
``static/sibiao/layer.js``, driven by one JSON configuration. An exported page passes
``embedded`` data instead of reading the API (:mod:`maps.export`).

Extension points: :func:`folium_map` gives an offline folium map with the base map of the
settings, and :class:`PageScript` runs a ``Sibiao.<entry>(map, config)`` function of a
static script once the map exists.
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from typing import Any, Final

import folium
from branca.element import Element, Figure, MacroElement
from jinja2 import Environment, FileSystemLoader, Template, select_autoescape

from layers.access import is_served, served_layer
from maps.assets import assets, check_offline, use_offline_assets
from maps.basemap import basemap_config, district_view, layer_spec
from schemas.catalog import Catalog, Layer
from schemas.settings import Settings

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
TMS: Final = "WebMercatorQuad"
#: The layer page draws its layer from this many levels below the catalog's min_zoom.
OVERLAY_ZOOM_SLACK: Final = 4
REJECTS_ON_MAP: Final = 5000
REJECTS_IN_TABLE: Final = 20
CRS_OPTIONS: Final = (
    ("4490", "CGCS2000 经纬度 lon/lat"),
    ("4326", "WGS84 经纬度 lon/lat"),
    ("4547", "CGCS2000 3° Gauss-Kruger CM 114E"),
    ("3857", "Web Mercator"),
    ("gcj02", "GCJ-02 高德/腾讯 AMap/Tencent"),
    ("bd09", "BD-09 百度 Baidu"),
)
MODES: Final = (
    ("replace", "替换 replace — 新版本取代全部要素"),
    ("append", "追加 append — 加入新要素"),
    ("upsert", "更新插入 upsert — 按主键更新或加入"),
)


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=False,
        lstrip_blocks=False,
    )


def script_json(value: Any) -> str:
    """Return JSON safe to place inside a <script> element (no '<', U+2028 or U+2029)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _group_rows(catalog: Catalog, *, vector_only: bool) -> list[dict[str, Any]]:
    """Return the catalog's groups in order with their layers (names, page or not, notes)."""
    rows = []
    for group in sorted(catalog.groups, key=lambda g: g.order):
        layers = []
        for layer in catalog.in_group(group.code):
            if vector_only and layer.is_raster:
                continue
            page = is_served(layer) and not layer.is_raster
            note = None
            if layer.is_raster:
                note = "栅格 raster"
            elif not is_served(layer):
                note = "受限 restricted"
            layers.append(
                {"code": layer.code, "zh": layer.zh, "en": layer.en, "page": page, "note": note}
            )
        if layers:
            rows.append({"zh": group.zh, "en": group.en, "layers": layers})
    return rows


def index_page(catalog: Catalog) -> str:
    """Return the maps index: every layer by group, with links to the layer pages."""
    page = (
        _environment()
        .get_template("index.html")
        .render(title="地图 Maps", assets=assets(), groups=_group_rows(catalog, vector_only=False))
    )
    return check_offline(page)


def upload_page(catalog: Catalog, settings: Settings) -> str:
    """Return the upload page: layer picker, drop zone, CRS and mode, progress, report."""
    config = {
        "api": {
            "upload": "/layers/{code}/loads",
            "load": "/loads/{id}",
            "rejects": "/loads/{id}/rejects.geojson",
            "rejectsCsv": "/loads/{id}/rejects.csv",
            "loadPage": "/maps/loads/{id}",
            "layerPage": "/maps/layers/{code}",
        },
        "pollMs": 500,
        "rejectsInTable": REJECTS_IN_TABLE,
        "maxBytes": settings.max_upload_bytes,
    }
    page = (
        _environment()
        .get_template("upload.html")
        .render(
            title="上传 Upload",
            assets=assets(),
            groups=_group_rows(catalog, vector_only=False),
            crs_options=CRS_OPTIONS,
            modes=MODES,
            config=config,
        )
    )
    return check_offline(page)


class PageScript(MacroElement):
    """Run ``Sibiao.<entry>(map, config)`` once the folium map exists (``window.sibiaoPage``)."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "window.sibiaoPage = Sibiao.{{ this.entry }}({{ this._parent.get_name() }}, "
        "{{ this.config }});"
        "{% endmacro %}"
    )

    def __init__(self, entry: str, config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "SibiaoPage"
        self.entry = entry
        self.config = script_json(config)


def folium_map(
    settings: Settings,
    *,
    title: str,
    crs: str = "EPSG3857",
    scripts: tuple[tuple[str, str], ...] = (),
) -> tuple[Figure, folium.Map]:
    """Return an offline folium map in its own page, centred on the district.

    Only Leaflet, Leaflet.VectorGrid, ``sibiao.js/css`` and the given ``(name, url)`` scripts
    are loaded; ``crs`` is ``GCJ02`` when the base map is GCJ-02 (``basemap_config``).
    """
    use_offline_assets()
    centre, zoom = district_view(settings)
    figure = Figure(title=html.escape(title))
    fmap = folium.Map(
        location=centre,
        zoom_start=zoom,
        tiles=None,
        crs=crs,
        prefer_canvas=True,
        control_scale=True,
        max_zoom=20,
    )
    a = assets()
    fmap.default_js = [
        ("leaflet", a.leaflet_js),
        ("vectorgrid", a.vectorgrid_js),
        ("sibiao", a.sibiao_js),
        *scripts,
    ]
    fmap.default_css = [("leaflet_css", a.leaflet_css), ("sibiao_css", a.sibiao_css)]
    figure.add_child(fmap)
    return figure, fmap


def layer_config(
    catalog: Catalog,
    settings: Settings,
    layer: Layer,
    *,
    load_id: int | None = None,
    embedded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the layer page's configuration: layer, base map, API URLs, embedded data."""
    code = layer.code
    spec = layer_spec(layer)
    spec["tiles"] = f"/collections/{code}/tiles/{TMS}/{{z}}/{{y}}/{{x}}"
    spec["items"] = f"/collections/{code}/items"
    spec["overlayMinZoom"] = max(0, layer.style.min_zoom - OVERLAY_ZOOM_SLACK)
    base = basemap_config(catalog, settings, exclude=code)
    if embedded is not None:
        # An exported page has no server: its base map is embedded data of the platform layers.
        platform = settings.model_copy(update={"basemap": "platform"})
        base = basemap_config(catalog, platform, exclude=code)
    return {
        "layer": spec,
        "basemap": base,
        "loadId": load_id,
        "rejectsOnMap": REJECTS_ON_MAP,
        "rejectsInTable": REJECTS_IN_TABLE,
        "api": {
            "collection": f"/collections/{code}",
            "items": f"/collections/{code}/items",
            "tilejson": f"/collections/{code}/tiles/{TMS}/tilejson.json",
            "versions": f"/layers/{code}/versions",
            "loads": f"/layers/{code}/loads?limit=1",
            "load": "/loads/{id}",
            "rejects": "/loads/{id}/rejects.geojson",
            "rejectsCsv": "/loads/{id}/rejects.csv",
            "loadPage": "/maps/loads/{id}",
            "upload": f"/maps/upload?layer={code}",
        },
        "embedded": embedded,
    }


def layer_page(
    catalog: Catalog,
    settings: Settings,
    code: str,
    *,
    load_id: int | None = None,
    embedded: dict[str, Any] | None = None,
) -> str:
    """Return the layer page of a served vector layer (of one load when ``load_id`` is given).

    Parameters
    ----------
    catalog, settings
        The platform's catalog and settings (base map, district extent).
    code
        A served vector layer; others raise NotFound.
    load_id
        Show this load's report and rejected rows instead of the layer's latest load.
    embedded
        Data to draw instead of reading the API (an exported page; see :mod:`maps.export`).

    Returns
    -------
    str
        The HTML page; it references only ``/maps/static`` assets.
    """
    layer = served_layer(catalog, code)
    config = layer_config(catalog, settings, layer, load_id=load_id, embedded=embedded)
    figure, fmap = folium_map(
        settings,
        title=f"{layer.zh} {layer.en}",
        crs=config["basemap"]["crs"],
        scripts=(("sibiao_layer", assets().layer_js),),
    )
    group = catalog.group(layer.group)
    panel = (
        _environment()
        .get_template("layer_panel.html")
        .render(layer=layer, group=group, load_id=load_id, nav=embedded is None)
    )
    figure.html.add_child(Element(panel), name="sibiao_panel")
    fmap.add_child(PageScript("layerPage", config))
    return check_offline(figure.render())
