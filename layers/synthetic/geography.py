"""Shape and human geography of the synthetic Huadu district, read from YAML data.

The numbers live in ``huadu_geography.yaml`` (lon/lat, EPSG:4490) and are validated by
:class:`Geography`. Everything the generator computes is metric, in EPSG:4547 (CGCS2000 /
3-degree Gauss-Kruger CM 114E); :func:`to_metric` and :func:`to_lonlat` move between the two.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Self, TypeVar

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from layers.synthetic.yamlfile import read_yaml

FloatArray = NDArray[np.float64]
G = TypeVar("G", bound=BaseGeometry)

GEOGRAPHY_FILE: Final = Path(__file__).with_name("huadu_geography.yaml")
METRIC_EPSG: Final = 4547
LONLAT_EPSG: Final = 4490
TOWN_COUNT: Final = 10
#: Box (lon_min, lat_min, lon_max, lat_max) every coordinate of the data must fall in.
HUADU_BOX: Final = (113.0, 23.2, 113.5, 23.65)


def _check_lonlat(value: tuple[float, float]) -> tuple[float, float]:
    """Reject a lon/lat pair outside the Huadu box."""
    lon, lat = value
    lon_min, lat_min, lon_max, lat_max = HUADU_BOX
    if not (lon_min <= lon <= lon_max and lat_min <= lat <= lat_max):
        raise ValueError(f"({lon}, {lat}) is outside the Huadu box {HUADU_BOX}")
    return value


LonLat = Annotated[tuple[float, float], AfterValidator(_check_lonlat)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DistrictGeography(_Strict):
    """The district: its code, its area and the shape of its outline."""

    code: Annotated[str, Field(pattern=r"^\d{6}$")]
    area_km2: Annotated[float, Field(gt=0)]
    outline: Annotated[list[LonLat], Field(min_length=8)]

    @model_validator(mode="after")
    def _valid_outline(self) -> Self:
        """Check that the outline is a valid simple polygon."""
        polygon = Polygon(self.outline)
        if not polygon.is_valid:
            raise ValueError(f"outline is not a valid polygon: {shapely.is_valid_reason(polygon)}")
        return self


class TownGeography(_Strict):
    """One town/subdistrict: seat, target area and urban density level."""

    code: Annotated[str, Field(pattern=r"^\d{9}$")]
    name_en: str
    anchor: LonLat
    area_km2: Annotated[float, Field(gt=0)]
    density: Unit
    sigma_km: Annotated[float, Field(gt=0)]


class DensityPeak(_Strict):
    """An urban core that adds density around a point."""

    name: str
    at: LonLat
    peak: Unit
    sigma_km: Annotated[float, Field(gt=0)]


class DensityDamping(_Strict):
    """Hills that take density away around a point."""

    name: str
    at: LonLat
    strength: Unit
    sigma_km: Annotated[float, Field(gt=0)]


class DensityModel(_Strict):
    """Parameters of :func:`urban_density`."""

    background: Annotated[float, Field(ge=0.0, lt=1.0)]
    cores: list[DensityPeak]
    hills: list[DensityDamping]


class Geography(_Strict):
    """The whole geography file."""

    district: DistrictGeography
    towns: Annotated[list[TownGeography], Field(min_length=TOWN_COUNT, max_length=TOWN_COUNT)]
    density: DensityModel

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Check town codes, anchors and target areas against the district."""
        codes = [town.code for town in self.towns]
        if len(set(codes)) != len(codes):
            raise ValueError("town codes are not unique")
        outline = Polygon(self.district.outline)
        for town in self.towns:
            if not town.code.startswith(self.district.code):
                raise ValueError(f"town {town.code} is not in district {self.district.code}")
            if not outline.contains(shapely.Point(town.anchor)):
                raise ValueError(f"anchor of town {town.code} is outside the district outline")
        total = sum(town.area_km2 for town in self.towns)
        if abs(total / self.district.area_km2 - 1.0) > 0.1:
            raise ValueError(
                f"town areas sum to {total} km², more than 10 % off the district's "
                f"{self.district.area_km2} km²"
            )
        return self

    def town(self, code: str) -> TownGeography:
        """Return the town with this code."""
        for town in self.towns:
            if town.code == code:
                return town
        raise KeyError(code)

    def area_shares(self) -> dict[str, float]:
        """Return each town's target share of the district area (they sum to 1)."""
        total = sum(town.area_km2 for town in self.towns)
        return {town.code: town.area_km2 / total for town in self.towns}


def read_geography(path: Path) -> Geography:
    """Read and validate a geography file."""
    data = read_yaml(path)
    return Geography.model_validate(data)


@lru_cache(maxsize=1)
def load_geography() -> Geography:
    """Return the packaged Huadu geography (read once)."""
    return read_geography(GEOGRAPHY_FILE)


@lru_cache(maxsize=2)
def _transformer(source: int, target: int) -> pyproj.Transformer:
    """Return a cached lon/lat-ordered transformer between two EPSG codes."""
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


