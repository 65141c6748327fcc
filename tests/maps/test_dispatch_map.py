"""The dispatcher's map: offline HTML, paged cases, filters, the case card, in Chromium."""

from __future__ import annotations

import httpx
from maps_support import open_page
from ops_support import CASES, NOW, OVERDUE, SO_CASES

from maps import export
from maps.assets import external_references

READY = "() => window.sibiaoPage && window.sibiaoPage.ready && window.sibiaoPage.loads >= 1"
SHOWN = "() => Object.keys(window.sibiaoPage.markers).length"


def test_dispatch_page_is_small_and_offline(ops_server, ops_cases):
    page = httpx.get(f"{ops_server}/maps/dispatch", timeout=30)
    assert page.status_code == 200
    assert len(page.content) < 1_000_000
    assert external_references(page.text) == []
    assert "/maps/static/markercluster/leaflet.markercluster.js" in page.text
    assert "dispatchPage" in page.text
    assert str(ops_cases[0]["source_id"]) not in page.text  # cases are read, never inlined


def test_case_points_are_compact_and_filtered(ops_server, ops_cases):
    with httpx.Client(base_url=ops_server, timeout=30) as http:
        everything = http.get("/cases/points").json()
        assert everything["numberMatched"] == len(CASES) and everything["unlocated"] == 0
        first = everything["features"][0]
        assert first["geometry"]["type"] == "Point"
        assert set(first["properties"]) == {
            "status", "item_code", "category", "overdue", "duplicate_of", "town_code",
            "received_at",
        }  # fmt: skip
        late = http.get("/cases/points", params={"overdue": "true"}).json()
        assert late["numberMatched"] == OVERDUE
        paged = http.get("/cases/points", params={"limit": 2, "offset": 4}).json()
        assert paged["numberReturned"] == 2 and paged["numberMatched"] == len(CASES)
        assert http.get("/cases/points", params={"limit": 0}).status_code in (400, 422)


def test_dispatch_map_filters_and_opens_a_case(ops_server, ops_cases, browser, artifacts):
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{ops_server}/maps/dispatch", wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.locator(".leaflet-container").count() == 1
        assert page.evaluate("() => window.sibiaoPage.errors") == []
        assert page.evaluate(SHOWN) == len(CASES)
        late = "() => window.sibiaoPage.cases.filter(c => c.overdue).length"
        assert page.evaluate(late) == OVERDUE
        # Filters re-query the API without reloading the page.
        page.evaluate("() => { window.notReloaded = true; }")
        page.select_option("select[name=category]", "SO")
        page.wait_for_function("() => window.sibiaoPage.loads >= 2 && !window.sibiaoPage.loading")
        assert page.evaluate(SHOWN) == SO_CASES
        page.check("input[name=overdue]")
        page.wait_for_function("() => window.sibiaoPage.loads >= 3 && !window.sibiaoPage.loading")
        assert page.evaluate(SHOWN) == 1
        assert page.locator(".sibiao-case-dot.overdue").count() == 1
        assert page.locator(".sibiao-case-dot.overdue").count() >= 1
        page.uncheck("input[name=overdue]")
        page.select_option("select[name=category]", "")
        page.wait_for_function(f"() => !window.sibiaoPage.loading && ({SHOWN})() === {len(CASES)}")
        assert page.evaluate("() => window.notReloaded") is True
        # Clicking a marker opens the case card.
        target = ops_cases[0]["id"]
        # zoomToShowLayer's callback does not fire when the marker is shown already: race it
        # against a short timer so the test can never hang here.
        page.evaluate(
            "(id) => Promise.race([new Promise(done => window.sibiaoPage.cluster"
            ".zoomToShowLayer(window.sibiaoPage.markers[id], done)),"
            " new Promise(done => setTimeout(done, 3000))])",
            target,
        )
        page.click(f'.sibiao-case-dot[data-case="{target}"]')
        page.wait_for_function(
            "(id) => document.querySelector('#sibiao-case-card').dataset.caseId == id", arg=target
        )
        card = page.inner_text("#sibiao-case-card")
        assert f"#{target}" in card and ops_cases[0]["grid_code"] in card
        link = page.get_attribute("#sibiao-case-card a.sibiao-grid-link", "href")
        assert link == f"/maps/grid/{ops_cases[0]['grid_code']}"  # the cell's own page
        assert "超期" in card  # reported three days ago: overdue
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "dispatch-map.png"))
        assert visit.outside == []
        assert visit.errors == [] and visit.failed == []
    finally:
        visit.close()


def test_exported_dispatch_map_filters_its_embedded_cases(ops_db, ops_cases, browser, artifacts):
    html = export.dispatch_page(
        engine=ops_db.engine, settings=ops_db.settings, catalog=ops_db.catalog, now=NOW
    )
    assert "/maps/static" not in html and external_references(html) == []
    path = artifacts / "dispatch-export.html"
    path.write_text(html, encoding="utf-8")
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.evaluate(SHOWN) == len(CASES)
        page.select_option("select[name=category]", "SO")
        page.wait_for_function(f"() => ({SHOWN})() === {SO_CASES}")
        page.check("input[name=overdue]")
        page.wait_for_function(f"() => ({SHOWN})() === 1")
        target = ops_cases[2]["id"]
        page.click(f'.sibiao-case-dot[data-case="{target}"]')
        page.wait_for_function(
            "(id) => document.querySelector('#sibiao-case-card').dataset.caseId == id", arg=target
        )
        assert visit.outside == [] and visit.errors == [] and visit.failed == []
    finally:
        visit.close()
