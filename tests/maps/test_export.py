"""Static export: one HTML file that draws the layer with no server and no network."""

from __future__ import annotations

import pytest
from maps_support import BAD_FLOORS, BUILDINGS, open_page

from maps import export
from maps.assets import external_references
from schemas.errors import InvalidInput, NotFound


def _export(maps_db, code: str = "building", **kwargs) -> str:
    return export.layer_page(
        code, engine=maps_db.engine, settings=maps_db.settings, catalog=maps_db.catalog, **kwargs
    )


def test_exported_page_opens_from_a_file_with_everything_inlined(maps_db, browser, artifacts):
    html = _export(maps_db)
    assert "/maps/static" not in html
    assert external_references(html) == []
    assert "Sibiao.layerPage(" in html and "L.vectorGrid" in html
    path = artifacts / "export-building.html"
    path.write_text(html, encoding="utf-8")

    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function("() => window.sibiaoPage && window.sibiaoPage.ready", timeout=20_000)
        page.wait_for_function("() => window.sibiaoPage.overlay.sibiaoCounter.drawn > 0")
        page.wait_for_timeout(300)
        assert page.locator(".leaflet-container").count() == 1
        state = page.evaluate(
            """() => { const p = window.sibiaoPage; return {
                errors: p.errors, rejects: p.rejects.getLayers().length,
                base: p.bases[Object.keys(p.bases)[0]].sibiaoCounter.drawn}; }"""
        )
        assert state == {"errors": [], "rejects": BAD_FLOORS, "base": state["base"]}
        assert state["base"] > 0  # towns, roads and the river, embedded
        summary = page.inner_text("#sibiao-summary")
        assert str(BUILDINGS - BAD_FLOORS) in summary
        assert page.locator("#sibiao-rejects tbody tr").count() == BAD_FLOORS
        csv = page.get_attribute("#sibiao-rejects a[download]", "href")
        assert csv and csv.startswith("blob:")
        assert "导出于" in page.inner_text("#sibiao-links")
        page.screenshot(path=str(artifacts / "export-building.png"))
        assert visit.outside == [] and visit.failed == [] and visit.errors == []
        assert [r for r in visit.responses if r[0] >= 400] == []
    finally:
        visit.close()


def test_export_of_one_load_and_refusals(maps_db):
    first = maps_db.loads["building_v1"].batch_id
    html = _export(maps_db, load_id=first, max_features=5)
    assert f'"loadId":{first}' in html and "仅前 first 5" in html
    with pytest.raises(InvalidInput, match="not of building"):
        _export(maps_db, load_id=maps_db.loads["river"].batch_id)
    with pytest.raises(NotFound):
        _export(maps_db, code="no_such_layer")
