"""A sliding-window rate limiter, in memory (per process: each worker counts on its own)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

MAX_KEYS = 50_000


class RateLimiter:
    """Count requests per key in a sliding window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: Hashable, *, requests: int, seconds: int) -> int | None:
        """Count one request; return None when allowed, else seconds until the next one is."""
        now = self._clock()
        with self._lock:
            window = self._hits.setdefault(key, deque())
            while window and window[0] <= now - seconds:
                window.popleft()
            if len(window) >= requests:
                return max(1, math.ceil(window[0] + seconds - now))
            window.append(now)
            if len(self._hits) > MAX_KEYS:
                self._prune(now, seconds)
            return None

    def _prune(self, now: float, seconds: int) -> None:
        for key in [k for k, w in self._hits.items() if not w or w[-1] <= now - seconds]:
            del self._hits[key]
