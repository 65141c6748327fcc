"""Layer loads for the fault scenarios: lamp files, ``sibiao ingest`` as a process, layer state.

A load runs as a real ``sibiao ingest`` subprocess so that a PostgreSQL restart cuts its
connection as it would in production. :func:`layer_state` gives the live layer's version, row
count and a checksum of its rows, to prove a layer unchanged after a failed load.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from shapely import points
from sqlalchemy import Engine, text

from bench.load_harness import child_env
from schemas.settings import Settings

SIBIAO = str(Path(sys.executable).parent / "sibiao")


def lamps_file(path: Path, n: int, seed: int) -> Path:
    """Write ``n`` street lamps at random points of the district as a GeoPackage."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = Settings.model_fields["district_extent"].default
    frame = gpd.GeoDataFrame(
        {
            "code": [f"44011401{seed % 10}{i:07d}" for i in range(n)],
            "state": "intact",
            "maintenance_unit": "花都区路灯管理所",
            "road_name": "迎宾大道",
        },
        geometry=points(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)),
        crs=4490,
    )
    frame.to_file(path, driver="GPKG")
    return path


def ingest_process(settings: Settings, path: Path) -> subprocess.Popen[str]:
    """Start ``sibiao ingest PATH --layer street_lamp --json`` on ``settings``' database."""
    return subprocess.Popen(
        [SIBIAO, "ingest", str(path), "--layer", "street_lamp", "--json"],
        env=child_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def layer_state(engine: Engine) -> tuple[int, int, str]:
    """Return the live street_lamp layer's version, row count and checksum of its rows."""
    with engine.connect() as conn:
        version = conn.execute(
            text(
                "SELECT coalesce(max(version), 0) FROM load_batches "
                "WHERE layer_code = 'street_lamp' AND state = 'committed'"
            )
        ).scalar_one()
        rows, digest = conn.execute(
            text(
                "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))) "
                "FROM layers.street_lamp t"
            )
        ).one()
    return int(version), int(rows), str(digest)


def wait_streaming(engine: Engine, after: int, timeout: float) -> dict[str, Any] | None:
    """Wait until a batch newer than ``after`` streams rows in its open transaction."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT id, state, read_count, options ? 'backend_pid' AS open "
                    "FROM load_batches WHERE id > :after ORDER BY id DESC LIMIT 1"
                ),
                {"after": after},
            ).first()
        if row is not None and row.state == "running" and row.open and row.read_count:
            return dict(row._mapping)
        if row is not None and row.state in ("committed", "failed"):
            return None
        time.sleep(0.02)
    return None


def wait_publishing(engine: Engine, timeout: float) -> dict[str, Any] | None:
    """Wait until a load waits for the layer's lock to publish (its rows are all staged)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar_one()
            read = conn.execute(
                text("SELECT read_count FROM load_batches ORDER BY id DESC LIMIT 1")
            ).scalar()
        if waiting:
            return {"read_count": read}
        time.sleep(0.05)
    return None
