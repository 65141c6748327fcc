"""Cut the largest things the generator makes into blocks, so memory stays bounded at any scale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np
from numpy.typing import ArrayLike

#: Rows made at once by the strategies of the largest layers and by the address builder.
BLOCK_ROWS: Final = 50_000


def blocks(sizes: ArrayLike, limit: int = BLOCK_ROWS) -> Iterator[slice]:
    """Yield consecutive slices of items whose ``sizes`` add up to at most ``limit`` (or one item).

    >>> [(s.start, s.stop) for s in blocks([3, 3, 3, 5], limit=6)]
    [(0, 2), (2, 3), (3, 4)]
    """
    values = np.asarray(sizes, dtype=np.int64)
    start, total = 0, 0
    for i, size in enumerate(values.tolist()):
        if total and total + size > limit:
            yield slice(start, i)
            start, total = i, 0
        total += size
    if start < values.size:
        yield slice(start, values.size)
