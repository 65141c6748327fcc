"""Run a per-batch function on worker threads and get the results back in input order.

A load reads its file on one thread (GDAL is sequential) and checks, places and encodes
each batch on ``workers`` threads: those steps are numpy, Arrow, GEOS and PROJ calls that
release the GIL, so the workers, the reader and the PostgreSQL backend parsing the COPY
stream share the cores. At most ``ahead`` batches are between the reader and the consumer,
so memory stays flat whatever the file size; the consumer sees them in file order. An
error in the reader or a worker is raised in the consumer at that batch's turn; closing
the iterator early stops every thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
_POLL = 0.1  # seconds between checks of the stop flag while waiting


class _Failed:
    """An exception travelling to the consumer in place of a result."""

    def __init__(self, error: BaseException):
        self.error = error


class _Ordered(Generic[R]):
    """Results by sequence number, handed out in order."""

    def __init__(self) -> None:
        self.ready: dict[int, R | _Failed] = {}
        self.total: int | None = None  # known once the reader is done
        self.changed = threading.Condition()

    def put(self, seq: int, value: R | _Failed) -> None:
        with self.changed:
            self.ready[seq] = value
            self.changed.notify_all()

    def finish(self, total: int) -> None:
        with self.changed:
            self.total = total
            self.changed.notify_all()

    def take(self, seq: int) -> R | _Failed | None:
        """Wait for result ``seq``; None when there is none (the input ended before it)."""
        with self.changed:
            while seq not in self.ready:
                if self.total is not None and seq >= self.total:
                    return None
                self.changed.wait(_POLL)
            return self.ready.pop(seq)


def ordered_map(
    items: Iterable[T], work: Callable[[T], R], *, workers: int = 2, ahead: int = 4
) -> Iterator[R]:
    """Yield ``work(item)`` for each item, in order, computed on ``workers`` threads."""
    tasks: queue.Queue[tuple[int, T]] = queue.Queue()
    results: _Ordered[R] = _Ordered()
    slots = threading.Semaphore(ahead)
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        try:
            for item in items:
                while not slots.acquire(timeout=_POLL):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                tasks.put((seq, item))
                seq += 1
        except BaseException as exc:  # noqa: BLE001 - raised in the consumer at its turn
            results.put(seq, _Failed(exc))
            seq += 1
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator holding a file open
        results.finish(seq)

    def run() -> None:
        while not stop.is_set():
            try:
                seq, item = tasks.get(timeout=_POLL)
            except queue.Empty:
                if results.total is not None and tasks.empty():
                    return
                continue
            try:
                value: R | _Failed = work(item)
            except BaseException as exc:  # noqa: BLE001 - raised in the consumer at its turn
                value = _Failed(exc)
            results.put(seq, value)

    threads = [threading.Thread(target=feed, name="sibiao-read", daemon=True)]
    threads += [
        threading.Thread(target=run, name=f"sibiao-work-{i}", daemon=True) for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        seq = 0
        while True:
            value = results.take(seq)
            if value is None:
                return
            if isinstance(value, _Failed):
                raise value.error
            seq += 1
            slots.release()
            yield value
    finally:
        stop.set()
        for thread in threads:
            thread.join()
