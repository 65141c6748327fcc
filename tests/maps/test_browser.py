"""The pages in headless Chromium against a live server, with the outside world unreachable."""

from __future__ import annotations

import json

import numpy as np
from maps_support import BAD_FLOORS, BUILDINGS, Visit, open_page

from maps.pages import layer_page
from schemas.geodesy import geodesic_distance_m, wgs84_to_gcj02

READY = "() => window.sibiaoPage && window.sibiaoPage.ready"
DRAWN = "() => window.sibiaoPage.overlay.sibiaoCounter.drawn > 0"
# Pixels of a colour (within a tolerance) on the canvases of a pane.
PAINTED = """([pane, rgb]) => {
  let n = 0;
  for (const canvas of document.querySelectorAll(`.leaflet-${pane}-pane canvas`)) {
    if (!canvas.width) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 40 && Math.abs(data[i] - rgb[0]) < 16 && Math.abs(data[i + 1] - rgb[1]) < 16
          && Math.abs(data[i + 2] - rgb[2]) < 16) n++;
    }
  }
  return n;
}"""
# Page coordinates of a lon/lat on the map.
AT = """([lat, lon]) => {
  const map = window.sibiaoPage.map, box = map.getContainer().getBoundingClientRect();
  const p = map.latLngToContainerPoint([lat, lon]);
  return [box.left + p.x, box.top + p.y];
}"""


def _rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def _clean(visit: Visit) -> None:
    bad = [(status, url) for status, url in visit.responses if status >= 400]
    assert visit.outside == [], visit.outside
    assert visit.failed == [], visit.failed
    assert bad == [], bad
    assert visit.errors == [], visit.errors


def _open_layer(visit: Visit, url: str) -> None:
    visit.page.goto(url, wait_until="load")
    visit.page.wait_for_function(READY, timeout=20_000)
    visit.page.wait_for_function(DRAWN, timeout=20_000)
    visit.page.wait_for_load_state("networkidle")


def test_layer_page_draws_tiles_rejects_extent_and_history(
    maps_server, maps_db, browser, artifacts
):
    visit = open_page(browser)
    page = visit.page
    try:
        _open_layer(visit, f"{maps_server}/maps/layers/building")
        assert page.locator(".leaflet-container").count() == 1
        state = page.evaluate(
            """() => { const p = window.sibiaoPage; return {
                errors: p.errors, rejects: p.rejects.getLayers().length,
                extent: p.extent.getLayers().length, zoom: p.map.getZoom(),
                base: p.bases[Object.keys(p.bases)[0]].sibiaoCounter.drawn,
                tiles: document.querySelectorAll('.leaflet-sibiao-layer-pane canvas').length}; }"""
        )
        assert state["errors"] == []
        assert state["rejects"] == BAD_FLOORS and state["extent"] == 1
        assert state["tiles"] >= 1 and state["base"] > 0 and state["zoom"] >= 13
        colour = _rgb(maps_db.catalog.layer("building").style.color)
        assert page.evaluate(PAINTED, ["sibiao-layer", colour]) > 200
        red = page.locator('.leaflet-sibiao-rejects-pane path[stroke="#d50000"]')
        assert red.count() == BAD_FLOORS  # rejected rows drawn in red

        summary = page.inner_text("#sibiao-summary")
        assert str(BUILDINGS - BAD_FLOORS) in summary and "113.2" in summary
        load = maps_db.loads["building"].batch_id
        assert f"#{load}" in page.inner_text("#sibiao-load")
        versions = page.evaluate("() => Sibiao.fetchJson('/layers/building/versions')")
        assert [v["version"] for v in versions if v["batch_id"]] == [2, 1]  # newest first
        assert page.locator("#sibiao-versions tbody tr").count() == len(versions)
        assert page.locator("#sibiao-rejects tbody tr").count() == BAD_FLOORS
        assert page.locator(f'#sibiao-rejects a[href="/loads/{load}/rejects.csv"]').count() == 1

        # A click on a rejected footprint opens its reason; on a building, its attributes.
        page.mouse.click(*page.evaluate(AT, [23.4017 + 0.0003, 113.205 + 0.0016 * 7 + 0.0003]))
        page.wait_for_selector(".leaflet-popup-content")
        popup = page.inner_text(".leaflet-popup-content")
        assert "floors" in popup and "拒绝行" in popup
        page.mouse.click(*page.evaluate(AT, [23.3953, 113.2053]))
        page.wait_for_function(
            "() => document.querySelector('.leaflet-popup-content')?.innerText.includes('4401')"
        )
        assert "440114" in page.inner_text(".leaflet-popup-content")
        page.screenshot(path=str(artifacts / "maps-layer-building.png"))
        _clean(visit)
    finally:
        visit.close()


