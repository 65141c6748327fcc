"""What the load and fault scenarios stand on: a private cluster, the API as a process, clients.

Everything here runs on loopback. :class:`PrivateCluster` is a throwaway PostgreSQL+PostGIS in a
folder of its own (never the shared cluster: the fault scenarios restart it), with one migrated
template database from which each scenario clones a fresh one. :class:`ApiProcess` runs the API
as a real uvicorn subprocess, so SIGKILL is real. :func:`post_cases` is a pool of concurrent
HTTP clients that re-send on no answer and on 503 (honouring ``Retry-After``, capped), and
records every answer. :func:`check_stored` counts what the database holds afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from cases.routing import seed_rules
from cases.rules import load_routing_rules
from layers.bootstrap import prepare_database
from schemas.database import ensure_database, make_engine, parse_url
from schemas.embedded import EmbeddedCluster
from schemas.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = "sibiao_faults_template"
#: A throwaway cluster needs little memory; the rest of the tuning is the platform's.
SMALL = {"shared_buffers": "'128MB'", "max_connections": "120", "max_wal_size": "'1GB'"}


def load_average() -> str:
    """Return the 1/5/15-minute load averages, to print beside every figure."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


class PrivateCluster:
    """A throwaway cluster in its own folder on a free port, with a migrated template database."""

    def __init__(self, root: Path | None = None) -> None:
        base = Path(tempfile.gettempdir()) / "sibiao-faults"
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        self.root = root or Path(tempfile.mkdtemp(prefix="run-", dir=base))
        self.root.chmod(0o755)
        self.cluster = EmbeddedCluster(self.root / "pg", tuning=SMALL)
        self._count = 0

    def start(self) -> None:
        """Start the cluster and build the template (migrated, rules seeded)."""
        self.cluster.start()
        ensure_database(self.maintenance, TEMPLATE)
        settings = self.settings(TEMPLATE)
        engine = make_engine(self.url(TEMPLATE), pool_size=2)
        try:
            prepare_database(engine, settings)
            with engine.begin() as conn:
                seed_rules(conn)
        finally:
            engine.dispose()

    @property
    def maintenance(self) -> URL:
        """Return the URL of the maintenance database."""
        return parse_url(self.cluster.url("postgres"))

    def url(self, database: str) -> URL:
        """Return the URL of a database of this cluster."""
        return parse_url(self.cluster.url(database))

    def settings(self, database: str) -> Settings:
        """Return settings for a database of this cluster (authentication off)."""
        data_dir = self.root / "data" / database
        data_dir.mkdir(parents=True, exist_ok=True)
        return Settings(
            database_url=self.url(database).render_as_string(hide_password=False),
            data_dir=data_dir,
            auth_enabled=False,
            escalation_interval_s=0,
        )

    def fresh(self, label: str) -> str:
        """Return the name of a new database cloned from the template."""
        self._count += 1
        name = f"faults_{label}_{self._count}"
        engine = make_engine(self.maintenance, pool_size=1)
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
        finally:
            engine.dispose()
        return name

    def stop(self) -> None:
        """Stop the cluster and remove its folder."""
        try:
            self.cluster.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """Run a private cluster for the block; stop and remove it afterwards."""
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def child_env(settings: Settings) -> dict[str, str]:
    """Return the environment of a child process (API, CLI) working on ``settings``."""
    assert settings.database_url is not None
    return {
        **os.environ,
        "SIBIAO_DATABASE_URL": settings.database_url,
        "SIBIAO_DATA_DIR": str(settings.data_dir),
        "SIBIAO_AUTH_ENABLED": "false",
        "SIBIAO_ESCALATION_INTERVAL_S": "0",
    }


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiProcess:
    """The API under uvicorn in a subprocess on 127.0.0.1 (start, SIGKILL, start again)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        """Start uvicorn and wait until /health answers 200."""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "critical",
                "--no-access-log",
            ],
            env=child_env(self.settings),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API exited with {self.proc.returncode} while starting")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"the API did not answer /health within {timeout:.0f} s")

    @property
    def pid(self) -> int | None:
        """Return the process id of the running API."""
        return None if self.proc is None else self.proc.pid

    def kill(self) -> None:
        """SIGKILL the API (no shutdown handlers run) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the API with SIGTERM (SIGKILL after 30 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def case_bodies(
    prefix: str, distinct: int, resend_fraction: float, *, seed: int = 5
) -> list[dict[str, Any]]:
    """Return the posts of a run: ``distinct`` new cases and a fraction of them sent again.

    Half of the re-sends follow their original at once (they race it across clients), the
    rest come later in the stream. Points lie inside the district's extent.
    """
    rng = random.Random(seed)
    items = [item.code for item in load_routing_rules().items]
    minx, miny, maxx, maxy = Settings.model_fields["district_extent"].default
    now = datetime.now(UTC)
    bodies = [
        {
            "source_system": "platform",
            "source_id": f"{prefix}-{i:06d}",
            "item_code": rng.choice(items),
            "reported_at": (now - timedelta(minutes=rng.randint(1, 600))).isoformat(),
            "reporter": {"name": "压测"},
            "location": {
                "lon": round(rng.uniform(minx, maxx), 6),
                "lat": round(rng.uniform(miny, maxy), 6),
                "crs": "EPSG:4490",
            },
            "description": f"load test case {i}",
        }
        for i in range(distinct)
    ]
    stream = list(bodies)
    rng.shuffle(stream)
    again = rng.sample(bodies, round(distinct * resend_fraction))
    for n, body in enumerate(again):
        if n % 2 == 0:
            stream.insert(stream.index(body) + 1, body)
        else:
            stream.insert(rng.randrange(stream.index(body) + 1, len(stream) + 1), body)
    return stream


@dataclass
class Answers:
    """What the clients saw: one final status per post, and every attempt's trouble."""

    final: Counter[int] = field(default_factory=Counter)
    created: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    no_answer: int = 0
    status_503: int = 0
    retry_after_missing: int = 0
    other_5xx: Counter[int] = field(default_factory=Counter)
    gave_up: int = 0
    latencies: list[float] = field(default_factory=list)
    retried_after_no_answer: set[str] = field(default_factory=set)
    sent: int = 0
    wall_s: float = 0.0

    def rate(self) -> float:
        """Return posts answered per second."""
        return self.sent / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        """Return a latency percentile in milliseconds (final answers only)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _post_one(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    answers: Answers,
    *,
    retry_cap_s: float,
    give_up_at: float,
) -> None:
    source_id = str(body["source_id"])
    while True:
        started = time.perf_counter()
        try:
            response = await client.post("/cases", json=body)
        except httpx.TransportError:
            answers.no_answer += 1
            answers.retried_after_no_answer.add(source_id)
            if time.monotonic() > give_up_at:
                answers.gave_up += 1
                return
            await asyncio.sleep(min(0.2, retry_cap_s))
            continue
        status = response.status_code
        if status == 503:
            answers.status_503 += 1
            retry_after = response.headers.get("Retry-After")
            if retry_after is None:
                answers.retry_after_missing += 1
            if time.monotonic() > give_up_at:
                answers.gave_up += 1
                return
            await asyncio.sleep(min(float(retry_after or 1), retry_cap_s))
            continue
        if status >= 500:
            answers.other_5xx[status] += 1
        answers.latencies.append(time.perf_counter() - started)
        answers.final[status] += 1
        answers.sent += 1
        if status == 201:
            answers.created.add(source_id)
        if status in (200, 201):
            answers.answered.add(source_id)
        return


async def _post_all(
    base: str, bodies: list[dict[str, Any]], clients: int, retry_cap_s: float, budget_s: float
) -> Answers:
    answers = Answers()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    give_up_at = time.monotonic() + budget_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(30.0, connect=5.0)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await _post_one(client, body, answers, retry_cap_s=retry_cap_s, give_up_at=give_up_at)

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    answers.wall_s = time.perf_counter() - began
    return answers


def post_cases(
    base: str,
    bodies: list[dict[str, Any]],
    *,
    clients: int,
    retry_cap_s: float = 1.0,
    budget_s: float = 600.0,
) -> Answers:
    """Post every body with ``clients`` concurrent clients; re-send on no answer or 503."""
    # In a thread of its own: the caller's thread may already run an event loop (a test
    # session that drives Chromium through Playwright's sync API keeps one there).
    with ThreadPoolExecutor(max_workers=1) as runner:
        return runner.submit(
            asyncio.run, _post_all(base, bodies, clients, retry_cap_s, budget_s)
        ).result()


@dataclass(frozen=True)
class Stored:
    """What the database holds for a run's source ids."""

    rows: int
    distinct: int
    missing_created: int
    missing_any: int
    without_receive_event: int
    orphan_events: int


def check_stored(engine: Engine, prefix: str, expected: set[str], created: set[str]) -> Stored:
    """Count the run's cases; every 201 must be stored, each case once, with its event."""
    with engine.connect() as conn:
        ids = {
            str(r[0])
            for r in conn.execute(
                text("SELECT source_id FROM cases WHERE source_id LIKE :p"), {"p": f"{prefix}-%"}
            )
        }
        rows, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT source_id) FROM cases WHERE source_id LIKE :p"),
            {"p": f"{prefix}-%"},
        ).one()
        bare = conn.execute(
            text(
                "SELECT count(*) FROM cases c WHERE c.source_id LIKE :p AND NOT EXISTS ("
                "SELECT 1 FROM case_events e WHERE e.case_id = c.id AND e.action = 'receive')"
            ),
            {"p": f"{prefix}-%"},
        ).scalar_one()
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM case_events e WHERE NOT EXISTS "
                "(SELECT 1 FROM cases c WHERE c.id = e.case_id)"
            )
        ).scalar_one()
    return Stored(
        rows=int(rows),
        distinct=int(distinct),
        missing_created=len(created - ids),
        missing_any=len(expected - ids),
        without_receive_event=int(bare),
        orphan_events=int(orphans),
    )
