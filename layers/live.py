"""What the serving process remembers about layers: versions, extents, counts, tiles.

Every cached answer is keyed by the layer version it was computed from. Versions come
from ``catalog_layers.current_version``, read for all layers in one cheap query at most
once per ``ttl`` seconds (loads run in other processes too: ``sibiao load``); a load in
this process calls :meth:`LiveLayers.invalidate` through ``LoadJobs.on_published`` so its
layer is re-read at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import Engine, select

from schemas.tables import catalog_layers

V = TypeVar("V")


class LruCache(Generic[V]):
    """A thread-safe least-recently-used cache bounded by entries and by total size."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_size: int | None = None,
        size: Callable[[V], int] | None = None,
    ) -> None:
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._max_size = max_size
        self._size: Callable[[V], int] = size or (lambda _: 1)
        self._total = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        """Return the value of ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value``; evict the least recently used entries beyond the bounds."""
        weight = self._size(value) if self._max_size is not None else 0
        if self._max_size is not None and weight > self._max_size:
            return
        with self._lock:
            if key in self._data:
                self._total -= self._sizes.pop(key, 0)
                del self._data[key]
            self._data[key] = value
            self._sizes[key] = weight
            self._total += weight
            while len(self._data) > self._max_entries or (
                self._max_size is not None and self._total > self._max_size
            ):
                old, _ = self._data.popitem(last=False)
                self._total -= self._sizes.pop(old, 0)

    def drop(self, keep: Callable[[Hashable], bool]) -> int:
        """Remove the entries whose key ``keep`` rejects; return how many went."""
        with self._lock:
            gone = [k for k in self._data if not keep(k)]
            for key in gone:
                del self._data[key]
                self._total -= self._sizes.pop(key, 0)
            return len(gone)

    def __len__(self) -> int:
        """Return the number of entries."""
        return len(self._data)


class VersionClock:
    """Current version of every layer, re-read at most once per ``ttl`` seconds."""

    def __init__(self, engine: Engine, *, ttl: float = 1.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._versions: dict[str, int] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self.reads = 0

    def _refresh(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(select(catalog_layers.c.code, catalog_layers.c.current_version))
            self._versions = {str(code): int(version) for code, version in rows}
        self._read_at = time.monotonic()
        self.reads += 1

    def get(self, code: str) -> int:
        """Return the layer's current version (0 when never loaded or unknown)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._ttl:
                self._refresh()
            return self._versions.get(code, 0)

    def note(self, code: str, version: int) -> None:
        """Record a version just read from the database along with data."""
        with self._lock:
            self._versions[code] = version

    def invalidate(self) -> None:
        """Re-read every version on the next question."""
        with self._lock:
            self._read_at = float("-inf")


class LiveLayers:
    """The per-app caches over layer tables, all keyed by layer version."""

    def __init__(self, engine: Engine, *, ttl: float = 1.0, tile_cache_mb: int = 64) -> None:
        self.clock = VersionClock(engine, ttl=ttl)
        self.counts: LruCache[int] = LruCache(max_entries=4096)
        self.extents: LruCache[tuple[object, ...]] = LruCache(max_entries=1024)
        self.tiles: LruCache[bytes] = LruCache(
            max_entries=100_000, max_size=tile_cache_mb * 2**20, size=len
        )

    def invalidate(self, code: str) -> None:
        """Forget what was computed from the layer ``code`` (called after a load commits)."""
        self.clock.invalidate()
        self.tiles.drop(lambda key: code not in _codes_of(key))
        self.counts.drop(lambda key: code not in _codes_of(key))
        self.extents.drop(lambda key: code not in _codes_of(key))


def _codes_of(key: Hashable) -> tuple[str, ...]:
    """Return the layer codes a cache key names (its first element: a code or a tuple)."""
    if isinstance(key, tuple) and key:
        first = key[0]
        if isinstance(first, str):
            return (first,)
        if isinstance(first, tuple):
            return tuple(str(c) for c in first)
    return ()
