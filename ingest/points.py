"""Plain points as coordinate arrays: decoded, checked and encoded without shapely objects.

Most point files (GeoPackage, GeoJSON, CSV with coordinates) hold nothing but 2D points.
For a point layer their rows never need a geometry object: the type is known, a finite
point is always valid and never empty, and the CRS move, the extent test, the grid-cell
lookup and the EWKB all work on x/y arrays. Building a million shapely points costs more
than every check together, so the checker takes this path whenever it can (and shapely's
otherwise: multi-part, 3D, NaN or big-endian values, non-point layers).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_WKB_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
_EWKB_POINT = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)
_EWKB_POINT_TYPE = 0x20000001  # Point, with an SRID


def plain_xy(wkb: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Return x and y when every value of a WKB column is a plain 2D point, else None.

    Plain means: present, 21 bytes, little endian, type 1 (Point), finite coordinates, as
    GeoPackage and most point files hold them.
    """
    if len(wkb) == 0 or wkb.null_count or not pc.all(pc.equal(pc.binary_length(wkb), 21)).as_py():
        return None
    fixed = wkb.cast(pa.binary()).cast(pa.binary(21))
    data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
    cells = data[fixed.offset * 21 : (fixed.offset + len(fixed)) * 21].view(_WKB_POINT)
    if not ((cells["order"] == 1).all() and (cells["type"] == 1).all()):
        return None
    x, y = cells["x"].copy(), cells["y"].copy()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    return x, y


def point_ewkb(x: np.ndarray, y: np.ndarray, srid: int) -> pa.Array:
    """Return the EWKB of 2D points given as coordinate arrays (one numpy record each)."""
    n = x.shape[0]
    cells = np.empty(n, dtype=_EWKB_POINT)
    cells["order"] = 1  # little endian
    cells["type"] = _EWKB_POINT_TYPE
    cells["srid"] = srid
    cells["x"] = x
    cells["y"] = y
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(_EWKB_POINT.itemsize), n, [None, pa.py_buffer(cells.tobytes())]
    ).cast(pa.binary())
