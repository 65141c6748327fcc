"""Read raster layers (COGs) at a point or inside a polygon, without loading the raster.

A COG keeps the CRS it was delivered in (see :mod:`ingest.rasters`), so the query point or
polygon is moved into the raster's CRS (pyproj; polygon edges densified first), never the
pixels. A point reads one pixel through a 1x1 window; a polygon reads only the window of
its bounds (``rasterio.mask`` with ``crop=True``), counting pixels whose centre is inside.
Nodata pixels are null at a point and left out of statistics.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyproj
import shapely
from shapely.geometry import mapping

from schemas.catalog import RasterSpec
from schemas.errors import InvalidInput, NotFound

MAX_PIXELS: Final = 25_000_000
PERCENTILES: Final = (5, 25, 50, 75, 95)
EDGE_STEPS: Final = 256


@functools.lru_cache(maxsize=32)
def _transformer(source_epsg: int, target_wkt: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(
        pyproj.CRS.from_epsg(source_epsg), pyproj.CRS.from_wkt(target_wkt), always_xy=True
    )


def _open(path: Path) -> Any:
    import rasterio

    if not path.is_file():
        raise NotFound(f"the raster file {path.name} is missing; reload the layer")
    return rasterio.open(path)


def _clean(value: float, nodata: float | None) -> float | None:
    if not math.isfinite(value) or (nodata is not None and value == nodata):
        return None
    return float(value)


@dataclass(frozen=True)
class PointValues:
    """Pixel values at a point (None = nodata or outside), one per band."""

    values: dict[str, float | None]
    inside: bool
    row: int | None
    col: int | None


def point_values(
    path: Path, *, spec: RasterSpec, lon: float, lat: float, storage_epsg: int = 4490
) -> PointValues:
    """Return the values of the pixel holding a storage lon/lat point."""
    from rasterio.windows import Window

    if not (math.isfinite(lon) and math.isfinite(lat) and -90 <= lat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) is not a longitude/latitude")
    with _open(path) as src:
        x, y = _transformer(storage_epsg, src.crs.to_wkt()).transform(lon, lat)
        names = _bands(spec, src.count)
        if not (math.isfinite(x) and math.isfinite(y)):
            return PointValues(dict.fromkeys(names), False, None, None)
        row, col = src.index(x, y)
        if not (0 <= row < src.height and 0 <= col < src.width):
            return PointValues(dict.fromkeys(names), False, None, None)
        data = src.read(window=Window(col, row, 1, 1))
        nodata = src.nodata
        values = {name: _clean(float(data[i, 0, 0]), nodata) for i, name in enumerate(names)}
        return PointValues(values, True, int(row), int(col))


def _bands(spec: RasterSpec, count: int) -> list[str]:
    names = list(spec.bands)
    return names[:count] + [f"band{i + 1}" for i in range(len(names), count)]


def _to_raster_crs(geom: shapely.Geometry, transformer: pyproj.Transformer) -> shapely.Geometry:
    minx, miny, maxx, maxy = geom.bounds
    step = max(maxx - minx, maxy - miny) / EDGE_STEPS
    dense = shapely.segmentize(geom, step) if step > 0 else geom

    def move(coords: Any) -> Any:
        xs, ys = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([xs, ys])

    return shapely.transform(dense, move)


def polygon_stats(
    path: Path, *, spec: RasterSpec, area: shapely.Geometry, storage_epsg: int = 4490
) -> dict[str, Any]:
    """Return per band count, min, max, mean, std and percentiles of pixels inside ``area``.

    ``area`` is a (Multi)Polygon in storage lon/lat; only the window of its bounds is read.
    """
    from rasterio.errors import WindowError
    from rasterio.mask import geometry_window, mask

    if area.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"statistics need a Polygon or MultiPolygon, not {area.geom_type}")
    if area.is_empty or not area.is_valid:
        reason = "empty" if area.is_empty else shapely.is_valid_reason(area)
        raise InvalidInput(f"the polygon is not valid: {reason}")
    with _open(path) as src:
        names = _bands(spec, src.count)
        shape = _to_raster_crs(area, _transformer(storage_epsg, src.crs.to_wkt()))
        empty = {name: _summary(np.array([], dtype=np.float64)) for name in names}
        try:
            window = geometry_window(src, [mapping(shape)])
        except (WindowError, ValueError):
            return {"pixels_read": 0, "bands": empty}
        pixels = int(window.width) * int(window.height)
        if pixels > MAX_PIXELS:
            raise InvalidInput(
                f"the polygon covers {pixels:,} pixels; at most {MAX_PIXELS:,} are read at once"
            )
        try:
            data, _ = mask(src, [mapping(shape)], crop=True, filled=False)
        except (WindowError, ValueError):
            return {"pixels_read": 0, "bands": empty}
        nodata = src.nodata
        bands = {}
        for i, name in enumerate(names):
            values = np.ma.compressed(data[i]).astype(np.float64)
            values = values[np.isfinite(values)]
            if nodata is not None:
                values = values[values != nodata]
            bands[name] = _summary(values)
        return {"pixels_read": pixels, "bands": bands}


def _summary(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {"valid_count": 0, "min": None, "max": None, "mean": None, "std": None,
                "percentiles": {f"p{p}": None for p in PERCENTILES}}  # fmt: skip
    cuts = np.percentile(values, PERCENTILES)
    return {
        "valid_count": int(values.size),
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "percentiles": {f"p{p}": float(c) for p, c in zip(PERCENTILES, cuts, strict=True)},
    }