def to_metric(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Project lon/lat (EPSG:4490) to metres (EPSG:4547)."""
    x, y = _transformer(LONLAT_EPSG, METRIC_EPSG).transform(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_lonlat(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Unproject metres (EPSG:4547) to lon/lat (EPSG:4490)."""
    lon, lat = _transformer(METRIC_EPSG, LONLAT_EPSG).transform(
        np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    )
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _lonlat_coords(coords: FloatArray) -> FloatArray:
    """Transform an (n, 2) array of metric coordinates to lon/lat."""
    lon, lat = to_lonlat(coords[:, 0], coords[:, 1])
    return np.column_stack([lon, lat])


def _metric_coords(coords: FloatArray) -> FloatArray:
    """Transform an (n, 2) array of lon/lat coordinates to metres."""
    x, y = to_metric(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


def geometry_to_lonlat(geometry: G) -> G:
    """Return a metric (EPSG:4547) geometry in lon/lat (EPSG:4490), vertex by vertex."""
    result: G = shapely.transform(geometry, _lonlat_coords)
    return result


def geometry_to_metric(geometry: G) -> G:
    """Return a lon/lat (EPSG:4490) geometry in metres (EPSG:4547), vertex by vertex."""
    result: G = shapely.transform(geometry, _metric_coords)
    return result


def district_outline(geography: Geography | None = None) -> Polygon:
    """Return the district outline in EPSG:4547, scaled to the declared area."""
    geo = geography or load_geography()
    polygon = geometry_to_metric(Polygon(geo.district.outline))
    factor = float(np.sqrt(geo.district.area_km2 * 1e6 / polygon.area))
    centre = polygon.centroid
    scaled = shapely.transform(
        polygon, lambda c: (c - [centre.x, centre.y]) * factor + [centre.x, centre.y]
    )
    assert isinstance(scaled, Polygon)
    return scaled


def town_anchors(geography: Geography | None = None) -> dict[str, tuple[float, float]]:
    """Return each town's anchor (seat) in EPSG:4547, keyed by town code."""
    geo = geography or load_geography()
    lon, lat = zip(*(town.anchor for town in geo.towns), strict=True)
    x, y = to_metric(lon, lat)
    return {town.code: (float(x[i]), float(y[i])) for i, town in enumerate(geo.towns)}


class DensityField:
    """Urban density 0..1 over EPSG:4547 coordinates, built from a :class:`DensityModel`."""

    def __init__(self, geography: Geography) -> None:
        peaks = [(t.anchor, t.density, t.sigma_km) for t in geography.towns]
        peaks += [(c.at, c.peak, c.sigma_km) for c in geography.density.cores]
        hills = [(h.at, h.strength, h.sigma_km) for h in geography.density.hills]
        self.background = geography.density.background
        self._peaks = self._compile(peaks)
        self._hills = self._compile(hills)

    @staticmethod
    def _compile(
        items: list[tuple[tuple[float, float], float, float]],
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Turn (lon/lat, height, sigma km) items into metric arrays."""
        if not items:
            empty = np.zeros(0)
            return empty, empty, empty, empty
        lon = [item[0][0] for item in items]
        lat = [item[0][1] for item in items]
        x, y = to_metric(lon, lat)
        height = np.array([item[1] for item in items], dtype=np.float64)
        sigma = np.array([item[2] * 1000.0 for item in items], dtype=np.float64)
        return x, y, height, sigma

    @staticmethod
    def _keep(
        x: FloatArray, y: FloatArray, terms: tuple[FloatArray, FloatArray, FloatArray, FloatArray]
    ) -> FloatArray:
        """Return prod(1 - height * gauss) over the terms at each point."""
        cx, cy, height, sigma = terms
        keep = np.ones_like(x)
        for i in range(cx.size):
            r2 = (x - cx[i]) ** 2 + (y - cy[i]) ** 2
            keep *= 1.0 - height[i] * np.exp(-r2 / (2.0 * sigma[i] ** 2))
        return keep

    def __call__(self, x: ArrayLike, y: ArrayLike) -> FloatArray:
        """Return the density at metric points (any broadcastable shapes)."""
        xa, ya = np.broadcast_arrays(
            np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        )
        urban = 1.0 - self._keep(xa, ya, self._peaks)
        value = (self.background + (1.0 - self.background) * urban) * self._keep(
            xa, ya, self._hills
        )
        result: FloatArray = np.clip(value, 0.0, 1.0)
        return result


@lru_cache(maxsize=1)
def _default_density() -> DensityField:
    """Return the density field of the packaged geography."""
    return DensityField(load_geography())


def urban_density(x: ArrayLike, y: ArrayLike) -> FloatArray:
    """Return urban density 0..1 at EPSG:4547 points (vectorised).

    Peaks in the central city (新华/花城) and at each town seat, low in the northern hills.
    """
    return _default_density()(x, y)
