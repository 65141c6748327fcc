"""Snapping benchmark: batch snap of points to grid cells against one raw PostGIS join.

Usage: ``.venv/bin/python -m bench.snap [--points 100000] [--scale 1]``. Generates the
district's boundaries and grid at ``--scale`` into a throwaway database, then times
``layers.snap.snap_many`` (cell, village, town, names, tolerance) against the floor: the
same point-in-polygon join written as one statement. Target: our rate >= half the floor's.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION

from ingest.district import load_district
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from layers.snap import snap_many
from layers.synthetic.generate import generate
from layers.synthetic.geography import district_outline, to_lonlat
from schemas.catalog import Catalog
from schemas.database import (
    cluster_for,
    drop_database,
    ensure_database,
    make_engine,
    parse_url,
)
from schemas.settings import Settings

LAYERS = ("district_boundary", "town_boundary", "village_boundary", "grid_cell")
RAW = """
SELECT p.i, min(c.code) FROM unnest(:xs, :ys) WITH ORDINALITY AS p(x, y, i)
JOIN layers.grid_cell c ON ST_Intersects(c.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4490))
GROUP BY p.i
"""


def _points(n: int, seed: int = 4) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    outline = district_outline()
    minx, miny, maxx, maxy = outline.bounds
    x, y = rng.uniform(minx, maxx, 3 * n), rng.uniform(miny, maxy, 3 * n)
    keep = shapely.contains_xy(outline, x, y)
    lon, lat = to_lonlat(x[keep][:n], y[keep][:n])
    return list(zip(lon.tolist(), lat.tolist(), strict=True))


def main() -> None:
    """Build the grid, time both, print the rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    base = Settings()
    full = default_catalog(base.catalog_dir)
    layers = tuple(lyr for lyr in full.layers if lyr.code in LAYERS)
    subset = Catalog(
        groups=tuple(g for g in full.groups if any(x.group == g.code for x in layers)),
        layers=layers,
    )
    server = (
        parse_url(base.database_url).set(database="postgres")
        if base.database_url
        else parse_url(cluster_for(base).url("postgres"))
    )
    if not base.database_url:
        cluster_for(base).start()
    name = f"sibiao_bench_{secrets.token_hex(3)}"
    ensure_database(server, name)
    url = server.set(database=name)
    settings = base.model_copy(update={"database_url": url.render_as_string(hide_password=False)})
    engine = make_engine(url)
    try:
        prepare_database(engine, settings)
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), scale=args.scale, seed=0, catalog=subset)
            load_district(engine, settings, full, Path(tmp))
        points = _points(args.points)
        with engine.connect() as conn:
            cells = conn.execute(text("SELECT count(*) FROM layers.grid_cell")).scalar()
            print(f"{len(points):,} points against {cells:,} grid cells")
            start = time.perf_counter()
            results = snap_many(conn, full, points)
            ours = time.perf_counter() - start
            stmt = text(RAW).bindparams(
                bindparam("xs", type_=ARRAY(DOUBLE_PRECISION)),
                bindparam("ys", type_=ARRAY(DOUBLE_PRECISION)),
            )
            start = time.perf_counter()
            raw = conn.execute(
                stmt, {"xs": [p[0] for p in points], "ys": [p[1] for p in points]}
            ).all()
            floor = time.perf_counter() - start
        placed = sum(1 for r in results if r is not None)
        print(
            f"  snap_many  {ours:7.2f} s  {len(points) / ours:10,.0f} points/s  ({placed:,} placed)"
        )
        print(f"  raw join   {floor:7.2f} s  {len(points) / floor:10,.0f} points/s  ({len(raw):,})")
        print(f"  rate ratio ours/raw {floor / ours:5.2f}  (target >= 0.5)")
    finally:
        engine.dispose()
        drop_database(server, name)


if __name__ == "__main__":
    main()
