"""The map pages over HTTP: offline references, assets served, the data routes they read."""

from __future__ import annotations

import httpx
import pytest
from maps_support import BAD_FLOORS, BUILDINGS

from maps.assets import STATIC_PREFIX, is_external, references

EXPECTED_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".woff2": "font/woff2",
}


def _pages(maps_db) -> list[str]:
    first = maps_db.loads["building_v1"].batch_id
    return ["/maps/", "/maps/upload", "/maps/layers/building", f"/maps/loads/{first}"]


def test_pages_reference_only_platform_assets_that_answer(maps_server, maps_db):
    seen: set[str] = set()
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        for path in _pages(maps_db):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text[:300])
            assert answer.headers["content-type"].startswith("text/html")
            refs = references(answer.text)
            outside = [url for _, _, url in refs if is_external(url)]
            assert outside == [], (path, outside)
            static = [url for _, _, url in refs if url.startswith(STATIC_PREFIX)]
            assert static, path
            seen.update(static)
        assert len(seen) >= 6, seen  # leaflet js+css, vectorgrid, sibiao js+css, layer, upload
        for url in sorted(seen):
            answer = http.get(url)
            assert answer.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert answer.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), url
            assert answer.content, url
            assert "max-age" in answer.headers["cache-control"]


def test_static_route_refuses_other_files(maps_server):
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        for path in (
            "/maps/static/leaflet/nope.js",
            "/maps/static/leaflet/__init__.py",
            "/maps/static/sibiao/%2e%2e/%2e%2e/assets.py",
            "/maps/static/vendor/update.sh",
        ):
            assert http.get(path).status_code == 404, path


def test_layer_page_carries_the_catalog_style_and_upload_lists_groups(maps_server, maps_db):
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        page = http.get("/maps/layers/building").text
        upload = http.get("/maps/upload").text
    building = maps_db.catalog.layer("building")
    assert building.style.color in page and "Sibiao.layerPage(map_" in page
    assert "/collections/building/tiles/WebMercatorQuad/{z}/{y}/{x}" in page
    assert "建筑物" in page and "Buildings" in page
    groups = maps_db.catalog.groups
    assert upload.count("<optgroup") == len(groups)
    assert all(f"{g.zh} · {g.en}" in upload for g in groups)
    assert 'value="building"' in upload and "建筑物 Buildings (building)" in upload


def test_rejects_geojson_carries_reasons_and_locations(maps_server, maps_db):
    batch = maps_db.loads["building"].batch_id
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        located = http.get(f"/loads/{batch}/rejects.geojson", params={"located": "true"})
        first = http.get(f"/loads/{batch}/rejects.geojson", params={"limit": 1})
        clean = http.get(f"/loads/{maps_db.loads['building_v1'].batch_id}/rejects.geojson")
        missing = http.get("/loads/987654321/rejects.geojson")
        too_many = http.get(f"/loads/{batch}/rejects.geojson", params={"limit": 100000})
    assert located.status_code == 200
    assert located.headers["content-type"].startswith("application/geo+json")
    body = located.json()
    assert body["numberMatched"] == body["numberReturned"] == BAD_FLOORS
    rows = [f["properties"]["row"] for f in body["features"]]
    assert rows == sorted(rows) and len(set(rows)) == BAD_FLOORS
    for feature in body["features"]:
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert feature["properties"]["field"] == "floors"
        assert "floors" in feature["properties"]["reason"]
        lon, lat = feature["geometry"]["coordinates"][0][0][0]
        assert 113.2 < lon < 113.22 and 23.39 < lat < 23.41
    assert first.json()["numberReturned"] == 1 and first.json()["numberMatched"] == BAD_FLOORS
    assert clean.json()["features"] == [] and clean.json()["numberMatched"] == 0
    assert missing.status_code == 404
    assert too_many.status_code == 422


def test_layer_loads_are_newest_first(maps_server, maps_db):
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        loads = http.get("/layers/building/loads").json()
        latest = http.get("/layers/building/loads", params={"limit": 1}).json()
        unknown = http.get("/layers/no_such_layer/loads")
    ids = [load["id"] for load in loads]
    assert ids == [maps_db.loads["building"].batch_id, maps_db.loads["building_v1"].batch_id]
    assert loads[0]["rejected"] == BAD_FLOORS and loads[0]["loaded"] == BUILDINGS - BAD_FLOORS
    assert loads[0]["state"] == "committed" and loads[0]["links"][0]["rel"] == "self"
    assert [load["id"] for load in latest] == ids[:1]
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/maps/layers/no_such_layer", "/maps/layers/dem", "/maps/loads/987654321"],
)
def test_pages_of_unknown_or_unserved_things_are_404(maps_server, maps_db, path):
    restricted = [
        lyr.code for lyr in maps_db.catalog.layers if lyr.sensitivity.value == "restricted"
    ]
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        assert http.get(path).status_code == 404
        assert http.get(f"/maps/layers/{restricted[0]}").status_code == 404
