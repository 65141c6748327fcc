"""The dispatcher's map with 12,000 cases stays under 1 MB transferred, cases never inlined.

The tiny district gets its six posted cases copied in one INSERT … SELECT up to 12,000
(``ops_support.bulk_cases``), in a database of its own. Headless Chromium then opens
``/maps/dispatch`` and every byte it transfers is counted: the HTML, every script, style and
image, the vector tiles and the pages of ``/cases/points``. The time it takes to draw is
a timing, measured by ``bench/maps.py``, not here.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live_server import serve
from maps_support import open_page
from ops_support import NOW, T0, Clock, OpsDb, bulk_cases, load_district, post_cases
from sqlalchemy.engine import URL

from api.app import create_app
from layers.registry import default_catalog
from schemas.database import drop_database, ensure_database, make_engine
from schemas.settings import Settings

CASES = 12_000
BUDGET = 1_000_000
READY = "() => window.sibiaoPage && window.sibiaoPage.ready && window.sibiaoPage.loads >= 1"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def many_cases(
    base_settings: Settings, server_url: URL, tmp_path_factory: Any
) -> Iterator[tuple[str, OpsDb]]:
    """Serve the tiny district with 12,000 cases; yield the base URL and the database."""
    name = f"sibiao_test_mapscale_{secrets.token_hex(4)}"
    ensure_database(server_url, name)
    root = base_settings.data_dir / "tmp" / f"mapscale-{secrets.token_hex(4)}"
    root.mkdir(parents=True)
    url = server_url.set(database=name)
    settings = base_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False), "data_dir": root}
    )
    engine = make_engine(url)
    catalog = default_catalog(settings.catalog_dir)
    try:
        load_district(engine, settings, catalog, tmp_path_factory.mktemp("mapscale"))
        app = create_app(settings, catalog=catalog)
        clock = Clock(T0)
        app.state.clock = clock
        with serve(app, "uvicorn-mapscale") as base:
            post_cases(base, clock)
            clock.at = NOW
            assert bulk_cases(engine, CASES) == CASES
            yield base, OpsDb(settings, engine, catalog)
    finally:
        engine.dispose()
        drop_database(server_url, name)
        shutil.rmtree(root, ignore_errors=True)


def test_dispatch_map_with_12000_cases_transfers_under_1_mb(many_cases, browser, artifacts):
    base, _ = many_cases
    html = httpx.get(f"{base}/maps/dispatch", timeout=30)
    assert html.status_code == 200 and len(html.content) < 50_000
    assert "-bulk-" not in html.text and '"coordinates"' not in html.text  # nothing inlined
    visit = open_page(browser)
    page = visit.page
    finished: list[Any] = []
    page.on("requestfinished", lambda request: finished.append(request))
    try:
        page.goto(f"{base}/maps/dispatch", wait_until="load")
        page.wait_for_function(READY, timeout=60_000)
        page.wait_for_load_state("networkidle", timeout=30_000)
        assert page.evaluate("() => window.sibiaoPage.errors") == []
        shown = page.evaluate("() => Object.keys(window.sibiaoPage.markers).length")
        assert shown == page.evaluate("() => window.sibiaoPage.total") == CASES
        sizes = {r.url: r.sizes() for r in finished}
        transferred = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes.values())
        points = [u for u in sizes if "/cases/points" in u]
        assert len(points) == 3  # 12,000 cases in pages of 5,000
        assert any(u.endswith("/maps/dispatch") for u in sizes)
        assert any(u.endswith("leaflet.js") for u in sizes)
        by_kind = {
            "points": sum(sizes[u]["responseBodySize"] for u in points),
            "all": transferred,
        }
        (artifacts / "dispatch-12000-bytes.txt").write_text(
            "\n".join(
                f"{s['responseBodySize'] + s['responseHeadersSize']:>9} {u}"
                for u, s in sorted(sizes.items())
            )
            + f"\n{transferred:>9} total\n",
            encoding="utf-8",
        )
        assert transferred < BUDGET, by_kind
        page.screenshot(path=str(artifacts / "dispatch-12000.png"))
        assert visit.outside == [] and visit.errors == [] and visit.failed == []
    finally:
        visit.close()
