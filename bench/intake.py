"""Intake benchmark: concurrent clients posting synthetic cases to a live API.

Usage: ``.venv/bin/python -m bench.intake [--clients 50] [--cases 2000] [--seconds 60]
[--scale 0.02] [--path intake|cases] [--workers 2] [--rate R] [--auth] [--trace FILE]``.
Generates a small district into a throwaway database, starts the API with uvicorn on
127.0.0.1 (authentication off unless ``--auth``, ``--workers`` processes) and lets
``--clients`` concurrent keep-alive clients (one asyncio process, aiohttp) post the synthetic
case stream until ``--cases`` are sent or ``--seconds`` pass: to ``POST /intake/{system}`` in
each system's own payload, or with ``--path cases`` to ``POST /cases`` as the platform's own
``CaseIn`` (the issue's figure). The first ``--warmup``
cases are posted before the clock starts (counted in the rows, not in the figures). With
``--rate R`` the load is an open loop instead: a post is due every 1/R s (at most ``--clients``
in flight) and latency counts from when it was due; without it the clients post back to back,
so latency is about clients / throughput by construction. ``--auth`` serves with
authentication on, each system posting with its own API key (as in production: the key is
looked up and the request audited).

Prints cases/s, p50/p95/p99 latency, the CPU seconds of the load generator, of the API workers
and of the database backends serving them, and the load average; how late the load generator
sent posts and its own collector pauses (with what existed before the run frozen out of the
collector's sight, :mod:`bench.latency`), and the seconds of the run with the most slow
answers (``--trace FILE`` keeps each post's times); then counts the rows: every 201 must be
exactly one stored case with one ``receive`` event (none lost, none duplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

import aiohttp
import httpx
import numpy as np
import psutil
from sqlalchemy import Engine, text

from api.collector import startup_frozen
from bench.latency import (
    CollectorPauses,
    Trace,
    lateness,
    slow_seconds,
    write_trace,
)
from cases.district_inputs import case_inputs
from cases.normalise import from_source
from cases.routing import packaged_rules, seed_rules
from cases.sources import SourceSystem
from cases.synthetic import GeneratedCase, generate_cases
from ingest.district import load_district
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from layers.synthetic.generate import generate
from schemas.accounts import create_key
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


def _serve(url: str, port: int, workers: int, auth: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SIBIAO_DATABASE_URL": url,
        "SIBIAO_AUTH_ENABLED": "true" if auth else "false",
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
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )


def _wait_up(base: str, proc: subprocess.Popen[bytes], workers: int, timeout: float = 90) -> None:
    """Wait until every worker answers (a fresh connection per probe lands on any of them)."""
    deadline = time.monotonic() + timeout
    answered = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                answered += 1
                if answered >= 3 * workers:
                    return
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not come up")


Request = tuple[str, bytes, dict[str, str]]


def _requests(cases: list[GeneratedCase], path: str, keys: dict[str, str]) -> list[Request]:
    """Return (URL path, JSON body, headers) of each case, made before the clock starts.

    ``keys``: the API key of each sending system (authentication on), else empty.
    """
    out: list[Request] = []
    rules = packaged_rules()
    for c in cases:
        headers = {"Content-Type": "application/json"}
        if c.system.value in keys:
            headers["X-API-Key"] = keys[c.system.value]
        if path == "intake":
            body = json.dumps(c.payload, ensure_ascii=False).encode()
            out.append((f"/intake/{c.system.value}", body, headers))
        else:
            case_in = from_source(c.system.value, c.payload, rules=rules)
            out.append(("/cases", case_in.model_dump_json(exclude_none=True).encode(), headers))
    return out


def _keys(engine: Engine, district_code: str) -> dict[str, str]:
    """Return a fresh API key for each sending system."""
    with engine.begin() as conn:
        return {
            system.value: create_key(conn, system=system.value, district_code=district_code)[1]
            for system in SourceSystem
        }


async def _post_all(
    base: str, requests: list[Request], clients: int, seconds: float, traces: list[Trace]
) -> tuple[list[float], Counter[int], float, int]:
    """Post with ``clients`` keep-alive workers; return latencies, statuses, wall, sent."""
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    path, body, headers = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0, sent = time.perf_counter(), time.time()
                async with session.post(path, data=body, headers=headers) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - t0)
                    statuses[response.status] += 1
                traces.append((sent, sent, time.time(), response.status))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    return latencies, statuses, wall, len(requests) - queue.qsize()


async def _post_at_rate(
    base: str,
    requests: list[Request],
    clients: int,
    rate: float,
    seconds: float,
    traces: list[Trace],
) -> tuple[list[float], Counter[int], float, int]:
    """Start one post every ``1/rate`` s (open loop), at most ``clients`` in flight.

    Latency counts from when the post was due, so time spent waiting for a free client is
    included (no coordinated omission). ``traces`` gets each post's due, sent and answered
    times: a post sent well after it was due means the load generator (or all 50 clients
    busy) held it, not the API.
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    slots = asyncio.Semaphore(clients)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def one(path: str, body: bytes, headers: dict[str, str], due: float) -> None:
            async with slots:
                sent = time.perf_counter()
                async with session.post(path, data=body, headers=headers) as response:
                    await response.read()
                    done = time.perf_counter()
                    latencies.append(done - due)
                    statuses[response.status] += 1
            traces.append((due + epoch, sent + epoch, done + epoch, response.status))

        start = time.perf_counter()
        epoch = time.time() - start
        tasks = []
        for k, (path, body, headers) in enumerate(requests):
            due = start + k / rate
            if due - start > seconds:
                break
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(path, body, headers, due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return latencies, statuses, wall, len(tasks)


def _cpu(pids: list[int]) -> float:
    """Return the CPU seconds (user + system) used so far by processes still alive."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _server_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    parent = psutil.Process(proc.pid)
    return [parent.pid, *(child.pid for child in parent.children(recursive=True))]


def _backend_pids(engine: Engine, name: str) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        ).scalars()
        return [int(pid) for pid in rows]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _run(
    api: str,
    proc: subprocess.Popen[bytes],
    engine: Engine,
    name: str,
    requests: list[Request],
    args: argparse.Namespace,
) -> bool:
    """Post the requests, print the figures and the row counts; return whether they agree."""
    warm = requests[: args.warmup]
    # All clients at once, so that every worker runs INTAKE_CONCURRENCY cases at a time and its
    # pool holds all the connections the run will use before the clock starts. A backend's
    # first case costs ~25 ms more (its start, PostGIS and the catalogs it reads): 7 new ones
    # at once in a burst stalled a worker's cases for 0.3-1 s.
    _, warm_statuses, _, _ = asyncio.run(_post_all(api, warm, args.clients, 600, []))
    server, backends = _server_pids(proc), _backend_pids(engine, name)
    cpu0 = (time.process_time(), _cpu(server), _cpu(backends))
    print(f"  load average before: {_load()}")
    traces: list[Trace] = []
    rest = requests[args.warmup :]
    with startup_frozen(), CollectorPauses() as pauses:
        latencies, statuses, wall, sent = asyncio.run(
            _post_all(api, rest, args.clients, args.seconds, traces)
            if args.rate is None
            else _post_at_rate(api, rest, args.clients, args.rate, args.seconds, traces)
        )
    backends = sorted(set(backends) | set(_backend_pids(engine, name)))
    cpu1 = (time.process_time(), _cpu(server), _cpu(backends))
    client_s, server_s, db_s = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    with engine.connect() as conn:
        rows, distinct, events = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT (source_system, source_id)), "
                "(SELECT count(*) FROM case_events WHERE action = 'receive') FROM cases"
            )
        ).one()
    ms = np.array(latencies) * 1000
    statuses.update(warm_statuses)
    created = statuses.get(201, 0)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    print(f"  load average after:  {_load()}")
    print(f"  {args.clients} clients, {sent:,} posted in {wall:.1f} s: {sent / wall:,.0f} cases/s")
    print(f"  latency p50 {p50:.0f} ms  p95 {p95:.0f} ms  p99 {p99:.0f} ms  max {ms.max():.0f} ms")
    print(
        f"  CPU over the run ({wall:.1f} s wall, 2 cores = {2 * wall:.1f} core-s): load generator "
        f"{client_s:.1f} s, API ({args.workers} worker(s)) {server_s:.1f} s, database {db_s:.1f} s"
    )
    print(
        f"  CPU per case: client {1000 * client_s / sent:.2f} ms, API {1000 * server_s / sent:.2f} "
        f"ms, database {1000 * db_s / sent:.2f} ms"
    )
    print(
        f"  load generator: posts sent after due {lateness(traces)}; "
        f"its collector {pauses.summary()}"
    )
    print(f"  seconds with answers over 50 ms: {slow_seconds(traces)}")
    if args.trace is not None:
        write_trace(args.trace, traces)
        print(f"  each post's due/sent/done times: {args.trace}")
    print(f"  answers (warm-up included) {dict(sorted(statuses.items()))}")
    print(
        f"  stored {rows:,} rows, {distinct:,} distinct, {events:,} receive events; "
        f"created (201) {created:,}"
    )
    ok = bool(rows == distinct == created == events)
    print(f"  lost/duplicated: {'none' if ok else 'MISMATCH'}")
    return ok


def main() -> None:
    """Build a small district, serve it, post the stream, print the figures and the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--path", choices=["intake", "cases"], default="intake")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--warmup", type=int, default=100, help="cases posted before timing")
    parser.add_argument(
        "--auth",
        action="store_true",
        help="authentication on: each system posts with its own API key (audited)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="write each post's due, sent and answered times (epoch seconds) to this CSV",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: cases per second offered (default: clients post back to back)",
    )
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
            cases = _stream(Path(tmp), catalog, args.cases + args.warmup)
        keys = _keys(engine, settings.district_code) if args.auth else {}
        requests = _requests(cases, args.path, keys)
        port = _free_port()
        api = f"http://127.0.0.1:{port}"
        proc = _serve(rendered, port, args.workers, args.auth)
        _wait_up(api, proc, args.workers)
        systems = Counter(c.system.value for c in cases)
        target = "POST /cases" if args.path == "cases" else "POST /intake/{system}"
        print(
            f"{len(cases):,} cases to {target} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(systems.items()))}), "
            f"{args.warmup} of them as warm-up; authentication {'on' if args.auth else 'off'}"
        )
        if not _run(api, proc, engine, name, requests, args):
            raise SystemExit(1)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        engine.dispose()
        drop_database(server, name)


if __name__ == "__main__":
    main()
