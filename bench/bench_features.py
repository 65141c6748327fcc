"""Median latency of OGC API items pages and tiles: Sibiao against tipg, in the same run.

Both servers must already run on the same database (see bench/README.md), e.g.

    .venv/bin/python bench/bench_features.py --sibiao http://127.0.0.1:8000 \
        --tipg http://127.0.0.1:8081 --layer building --layer manhole_cover

Requests alternate between the two servers so machine noise hits both alike. Prints
median and p90 per endpoint and the ratio sibiao/tipg (lower is better).
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import morecantile


def _time(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 204):
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return elapsed


def _report(name: str, ours: list[float], theirs: list[float] | None) -> None:
    def fmt(values: list[float]) -> str:
        values = sorted(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        return f"median {1000 * statistics.median(values):7.1f} ms  p90 {1000 * p90:7.1f} ms"

    line = f"{name:<48} sibiao {fmt(ours)}"
    if theirs:
        ratio = statistics.median(ours) / statistics.median(theirs)
        line += f" | tipg {fmt(theirs)} | ratio {ratio:.2f}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sibiao", required=True)
    parser.add_argument("--tipg")
    parser.add_argument("--layer", action="append", default=[])
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--lon", type=float, default=113.22)
    parser.add_argument("--lat", type=float, default=23.38)
    args = parser.parse_args()
    layers = args.layer or ["building"]
    tile = morecantile.tms.get("WebMercatorQuad").tile(args.lon, args.lat, 14)
    with httpx.Client(timeout=120) as client:
        for layer in layers:
            cases = [
                (f"items limit={args.limit}", f"items?limit={args.limit}"),
                (f"items limit={args.limit} offset=2000", f"items?limit={args.limit}&offset=2000"),
            ]
            for label, path in cases:
                ours_url = f"{args.sibiao}/collections/{layer}/{path}"
                theirs_url = f"{args.tipg}/collections/layers.{layer}/{path}" if args.tipg else None
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(3):  # warm both
                    _time(client, ours_url)
                    if theirs_url:
                        _time(client, theirs_url)
                for _ in range(args.runs):
                    ours.append(_time(client, ours_url))
                    if theirs_url:
                        theirs.append(_time(client, theirs_url))
                _report(f"{layer} {label}", ours, theirs or None)
            z, x, y = tile.z, tile.x, tile.y
            ours_tile = f"{args.sibiao}/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}"
            # Uncached: a fresh properties list per request defeats the tile cache.
            cold = [_time(client, f"{ours_tile}?limit={20000 - i}") for i in range(args.runs)]
            warm = [_time(client, ours_tile) for _ in range(args.runs)]
            _report(f"{layer} tile z14 (uncached)", cold, None)
            _report(f"{layer} tile z14 (cached)", warm, None)


if __name__ == "__main__":
    main()