def test_load_page_reports_that_load(maps_server, maps_db, browser):
    first = maps_db.loads["building_v1"].batch_id
    visit = open_page(browser)
    try:
        _open_layer(visit, f"{maps_server}/maps/loads/{first}")
        assert f"#{first}" in visit.page.inner_text("#sibiao-load")
        assert "没有拒绝行" in visit.page.inner_text("#sibiao-rejects")
        assert visit.page.evaluate("() => window.sibiaoPage.rejects.getLayers().length") == 0
        _clean(visit)
    finally:
        visit.close()


def test_page_of_an_empty_layer_says_so(maps_server, browser):
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{maps_server}/maps/layers/street_lamp", wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        page.wait_for_load_state("networkidle")
        assert "尚无数据" in page.inner_text("#sibiao-summary")
        assert "尚无加载记录" in page.inner_text("#sibiao-load")
        assert page.evaluate("() => window.sibiaoPage.overlay.sibiaoCounter.drawn") == 0
        assert any(status == 204 for status, _ in visit.responses)  # empty tiles
        _clean(visit)
    finally:
        visit.close()


SCHOOLS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [113.21 + i * 0.002, 23.40]},
            "properties": {"code": f"44011400000000{i + 1:02d}", "name": f"测试小学{i}", "kind": k},
        }
        for i, k in enumerate(("primary", "nine_year", "university"))
    ],
}


def test_upload_page_takes_a_dropped_file_and_reports(maps_server, browser, artifacts):
    visit = open_page(browser, height=1100)
    page = visit.page
    try:
        page.goto(f"{maps_server}/maps/upload", wait_until="load")
        page.select_option("#sibiao-layer", "school")
        page.fill("#sibiao-crs", "4326")
        page.select_option("#sibiao-mode", "replace")
        page.evaluate(
            """(text) => {
                const data = new DataTransfer();
                data.items.add(new File([text], 'schools.geojson', {type: 'application/geo+json'}));
                const zone = document.getElementById('sibiao-drop');
                zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true}));
                zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
            }""",
            json.dumps(SCHOOLS, ensure_ascii=False),
        )
        assert "schools.geojson" in page.inner_text("#sibiao-file-name")
        page.click("#sibiao-submit")
        page.wait_for_selector("#sibiao-report:not([hidden])", timeout=30_000)
        report = page.inner_text("#sibiao-report")
        status = page.evaluate("() => window.sibiaoUpload.status")
        assert status["state"] == "committed", (status, report)
        assert status["loaded"] == 2 and status["rejected"] == 1
        assert "已完成" in report and "kind" in report
        assert page.locator("#sibiao-report tbody tr").count() == 1
        load = status["id"]
        assert page.get_attribute("#sibiao-rejects-csv", "href") == f"/loads/{load}/rejects.csv"
        page.screenshot(path=str(artifacts / "maps-upload-report.png"), full_page=True)

        page.click("#sibiao-load-page")
        page.wait_for_function(READY, timeout=20_000)
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"/maps/loads/{load}")
        assert page.evaluate("() => window.sibiaoPage.rejects.getLayers().length") == 1
        assert page.evaluate("() => window.sibiaoPage.overlay.sibiaoCounter.drawn") >= 2
        _clean(visit)
    finally:
        visit.close()


def test_upload_page_reports_a_failed_load_and_an_api_refusal(maps_server, browser):
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{maps_server}/maps/upload?layer=school", wait_until="load")
        assert page.input_value("#sibiao-layer") == "school"
        page.set_input_files(
            "#sibiao-file",
            files=[{"name": "s.geojson", "mimeType": "application/json", "buffer": b"{}"}],
        )
        page.click("#sibiao-submit")
        page.wait_for_selector("#sibiao-report.failed:not([hidden])", timeout=30_000)
        assert "失败" in page.inner_text("#sibiao-report")
        assert page.inner_text("#sibiao-report .sibiao-message").strip()
        # A layer the API does not know: the refusal's detail is shown by the form.
        page.evaluate(
            """() => { const o = new Option('x', 'no_such_layer');
                       document.getElementById('sibiao-layer').add(o); }"""
        )
        page.select_option("#sibiao-layer", "no_such_layer")
        page.click("#sibiao-submit")
        page.wait_for_selector("#sibiao-form-error:not([hidden])", timeout=30_000)
        assert "no_such_layer" in page.inner_text("#sibiao-form-error")
    finally:
        visit.close()


