"""Fixtures of the dispatch tests: their own throwaway database with a small, known district.

The dispatch tests load grid cells, villages, house numbers, lamps and manhole covers of a
made-up corner of Huadu (``dispatch_support``; real division codes, so names come from the
divisions register). They get a database of their own: a loaded grid would change what the
ingest tests' loads see (grid codes), and their cases would mix with the API's.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from dispatch_support import District, frames, make_district
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from cases.routing import seed_rules
from cases.rules import load_calendar, load_routing_rules
from ingest.pipeline import LoadRequest, run_load
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from schemas.database import drop_database, ensure_database, make_engine, parse_url
from schemas.settings import Settings


@pytest.fixture(scope="session")
def district() -> District:
    return make_district()


@pytest.fixture(scope="session")
def dispatch_settings(base_settings: Settings, server_url: URL) -> Iterator[Settings]:
    """Return settings pointing at the dispatch tests' own throwaway database."""
    name = f"sibiao_test_cases_{os.getpid()}_{secrets.token_hex(3)}"
    ensure_database(server_url, name)
    url = server_url.set(database=name)
    yield base_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    drop_database(server_url, name)


@pytest.fixture(scope="session")
def catalog(dispatch_settings: Settings):
    return default_catalog(dispatch_settings.catalog_dir)


@pytest.fixture(scope="session")
def rules():
    return load_routing_rules()


@pytest.fixture(scope="session")
def calendar():
    return load_calendar()


@pytest.fixture(scope="session")
def db(
    dispatch_settings: Settings,
    catalog,
    district: District,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    """Return an engine on the migrated dispatch database with the test district loaded."""
    assert dispatch_settings.database_url is not None
    eng = make_engine(parse_url(dispatch_settings.database_url), pool_size=8)
    prepare_database(eng, dispatch_settings)
    with eng.begin() as conn:  # as `sibiao db upgrade` does
        assert seed_rules(conn)
    folder = tmp_path_factory.mktemp("district")
    for layer, frame in frames(district).items():
        path = folder / f"{layer}.gpkg"
        frame.to_file(path, driver="GPKG")
        result = run_load(eng, dispatch_settings, catalog, LoadRequest(path=path, layer=layer))
        assert result.loaded == len(frame) and result.rejected == 0, (layer, result)
    yield eng
    eng.dispose()
