"""Test fixtures: a throwaway database per run on a real PostGIS, never a fake.

With SIBIAO_DATABASE_URL set, the throwaway database is created on that server;
otherwise on the embedded cluster (started, and installed, as the platform does).
If PostGIS cannot be reached the tests that need it error: the run fails, never skips.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from api.app import create_app
from layers.bootstrap import prepare_database
from schemas.database import cluster_for, drop_database, ensure_database, make_engine, parse_url
from schemas.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _server_url(base: Settings) -> URL:
    """Return a URL to the server's maintenance database."""
    if base.database_url is not None:
        return parse_url(base.database_url).set(database="postgres")
    cluster = cluster_for(base)
    cluster.start()
    return parse_url(cluster.url("postgres"))


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Return settings from the environment, with the data folder anchored at the repo."""
    env = Settings()
    data_dir = env.data_dir if env.data_dir.is_absolute() else REPO / env.data_dir
    return env.model_copy(update={"data_dir": data_dir, "auth_enabled": False})


@pytest.fixture(scope="session")
def server_url(base_settings: Settings) -> URL:
    """Return the maintenance URL of the PostGIS server the tests use."""
    return _server_url(base_settings)


def _throwaway(server: URL, label: str) -> URL:
    name = f"sibiao_test_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    ensure_database(server, name)
    return server.set(database=name)


@pytest.fixture(scope="session")
def database_url(server_url: URL) -> Iterator[URL]:
    """Create the run's throwaway database (with PostGIS) and drop it afterwards."""
    url = _throwaway(server_url, "run")
    yield url
    drop_database(server_url, str(url.database))


@pytest.fixture(scope="session")
def settings(base_settings: Settings, database_url: URL) -> Settings:
    """Return explicit settings pointing at the throwaway database."""
    return base_settings.model_copy(
        update={"database_url": database_url.render_as_string(hide_password=False)}
    )


@pytest.fixture(scope="session")
def engine(settings: Settings, database_url: URL) -> Iterator[Engine]:
    """Return an engine on the migrated throwaway database."""
    eng = make_engine(database_url)
    prepare_database(eng, settings)
    yield eng
    eng.dispose()


@pytest.fixture()
def empty_database(server_url: URL) -> Iterator[URL]:
    """Yield a fresh, empty database (PostGIS only) dropped after the test."""
    url = _throwaway(server_url, "empty")
    yield url
    drop_database(server_url, str(url.database))


@pytest.fixture(scope="session")
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """Yield a test client of an app built from explicit settings (lifespan run)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture()
def scratch_dir(base_settings: Settings) -> Iterator[Path]:
    """Yield a folder the database's OS user can reach (pytest's tmp is private to root)."""
    root = base_settings.data_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    path = root / secrets.token_hex(4)
    path.mkdir()
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when anything was skipped: a skipped database test proves nothing."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter is not None:
            reporter.write_line(
                f"FAILED: {len(skipped)} test(s) skipped; skips are not allowed", red=True
            )
