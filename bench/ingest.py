"""Ingest benchmark: Sibiao's loader against ogr2ogr and geopandas, in the same run.

Usage: ``.venv/bin/python -m bench.ingest [--points 1000000] [--polygons 300000]
[--big-points 10000000] [--rounds 2] [--work DIR] [--skip-peers]`` (the database is the
embedded one, or SIBIAO_DATABASE_URL; ``--work`` keeps the generated files for the next run;
0 points or polygons skips that case).

Prints each wall time and the ratios the ingest issue sets:
  points:   sibiao / ogr2ogr (PG_USE_COPY, new table)        target <= 0.5
            sibiao / geopandas read_file + to_postgis         target <  1
  polygons: sibiao / ogr2ogr -t_srs EPSG:4490 -makevalid      target <= 0.7
  memory:   peak RSS while loading --big-points points        target <= 1.5 GB
            (VmHWM of the loading process, which runs GDAL and the COPY in-process)
Timings on a shared 2-core machine are noisy: each line shows the load average; compare
ratios, run several rounds (--rounds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from sqlalchemy import Engine, text

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


def _load() -> str:
    return "load avg " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _timed(label: str, func) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"  {label:<48} {seconds:8.2f} s   ({_load()})", flush=True)
    return seconds


def _settle(engine: Engine, table: str) -> None:
    """VACUUM (ANALYZE) a table just loaded, untimed.

    Autovacuum's own pass over it (a million fresh rows are far past its thresholds) would
    otherwise land inside the next timing, ours or the peer's.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {table}"))


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


def _peak_rss_mb() -> float:
    """Return this process's peak resident memory since it started its program (VmHWM).

    Not ``ru_maxrss``: after fork + exec that also counts the parent's pages the child had
    before exec (here the 10 M-point frame the benchmark generated).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _load_child(args: list[str]) -> tuple[float, float]:
    """Run the loading child process; return its wall time (s) and peak memory (MB).

    The load runs in that one process (GDAL and the COPY run in-process; the server is not
    its child), which reports its own peak when done.
    """
    start = time.perf_counter()
    done = subprocess.run(args, check=True, capture_output=True, text=True, timeout=3600)
    peak = float(done.stdout.strip().splitlines()[-1].split()[-1])
    return time.perf_counter() - start, peak


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
    parser.add_argument(
        "--skip-peers", action="store_true", help="time Sibiao only (no ogr2ogr, geopandas)"
    )
    parser.add_argument("--work", type=Path, help="keep generated files in this folder")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each timing (noisy hosts)")
    args = parser.parse_args()
    settings = Settings()
    catalog = default_catalog(settings.catalog_dir)
    engine = make_engine(database_url(settings))
    if args.load_only:  # child process of the memory measurement
        run_load(engine, settings, catalog, LoadRequest(path=args.load_only, layer="street_lamp"))
        print(f"peak MB {_peak_rss_mb():.0f}")
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
    work = args.work or Path(tempfile.mkdtemp(prefix="sibiao-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    def load(path: Path, layer: str) -> Callable[[], object]:
        return lambda: run_load(engine, settings, catalog, LoadRequest(path=path, layer=layer))

    def geopandas_load(path: Path) -> Callable[[], None]:
        def run() -> None:
            frame = gpd.read_file(path)
            frame.to_postgis("lamps_gpd", engine, schema="bench", if_exists="replace", index=True)

        return run

    if args.points:
        print(f"points: {args.points:,} into street_lamp ({_load()})", flush=True)
        points = _generated(work / f"points-{args.points}.gpkg", _points_file, args.points)
        ratios = []
        for _ in range(args.rounds):
            ours = _timed(
                "sibiao ingest (validation, COPY, codes, 3 indexes)", load(points, "street_lamp")
            )
            _settle(engine, "layers.street_lamp")
            if args.skip_peers:
                continue
            ogr = _timed(
                "ogr2ogr PG_USE_COPY=YES (new table, GiST)",
                lambda: _ogr2ogr(pg_conn, points, "lamps"),
            )
            _settle(engine, "bench.lamps")
            ratios.append(ours / ogr)
            print(f"  ratio sibiao/ogr2ogr   {ours / ogr:6.2f}  (target <= 0.5)")
        if not args.skip_peers:
            gpd_seconds = _timed("geopandas read_file + to_postgis", geopandas_load(points))
            print(f"  ratio sibiao/geopandas {ours / gpd_seconds:6.2f}  (target < 1)")
            print(f"  median ratio sibiao/ogr2ogr over {len(ratios)} rounds: {median(ratios):.2f}")

    if args.polygons:
        print(f"polygons: {args.polygons:,} in EPSG:4547, 1 % invalid, into building", flush=True)
        polygons = _generated(
            work / f"polygons-{args.polygons}.gpkg", _polygons_file, args.polygons
        )
        ratios = []
        for _ in range(args.rounds):
            ours = _timed("sibiao ingest (transform, make_valid, ...)", load(polygons, "building"))
            _settle(engine, "layers.building")
            if args.skip_peers:
                continue
            ogr = _timed(
                "ogr2ogr -t_srs EPSG:4490 -makevalid",
                lambda: _ogr2ogr(
                    pg_conn, polygons, "buildings", "-t_srs", "EPSG:4490", "-makevalid"
                ),
            )
            _settle(engine, "bench.buildings")
            ratios.append(ours / ogr)
            print(f"  ratio sibiao/ogr2ogr   {ours / ogr:6.2f}  (target <= 0.7)")
        if ratios:
            print(f"  median ratio sibiao/ogr2ogr over {len(ratios)} rounds: {median(ratios):.2f}")

    if args.big_points:
        print(f"memory: {args.big_points:,} points", flush=True)
        big = _generated(work / f"points-{args.big_points}.gpkg", _points_file, args.big_points, 3)
        seconds, peak = _load_child([sys.executable, "-m", "bench.ingest", "--load-only", str(big)])
        print(f"  loaded in {seconds:.1f} s ({_load()})")
        print(f"  peak RSS of the loading process {peak:,.0f} MB  (target <= 1,500 MB)")
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA bench CASCADE"))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    engine.dispose()


def _generated(path: Path, make: Callable[..., None], *args: int) -> Path:
    """Return ``path``, generating it first unless an earlier run (``--work``) left it."""
    if not path.exists():
        partial = path.with_suffix(".partial.gpkg")
        make(partial, *args)
        partial.rename(path)
    return path


if __name__ == "__main__":
    main()
