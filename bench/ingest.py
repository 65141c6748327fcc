"""Ingest benchmark: Sibiao's loader against ogr2ogr and geopandas, in the same run.

Usage: ``.venv/bin/python -m bench.ingest [--points 1000000] [--polygons 300000]
[--big-points 10000000]`` (the database is the embedded one, or SIBIAO_DATABASE_URL).

Prints each wall time and the ratios the ingest issue sets:
  points:   sibiao / ogr2ogr (PG_USE_COPY, new table)        target <= 0.5
            sibiao / geopandas read_file + to_postgis         target <  1
  polygons: sibiao / ogr2ogr -t_srs EPSG:4490 -makevalid      target <= 0.7
  memory:   peak RSS while loading --big-points points        target <= 1.5 GB
Timings on a shared 2-core machine are noisy: compare ratios, run twice.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from sqlalchemy import text

from ingest.pipeline import LoadRequest, run_load
from layers.registry import default_catalog
from layers.synthetic.geography import district_outline, to_lonlat, to_metric
from schemas.database import database_url, make_engine
from schemas.settings import Settings


def _inside_district(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return n random points inside the (synthetic) district outline, in lon/lat."""
    outline = district_outline()
    minx, miny, maxx, maxy = outline.bounds
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    while sum(len(x) for x in xs) < n:
        x, y = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
        keep = shapely.contains_xy(outline, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
    lon, lat = to_lonlat(np.concatenate(xs)[:n], np.concatenate(ys)[:n])
    return shapely.points(lon, lat)


def _points_file(path: Path, n: int, seed: int = 1) -> None:
    """Write n street-lamp points (a few attributes) inside the district as a GeoPackage."""
    rng = np.random.default_rng(seed)
    codes = np.char.add("44011401", np.char.zfill(np.arange(n).astype(str), 8))
    frame = gpd.GeoDataFrame(
        {
            "code": codes,
            "kind": rng.choice(["road", "courtyard"], n),
            "power_w": rng.choice([60.0, 100.0, 150.0], n),
            "state": rng.choice(["intact", "damaged"], n, p=[0.97, 0.03]),
            "maintenance_unit": np.full(n, "花都区路灯管理所"),
        },
        geometry=_inside_district(rng, n),
        crs="EPSG:4490",
    )
    pyogrio.write_dataframe(frame, path, layer="lamps", use_arrow=True)


def _polygons_file(path: Path, n: int, seed: int = 2) -> None:
    """Write n building footprints in EPSG:4547, 1 % of them self-intersecting."""
    rng = np.random.default_rng(seed)
    centres = _inside_district(rng, n)
    x, y = to_metric(shapely.get_x(centres), shapely.get_y(centres))
    w, d = rng.uniform(8, 30, n), rng.uniform(8, 20, n)
    rings = np.stack(
        [
            np.column_stack([x, y]),
            np.column_stack([x + w, y]),
            np.column_stack([x + w, y + d]),
            np.column_stack([x, y + d]),
            np.column_stack([x, y]),
        ],
        axis=1,
    )
    bad = rng.random(n) < 0.01
    rings[bad, 1], rings[bad, 2] = rings[bad, 2].copy(), rings[bad, 1].copy()  # bow-ties
    polys = shapely.polygons(rings)
    frame = gpd.GeoDataFrame(
        {
            "code": np.char.add("4401141", np.char.zfill(np.arange(n).astype(str), 12)),
            "floors": rng.integers(1, 30, n),
            "use": rng.choice(["residential", "commercial", "industrial"], n),
        },
        geometry=shapely.multipolygons(polys[:, None].tolist()),
        crs="EPSG:4547",
    )
    pyogrio.write_dataframe(frame, path, layer="buildings", use_arrow=True)


def _timed(label: str, func) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"  {label:<48} {seconds:8.2f} s", flush=True)
    return seconds


def _ogr2ogr(pg: str, path: Path, table: str, *extra: str) -> None:
    subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "PostgreSQL",
            f"PG:{pg}",
            str(path),
            "-nln",
            f"bench.{table}",
            "-overwrite",
            "-lco",
            "GEOMETRY_NAME=geom",
            "-lco",
            "SPATIAL_INDEX=GIST",
            "--config",
            "PG_USE_COPY",
            "YES",
            *extra,
        ],
        check=True,
        capture_output=True,
    )


def _peak_rss_of_child(args: list[str]) -> float:
    """Run a child process and return its peak resident memory in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(args, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024


def main() -> None:
    """Run the benchmark and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--polygons", type=int, default=300_000)
    parser.add_argument(
        "--big-points",
        type=int,
        default=0,
        help="also measure peak memory loading this many points (e.g. 10000000)",
    )
    parser.add_argument("--load-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = Settings()
    catalog = default_catalog(settings.catalog_dir)
    engine = make_engine(database_url(settings))
    if args.load_only:  # child process of the memory measurement
        run_load(engine, settings, catalog, LoadRequest(path=args.load_only, layer="street_lamp"))
        return
    pg = (
        database_url(settings)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
        .removeprefix("postgresql://")
    )
    user_host, _, dbname = pg.rpartition("/")
    user, _, hostport = user_host.rpartition("@")
    host, _, port = hostport.partition(":")
    pg_conn = f"host={host} port={port} user={user} dbname={dbname}"
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS bench"))
    work = Path(tempfile.mkdtemp(prefix="sibiao-bench-"))
    print(f"points: {args.points:,} into street_lamp", flush=True)
    points = work / "points.gpkg"
    _points_file(points, args.points)
    ours = _timed(
        "sibiao ingest (validation, COPY, codes, GiST)",
        lambda: run_load(engine, settings, catalog, LoadRequest(path=points, layer="street_lamp")),
    )
    ogr = _timed(
        "ogr2ogr PG_USE_COPY=YES (new table, GiST)", lambda: _ogr2ogr(pg_conn, points, "lamps")
    )

    def geopandas_load() -> None:
        frame = gpd.read_file(points)
        frame.to_postgis("lamps_gpd", engine, schema="bench", if_exists="replace", index=True)

    gpd_seconds = _timed("geopandas read_file + to_postgis", geopandas_load)
    print(f"  ratio sibiao/ogr2ogr   {ours / ogr:6.2f}  (target <= 0.5)")
    print(f"  ratio sibiao/geopandas {ours / gpd_seconds:6.2f}  (target < 1)")

    print(f"polygons: {args.polygons:,} in EPSG:4547, 1 % invalid, into building", flush=True)
    polygons = work / "polygons.gpkg"
    _polygons_file(polygons, args.polygons)
    ours = _timed(
        "sibiao ingest (transform, make_valid, ...)",
        lambda: run_load(engine, settings, catalog, LoadRequest(path=polygons, layer="building")),
    )
    ogr = _timed(
        "ogr2ogr -t_srs EPSG:4490 -makevalid",
        lambda: _ogr2ogr(pg_conn, polygons, "buildings", "-t_srs", "EPSG:4490", "-makevalid"),
    )
    print(f"  ratio sibiao/ogr2ogr   {ours / ogr:6.2f}  (target <= 0.7)")

    if args.big_points:
        print(f"memory: {args.big_points:,} points", flush=True)
        big = work / "big.gpkg"
        _points_file(big, args.big_points, seed=3)
        peak = _peak_rss_of_child([sys.executable, "-m", "bench.ingest", "--load-only", str(big)])
        print(f"  peak RSS {peak:,.0f} MB  (target <= 1,500 MB)")
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA bench CASCADE"))
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    engine.dispose()
    os.environ.pop("SIBIAO_BENCH", None)


if __name__ == "__main__":
    main()
