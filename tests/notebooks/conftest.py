"""Fixtures of the notebook tests: a small generated district with half a year of cases, served.

The district is generated as ``tests/api`` does (scale 0.01) and a subset of its layers is
loaded the way ``sibiao load`` does into a throwaway database of its own; grid cells get
populations (the generator leaves them 0). Half a year of synthetic cases (a few a day) is
posted to ``POST /intake/{system}`` in-process, the app's clock standing at each report's
time. The notebooks then read the platform over HTTP from a live server
(``SIBIAO_API_URL``).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import serve
from notebook_support import (
    DAYS,
    END,
    LAYERS,
    PER_DAY,
    SH,
    START,
    Clock,
    NotebookDistrict,
)
from sqlalchemy import text
from sqlalchemy.engine import URL

from api.app import create_app
from cases.district_inputs import case_inputs
from cases.routing import seed_rules
from cases.synthetic import generate_cases
from ingest.district import load_district
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from layers.synthetic.generate import generate
from layers.synthetic.manifest import read_manifest, write_manifest
from schemas.catalog import Catalog
from schemas.database import drop_database, ensure_database, make_engine
from schemas.settings import Settings


def _post_cases(app_settings: Settings, catalog: Catalog, folder: Path) -> int:
    addresses, assets, villages = case_inputs(folder, catalog)
    stream = generate_cases(
        addresses=addresses,
        assets=assets,
        villages=villages,
        days=DAYS,
        per_day=PER_DAY,
        seed=11,
        start=START,
    )
    app = create_app(app_settings, catalog=catalog)
    clock = Clock(datetime(2026, 1, 1, tzinfo=SH))
    app.state.clock = clock
    posted = 0
    with TestClient(app) as client:
        for case in stream:
            at = datetime.fromisoformat(case.truth.reported_at)
            if at >= END:
                break
            clock.at = at + timedelta(minutes=2)
            answer = client.post(f"/intake/{case.system.value}", json=case.payload)
            assert answer.status_code in (200, 201), answer.text
            posted += 1
    return posted


@pytest.fixture(scope="session")
def notebook_district(base_settings: Settings, server_url: URL) -> Iterator[NotebookDistrict]:
    """Generate and load the district, post its cases; drop the database afterwards."""
    root = base_settings.data_dir / "tmp" / f"notebooks-{secrets.token_hex(4)}"
    source = root / "source"
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    root.chmod(0o755)
    name = f"sibiao_test_notebooks_{secrets.token_hex(4)}"
    ensure_database(server_url, name)
    url = server_url.set(database=name)
    settings = base_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False), "data_dir": data_dir}
    )
    engine = make_engine(url)
    try:
        prepare_database(engine, settings)
        with engine.begin() as conn:
            seed_rules(conn)
        catalog = default_catalog(settings.catalog_dir)
        generate(source, scale=0.01, seed=1, catalog=catalog)
        manifest = read_manifest(source / "manifest.json")
        write_manifest(source, [e for e in manifest.entries if e.layer in LAYERS])
        outcomes = load_district(engine, settings, catalog, source)
        failed = [(o.layer, o.error) for o in outcomes if o.error]
        assert not failed, failed
        write_manifest(source, manifest.entries)  # the upload notebook reads every entry
        with engine.begin() as conn:
            conn.execute(text("UPDATE layers.grid_cell SET population = 200 + (fid * 37) % 1800"))
        posted = _post_cases(settings, catalog, source)
        assert posted > 300, posted
        yield NotebookDistrict(settings, engine, catalog, source, posted)
    finally:
        engine.dispose()
        drop_database(server_url, name)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def notebook_server(notebook_district: NotebookDistrict) -> Iterator[str]:
    """Serve the district (clock at the end of the half-year) with uvicorn; yield its URL."""
    app = create_app(notebook_district.settings, catalog=notebook_district.catalog)
    app.state.clock = Clock(END)
    with serve(app, "uvicorn-notebooks") as url:
        yield url
