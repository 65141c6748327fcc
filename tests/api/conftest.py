"""A small synthetic district in its own database, an app over it, and a live server.

The district is generated once per session (scale 0.01: a few thousand buildings and house
numbers) and a subset of its layers is loaded the way ``sibiao load`` does, rasters
included, into a throwaway database of its own (other test folders keep theirs clean).
Grid cells get populations (the generator leaves them 0) so coverage totals mean something.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import serve
from own_district import load_generated, own_database
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from api.app import create_app
from layers.registry import default_catalog
from schemas.catalog import Catalog
from schemas.settings import Settings

LAYERS = (
    "district_boundary",
    "town_boundary",
    "village_boundary",
    "grid_cell",
    "building",
    "house_number",
    "road_centerline",
    "school",
    "fire_station",
    "street_lamp",
    "manhole_cover",
    "population",
    "dem",
    "flood_risk",
)


@dataclass(frozen=True)
class District:
    """The loaded district: settings (its own database and data folder), engine, catalog."""

    settings: Settings
    engine: Engine
    catalog: Catalog
    folder: Path

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]


@pytest.fixture(scope="session")
def district(base_settings: Settings, server_url: URL) -> Iterator[District]:
    """Generate, load and yield the test district; drop its database afterwards."""
    with own_database(base_settings, server_url, "api") as own:
        catalog = default_catalog(own.settings.catalog_dir)
        load_generated(own, catalog, LAYERS)
        with own.engine.begin() as conn:
            conn.execute(text("UPDATE layers.grid_cell SET population = (fid * 37) % 1000"))
            counts = {
                code: conn.execute(text(f'SELECT count(*) FROM layers."{code}"')).scalar()
                for code in LAYERS
                if not catalog.layer(code).is_raster
            }
        assert counts["building"] > 2000 and counts["house_number"] > 2000, counts
        assert all(counts.values()), counts
        yield District(settings=own.settings, engine=own.engine, catalog=catalog, folder=own.source)


@pytest.fixture(scope="session")
def api(district: District) -> Iterator[TestClient]:
    """Yield a test client of an app over the district (lifespan run)."""
    with TestClient(create_app(district.settings, catalog=district.catalog)) as client:
        yield client


@pytest.fixture(scope="session")
def live_server(district: District) -> Iterator[str]:
    """Run the app with uvicorn on a free local port in a thread; yield its base URL."""
    with serve(create_app(district.settings, catalog=district.catalog)) as url:
        yield url
