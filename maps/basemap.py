"""The base map of the map pages: the platform's own layers, or an external provider.

The default base map is drawn from the platform's vector tiles of the layers playing the
roles water body, river, road, building, village, town and district, each styled as the
catalog says. Layers are grouped into *bands* of nearby ``min_zoom`` so a page asks for a
few multi-layer tiles (``/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=...``) rather
than one per layer; within a band a layer is hidden below its own ``min_zoom``.

External providers are optional (``Settings.basemap``):

- ``tianditu``: 天地图 tiles are CGCS2000, which is WGS84 within centimetres, so overlays
  are drawn as they are; the platform base stays offered in the layer switcher.
- ``amap`` and ``tencent``: tiles are GCJ-02. The page then uses the display CRS
  ``L.CRS.GCJ02`` (``sibiao.js``): a Web Mercator whose projection applies WGS84 -> GCJ-02
  to every lat/lng it places (and the inverse when reading the map), so every lat/lng
  overlay lands on the shifted base map while all coordinates in the page stay WGS84.
  Vector tiles are drawn in tile pixels, which no CRS moves, so in this mode overlays are
  read as GeoJSON for the visible box instead; the platform base is not offered (it would
  sit ~500 m off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from layers.access import is_served
from schemas.catalog import Catalog, GeometryType, Layer, LayerRole
from schemas.settings import Settings

TMS: Final = "WebMercatorQuad"
#: Base layers bottom first: the order they are drawn in a tile and the bands' order.
PLATFORM_ROLES: Final = (
    LayerRole.water_body,
    LayerRole.river,
    LayerRole.road,
    LayerRole.building,
    LayerRole.village,
    LayerRole.town,
    LayerRole.district,
)
#: Layers whose min_zoom lie within this many levels share a band (one tile request).
BAND_SPAN: Final = 2
PLATFORM_TITLE: Final = "平台底图 Platform layers"
PLATFORM_ATTRIBUTION: Final = "四标 Sibiao · 花都区"


@dataclass(frozen=True)
class TileSource:
    """One raster tile layer of an external provider."""

    url: str
    subdomains: str
    attribution: str


@dataclass(frozen=True)
class Provider:
    """An external base map: its tile layers and the datum its tiles are drawn in."""

    key: str
    title: str
    datum: str  # "cgcs2000" or "gcj02"
    sources: tuple[TileSource, ...]


def _tianditu(key: str) -> Provider:
    token = quote(key, safe="")

    def wmts(layer: str) -> str:
        return (
            f"https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
            f"&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
            f"&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={token}"
        )

    credit = "© 天地图 Tianditu"
    return Provider(
        "tianditu",
        "天地图 Tianditu",
        "cgcs2000",
        (TileSource(wmts("vec"), "01234567", credit), TileSource(wmts("cva"), "01234567", credit)),
    )


AMAP: Final = Provider(
    "amap",
    "高德地图 AMap",
    "gcj02",
    (
        TileSource(
            "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
            "&x={x}&y={y}&z={z}",
            "1234",
            "© 高德地图 AMap",
        ),
    ),
)
TENCENT: Final = Provider(
    "tencent",
    "腾讯地图 Tencent",
    "gcj02",
    (
        TileSource(
            "https://rt{s}.map.gtimg.com/tile?z={z}&x={x}&y={-y}&styleid=1000&scene=0",
            "0123",
            "© 腾讯地图 Tencent",
        ),
    ),
)


def provider(settings: Settings) -> Provider | None:
    """Return the configured external provider, or None for the platform's own base map."""
    if settings.basemap == "tianditu":
        return _tianditu(settings.tianditu_key) if settings.tianditu_key else None
    return {"amap": AMAP, "tencent": TENCENT}.get(settings.basemap)


def path_style(layer: Layer) -> dict[str, Any]:
    """Return Leaflet path options (also VectorGrid symbolizer options) from a catalog style."""
    style = layer.style
    lines = layer.geometry.single is GeometryType.linestring
    return {
        "color": style.color,
        "weight": style.weight,
        "opacity": style.opacity,
        "fill": not lines,
        "fillColor": style.fill_color or style.color,
        "fillOpacity": style.fill_opacity,
        "radius": style.radius,
    }


