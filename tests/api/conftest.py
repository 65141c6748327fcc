"""A small synthetic district in its own database, an app over it, and a live server.

The district is generated once per session (scale 0.01: a few thousand buildings and house
numbers) and a subset of its layers is loaded the way ``sibiao load`` does, rasters
included, into a throwaway database of its own (other test folders keep theirs clean).
Grid cells get populations (the generator leaves them 0) so coverage totals mean something.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import serve
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from api.app import create_app
from ingest.district import load_district
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from layers.synthetic.generate import generate
from layers.synthetic.manifest import read_manifest, write_manifest
from schemas.catalog import Catalog
from schemas.database import drop_database, ensure_database, make_engine
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
    root = base_settings.data_dir / "tmp" / f"api-{secrets.token_hex(4)}"
    source = root / "source"
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    root.chmod(0o755)
    name = f"sibiao_test_api_{secrets.token_hex(4)}"
    ensure_database(server_url, name)
    url = server_url.set(database=name)
    settings = base_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False), "data_dir": data_dir}
    )
    engine = make_engine(url)
    try:
        prepare_database(engine, settings)
        catalog = default_catalog(settings.catalog_dir)
        generate(source, scale=0.01, seed=1, catalog=catalog)
        manifest = read_manifest(source / "manifest.json")
        write_manifest(source, [e for e in manifest.entries if e.layer in LAYERS])
        outcomes = load_district(engine, settings, catalog, source)
        failed = [(o.layer, o.error) for o in outcomes if o.error]
        assert not failed, failed
        with engine.begin() as conn:
            conn.execute(text("UPDATE layers.grid_cell SET population = (fid * 37) % 1000"))
            counts = {
                code: conn.execute(text(f'SELECT count(*) FROM layers."{code}"')).scalar()
                for code in LAYERS
                if not catalog.layer(code).is_raster
            }
        assert counts["building"] > 2000 and counts["house_number"] > 2000, counts
        assert all(counts.values()), counts
        yield District(settings=settings, engine=engine, catalog=catalog, folder=source)
    finally:
        engine.dispose()
        drop_database(server_url, name)
        shutil.rmtree(root, ignore_errors=True)


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
