"""Fixtures of the dispatch HTTP tests: the cases tests' tiny district, an app, a live server.

The district is the one of ``tests/cases/dispatch_support.py`` (six grid cells of 新华街道 and
狮岭镇, house numbers, two lamps, two manhole covers), loaded the way ``sibiao load`` does into a
throwaway database of its own. The app's clock is a :class:`Clock` the tests move; the live
server (uvicorn on 127.0.0.1, for real HTTP clients) shares it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cases"))

from dispatch_http_support import Clock  # noqa: E402
from dispatch_support import SH, District, frames, make_district  # noqa: E402
from live_server import serve  # noqa: E402

from api.app import create_app  # noqa: E402
from cases.routing import seed_rules  # noqa: E402
from ingest.pipeline import LoadRequest, run_load  # noqa: E402
from layers.bootstrap import prepare_database  # noqa: E402
from layers.registry import default_catalog  # noqa: E402
from schemas.catalog import Catalog  # noqa: E402
from schemas.database import drop_database, ensure_database, make_engine, parse_url  # noqa: E402
from schemas.settings import Settings  # noqa: E402


@dataclass(frozen=True)
class Dispatch:
    """The loaded test district and what is needed to query it directly."""

    settings: Settings
    engine: Engine
    catalog: Catalog
    district: District

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]


@pytest.fixture(scope="session")
def dispatch(
    base_settings: Settings, server_url: URL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dispatch]:
    """Create the database, load the tiny district; drop it all afterwards."""
    name = f"sibiao_test_dispatch_{os.getpid()}_{secrets.token_hex(3)}"
    ensure_database(server_url, name)
    data_dir = base_settings.data_dir / "tmp" / f"dispatch-{secrets.token_hex(4)}"
    data_dir.mkdir(parents=True)
    settings = base_settings.model_copy(
        update={
            "database_url": server_url.set(database=name).render_as_string(hide_password=False),
            "data_dir": data_dir,
        }
    )
    assert settings.database_url is not None
    engine = make_engine(parse_url(settings.database_url), pool_size=8)
    catalog = default_catalog(settings.catalog_dir)
    district = make_district()
    try:
        prepare_database(engine, settings)
        with engine.begin() as conn:
            seed_rules(conn)
        folder = tmp_path_factory.mktemp("dispatch-district")
        for layer, frame in frames(district).items():
            path = folder / f"{layer}.gpkg"
            frame.to_file(path, driver="GPKG")
            result = run_load(engine, settings, catalog, LoadRequest(path=path, layer=layer))
            assert result.loaded == len(frame) and result.rejected == 0, (layer, result)
        yield Dispatch(settings=settings, engine=engine, catalog=catalog, district=district)
    finally:
        engine.dispose()
        drop_database(server_url, name)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def clock() -> Clock:
    return Clock(datetime(2026, 3, 2, 10, tzinfo=SH))


@pytest.fixture(scope="session")
def client(dispatch: Dispatch, clock: Clock) -> Iterator[TestClient]:
    """Yield a test client of an app over the district, its clock the shared ``clock``."""
    app = create_app(dispatch.settings, catalog=dispatch.catalog)
    app.state.clock = clock
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live(dispatch: Dispatch, clock: Clock) -> Iterator[str]:
    """Run the app with uvicorn on a free local port; yield its base URL."""
    app = create_app(dispatch.settings, catalog=dispatch.catalog)
    app.state.clock = clock
    with serve(app, "uvicorn-dispatch") as url:
        yield url
