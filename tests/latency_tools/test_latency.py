"""The intake benchmark's own diagnostics: collector pauses, lateness, slow seconds, trace."""

from __future__ import annotations

import csv
import gc

from api.collector import startup_frozen
from bench.latency import CollectorPauses, lateness, slow_seconds, write_trace

TRACES = [
    (100.0, 100.001, 100.010, 201),  # second 0: 10 ms
    (100.5, 100.500, 100.620, 201),  # second 0: 120 ms
    (101.2, 101.300, 101.400, 201),  # second 1: 200 ms, sent 100 ms late
    (102.0, 102.000, 102.005, 200),  # second 2: 5 ms
]


def test_full_collections_are_recorded_while_entered_only():
    with CollectorPauses() as pauses:
        gc.collect()
    gc.collect()
    assert [generation for _, generation in pauses.pauses] == [2]
    assert "1 collections" in pauses.summary() and "1 full" in pauses.summary()


def test_what_exists_before_the_run_is_frozen_only_during_it():
    before = gc.get_freeze_count()
    with startup_frozen():
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == 0


def test_lateness_and_the_seconds_with_slow_answers():
    assert lateness(TRACES) == "p99 97.0 ms, max 100.0 ms"
    assert slow_seconds(TRACES) == "s0: 1 (max 120 ms), s1: 1 (max 200 ms)"
    assert slow_seconds(TRACES, threshold_s=0.5) == "none over 500 ms"


def test_the_trace_is_written_in_due_order(tmp_path):
    path = tmp_path / "trace.csv"
    write_trace(path, list(reversed(TRACES)))
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["due", "sent", "done", "status"]
    assert [float(r[0]) for r in rows[1:]] == [100.0, 100.5, 101.2, 102.0]
    assert rows[-1][3] == "200"
