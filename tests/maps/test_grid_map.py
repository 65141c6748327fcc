"""The page of one grid cell: outline, village and town, assets by layer, cases, in Chromium."""

from __future__ import annotations

import httpx
from maps_support import open_page

from maps.assets import external_references

A1 = "440114001201001"  # 新街村委会, 新华街道: two CA01 cases, one overdue; no assets
A2 = "440114001201002"  # one street lamp, one PU01 case
READY = "() => window.sibiaoPage && window.sibiaoPage.ready && window.sibiaoPage.loads >= 1"


def test_grid_page_is_offline_and_unknown_cells_get_a_404_page(ops_server, ops_db):
    page = httpx.get(f"{ops_server}/maps/grid/{A1}", timeout=30)
    assert page.status_code == 200
    assert external_references(page.text) == []
    assert "gridPage" in page.text and "新街村委会" in page.text and "新华街道" in page.text
    for code in ("440114999999999", "not-a-cell", "4401140012010011"):
        missing = httpx.get(f"{ops_server}/maps/grid/{code}", timeout=30)
        assert missing.status_code == 404, code
        assert missing.headers["content-type"].startswith("text/html")
        assert "No such grid cell" in missing.text and external_references(missing.text) == []


def test_grid_map_draws_the_cell_its_assets_and_cases(
    ops_server, ops_db, ops_cases, browser, artifacts
):
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{ops_server}/maps/grid/{A2}", wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.locator(".leaflet-container").count() == 1
        assert page.evaluate("() => window.sibiaoPage.errors") == []
        assert page.locator("path.sibiao-grid-outline").count() == 1
        assets = page.evaluate("() => window.sibiaoPage.assets")
        assert assets["street_lamp"] == 1 and assets["manhole_cover"] == 0
        assert page.locator("path.sibiao-grid-asset").count() == 1
        assert "路灯" in page.inner_text("#sibiao-grid-assets")
        assert page.evaluate("() => window.sibiaoPage.cases.length") == 1
        about = page.inner_text("#sibiao-grid-about")
        assert A2 in about and "新街村委会" in about and "新华街道" in about
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "grid-map.png"))

        page.goto(f"{ops_server}/maps/grid/{A1}", wait_until="load")
        page.wait_for_function(READY, timeout=20_000)
        assert page.evaluate("() => window.sibiaoPage.cases.length") == 2
        assert page.evaluate("() => window.sibiaoPage.overdue") == 1
        assert page.locator(".sibiao-case-dot.overdue").count() == 1
        assert page.evaluate("() => Object.values(window.sibiaoPage.assets).every(n => n === 0)")
        assert "格内无部件" in page.inner_text("#sibiao-grid-assets")
        # A click on a case opens its card.
        target = next(c["id"] for c in ops_cases if c["grid_code"] == A1)
        page.click(f'.sibiao-case-dot[data-case="{target}"]')
        page.wait_for_function(
            "(id) => document.querySelector('#sibiao-case-card').dataset.caseId == id", arg=target
        )
        assert f"#{target}" in page.inner_text("#sibiao-case-card")
        assert visit.outside == []
        assert visit.errors == [] and visit.failed == []
    finally:
        visit.close()
