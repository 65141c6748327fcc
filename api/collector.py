"""Keep what the API builds at start-up out of the garbage collector's full collections.

A worker holds ~220,000 container objects once the app is built (the catalog's 104 layer
models, the routers and their OpenAPI models, SQLAlchemy metadata, pyproj, pandas...). None of
them is garbage, but CPython's full (generation 2) collection walks every one of them: 110 ms
on an idle core, 120–560 ms on this busy 2-core machine, holding the GIL throughout, so the
event loop and every intake thread of that worker stop. Requests allocate enough that a full
collection comes every 20–40 s per worker, and the first one within the first second of
traffic: one such pause stalls every case due meanwhile and can decide the p99 of a 4,000-case
run on its own (measured with ``gc.callbacks`` against per-request timestamps;
docs/benchmarks.md, "Intake").

:func:`startup_frozen` collects once, then moves everything that exists into the permanent
generation (:func:`gc.freeze`): later collections only walk what was allocated since (~12,000
objects: the longest full collection seen since was 9 ms). Reference counting still frees
frozen objects; only a reference cycle among them would wait for :func:`gc.unfreeze`, which
runs when the app shuts down.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def startup_frozen() -> Iterator[None]:
    """Collect, freeze what exists for the app's lifetime, unfreeze when it ends."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
