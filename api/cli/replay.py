"""``sibiao replay-cases``: post a generated case stream to a running API, as the systems would.

Each line of the stream (``sibiao generate-cases``) is ``{"system", "payload"}``: legacy systems
go to ``POST /intake/{system}`` as JSON, the mini-program's Open311 forms to
``POST /open311/v2/requests.json`` form-encoded. ``--speed X`` replays the gaps between report
times X times faster (0: no waiting). Every POST is idempotent, so a replay may be re-run: what
was stored before is counted as re-sent.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import typer
from pydantic import ValidationError
from rich.table import Table

from api.cli.common import console, print_json
from cases.sources import SourceSystem, parse_payload
from schemas.errors import ConfigurationError, InvalidInput

OPEN311_PATH: Final = "/open311/v2/requests.json"
MAX_TRANSPORT_FAILURES: Final = 5
REASON_CHARS: Final = 120


@dataclass
class ReplayReport:
    """What a replay did."""

    sent: int = 0
    created: int = 0
    resent: int = 0
    refused: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {
            "sent": self.sent,
            "created": self.created,
            "resent": self.resent,
            "refused": self.refused,
            "failed": self.failed,
            "reasons": dict(self.reasons.most_common()),
            "seconds": round(self.seconds, 3),
        }


def _reason(response: httpx.Response) -> str:
    """Return why the server refused, from problem+json or an Open311 error list."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    text = ""
    if isinstance(body, dict):
        text = str(body.get("detail") or body.get("title") or "")
    elif isinstance(body, list) and body and isinstance(body[0], dict):
        text = str(body[0].get("description", ""))
    return f"HTTP {response.status_code}: {text[:REASON_CHARS]}".rstrip(": ")


def _reported_at(system: str, payload: Any) -> datetime | None:
    try:
        return parse_payload(SourceSystem(system), payload).reported_at()
    except (ValueError, ValidationError, TypeError, KeyError):
        return None


def _post(client: httpx.Client, system: str, payload: Any, api_key: str) -> httpx.Response:
    if system == SourceSystem.open311.value:
        form = {str(k): str(v) for k, v in payload.items() if v is not None}
        return client.post(OPEN311_PATH, data={**form, "api_key": api_key})
    return client.post(f"/intake/{system}", json=payload)


def replay(
    lines: Iterable[str],
    client: httpx.Client,
    *,
    speed: float = 0.0,
    limit: int | None = None,
    api_key: str = "replay",
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayReport:
    """Post each line of a stream in order, paced by its report times; return the counts."""
    if speed < 0:
        raise InvalidInput(f"--speed must not be negative, not {speed}")
    report = ReplayReport()
    began = time.monotonic()
    first: datetime | None = None
    failures_in_row = 0
    taken = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if limit is not None and taken >= limit:
            break
        taken += 1
        try:
            record = json.loads(line)
            system, payload = str(record["system"]), record["payload"]
        except (ValueError, KeyError, TypeError):
            report.refused += 1
            report.reasons[f"line {number}: not a {{system, payload}} JSON object"[:80]] += 1
            continue
        if speed > 0 and (at := _reported_at(system, payload)) is not None:
            first = first or at
            wait = began + (at - first).total_seconds() / speed - time.monotonic()
            if wait > 0:
                sleep(wait)
        try:
            response = _post(client, system, payload, api_key)
        except httpx.TransportError as exc:
            report.failed += 1
            report.reasons[f"transport: {type(exc).__name__}"] += 1
            failures_in_row += 1
            if failures_in_row >= MAX_TRANSPORT_FAILURES and report.sent == 0:
                raise ConfigurationError(
                    f"cannot reach {client.base_url}: {exc}; is `sibiao serve` running?"
                ) from None
            continue
        failures_in_row = 0
        report.sent += 1
        if response.status_code == 201:
            report.created += 1
        elif response.status_code == 200:
            report.resent += 1
        elif response.status_code < 500:
            report.refused += 1
            report.reasons[_reason(response)] += 1
        else:
            report.failed += 1
            report.reasons[_reason(response)] += 1
    report.seconds = time.monotonic() - began
    return report


def _table(report: ReplayReport) -> Table:
    table = Table(title="replay", show_header=True)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name in ("sent", "created", "resent", "refused", "failed"):
        table.add_row(name.replace("resent", "re-sent"), f"{getattr(report, name):,}")
    for reason, count in report.reasons.most_common(10):
        table.add_row(f"  {reason}", f"{count:,}")
    return table


def replay_cases(
    file: Path = typer.Argument(..., help="JSON Lines of {system, payload} (generate-cases)"),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="base URL of the API"),
    speed: float = typer.Option(
        0.0, "--speed", min=0.0, help="replay report-time gaps X times faster; 0 = no waiting"
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="post at most this many lines"),
    api_key: str = typer.Option("replay", "--api-key", help="api_key of the Open311 POSTs"),
    token: str = typer.Option(
        None, "--token", envvar="SIBIAO_TOKEN", help="access token sent as Authorization: Bearer"
    ),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="seconds per request"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON summary"),
) -> None:
    """Post a generated case stream to a running API and count created, re-sent and refused."""
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    transport = httpx.HTTPTransport(retries=2)
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=2)
    with (
        file.open(encoding="utf-8") as stream,
        httpx.Client(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            limits=limits,
            transport=transport,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        ) as client,
    ):
        report = replay(stream, client, speed=speed, limit=limit, api_key=api_key)
    if json_out:
        print_json(report.to_json())
    else:
        console.print(_table(report))
