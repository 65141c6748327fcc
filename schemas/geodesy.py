"""Coordinate systems: parse what callers send, move coordinates to and from storage.

Storage is CGCS2000 geographic (EPSG:4490), always lon/lat. GCJ-02 and BD-09 are
not EPSG systems but published offsets applied on top of WGS84 lon/lat: removing
them has no closed form, so the inverses iterate until the forward offset of the
result reproduces the input within ``INVERSE_TOLERANCE_DEG``. Every function is
vectorised over numpy arrays and also accepts scalars and lists.

PROJ knows no published WGS84 <-> CGCS2000 transformation and applies a ballpark
(null) one: the datums differ by centimetres, below what we resolve.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeVar

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry.base import BaseGeometry

from schemas.errors import InvalidInput

FloatArray = NDArray[np.float64]
G = TypeVar("G", bound=BaseGeometry)

STORAGE_EPSG: Final = 4490
WGS84_EPSG: Final = 4326
CRS84_URI: Final = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI_PREFIX: Final = "http://www.opengis.net/def/crs/EPSG/0/"

#: EPSG codes we offer for output, besides CRS84.
OUTPUT_EPSG_CODES: Final = (4490, 4326, 4547, 3857)
#: OGC CRS URIs offered for output (OGC API Features ``crs``), keyed by canonical name.
OUTPUT_CRS_URIS: Final[Mapping[str, str]] = MappingProxyType(
    {"OGC:CRS84": CRS84_URI} | {f"EPSG:{c}": f"{EPSG_URI_PREFIX}{c}" for c in OUTPUT_EPSG_CODES}
)

#: Published GCJ-02 constants: Krasovsky 1940 semi-major axis and first eccentricity squared.
KRASOVSKY_A: Final = 6378245.0
KRASOVSKY_EE: Final = 0.00669342162296594323
#: China's rough bounding box (lon_min, lon_max, lat_min, lat_max); no offset outside it.
CHINA_BOX: Final = (72.004, 137.8347, 0.8293, 55.8271)
BD_X_PI: Final = math.pi * 3000.0 / 180.0
INVERSE_TOLERANCE_DEG: Final = 1e-10  # composed inverses (BD-09 -> WGS84) stay < 1e-9
INVERSE_MAX_ITERATIONS: Final = 30

_GEOD: Final = pyproj.Geod(ellps="GRS80")
_GRS80_A: Final = 6378137.0
_GRS80_MIN_M_PER_DEG_LAT: Final = 110_574.0  # at the equator, where it is smallest


class CrsKind(StrEnum):
    """How coordinates relate to a datum: a plain EPSG CRS, CRS84 or a Chinese offset."""

    epsg = "epsg"
    crs84 = "crs84"  # WGS84 in lon/lat order by definition
    gcj02 = "gcj02"  # offset on WGS84 lon/lat (AMap, Tencent, WeChat maps)
    bd09 = "bd09"  # offset on GCJ-02 (Baidu)


@dataclass(frozen=True, slots=True)
class SourceCrs:
    """A coordinate system coordinates are given in or wanted in."""

    kind: CrsKind
    epsg: int | None = None

    def __post_init__(self) -> None:
        """Check that exactly EPSG kinds carry a code."""
        if (self.kind is CrsKind.epsg) != (self.epsg is not None):
            raise ValueError(f"{self.kind} with epsg={self.epsg!r} is inconsistent")

    @classmethod
    def from_epsg(cls, code: int) -> SourceCrs:
        """Return the SourceCrs of a known horizontal EPSG CRS."""
        _crs_of(code)
        return cls(CrsKind.epsg, code)

    @property
    def canonical(self) -> str:
        """Return the canonical name: ``EPSG:4326``, ``OGC:CRS84``, ``gcj02`` or ``bd09``."""
        if self.kind is CrsKind.epsg:
            return f"EPSG:{self.epsg}"
        return "OGC:CRS84" if self.kind is CrsKind.crs84 else self.kind.value

    @property
    def is_offset(self) -> bool:
        """Return whether this is GCJ-02 or BD-09 rather than a real CRS."""
        return self.kind in (CrsKind.gcj02, CrsKind.bd09)

    @property
    def base_epsg(self) -> int:
        """Return the EPSG CRS the numbers are in once any offset is removed."""
        return self.epsg if self.epsg is not None else WGS84_EPSG

    @property
    def crs(self) -> pyproj.CRS | None:
        """Return the pyproj CRS, or None for GCJ-02 and BD-09."""
        if self.is_offset:
            return None
        return _crs_of("OGC:CRS84" if self.kind is CrsKind.crs84 else self.base_epsg)

    @property
    def uri(self) -> str | None:
        """Return the OGC CRS URI, or None for GCJ-02 and BD-09."""
        if self.kind is CrsKind.crs84:
            return CRS84_URI
        return None if self.epsg is None else f"{EPSG_URI_PREFIX}{self.epsg}"

    def __str__(self) -> str:
        """Return the canonical name."""
        return self.canonical


WGS84: Final = SourceCrs(CrsKind.epsg, WGS84_EPSG)
CGCS2000: Final = SourceCrs(CrsKind.epsg, STORAGE_EPSG)
CRS84: Final = SourceCrs(CrsKind.crs84)
GCJ02: Final = SourceCrs(CrsKind.gcj02)
BD09: Final = SourceCrs(CrsKind.bd09)

_ALIASES: Final[Mapping[str, SourceCrs]] = MappingProxyType(
    {
        "wgs84": WGS84,
        "cgcs2000": CGCS2000,
        "gcj02": GCJ02,
        "bd09": BD09,
        "crs84": CRS84,
        "ogc:crs84": CRS84,
        "urn:ogc:def:crs:ogc:1.3:crs84": CRS84,
        "http://www.opengis.net/def/crs/ogc/1.3/crs84": CRS84,
        "https://www.opengis.net/def/crs/ogc/1.3/crs84": CRS84,
    }
)
_EPSG_RE: Final = re.compile(
    r"^(?:epsg:{1,2}|urn:ogc:def:crs:epsg:[0-9.]*:|https?://www\.opengis\.net/def/crs/epsg/0/)?"
    r"([0-9]{4,6})$"
)
ACCEPTED_FORMS: Final = (
    "an EPSG code (4490, '4490', 'EPSG:4490'), an OGC URI "
    f"('{EPSG_URI_PREFIX}4490', '{CRS84_URI}'), 'OGC:CRS84', "
    "or one of 'wgs84', 'cgcs2000', 'gcj02', 'bd09'"
)


@functools.lru_cache(maxsize=64)
def _crs_of(code: int | str) -> pyproj.CRS:
    """Return the pyproj CRS of a horizontal CRS, or raise InvalidInput."""
    try:
        crs = pyproj.CRS.from_user_input(f"EPSG:{code}" if isinstance(code, int) else code)
    except pyproj.exceptions.CRSError:
        raise InvalidInput(f"EPSG:{code} is not a known coordinate system") from None
    if not (crs.is_geographic or crs.is_projected):
        raise InvalidInput(f"EPSG:{code} is a {crs.type_name}, not a horizontal coordinate system")
    return crs


def is_geographic(epsg: int) -> bool:
    """Return whether an EPSG CRS has longitude/latitude axes (degrees)."""
    return bool(_crs_of(epsg).is_geographic)


def parse_crs(text: str | int) -> SourceCrs:
    """Parse a CRS as users and systems send it; raise InvalidInput listing accepted forms."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise InvalidInput(f"a coordinate system must be text or an integer; use {ACCEPTED_FORMS}")
    if isinstance(text, int):
        if text <= 0:
            raise InvalidInput(f"EPSG:{text} is not a valid EPSG code; use {ACCEPTED_FORMS}")
        return SourceCrs.from_epsg(text)
    key = text.strip().lower()
    if (alias := _ALIASES.get(re.sub(r"[\s_-]", "", key))) is not None:
        return alias
    if (match := _EPSG_RE.match(key)) is not None:
        return SourceCrs.from_epsg(int(match.group(1)))
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise InvalidInput(f"unknown coordinate system {shown!r}; use {ACCEPTED_FORMS}")