def test_gcj02_base_map_shifts_the_overlays(maps_server, maps_db, browser, artifacts):
    amap = maps_db.settings.model_copy(update={"basemap": "amap"})
    html = layer_page(maps_db.catalog, amap, "building")
    visit = open_page(browser)
    page = visit.page
    try:
        page.route(
            f"{maps_server}/gcj02-test",
            lambda route: route.fulfill(body=html, content_type="text/html; charset=utf-8"),
        )
        _open_layer(visit, f"{maps_server}/gcj02-test")
        assert page.evaluate("() => window.sibiaoPage.map.options.crs.code") == "GCJ02"
        # The outside tiles were asked for (and refused): the AMap base map is in use.
        assert visit.outside and all("autonavi.com" in url for url in visit.outside)
        lons, lats = np.array([113.205, 113.3, 113.03]), np.array([23.395, 23.5, 23.62])
        js = page.evaluate(
            """([lons, lats]) => lons.map((lon, i) => {
                const g = Sibiao.gcj02.fromWgs84(lon, lats[i]);
                return g.concat(Sibiao.gcj02.toWgs84(g[0], g[1]));
            })""",
            [lons.tolist(), lats.tolist()],
        )
        glon, glat = wgs84_to_gcj02(lons, lats)
        got = np.array(js)
        assert np.abs(got[:, 0] - glon).max() < 1e-9 and np.abs(got[:, 1] - glat).max() < 1e-9
        assert np.abs(got[:, 2] - lons).max() < 1e-8 and np.abs(got[:, 3] - lats).max() < 1e-8
        # A rejected row is drawn where GCJ-02 puts it, hundreds of metres from WGS84.
        shift = page.evaluate(
            """() => {
                const map = window.sibiaoPage.map, z = map.getZoom();
                const ll = window.sibiaoPage.rejects.getLayers()[0].getBounds().getCenter();
                const g = Sibiao.gcj02.fromWgs84(ll.lng, ll.lat);
                const drawn = map.project(ll, z);
                const plain = L.CRS.EPSG3857.latLngToPoint(ll, z);
                const target = L.CRS.EPSG3857.latLngToPoint(L.latLng(g[1], g[0]), z);
                return [drawn.distanceTo(target), drawn.distanceTo(plain), ll.lng, ll.lat, z];
            }"""
        )
        error_px, moved_px, lon, lat, zoom = shift
        metres = float(geodesic_distance_m(lon, lat, *wgs84_to_gcj02(lon, lat)))
        assert error_px < 0.01 and 100 < metres < 1000
        metres_per_px = 40_075_016.7 * np.cos(np.radians(lat)) / (256 * 2**zoom)
        assert abs(moved_px * metres_per_px - metres) < 0.05 * metres
        assert page.evaluate("() => window.sibiaoPage.overlay.sibiaoCounter.drawn") == (
            BUILDINGS - BAD_FLOORS
        )
        page.screenshot(path=str(artifacts / "maps-layer-gcj02.png"))
        bad = [(status, url) for status, url in visit.responses if status >= 400]
        assert bad == [] and [e for e in visit.errors if "ERR_FAILED" not in e] == []
    finally:
        visit.close()


def test_pages_send_the_sign_in_token_and_ask_for_one_when_refused(maps_server, browser):
    visit = open_page(browser)
    page = visit.page
    seen: dict[str, str | None] = {}

    def strip(route):  # note the header, then send the request on without it (auth is off)
        headers = dict(route.request.headers)
        seen[route.request.url] = headers.pop("authorization", None)
        route.continue_(headers=headers)

    try:
        page.context.add_init_script("sessionStorage.setItem('sibiao.token', 't0k')")
        page.route(f"{maps_server}/collections/**", strip)
        page.route(f"{maps_server}/layers/**", strip)
        _open_layer(visit, f"{maps_server}/maps/layers/building")
        tiles = [v for u, v in seen.items() if "/tiles/" in u]
        api = [v for u, v in seen.items() if "/versions" in u or "/loads" in u]
        assert tiles and api and set(tiles + api) == {"Bearer t0k"}, seen
        assert "退出" in page.inner_text("#sibiao-auth")
    finally:
        visit.close()

    visit = open_page(browser)
    page = visit.page
    try:
        refusal = '{"title": "Unauthenticated", "status": 401, "detail": "sign in"}'
        page.route(
            f"{maps_server}/layers/building/versions",
            lambda route: route.fulfill(
                status=401, body=refusal, content_type="application/problem+json"
            ),
        )
        _open_layer(visit, f"{maps_server}/maps/layers/building")
        assert page.locator("#sibiao-auth form input[name=password]").count() == 1
        assert page.evaluate("() => window.sibiaoPage.errors") == []
    finally:
        visit.close()
