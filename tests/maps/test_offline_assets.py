"""Offline assets: what folium and our pages reference is served by the platform, or inlined."""

from __future__ import annotations

import hashlib

import folium
import pytest
from folium import plugins

from maps.assets import (
    HERE,
    STATIC_PREFIX,
    check_offline,
    external_references,
    folium_defaults,
    references,
    resolve,
    use_offline_assets,
)
from maps.basemap import bands, basemap_config, platform_layers
from maps.export import inline
from schemas.errors import NotFound
from schemas.settings import Settings


def test_vendored_files_match_their_digests():
    vendor = HERE / "static" / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 7
    for line in lines:
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


def _static_paths(html: str) -> list[str]:
    return [url for _, _, url in references(html) if url.startswith(STATIC_PREFIX + "/")]


def test_folium_pages_reference_only_platform_assets():
    use_offline_assets()
    fmap = folium.Map(location=[23.4, 113.2], zoom_start=12, tiles=None)
    folium.Marker([23.4, 113.2], icon=folium.Icon(prefix="fa", icon="house", angle=30)).add_to(fmap)
    cluster = plugins.MarkerCluster().add_to(fmap)
    folium.Marker([23.41, 113.21]).add_to(cluster)
    plugins.HeatMap([[23.4, 113.2, 1.0]]).add_to(fmap)
    plugins.VectorGridProtobuf("/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=building").add_to(
        fmap
    )
    html = fmap.get_root().render()
    assert external_references(html) == []
    paths = _static_paths(html)
    # leaflet, jquery, awesome markers (+font, rotate), cluster (js + 2 css), heat, vectorgrid
    assert len(paths) >= 11, paths
    for url in paths:
        assert resolve(url.removeprefix(STATIC_PREFIX + "/")).is_file(), url
    js, css = folium_defaults()
    assert {name for name, _ in js} == {"leaflet", "jquery", "awesome_markers"}
    assert all(url.startswith(STATIC_PREFIX) for _, url in js + css)


@pytest.mark.parametrize(
    "path",
    [
        "leaflet/../../../../etc/passwd",
        "leaflet/%2e%2e/x.js",
        "sibiao/.hidden.js",
        "leaflet/__init__.py",
        "nosuchlib/leaflet.js",
        "leaflet",
        "leaflet/nope.js",
        "vendor/update.sh",
    ],
)
def test_resolve_refuses_what_is_not_an_asset(path):
    with pytest.raises(NotFound):
        resolve(path)


def test_check_offline_refuses_a_page_that_reaches_a_cdn():
    page = '<script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"></script>'
    with pytest.raises(RuntimeError, match="cdn.jsdelivr.net"):
        check_offline(page)
    assert external_references('<link href="//unpkg.com/x.css" rel="stylesheet">') == [
        "//unpkg.com/x.css"
    ]
    local = '<a href="/maps/upload">x</a><img src="data:image/png;base64,">'
    assert external_references(local) == []


def test_inline_embeds_scripts_styles_and_their_images():
    page = (
        '<html><head><script src="/maps/static/leaflet/leaflet.js"></script>'
        '<link rel="stylesheet" href="/maps/static/leaflet/leaflet.css"/>'
        '<link rel="stylesheet" href="/maps/static/vendor/leaflet.awesome-markers/'
        'leaflet.awesome-markers.css"/></head><body>'
        '<img src="/maps/static/leaflet/images/marker-icon.png"></body></html>'
    )
    out = inline(page)
    assert "/maps/static" not in out
    assert "L.Icon.Default.imagePath" in out  # default markers get data: URI images
    assert out.count("<style>") == 2 and "<script>" in out
    assert 'url("data:image/png;base64,' in out  # leaflet.css layers.png, awesome markers
    assert 'src="data:image/png;base64,' in out


def test_platform_basemap_bands_follow_the_catalog():
    settings = Settings()
    from layers.registry import default_catalog

    catalog = default_catalog(None)
    layers = platform_layers(catalog)
    assert [lyr.code for lyr in layers][0] == catalog.by_role("water_body").code
    grouped = bands(layers)
    assert sum(len(b) for b in grouped) == len(layers)
    for band in grouped:
        zooms = [lyr.style.min_zoom for lyr in band]
        assert max(zooms) - min(zooms) <= 2
    config = basemap_config(catalog, settings, exclude="building")
    urls = [band["url"] for band in config["platform"]["bands"]]
    assert not any("building" in url for url in urls)
    assert all(url.startswith("/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=") for url in urls)
    assert config["crs"] == "EPSG3857" and config["external"] == []


def test_external_basemaps_from_settings():
    from layers.registry import default_catalog

    catalog = default_catalog(None)
    no_key = basemap_config(catalog, Settings(basemap="tianditu"))
    assert no_key["kind"] == "platform" and "SIBIAO_TIANDITU_KEY" in no_key["notice"]
    tianditu = basemap_config(catalog, Settings(basemap="tianditu", tianditu_key="k&1"))
    assert tianditu["crs"] == "EPSG3857" and tianditu["platform"] is not None
    assert all("tk=k%261" in t["url"] for t in tianditu["external"][0]["layers"])
    amap = basemap_config(catalog, Settings(basemap="amap"))
    assert amap["crs"] == "GCJ02" and amap["gcj02"] and amap["platform"] is None
    assert amap["external"][0]["datum"] == "gcj02"
