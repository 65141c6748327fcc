"""Dispatcher map benchmark: how long headless Chromium takes to draw 12,000 cases.

Usage: ``.venv/bin/python -m bench.maps [--cases 12000] [--peer 1200] [--runs 3]``.

Loads the dispatch tests' tiny district into a throwaway database, posts its six cases and
copies them (one INSERT … SELECT) up to ``--cases``; serves the app with uvicorn on
127.0.0.1 (authentication off) and opens ``/maps/dispatch`` in Debian's Chromium with every
outside host unresolvable. Measured from the navigation's start:

- *data*: the last page of ``/cases/points`` read and the markers handed to the cluster
  (``sibiaoPage.ready``);
- *drawn*: the cluster icons are in the DOM and two animation frames have passed;
- *API only* (a peer): the same pages of ``/cases/points`` read with httpx, no browser.

The same is measured with ``--peer`` cases in the same run (a tenth by default), and the
bytes transferred are counted. The issue's target is drawn < 2 s at 12,000 cases; the peer
ratio says how the page scales. Prints the load average beside the figures: on a busy
machine, run again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "maps")]

from live_server import serve  # noqa: E402
from ops_support import NOW, T0, Clock, bulk_cases, load_district, post_cases  # noqa: E402

from api.app import create_app  # noqa: E402
from layers.registry import default_catalog  # noqa: E402
from schemas.database import (  # noqa: E402
    cluster_for,
    drop_database,
    ensure_database,
    make_engine,
    parse_url,
)
from schemas.settings import Settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
READY = "() => window.sibiaoPage && window.sibiaoPage.ready && window.sibiaoPage.loads >= 1"
DRAWN = """() => new Promise(done => {
    const look = () => document.querySelector('.marker-cluster, .sibiao-case-icon')
        ? requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())))
        : setTimeout(look, 5);
    look();
})"""


def _district(cases: int) -> tuple[Any, Any, Any]:
    """Return (server context manager, engine, drop) of a district with ``cases`` cases."""
    base = Settings()
    if base.database_url is not None:
        server = parse_url(base.database_url).set(database="postgres")
    else:
        cluster = cluster_for(base)
        cluster.start()
        server = parse_url(cluster.url("postgres"))
    name = f"sibiao_bench_maps_{secrets.token_hex(4)}"
    ensure_database(server, name)
    url = server.set(database=name)
    data = Path(tempfile.mkdtemp(prefix="sibiao-bench-maps-"))
    settings = base.model_copy(
        update={
            "database_url": url.render_as_string(hide_password=False),
            "data_dir": data,
            "auth_enabled": False,
        }
    )
    engine = make_engine(url)
    catalog = default_catalog(settings.catalog_dir)
    load_district(engine, settings, catalog, data)
    app = create_app(settings, catalog=catalog)
    clock = Clock(T0)
    app.state.clock = clock

    def drop() -> None:
        engine.dispose()
        drop_database(server, name)
        shutil.rmtree(data, ignore_errors=True)

    return app, clock, (engine, drop, cases)


def _measure(browser: Any, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    finished: list[Any] = []
    page.on("requestfinished", lambda request: finished.append(request))
    context.route(
        "**/*",
        lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort(),
    )
    try:
        page.goto(f"{url}/maps/dispatch", wait_until="commit")
        page.wait_for_function(READY, timeout=120_000, polling="raf")
        ready = float(page.evaluate("() => performance.now()"))
        drawn = float(page.evaluate(DRAWN))
        page.wait_for_load_state("networkidle", timeout=60_000)
        shown = int(page.evaluate("() => Object.keys(window.sibiaoPage.markers).length"))
        sizes = [r.sizes() for r in finished]
        kb = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes) / 1024
        return {"data_ms": ready, "drawn_ms": drawn, "shown": shown, "kb": kb}
    finally:
        context.close()


def _api_ms(url: str) -> float:
    """Return the time to read every page of /cases/points with httpx (gzip), no browser."""
    import time

    import httpx

    with httpx.Client(base_url=url, timeout=120) as http:
        t0 = time.perf_counter()
        offset, total = 0, 1
        while offset < total:
            body = http.get("/cases/points", params={"limit": 5000, "offset": offset}).json()
            total = body["numberMatched"]
            offset += max(1, body["numberReturned"])
        return (time.perf_counter() - t0) * 1000


def _run(browser: Any, cases: int, runs: int) -> dict[str, float]:
    app, clock, (engine, drop, _) = _district(cases)
    try:
        with serve(app, "uvicorn-bench-maps") as url:
            post_cases(url, clock)
            clock.at = NOW
            bulk_cases(engine, cases)
            _measure(browser, url)  # warm: the server's first requests, the browser's caches
            found = [_measure(browser, url) for _ in range(runs)]
            api = statistics.median(_api_ms(url) for _ in range(runs))
    finally:
        drop()
    return {
        "cases": cases,
        "shown": found[-1]["shown"],
        "kb": found[-1]["kb"],
        "data_ms": statistics.median(f["data_ms"] for f in found),
        "drawn_ms": statistics.median(f["drawn_ms"] for f in found),
        "api_ms": api,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12_000)
    parser.add_argument("--peer", type=int, default=1_200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ],
        )
        try:
            load_before = os.getloadavg()
            peer = _run(browser, args.peer, args.runs)
            main_run = _run(browser, args.cases, args.runs)
            load_after = os.getloadavg()
        finally:
            browser.close()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(
        f"{'cases':>7} {'shown':>7} {'KB sent':>8} {'data ms':>8} {'drawn ms':>9}"
        f" {'API only ms':>12}"
    )
    for row in (peer, main_run):
        print(
            f"{row['cases']:>7} {row['shown']:>7} {row['kb']:>8.0f} "
            f"{row['data_ms']:>8.0f} {row['drawn_ms']:>9.0f} {row['api_ms']:>12.0f}"
        )
    ratio = main_run["drawn_ms"] / peer["drawn_ms"]
    print(
        f"drawn: {main_run['drawn_ms'] / 1000:.2f} s for {args.cases:,} cases "
        f"(target < 2 s): {ratio:.2f}x the {args.peer:,}-case peer "
        f"for {args.cases / args.peer:.0f}x the cases"
    )


if __name__ == "__main__":
    main()
