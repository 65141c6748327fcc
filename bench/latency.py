"""What a latency benchmark needs to tell its own stalls from the server's.

- :class:`CollectorPauses` records this process's garbage-collector pauses while a load runs:
  a collection holds the GIL, so in a one-process asyncio load generator it delays every post
  due meanwhile, and the server gets them all at once afterwards.
- what exists before the load (a generated district, the prepared requests: hundreds of
  thousands of objects) is kept out of the collector's sight with the API's own
  :func:`api.collector.startup_frozen`, so collections during the run only walk what it allocates.
- :func:`write_trace` and :func:`slow_seconds` keep each post's due, sent and answered times
  (wall clock, to line up with server and database logs) and show when the slow ones came.
"""

from __future__ import annotations

import csv
import gc
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: A post: when it was due, sent and answered (``time.time()`` seconds), and its status.
Trace = tuple[float, float, float, int]


class CollectorPauses:
    """Record the collector's pauses (seconds, generation) in this process while entered."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started, int(info["generation"])))

    def __enter__(self) -> CollectorPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        """Return the count, the longest pause and the full (generation 2) collections."""
        if not self.pauses:
            return "no collections"
        longest = max(p for p, _ in self.pauses)
        full = sum(1 for _, g in self.pauses if g == 2)
        return f"{len(self.pauses)} collections, longest {1000 * longest:.1f} ms, {full} full"


def lateness(traces: Sequence[Trace]) -> str:
    """Return how late posts left the load generator (sent - due): p99 and max."""
    late = np.array([sent - due for due, sent, _, _ in traces]) * 1000
    if not len(late):
        return "no posts"
    return f"p99 {np.percentile(late, 99):.1f} ms, max {late.max():.1f} ms"


def slow_seconds(traces: Sequence[Trace], threshold_s: float = 0.05, top: int = 8) -> str:
    """Return the seconds of the run (from its first due time) with the most slow answers."""
    if not traces:
        return "no posts"
    start = min(due for due, _, _, _ in traces)
    per_second: dict[int, list[float]] = {}
    for due, _, done, _ in traces:
        if done - due > threshold_s:
            per_second.setdefault(int(due - start), []).append(done - due)
    if not per_second:
        return f"none over {1000 * threshold_s:.0f} ms"
    worst = sorted(per_second.items(), key=lambda kv: -len(kv[1]))[:top]
    return ", ".join(f"s{sec}: {len(v)} (max {1000 * max(v):.0f} ms)" for sec, v in sorted(worst))


def write_trace(path: Path, traces: Sequence[Trace]) -> None:
    """Write the posts as CSV: due, sent, done (epoch seconds), status."""
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["due", "sent", "done", "status"])
        for due, sent, done, status in sorted(traces):
            out.writerow([f"{due:.6f}", f"{sent:.6f}", f"{done:.6f}", status])
