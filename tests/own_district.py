"""A throwaway database and data folder of a test folder's own, and a small generated district.

Several test folders need a district loaded the way ``sibiao load`` does into a database that
other folders do not touch (``tests/api``, ``tests/notebooks``). :func:`own_database` creates
the database (schema migrated, layer tables created) and a data folder, and drops both
afterwards; :func:`load_generated` generates a district and loads a subset of its layers.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from ingest.district import load_district
from layers.bootstrap import prepare_database
from layers.synthetic.generate import generate
from layers.synthetic.manifest import Manifest, read_manifest, write_manifest
from schemas.catalog import Catalog
from schemas.database import drop_database, ensure_database, make_engine
from schemas.settings import Settings


@dataclass(frozen=True)
class OwnDatabase:
    """Settings pointing at the database and data folder, its engine, and a source folder."""

    settings: Settings
    engine: Engine
    source: Path


@contextmanager
def own_database(base: Settings, server: URL, label: str) -> Iterator[OwnDatabase]:
    """Create ``sibiao_test_<label>_<random>`` and a data folder; drop both afterwards."""
    token = secrets.token_hex(4)
    root = base.data_dir / "tmp" / f"{label}-{token}"
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    root.chmod(0o755)
    name = f"sibiao_test_{label}_{token}"
    ensure_database(server, name)
    url = server.set(database=name)
    settings = base.model_copy(
        update={"database_url": url.render_as_string(hide_password=False), "data_dir": data_dir}
    )
    engine = make_engine(url)
    try:
        prepare_database(engine, settings)
        yield OwnDatabase(settings=settings, engine=engine, source=root / "source")
    finally:
        engine.dispose()
        drop_database(server, name)
        shutil.rmtree(root, ignore_errors=True)


def load_generated(
    own: OwnDatabase, catalog: Catalog, layers: Iterable[str], *, scale: float = 0.01
) -> Manifest:
    """Generate a district (seed 1) into ``own.source``, load ``layers`` of it; return the manifest.

    The manifest on disk is left listing only the loaded layers; the whole one is returned.
    """
    generate(own.source, scale=scale, seed=1, catalog=catalog)
    manifest = read_manifest(own.source / "manifest.json")
    wanted = set(layers)
    write_manifest(own.source, [e for e in manifest.entries if e.layer in wanted])
    outcomes = load_district(own.engine, own.settings, catalog, own.source)
    failed = [(o.layer, o.error) for o in outcomes if o.error]
    assert not failed, failed
    return manifest
