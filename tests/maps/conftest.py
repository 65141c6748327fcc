"""Fixtures of the map tests: a small loaded database, a live server, headless Chromium.

The database is the tests' own (other folders keep theirs clean). A few layers are loaded
from GeoJSON files written here, the way ``sibiao load`` loads them: towns, roads and a
river for the base map, and buildings twice (a clean load, then one with bad rows that keep
their location) so the building page has versions and red rejected rows to show.

The browser is Debian's Chromium driven by Playwright (its own browsers are never
downloaded); every request that does not go to 127.0.0.1 is aborted and recorded.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import serve
from maps_support import BAD_FLOORS, MapsDb, base_files, buildings, write_geojson
from ops_support import T0, Clock, OpsDb, load_district, post_cases
from sqlalchemy.engine import URL

from api.app import create_app
from ingest.pipeline import LoadRequest, LoadResult, run_load
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from schemas.database import drop_database, ensure_database, make_engine
from schemas.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def maps_db(base_settings: Settings, server_url: URL) -> Iterator[MapsDb]:
    """Create the maps database, load base layers and buildings twice; drop it afterwards."""
    root = base_settings.data_dir / "tmp" / f"maps-{secrets.token_hex(4)}"
    folder = root / "files"
    folder.mkdir(parents=True)
    root.chmod(0o755)
    name = f"sibiao_test_maps_{secrets.token_hex(4)}"
    ensure_database(server_url, name)
    url = server_url.set(database=name)
    settings = base_settings.model_copy(
        update={
            "database_url": url.render_as_string(hide_password=False),
            "data_dir": root / "data",
        }
    )
    engine = make_engine(url)
    try:
        prepare_database(engine, settings)
        catalog = default_catalog(settings.catalog_dir)
        loads: dict[str, LoadResult] = {}
        for layer, path in base_files(folder).items():
            loads[layer] = run_load(engine, settings, catalog, LoadRequest(path, layer))
        clean = write_geojson(folder / "buildings-v1.geojson", buildings(bad=0))
        loads["building_v1"] = run_load(engine, settings, catalog, LoadRequest(clean, "building"))
        dirty = write_geojson(folder / "buildings-v2.geojson", buildings(bad=BAD_FLOORS))
        loads["building"] = run_load(engine, settings, catalog, LoadRequest(dirty, "building"))
        assert loads["building"].rejected == BAD_FLOORS, loads["building"]
        assert all(r.loaded for r in loads.values()), loads
        yield MapsDb(settings, engine, catalog, folder, loads)
    finally:
        engine.dispose()
        drop_database(server_url, name)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def maps_server(maps_db: MapsDb) -> Iterator[str]:
    """Run the app over the maps database with uvicorn in a thread; yield its base URL."""
    with serve(create_app(maps_db.settings, catalog=maps_db.catalog), "uvicorn-maps") as url:
        yield url


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Return tests/artifacts/ (created, and ignored by git through its own .gitignore)."""
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Yield headless Debian Chromium under Playwright, with every outside host unresolvable."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def ops_clock() -> Clock:
    """The clock of the dispatcher's and planner's app (moved by ``post_cases``)."""
    return Clock(T0)


@pytest.fixture(scope="session")
def ops_db(base_settings: Settings, server_url: URL, tmp_path_factory: Any) -> Iterator[OpsDb]:
    """Create a database with the cases tests' tiny district and routing rules; drop it after."""
    name = f"sibiao_test_mapops_{secrets.token_hex(4)}"
    ensure_database(server_url, name)
    root = base_settings.data_dir / "tmp" / f"mapops-{secrets.token_hex(4)}"
    root.mkdir(parents=True)
    url = server_url.set(database=name)
    settings = base_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False), "data_dir": root}
    )
    engine = make_engine(url)
    catalog = default_catalog(settings.catalog_dir)
    try:
        load_district(engine, settings, catalog, tmp_path_factory.mktemp("mapops"))
        yield OpsDb(settings, engine, catalog)
    finally:
        engine.dispose()
        drop_database(server_url, name)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ops_server(ops_db: OpsDb, ops_clock: Clock) -> Iterator[str]:
    """Serve the district's app (clock ``ops_clock``) with uvicorn; yield its base URL."""
    app = create_app(ops_db.settings, catalog=ops_db.catalog)
    app.state.clock = ops_clock
    with serve(app, "uvicorn-mapops") as url:
        yield url


@pytest.fixture(scope="session")
def ops_cases(ops_server: str, ops_clock: Clock) -> list[dict[str, Any]]:
    """Post the test cases (some overdue at NOW) and return them."""
    return post_cases(ops_server, ops_clock)
