"""``GET /nearby`` end to end against a raw KNN SQL statement, in the same run.

    .venv/bin/python -m bench.nearby --database-url postgresql://.../sibiao_bench_layers

starts ``sibiao serve`` on that database itself (or give ``--url`` of a running one with
authentication off) and asks, for the same random points near the layers' features, for the
k nearest features of several layers (default: manhole covers, street lamps, schools, fire
stations). The peer is one SQL statement over a kept connection that does only the planar
KNN (``ORDER BY geom <-> point LIMIT k`` per layer, geodesic metres computed for those k):
the cost of the index search without HTTP, JSON, properties or exactness. Requests alternate
so machine noise hits both alike. Prints p50/p95 of each and the ratio of the medians, with
the load average, and checks on every point that our nearest is never farther than the
peer's (ours is the exact geodesic nearest).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

from bench import servers

LAYERS = ("manhole_cover", "street_lamp", "school", "fire_station")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _points(
    conn: psycopg.Connection, layer: str, count: int, seed: int
) -> list[tuple[float, float]]:
    """Return ``count`` points a few metres off features of ``layer`` (repeatable)."""
    rows = conn.execute(
        f"""SELECT ST_X(geom) + (random() - 0.5) * 0.002, ST_Y(geom) + (random() - 0.5) * 0.002
            FROM (SELECT setseed(%s)) s, layers."{layer}"
            ORDER BY md5(fid::text || %s) LIMIT %s""",
        (seed / 1000, str(seed), count),
    ).fetchall()
    return [(float(x), float(y)) for x, y in rows]


def _peer_sql(layers: list[str], k: int) -> str:
    parts = [
        f"""(SELECT '{code}' AS layer, fid,
                    ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4490)
                                ::geography) AS d
             FROM layers."{code}"
             ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4490) LIMIT {int(k)})"""
        for code in layers
    ]
    return " UNION ALL ".join(parts)


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"p50 {1000 * statistics.median(ordered):6.2f} ms  p95 {1000 * p95:6.2f} ms"


def run(url: str, database_url: str, layers: list[str], k: int, runs: int, seed: int) -> None:
    """Measure and print."""
    load_before = os.getloadavg()
    with psycopg.connect(_libpq(database_url), autocommit=True) as conn:
        points = _points(conn, layers[0], runs + 10, seed)
        sql = _peer_sql(layers, k)
        ours: list[float] = []
        peer: list[float] = []
        farther = 0
        with httpx.Client(base_url=url, timeout=60) as client:
            for i, (x, y) in enumerate(points):
                params = {"lon": x, "lat": y, "layers": ",".join(layers), "k": k}
                started = time.perf_counter()
                response = client.get("/nearby", params=params)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"/nearby: HTTP {response.status_code}: {response.text[:300]}")
                started = time.perf_counter()
                rows = conn.execute(sql, {"x": x, "y": y}).fetchall()
                peer_elapsed = time.perf_counter() - started
                if i < 10:  # warm-up
                    continue
                ours.append(elapsed)
                peer.append(peer_elapsed)
                answer = response.json()["layers"]
                for code in layers:
                    mine = answer[code]["features"]
                    theirs = [float(d) for layer, _, d in rows if layer == code]
                    if mine and theirs:
                        best = mine[0]["properties"]["distance_m"]
                        farther += best > min(theirs) + 0.001
    load_after = os.getloadavg()
    print(f"/nearby k={k} layers={','.join(layers)}, {runs} points", flush=True)
    print(f"  sibiao /nearby (HTTP, exact geodesic)   {_stats(ours)}")
    print(f"  raw KNN SQL (planar, no HTTP)           {_stats(peer)}")
    ratio = statistics.median(ours) / statistics.median(peer)
    print(f"  ratio of medians sibiao/peer            {ratio:.2f}")
    print(f"  our nearest farther than the peer's      {farther} (must be 0)")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")


def main() -> None:
    """Parse arguments, start the server when asked, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="the loaded district's database")
    parser.add_argument("--url", help="a running Sibiao (authentication off); else started here")
    parser.add_argument("--layer", action="append", default=[])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    layers = args.layer or list(LAYERS)
    with ExitStack() as stack:
        url = args.url
        if url is None:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-nearby-")))
            url = stack.enter_context(servers.sibiao(args.database_url, logs=logs))
        run(url, args.database_url, layers, args.k, args.runs, args.seed)


if __name__ == "__main__":
    main()
