"""Parse OGC API query parameters: text in, typed values out, InvalidInput (400) on faults.

Parameters are declared as text on the routes and parsed here, so a malformed value is a
400 with the reason (as OGC API asks), never FastAPI's 422 or a 500.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any, Final

import shapely
import shapely.geometry

from layers.features import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Interval, TimeValue
from schemas.errors import InvalidInput
from schemas.geodesy import CRS84, SourceCrs, is_geographic, parse_crs, transform_geometry

#: The query parameters of /collections/{id}/items (OGC API Features Parts 1-3), in order.
ITEMS_PARAMS: Final = (
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "datetime",
    "properties",
    "sortby",
    "filter",
    "filter-lang",
    "filter-crs",
    "crs",
    "f",
)
JSON_FORMATS: Final = ("json", "geojson", "application/json", "application/geo+json")


def parse_int(text: str | None, name: str, *, default: int, low: int, high: int) -> int:
    """Parse a whole number within [low, high]."""
    if text is None or text == "":
        return default
    value = text.strip()
    if not value.lstrip("+-").isdigit() or len(value) > 12:
        raise InvalidInput(f"{name} must be a whole number, not {text[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be within {low}..{high}, not {number}")
    return number


def parse_limit(text: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """Parse ``limit``: at least 1; values above the maximum are clamped to it."""
    value = parse_int(text, "limit", default=default, low=1, high=10**12)
    return min(value, maximum)


def parse_offset(text: str | None) -> int:
    """Parse ``offset`` (0 or more)."""
    return parse_int(text, "offset", default=0, low=0, high=MAX_OFFSET)


def parse_floats(text: str, name: str) -> tuple[float, ...]:
    """Parse comma-separated finite numbers."""
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidInput(
            f"{name} must be numbers separated by commas, not {text[:80]!r}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{name} numbers must be finite")
    return values


def parse_number(text: str, name: str) -> float:
    """Parse one finite number."""
    values = parse_floats(text, name)
    if len(values) != 1:
        raise InvalidInput(f"{name} is one number, not {len(values)}")
    return values[0]


def parse_bbox(text: str | None) -> tuple[float, ...] | None:
    """Parse ``bbox``: 4 or 6 numbers (the axis order is the bbox-crs's)."""
    if text is None:
        return None
    values = parse_floats(text, "bbox")
    if len(values) not in (4, 6):
        raise InvalidInput(f"bbox takes 4 numbers (or 6 with heights), not {len(values)}")
    return values


def parse_list(text: str | None, name: str) -> tuple[str, ...] | None:
    """Parse a comma-separated list of names (None when absent; empty text = empty list)."""
    if text is None:
        return None
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if len(names) > 200:
        raise InvalidInput(f"{name} lists too many names")
    return names


def parse_sortby(text: str | None) -> tuple[tuple[str, bool], ...]:
    """Parse ``sortby``: names with an optional + (ascending) or - (descending) prefix."""
    out: list[tuple[str, bool]] = []
    for item in parse_list(text, "sortby") or ():
        name = item.lstrip("+-").strip()
        if not name:
            raise InvalidInput(f"sortby item {item[:40]!r} names no property")
        out.append((name, item.startswith("-")))
    return tuple(out)


def _moment(text: str) -> TimeValue:
    value = text.strip()
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise InvalidInput(
            f"datetime {text[:60]!r} is not RFC 3339 (2024-05-01 or 2024-05-01T08:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_datetime(text: str | None) -> Interval | None:
    """Parse ``datetime``: an instant, or ``start/end`` with ``..`` (or nothing) for open ends."""
    if text is None:
        return None
    if "/" not in text:
        instant = _moment(text)
        return Interval(instant, instant)
    parts = text.split("/")
    if len(parts) != 2:
        raise InvalidInput("datetime interval takes exactly one '/'")
    start, end = (None if p.strip() in ("", "..") else _moment(p) for p in parts)
    if start is None and end is None:
        raise InvalidInput("datetime interval needs at least one end ('../..' is not allowed)")
    if start is not None and end is not None and _key(start) > _key(end):
        raise InvalidInput("datetime interval starts after it ends")
    return Interval(start, end)


def _key(value: TimeValue) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def check_format(f: str | None) -> None:
    """Refuse output formats other than JSON (``f=json``/``geojson``)."""
    if f is not None and f.strip().lower() not in JSON_FORMATS:
        raise InvalidInput(f"f={f[:40]!r} is not offered; this API answers JSON (f=json)")


def source_crs(crs: str | None) -> SourceCrs:
    """Return the CRS coordinates are given in (default CRS84 lon/lat)."""
    return CRS84 if crs is None else parse_crs(crs)


def geojson_geometry(value: Any, source: SourceCrs, storage_epsg: int) -> shapely.Geometry:
    """Return a GeoJSON geometry (or Feature) as shapely, moved to storage coordinates."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    if not isinstance(value, dict) or "type" not in value:
        raise InvalidInput("geometry must be a GeoJSON geometry object")
    try:
        geom = shapely.geometry.shape(value)
    except Exception:  # noqa: BLE001 - shapely raises several kinds on bad GeoJSON
        raise InvalidInput("geometry is not valid GeoJSON") from None
    if source.is_offset or source.epsg != storage_epsg:
        geom = transform_geometry(geom, source, SourceCrs.from_epsg(storage_epsg))
    if not geom.is_empty:
        west, south, east, north = geom.bounds
        if not all(math.isfinite(v) for v in geom.bounds):
            raise InvalidInput("geometry coordinates must be finite numbers")
        off = west < -180 or east > 180 or south < -90 or north > 90
        if off and is_geographic(storage_epsg):
            raise InvalidInput(
                "geometry lies off the globe (longitude -180..180, latitude -90..90 after"
                " moving it from its crs); check the crs and the axis order"
            )
    return geom
