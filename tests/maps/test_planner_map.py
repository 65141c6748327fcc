"""The planner's map: offline HTML, nearest features with distance lines, rings, in Chromium."""

from __future__ import annotations

import httpx
from maps_support import open_page

from maps import export
from maps.assets import external_references

LAYERS = "street_lamp,manhole_cover"
POINT = "lon=113.2152&lat=23.4150"
READY = "() => window.sibiaoPage && window.sibiaoPage.ready && window.sibiaoPage.runs >= 1"


def test_planner_page_is_offline_and_checks_layers(ops_server, ops_db):
    page = httpx.get(f"{ops_server}/maps/planner?{POINT}", timeout=30)
    assert page.status_code == 200
    assert external_references(page.text) == []
    assert "plannerPage" in page.text and "rasters/{code}/point" in page.text
    bad = httpx.get(f"{ops_server}/maps/planner?{POINT}&layers=no_such_layer", timeout=30)
    assert bad.status_code == 400


def test_planner_map_draws_nearest_features_and_lines(ops_server, ops_db, browser, artifacts):
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{ops_server}/maps/planner?{POINT}&layers={LAYERS}", wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.locator(".leaflet-container").count() == 1
        state = page.evaluate(
            """() => { const p = window.sibiaoPage; return {
                errors: p.errors, found: p.found, markers: p.facilities.getLayers().length,
                lines: p.lines.getLayers().length, rings: p.rings.getLayers().length,
                rasters: p.rasterValues}; }"""
        )
        assert state["errors"] == []
        assert state["found"] == {"street_lamp": 2, "manhole_cover": 2}
        assert state["markers"] == 4 and state["lines"] == 4
        assert state["rings"] == 6  # three circles and their labels
        assert set(state["rasters"]) == {"flood_risk", "dem"}  # sampled (not loaded here)
        assert page.locator("path.sibiao-distance-line").count() == 4
        assert page.locator(".sibiao-incident").count() == 1
        assert page.locator(".leaflet-tooltip.sibiao-distance-label").count() == 2
        assert " m" in page.inner_text("#sibiao-nearest")
        # Unticking a layer queries again without it.
        page.uncheck("input[name=layer][value=manhole_cover]")
        page.wait_for_function("() => window.sibiaoPage.runs >= 2")
        page.wait_for_function("() => window.sibiaoPage.lines.getLayers().length === 2")
        # Coverage gaps of a chosen layer: grid cells farther than D from every lamp.
        page.fill("input[name=max_distance_m]", "600")
        page.select_option("select[name=coverage_layer]", "street_lamp")
        page.wait_for_function(
            "() => /uncovered/.test(document.querySelector('#sibiao-coverage').textContent)"
        )
        assert page.evaluate("() => window.sibiaoPage.gaps.getLayers().length") >= 1
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "planner-map.png"))
        assert visit.outside == []
        assert [e for e in visit.errors if "404" not in e] == []  # rasters are not loaded here
    finally:
        visit.close()


def test_exported_planner_map_draws_from_embedded_answers(ops_db, browser, artifacts):
    html = export.planner_page(
        engine=ops_db.engine,
        settings=ops_db.settings,
        catalog=ops_db.catalog,
        lon=113.2152,
        lat=23.4150,
        layers=LAYERS,
        coverage_layer="street_lamp",
        max_distance_m=600,
    )
    assert "/maps/static" not in html and external_references(html) == []
    path = artifacts / "planner-export.html"
    path.write_text(html, encoding="utf-8")
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.evaluate("() => window.sibiaoPage.lines.getLayers().length") == 4
        assert page.evaluate("() => window.sibiaoPage.gaps.getLayers().length") >= 1
        assert "not in the export" in page.inner_text("#sibiao-rasters")
        assert visit.outside == [] and visit.errors == [] and visit.failed == []
    finally:
        visit.close()
