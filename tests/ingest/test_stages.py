"""Batches worked on several threads come back in input order, errors at their turn."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from ingest.stages import ordered_map


def _slow_square(n: int) -> int:
    time.sleep(random.Random(n).uniform(0, 0.004))
    return n * n


def test_results_come_back_in_input_order():
    assert list(ordered_map(range(200), _slow_square, workers=3, ahead=5)) == [
        n * n for n in range(200)
    ]


def test_workers_really_run_side_by_side():
    running = 0
    most = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return n

    assert list(ordered_map(range(20), work, workers=2, ahead=4)) == list(range(20))
    assert most == 2


def test_no_more_than_ahead_items_are_read_before_being_consumed():
    read = 0

    def items() -> Iterator[int]:
        nonlocal read
        for n in range(100):
            read += 1
            yield n

    results = ordered_map(items(), lambda n: n, workers=2, ahead=3)
    assert next(results) == 0
    time.sleep(0.2)  # let the reader run as far as it may
    assert read <= 1 + 3 + 1  # consumed, in flight, and one read waiting for a slot
    results.close()


def test_a_worker_error_is_raised_at_its_turn_after_the_results_before_it():
    def work(n: int) -> int:
        if n == 5:
            raise ValueError("bad batch 5")
        return n

    seen = []
    with pytest.raises(ValueError, match="bad batch 5"):
        for value in ordered_map(range(50), work, workers=2, ahead=4):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4]


def test_a_reader_error_ends_the_results_with_it():
    def items() -> Iterator[int]:
        yield from range(7)
        raise OSError("truncated file")

    seen = []
    with pytest.raises(OSError, match="truncated file"):
        for value in ordered_map(items(), lambda n: n, workers=2, ahead=2):
            seen.append(value)
    assert seen == list(range(7))


def test_closing_early_stops_every_thread_and_closes_the_input():
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(10_000)
        finally:
            closed.set()

    before = threading.active_count()
    results = ordered_map(items(), lambda n: n, workers=2, ahead=2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    assert closed.wait(2)
    assert threading.active_count() == before


def test_an_empty_input_gives_no_results():
    assert list(ordered_map(iter(()), lambda n: n, workers=2)) == []
