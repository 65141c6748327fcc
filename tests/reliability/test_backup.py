"""``sibiao db dump`` / ``sibiao db restore``: a round trip keeps every count and checksum.

The source is a throwaway database on the shared cluster with two versions of a vector layer
(one in layers_history), a DEM raster (a COG in the data folder) and a few cases; it is dumped
with the CLI, restored with the CLI into a database that does not exist yet and an empty data
folder, and both databases are summarised independently.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely import points
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from cases.accept import DistrictArea, accept_case
from cases.models import CaseIn
from cases.routing import seed_rules
from cases.rules import load_calendar
from ingest.pipeline import LoadRequest, run_load
from ingest.rasters import load_raster
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from schemas.backup import read_manifest, summarise
from schemas.database import drop_database, ensure_database, make_engine
from schemas.settings import Settings

pytestmark = pytest.mark.slow
SIBIAO = str(Path(sys.executable).parent / "sibiao")
LAMPS = 1500


def _lamps(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    gpd.GeoDataFrame(
        {
            "code": [f"44011401{seed}{i:07d}" for i in range(n)],
            "state": "intact",
            "maintenance_unit": "花都区路灯管理所",
            "road_name": "迎宾大道",
        },
        geometry=points(rng.uniform(113.2, 113.3, n), rng.uniform(23.4, 23.5, n)),
        crs=4490,
    ).to_file(path, driver="GPKG")
    return path


def _dem(path: Path) -> Path:
    z = (20 + np.add.outer(np.arange(120), np.arange(150)) * 0.1).astype(np.float32)
    profile = {"driver": "GTiff", "width": 150, "height": 120, "count": 1, "dtype": "float32"}
    transform = Affine(0.0003, 0.0, 113.2, 0.0, -0.0003, 23.45)
    with rasterio.open(path, "w", crs="EPSG:4490", transform=transform, **profile) as dst:
        dst.write(z[None])
    return path


@pytest.fixture()
def source(
    base_settings: Settings, server_url: URL, tmp_path: Path
) -> Iterator[tuple[Settings, URL]]:
    """Yield settings of a filled throwaway database and its data folder."""
    name = f"sibiao_test_backup_{os.getpid()}_{secrets.token_hex(3)}"
    ensure_database(server_url, name)
    url = server_url.set(database=name)
    cfg = base_settings.model_copy(
        update={
            "database_url": url.render_as_string(hide_password=False),
            "data_dir": tmp_path / "data-source",
        }
    )
    engine = make_engine(url, pool_size=2)
    catalog = default_catalog(cfg.catalog_dir)
    try:
        prepare_database(engine, cfg)
        with engine.begin() as conn:
            seed_rules(conn)
        for seed in (1, 2):
            path = _lamps(tmp_path / f"lamps{seed}.gpkg", LAMPS, seed)
            run_load(engine, cfg, catalog, LoadRequest(path=path, layer="street_lamp"))
        load_raster(engine, cfg, catalog, LoadRequest(path=_dem(tmp_path / "dem.tif"), layer="dem"))
        area = DistrictArea.from_extent(cfg.district_extent, cfg.extent_margin_deg)
        with engine.begin() as conn:
            for i in range(3):
                case_in = CaseIn.model_validate(
                    {
                        "source_system": "platform",
                        "source_id": f"backup-{i}",
                        "item_code": "PU01",
                        "reported_at": datetime.now(UTC),
                        "location": {"lon": 113.21 + i / 100, "lat": 23.41},
                    }
                )
                accept_case(
                    conn, catalog, load_calendar(), case_in, now=datetime.now(UTC), area=area
                )
        yield cfg, url
    finally:
        engine.dispose()
        drop_database(server_url, name)


def _sibiao(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SIBIAO_")} | env
    return subprocess.run(
        [SIBIAO, *args], capture_output=True, text=True, env=full, timeout=300, cwd="/"
    )


def _summary(url: URL) -> dict[str, object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            return dict(summarise(conn))
    finally:
        engine.dispose()


def test_dump_and_restore_round_trip_keeps_counts_checksums_and_rasters(
    source: tuple[Settings, URL], server_url: URL, tmp_path: Path
) -> None:
    cfg, source_url = source
    archive = tmp_path / "backup.tar"
    dumped = _sibiao(
        "db",
        "dump",
        str(archive),
        env={"SIBIAO_DATABASE_URL": str(cfg.database_url), "SIBIAO_DATA_DIR": str(cfg.data_dir)},
    )
    assert dumped.returncode == 0, dumped.stderr
    manifest = read_manifest(archive)
    assert manifest.tables["layers.street_lamp"].rows == LAMPS
    assert manifest.tables["public.cases"].rows == 3
    assert any(name.startswith("layers_history.street_lamp") for name in manifest.tables)
    (raster,) = manifest.rasters
    assert raster.path.startswith("rasters/dem/")

    target = server_url.set(database=f"sibiao_test_restore_{os.getpid()}_{secrets.token_hex(3)}")
    data_dir = tmp_path / "data-restored"
    env = {
        "SIBIAO_DATABASE_URL": target.render_as_string(hide_password=False),
        "SIBIAO_DATA_DIR": str(data_dir),
    }
    try:
        restored = _sibiao("db", "restore", str(archive), env=env)
        assert restored.returncode == 0, restored.stderr
        assert "match" in restored.stdout
        assert _summary(target) == _summary(source_url) == manifest.tables
        copy = data_dir / raster.path
        assert copy.read_bytes() == (cfg.data_dir / raster.path).read_bytes()

        refused = _sibiao("db", "restore", str(archive), env=env)
        assert refused.returncode == 1
        assert "not empty" in refused.stderr and "--force" in refused.stderr
        assert "Traceback" not in refused.stderr
        forced = _sibiao("db", "restore", str(archive), "--force", env=env)
        assert forced.returncode == 0, forced.stderr
        assert _summary(target) == manifest.tables
    finally:
        drop_database(server_url, str(target.database))


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path: Path, server_url: URL) -> None:
    bogus = tmp_path / "notes.tar"
    bogus.write_text("not a tar")
    target = server_url.set(database=f"sibiao_test_never_{secrets.token_hex(3)}")
    env = {"SIBIAO_DATABASE_URL": target.render_as_string(hide_password=False)}
    proc = _sibiao("db", "restore", str(bogus), env=env)
    assert proc.returncode == 1
    assert "is not a Sibiao backup" in proc.stderr and "Traceback" not in proc.stderr