def layer_spec(layer: Layer) -> dict[str, Any]:
    """Return what a page needs to draw a layer: names, geometry, style, zoom, label."""
    return {
        "code": layer.code,
        "zh": layer.zh,
        "en": layer.en,
        "group": layer.group,
        "geometry": layer.geometry.value,
        "style": path_style(layer),
        "minZoom": layer.style.min_zoom,
        "label": layer.style.label_field,
    }


def platform_layers(catalog: Catalog, *, exclude: str | None = None) -> list[Layer]:
    """Return the served layers of the platform base map, bottom first (less ``exclude``)."""
    found = []
    for role in PLATFORM_ROLES:
        try:
            layer = catalog.by_role(role)
        except KeyError:
            continue
        if is_served(layer) and not layer.is_raster and layer.code != exclude:
            found.append(layer)
    return found


def bands(layers: list[Layer]) -> list[list[Layer]]:
    """Group layers (bottom first) into bands of nearby min_zoom, ordered by their lowest layer."""
    grouped: list[list[Layer]] = []
    for layer in sorted(layers, key=lambda lyr: lyr.style.min_zoom):
        if grouped and layer.style.min_zoom - grouped[-1][0].style.min_zoom <= BAND_SPAN:
            grouped[-1].append(layer)
        else:
            grouped.append([layer])
    order = {layer.code: i for i, layer in enumerate(layers)}
    for band in grouped:
        band.sort(key=lambda lyr: order[lyr.code])
    return sorted(grouped, key=lambda band: order[band[0].code])


def band_url(band: list[Layer]) -> str:
    """Return the multi-layer tile URL template of a band (labels only as properties)."""
    codes = ",".join(layer.code for layer in band)
    labels = sorted({lyr.style.label_field for lyr in band if lyr.style.label_field})
    url = f"/tiles/{TMS}/{{z}}/{{y}}/{{x}}?collections={codes}"
    return url + (f"&properties={','.join(labels)}" if labels else "")


def basemap_config(
    catalog: Catalog, settings: Settings, *, exclude: str | None = None
) -> dict[str, Any]:
    """Return the base map a page draws: CRS, platform bands and/or external tile layers.

    ``exclude`` names a layer the page draws itself (left out of the platform base).
    """
    external = provider(settings)
    notice = None
    if settings.basemap == "tianditu" and external is None:
        notice = "天地图需要密钥 (SIBIAO_TIANDITU_KEY); 已改用平台底图 using the platform base map"
    gcj02 = external is not None and external.datum == "gcj02"
    platform = None
    if not gcj02:
        platform = {
            "title": PLATFORM_TITLE,
            "attribution": PLATFORM_ATTRIBUTION,
            "bands": [
                {
                    "minZoom": min(lyr.style.min_zoom for lyr in band),
                    "url": band_url(band),
                    "layers": [layer_spec(lyr) for lyr in band],
                }
                for band in bands(platform_layers(catalog, exclude=exclude))
            ],
        }
    providers = []
    if external is not None:
        providers.append(
            {
                "key": external.key,
                "title": external.title,
                "datum": external.datum,
                "layers": [
                    {"url": s.url, "subdomains": s.subdomains, "attribution": s.attribution}
                    for s in external.sources
                ],
            }
        )
    return {
        "kind": external.key if external else "platform",
        "crs": "GCJ02" if gcj02 else "EPSG3857",
        "gcj02": gcj02,
        "platform": platform,
        "external": providers,
        "default": external.title if external else PLATFORM_TITLE,
        "notice": notice,
    }


def district_view(settings: Settings) -> tuple[list[float], int]:
    """Return the centre [lat, lon] and a zoom that shows the district extent."""
    west, south, east, north = settings.district_extent
    span = max(east - west, north - south, 1e-6)
    zoom = int(max(3, min(16, math.floor(math.log2(1000.0 / span)))))  # ~1000 px wide
    return [(south + north) / 2, (west + east) / 2], zoom