def crs_uri(epsg: int) -> str:
    """Return the OGC URI of an EPSG code we support for output."""
    if (uri := OUTPUT_CRS_URIS.get(f"EPSG:{epsg}")) is None:
        offered = ", ".join(OUTPUT_CRS_URIS)
        raise InvalidInput(f"EPSG:{epsg} is not offered for output; choose one of {offered}")
    return uri


def _xy(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return x and y as broadcast, contiguous float64 arrays."""
    bx, by = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.array(bx, dtype=np.float64), np.array(by, dtype=np.float64)


def _in_china(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    """Return where points fall inside the box where GCJ-02 and BD-09 apply."""
    lon_min, lon_max, lat_min, lat_max = CHINA_BOX
    return (lon >= lon_min) & (lon <= lon_max) & (lat >= lat_min) & (lat <= lat_max)


def _gcj02_shift(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return the GCJ-02 (dlon, dlat) in degrees to add at WGS84 points; zero outside China."""
    x, y = lon - 105.0, lat - 35.0
    px, py = np.pi * x, np.pi * y
    wave = 20.0 * np.sin(6.0 * px) + 20.0 * np.sin(2.0 * px)
    north_m = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ) + 2.0 / 3.0 * (
        wave
        + 20.0 * np.sin(py)
        + 40.0 * np.sin(py / 3.0)
        + 160.0 * np.sin(py / 12.0)
        + 320.0 * np.sin(py / 30.0)
    )
    east_m = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ) + 2.0 / 3.0 * (
        wave
        + 20.0 * np.sin(px)
        + 40.0 * np.sin(px / 3.0)
        + 150.0 * np.sin(px / 12.0)
        + 300.0 * np.sin(px / 30.0)
    )
    phi = np.radians(lat)
    w = 1.0 - KRASOVSKY_EE * np.sin(phi) ** 2
    meridian_radius = KRASOVSKY_A * (1.0 - KRASOVSKY_EE) / (w * np.sqrt(w))
    parallel_radius = KRASOVSKY_A / np.sqrt(w) * np.cos(phi)
    inside = _in_china(lon, lat)
    dlat = np.where(inside, np.degrees(north_m / meridian_radius), 0.0)
    dlon = np.where(inside, np.degrees(east_m / parallel_radius), 0.0)
    return dlon, dlat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Apply the GCJ-02 offset to WGS84 lon/lat (unchanged outside China)."""
    lo, la = _xy(lon, lat)
    dlon, dlat = _gcj02_shift(lo, la)
    return lo + dlon, la + dlat


def _gcj02_to_bd09_xy(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Apply the BD-09 offset everywhere, without the China check."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * BD_X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Apply the BD-09 offset to GCJ-02 lon/lat (unchanged outside China)."""
    lo, la = _xy(lon, lat)
    blo, bla = _gcj02_to_bd09_xy(lo, la)
    inside = _in_china(lo, la)
    return np.where(inside, blo, lo), np.where(inside, bla, la)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Apply GCJ-02 then BD-09 to WGS84 lon/lat."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _refine(
    forward: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    target_lon: FloatArray,
    target_lat: FloatArray,
    lon: FloatArray,
    lat: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Correct a guess by fixed-point steps until ``forward(guess)`` matches the target.

    Only points not yet within ``INVERSE_TOLERANCE_DEG`` take another step, so a point's
    result does not depend on the other points in the batch.
    """
    lon, lat = lon.ravel().copy(), lat.ravel().copy()
    goal_lon, goal_lat = target_lon.ravel(), target_lat.ravel()
    todo = np.arange(lon.size)
    for _ in range(INVERSE_MAX_ITERATIONS):
        flon, flat = forward(lon[todo], lat[todo])
        elon, elat = flon - goal_lon[todo], flat - goal_lat[todo]
        off = (np.abs(elon) >= INVERSE_TOLERANCE_DEG) | (np.abs(elat) >= INVERSE_TOLERANCE_DEG)
        if not off.any():
            break
        todo, elon, elat = todo[off], elon[off], elat[off]
        lon[todo] -= elon
        lat[todo] -= elat
    return lon.reshape(target_lon.shape), lat.reshape(target_lat.shape)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Remove the GCJ-02 offset by iteration (error < 1e-10 degrees; unchanged outside China)."""
    glon, glat = _xy(lon, lat)
    inside = _in_china(glon, glat)
    dlon, dlat = _gcj02_shift(glon, glat)
    wlon, wlat = _refine(wgs84_to_gcj02, glon, glat, glon - dlon, glat - dlat)
    return np.where(inside, wlon, glon), np.where(inside, wlat, glat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Remove the BD-09 offset: published closed form, then refined to < 1e-10 degrees."""
    blon, blat = _xy(lon, lat)
    inside = _in_china(blon, blat)
    x, y = blon - 0.0065, blat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * BD_X_PI)
    glon, glat = _refine(_gcj02_to_bd09_xy, blon, blat, z * np.cos(theta), z * np.sin(theta))
    return np.where(inside, glon, blon), np.where(inside, glat, blat)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Remove BD-09 then GCJ-02 from Baidu lon/lat."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


@functools.lru_cache(maxsize=64)
def _transformer(source_epsg: int, target_epsg: int) -> pyproj.Transformer:
    """Return a cached lon/lat-ordered transformer between two CRSs."""
    return pyproj.Transformer.from_crs(_crs_of(source_epsg), _crs_of(target_epsg), always_xy=True)


@functools.lru_cache(maxsize=64)
def _moves(source_epsg: int, target_epsg: int) -> bool:
    """Return whether PROJ changes coordinates between two CRSs (WGS 84 → CGCS2000: no-op).

    Skipping a no-op matters: pyproj builds its transformer again in every thread (~0.25 s).
    """
    return not _transformer(source_epsg, target_epsg).definition.startswith("proj=noop")


def transform_xy(
    x: ArrayLike, y: ArrayLike, source: SourceCrs, target: SourceCrs
) -> tuple[FloatArray, FloatArray]:
    """Move x/y (lon/lat for geographic systems) from one system to another."""
    cx, cy = _xy(x, y)
    if source == target:
        return cx, cy
    if source.kind is CrsKind.gcj02:
        cx, cy = gcj02_to_wgs84(cx, cy)
    elif source.kind is CrsKind.bd09:
        cx, cy = bd09_to_wgs84(cx, cy)
    if source.base_epsg != target.base_epsg and _moves(source.base_epsg, target.base_epsg):
        tx, ty = _transformer(source.base_epsg, target.base_epsg).transform(cx, cy)
        cx, cy = np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
    if target.kind is CrsKind.gcj02:
        return wgs84_to_gcj02(cx, cy)
    if target.kind is CrsKind.bd09:
        return wgs84_to_bd09(cx, cy)
    return cx, cy


def to_storage(
    x: ArrayLike, y: ArrayLike, source: SourceCrs, storage_epsg: int = STORAGE_EPSG
) -> tuple[FloatArray, FloatArray]:
    """Move coordinates given in ``source`` to storage lon/lat."""
    return transform_xy(x, y, source, SourceCrs.from_epsg(storage_epsg))


def from_storage(
    lon: ArrayLike, lat: ArrayLike, target: SourceCrs, storage_epsg: int = STORAGE_EPSG
) -> tuple[FloatArray, FloatArray]:
    """Move storage lon/lat to coordinates in ``target``."""
    return transform_xy(lon, lat, SourceCrs.from_epsg(storage_epsg), target)


def transform_geometry(geom: G, source: SourceCrs, target: SourceCrs) -> G:
    """Return a shapely geometry moved from ``source`` to ``target`` (Z is kept)."""
    if source == target:
        return geom

    def move(coords: FloatArray) -> FloatArray:
        out = np.array(coords, dtype=np.float64)
        out[:, 0], out[:, 1] = transform_xy(coords[:, 0], coords[:, 1], source, target)
        return out

    has_z = np.asarray(shapely.has_z(geom))
    include_z = bool(has_z.all()) if has_z.size else False
    moved: G = shapely.transform(geom, move, include_z=include_z)
    return moved


def geodesic_distance_m(
    lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike
) -> FloatArray:
    """Return geodesic distances in metres on GRS80 (CGCS2000's ellipsoid, practically)."""
    a, b, c, d = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2))
    )
    _, _, dist = _GEOD.inv(a.ravel(), b.ravel(), c.ravel(), d.ravel())
    return np.asarray(dist, dtype=np.float64).reshape(a.shape)


def metres_to_degrees_hint(metres: float, lat: float) -> float:
    """Return degrees surely covering ``metres`` in lon and lat near ``lat`` (bbox pre-filter)."""
    if not (math.isfinite(metres) and metres >= 0):
        raise InvalidInput(
            f"distance must be a finite, non-negative number of metres, not {metres}"
        )
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise InvalidInput(f"latitude must be within [-90, 90], not {lat}")
    dlat = metres / _GRS80_MIN_M_PER_DEG_LAT
    widest = abs(lat) + dlat  # the parallel nearest the pole the circle reaches
    if widest >= 89.0:
        return 360.0
    dlon = metres / (math.radians(_GRS80_A) * math.cos(math.radians(widest)))
    return max(dlat, dlon) * 1.001
