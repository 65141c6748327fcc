"""Intake benchmark: concurrent clients posting synthetic cases to a live API.

Usage: ``.venv/bin/python -m bench.intake [--clients 50] [--cases 2000] [--seconds 60]
[--scale 0.02]``. Generates a small district into a throwaway database, starts the API with
uvicorn on 127.0.0.1 (authentication off), and lets ``--clients`` concurrent clients post the
synthetic case stream to ``POST /intake/{system}`` (each system's own payload) until
``--cases`` are sent or ``--seconds`` pass. Prints p50/p99 latency and cases/s, then counts the
rows: every 201 must be exactly one stored case (none lost, none duplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import text

from cases.district_inputs import case_inputs
from cases.routing import seed_rules
from cases.synthetic import GeneratedCase, generate_cases
from ingest.district import load_district
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from layers.synthetic.generate import generate
from schemas.catalog import Catalog
from schemas.database import (
    cluster_for,
    drop_database,
    ensure_database,
    make_engine,
    parse_url,
)
from schemas.settings import Settings

DAYS = 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stream(folder: Path, catalog: Catalog, n: int) -> list[GeneratedCase]:
    """Return the first ``n`` cases of a stream over the last week (nothing in the future)."""
    addresses, assets, villages = case_inputs(folder, catalog)
    start = date.today() - timedelta(days=DAYS + 1)
    stream = generate_cases(
        addresses=addresses,
        assets=assets,
        villages=villages,
        days=DAYS,
        per_day=1.2 * n / DAYS,
        seed=7,
        start=start,
    )
    out: list[GeneratedCase] = []
    for case in stream:
        out.append(case)
        if len(out) == n:
            break
    return out


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SIBIAO_DATABASE_URL": url,
        "SIBIAO_AUTH_ENABLED": "false",
        "SIBIAO_ESCALATION_INTERVAL_S": "0",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )


def _wait_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not come up")


async def _post_all(
    base: str, cases: list[GeneratedCase], clients: int, seconds: float
) -> tuple[list[float], Counter[int], float, int]:
    """Post with ``clients`` concurrent workers; return latencies, statuses, wall time, sent."""
    queue: asyncio.Queue[GeneratedCase] = asyncio.Queue()
    for case in cases:
        queue.put_nowait(case)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    case = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                response = await client.post(f"/intake/{case.system.value}", json=case.payload)
                latencies.append(time.perf_counter() - t0)
                statuses[response.status_code] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    return latencies, statuses, wall, len(cases) - queue.qsize()


def main() -> None:
    """Build a small district, serve it, post the stream, print the figures and the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scale", type=float, default=0.02)
    args = parser.parse_args()
    base = Settings()
    catalog = default_catalog(base.catalog_dir)
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
    rendered = url.render_as_string(hide_password=False)
    settings = base.model_copy(update={"database_url": rendered})
    engine = make_engine(url)
    proc: subprocess.Popen[bytes] | None = None
    try:
        prepare_database(engine, settings)
        with engine.begin() as conn:
            seed_rules(conn)
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), scale=args.scale, seed=0, catalog=catalog)
            load_district(engine, settings, catalog, Path(tmp))
            cases = _stream(Path(tmp), catalog, args.cases)
        port = _free_port()
        api = f"http://127.0.0.1:{port}"
        proc = _serve(rendered, port)
        _wait_up(api, proc)
        systems = Counter(c.system.value for c in cases)
        print(f"{len(cases):,} cases ({', '.join(f'{k} {v}' for k, v in sorted(systems.items()))})")
        latencies, statuses, wall, sent = asyncio.run(
            _post_all(api, cases, args.clients, args.seconds)
        )
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT (source_system, source_id)) FROM cases")
            ).one()
        ms = np.array(latencies) * 1000
        created = statuses.get(201, 0)
        print(
            f"  {args.clients} clients, {sent:,} posted in {wall:.1f} s: {sent / wall:,.0f} cases/s"
        )
        print(f"  latency p50 {np.percentile(ms, 50):.0f} ms  p99 {np.percentile(ms, 99):.0f} ms")
        print(f"  answers {dict(sorted(statuses.items()))}")
        print(f"  stored {rows:,} rows, {distinct:,} distinct; created (201) {created:,}")
        ok = rows == distinct == created
        print(f"  lost/duplicated: {'none' if ok else 'MISMATCH'}")
        if not ok:
            raise SystemExit(1)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        engine.dispose()
        drop_database(server, name)


if __name__ == "__main__":
    main()
