"""Fixtures of the notebook tests: a small generated district with half a year of cases, served.

The district is generated as ``tests/api`` does (scale 0.01) and a subset of its layers is
loaded the way ``sibiao load`` does into a throwaway database of its own; grid cells get
populations (the generator leaves them 0). Half a year of synthetic cases (a few a day) is
posted to ``POST /intake/{system}`` in-process, the app's clock standing at each report's
time. The notebooks then read the platform over HTTP from a live server
(``SIBIAO_API_URL``).
"""

from __future__ import annotations

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
from own_district import load_generated, own_database
from sqlalchemy import text
from sqlalchemy.engine import URL

from api.app import create_app
from cases.district_inputs import case_inputs
from cases.routing import seed_rules
from cases.synthetic import generate_cases
from layers.registry import default_catalog
from layers.synthetic.manifest import write_manifest
from schemas.catalog import Catalog
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
    with own_database(base_settings, server_url, "notebooks") as own:
        with own.engine.begin() as conn:
            seed_rules(conn)
        catalog = default_catalog(own.settings.catalog_dir)
        manifest = load_generated(own, catalog, LAYERS)
        write_manifest(own.source, manifest.entries)  # the upload notebook reads every entry
        with own.engine.begin() as conn:
            conn.execute(text("UPDATE layers.grid_cell SET population = 200 + (fid * 37) % 1800"))
        posted = _post_cases(own.settings, catalog, own.source)
        assert posted > 300, posted
        yield NotebookDistrict(own.settings, own.engine, catalog, own.source, posted)


@pytest.fixture(scope="session")
def notebook_server(notebook_district: NotebookDistrict) -> Iterator[str]:
    """Serve the district (clock at the end of the half-year) with uvicorn; yield its URL."""
    app = create_app(notebook_district.settings, catalog=notebook_district.catalog)
    app.state.clock = Clock(END)
    with serve(app, "uvicorn-notebooks") as url:
        yield url
