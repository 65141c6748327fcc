"""Start Sibiao (and tipg) on a database for a benchmark, and stop them afterwards.

Each server is a child process on a free local port, waited for with a timeout; its output
goes to a log file beside the benchmark's scratch folder. Sibiao runs with authentication
off (the benchmark measures queries, not sign-in). tipg runs from its own virtualenv (its
FastAPI differs from ours): pass the folder of that environment's ``bin``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

START_TIMEOUT_S = 120.0


def free_port() -> int:
    """Return a free local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: server exited ({process.returncode}); see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code < 500:
                return
        time.sleep(0.5)
    raise SystemExit(f"{url}: not up after {START_TIMEOUT_S:.0f} s; see {log}")


@contextlib.contextmanager
def _run(cmd: list[str], env: dict[str, str], probe: str, log: Path) -> Iterator[None]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(probe, process, log)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


@contextlib.contextmanager
def sibiao(database_url: str, *, logs: Path) -> Iterator[str]:
    """Run ``sibiao serve`` on ``database_url`` (authentication off); yield its base URL."""
    port = free_port()
    env = os.environ | {"SIBIAO_DATABASE_URL": database_url, "SIBIAO_AUTH_ENABLED": "false"}
    cli = Path(sys.executable).parent / "sibiao"
    cmd = [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with _run(cmd, env, f"{base}/health", logs / "sibiao.log"):
        yield base


@contextlib.contextmanager
def tipg(database_url: str, *, bin_dir: Path, logs: Path, max_per_tile: int) -> Iterator[str]:
    """Run tipg (from the virtualenv whose ``bin`` is ``bin_dir``) on the ``layers`` schema."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url.replace("postgresql+psycopg://", "postgresql://"),
        "TIPG_DB_SCHEMAS": json.dumps(["layers"]),
        "TIPG_MAX_FEATURES_PER_TILE": str(max_per_tile),
    }
    cmd = [str(bin_dir / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with _run(cmd, env, f"{base}/collections", logs / "tipg.log"):
        yield base
