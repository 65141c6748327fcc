"""``sibiao worker``: escalate missed deadlines and deliver notifications every N seconds."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import typer

from api.cli.common import console, settings
from cases.escalation import ConsoleSender, FileSender, Sender
from cases.scheduler import Tick, run_tick
from schemas.database import database_url, make_engine
from schemas.errors import InvalidInput


def _start_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--now {text!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"--now {text!r} needs a time zone, e.g. +08:00")
    return moment


def _report(tick: Tick, json_out: bool) -> None:
    if json_out:
        record = {
            "at": tick.at.isoformat(),
            "escalated": tick.escalated,
            "sent": tick.sent,
            "failed": tick.failed,
        }
        print(json.dumps(record), flush=True)
    else:
        console.print(
            f"{tick.at:%Y-%m-%d %H:%M:%S%z}  escalated {tick.escalated} · sent {tick.sent} · "
            f"failed {tick.failed}",
            highlight=False,
        )


def worker(
    interval: float = typer.Option(60.0, "--interval", min=0.05, help="seconds between ticks"),
    once: bool = typer.Option(False, "--once", help="run one tick and exit"),
    outbox: Path = typer.Option(
        None, "--outbox", help="append notifications to this file (default DATA_DIR/outbox.log)"
    ),
    to_console: bool = typer.Option(
        False, "--console", help="print notifications instead of writing them to a file"
    ),
    now: str = typer.Option(
        None, "--now", help="pretend the clock starts at this ISO 8601 time (drills, replays)"
    ),
    json_out: bool = typer.Option(False, "--json", help="one JSON line per tick"),
) -> None:
    """Run escalation and outbox delivery until stopped (Ctrl-C or SIGTERM ends it cleanly)."""
    cfg = settings()
    start = _start_time(now)
    sender: Sender
    if to_console:
        sender = ConsoleSender()
    else:
        path = outbox or cfg.data_dir / "outbox.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        sender = FileSender(path)
    engine = make_engine(database_url(cfg))
    stop = threading.Event()
    began = time.monotonic()

    def clock() -> datetime:
        if start is None:
            return datetime.now(UTC)
        return start + timedelta(seconds=time.monotonic() - began)

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while True:
            _report(run_tick(engine, sender, now=clock()), json_out)
            if once or stop.wait(interval):
                break
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        engine.dispose()
