"""Median latency of OGC API items pages and vector tiles: Sibiao against tipg, in the same run.

Either give a loaded district's database and tipg's virtualenv, and both servers are started
here on that database (Sibiao with authentication off, tipg on the ``layers`` schema with the
same 20,000 features per tile):

    .venv/bin/python -m bench.bench_features --database-url postgresql://.../sibiao_bench_layers \
        --tipg-bin /tmp/tipg-venv/bin --layer building --layer manhole_cover

or the URLs of running servers (``--sibiao``, ``--tipg``). Requests alternate between the two
servers so machine noise hits both alike. Items: pages of 1000, at offset 2000 and in a bbox.
Tiles: the tile holding the point and its eight neighbours at each zoom of ``--zooms``; our
tiles uncached (a different ``limit`` each request defeats the tile cache, the features are the
same), then cached. Prints median and p90 per case, the ratio sibiao/tipg (lower is better)
and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import morecantile

from bench import servers

TMS = morecantile.tms.get("WebMercatorQuad")
MAX_PER_TILE = 20_000


def _time(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 204):
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return elapsed


def _fmt(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {1000 * statistics.median(ordered):7.1f} ms  p90 {1000 * p90:7.1f} ms"


def _report(name: str, ours: list[float], theirs: list[float] | None) -> None:
    line = f"{name:<44} sibiao {_fmt(ours)}"
    if theirs:
        ratio = statistics.median(ours) / statistics.median(theirs)
        line += f" | tipg {_fmt(theirs)} | ratio {ratio:.2f}"
    print(f"{line} | load {os.getloadavg()[0]:.2f}", flush=True)


def _pair(
    client: httpx.Client, ours: list[str], theirs: list[str] | None, warm: int = 2
) -> tuple[list[float], list[float]]:
    """Time alternating requests to the URLs given; the first ``warm`` are not recorded."""
    mine: list[float] = []
    other: list[float] = []
    for i, url in enumerate(ours):
        a = _time(client, url)
        b = _time(client, theirs[i]) if theirs else 0.0
        if i >= warm:
            mine.append(a)
            other.append(b)
    return mine, other if theirs else []


def _items(client: httpx.Client, args: argparse.Namespace, layer: str) -> None:
    half = 0.01
    bbox = f"{args.lon - half},{args.lat - half},{args.lon + half},{args.lat + half}"
    cases = [
        (f"items limit={args.limit}", f"items?limit={args.limit}"),
        (f"items limit={args.limit} offset=2000", f"items?limit={args.limit}&offset=2000"),
        (f"items bbox 2x2 km limit={args.limit}", f"items?limit={args.limit}&bbox={bbox}"),
    ]
    count = args.runs + 2
    for label, path in cases:
        ours = [f"{args.sibiao}/collections/{layer}/{path}"] * count
        theirs = [f"{args.tipg}/collections/layers.{layer}/{path}"] * count if args.tipg else None
        mine, other = _pair(client, ours, theirs)
        _report(f"{layer} {label}", mine, other or None)


def _tiles(client: httpx.Client, args: argparse.Namespace, layer: str) -> None:
    count = args.tile_runs + 2
    for z in args.zooms:
        centre = TMS.tile(args.lon, args.lat, z)
        tiles = [
            morecantile.Tile(centre.x + dx, centre.y + dy, z)
            for dx, dy in itertools.product((-1, 0, 1), repeat=2)
        ]
        picked = [tiles[i % len(tiles)] for i in range(count)]
        base = f"{args.sibiao}/collections/{layer}/tiles/WebMercatorQuad"
        cached = [f"{base}/{t.z}/{t.y}/{t.x}" for t in picked]
        # A different limit per request defeats our tile cache; the features are the same.
        cold = [f"{url}?limit={MAX_PER_TILE - i}" for i, url in enumerate(cached)]
        theirs = None
        if args.tipg:
            other = f"{args.tipg}/collections/layers.{layer}/tiles/WebMercatorQuad"
            theirs = [f"{other}/{t.z}/{t.x}/{t.y}" for t in picked]
        mine, other_times = _pair(client, cold, theirs)
        _report(f"{layer} tile z{z} (ours uncached)", mine, other_times or None)
        again = [f"{base}/{t.z}/{t.y}/{t.x}" for t in (tiles * 9)[: args.tile_runs + len(tiles)]]
        warm, _ = _pair(client, again, None, warm=len(tiles))
        _report(f"{layer} tile z{z} (ours cached)", warm, None)


def main() -> None:
    """Parse arguments, start the servers when asked, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="start both servers on this database")
    parser.add_argument("--tipg-bin", type=Path, help="bin folder of tipg's virtualenv")
    parser.add_argument("--sibiao", help="a running Sibiao (authentication off)")
    parser.add_argument("--tipg", help="a running tipg on the same database")
    parser.add_argument("--layer", action="append", default=[])
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tile-runs", type=int, default=18)
    parser.add_argument("--zooms", type=int, nargs="+", default=[12, 13, 14, 15, 16])
    parser.add_argument("--no-items", action="store_true", help="tiles only")
    parser.add_argument("--lon", type=float, default=113.22)
    parser.add_argument("--lat", type=float, default=23.38)
    args = parser.parse_args()
    layers = args.layer or ["building"]
    with ExitStack() as stack:
        if args.database_url:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-features-")))
            if args.sibiao is None:
                args.sibiao = stack.enter_context(servers.sibiao(args.database_url, logs=logs))
            if args.tipg is None and args.tipg_bin is not None:
                args.tipg = stack.enter_context(
                    servers.tipg(
                        args.database_url,
                        bin_dir=args.tipg_bin,
                        logs=logs,
                        max_per_tile=MAX_PER_TILE,
                    )
                )
        if args.sibiao is None:
            raise SystemExit("give --database-url (servers started here) or --sibiao URL")
        print(f"load average at start: {os.getloadavg()}", flush=True)
        with httpx.Client(timeout=300) as client:
            for layer in layers:
                if not args.no_items:
                    _items(client, args, layer)
                _tiles(client, args, layer)


if __name__ == "__main__":
    main()
