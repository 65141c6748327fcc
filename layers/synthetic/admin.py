"""Build the synthetic district, its towns and villages as an exact nested partition.

Algorithm (all in EPSG:4547):

1. Cover the district with a fine raster (``PIXEL_M`` pixels). A seeded smooth warp bends the
   plane; the outline is sampled through it, so its edge wiggles like a real boundary.
2. Towns: each pixel goes to the town with the least power distance ``|p - anchor|² - w`` in the
   warped plane; the weights ``w`` are iterated until every town has its target area share,
   capped so that no town swallows another's seat (``SEAT_RADIUS_M``).
3. Villages: inside each town, a density-weighted k-means (weights ``(0.1 + density)²``) places as
   many seeds as the town has villages, so villages are small where the town is dense. Pixels go to
   the nearest seed in a second, finer warp. Communities get the densest seeds.
4. Every label is made one 4-connected region (stray pieces join the neighbour they touch most;
   villages only join villages of their own town), then polygonised with
   ``rasterio.features.shapes``. The staircase is smoothed with ``shapely.coverage_simplify``,
   which keeps shared edges shared; towns and the district are coverage unions of villages, so the
   nesting is exact by construction.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TypeAlias

import numpy as np
import shapely
import shapely.affinity
from numpy.typing import NDArray
from rasterio import features
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon, shape

from layers.synthetic.geography import (
    LONLAT_EPSG,
    METRIC_EPSG,
    FloatArray,
    district_outline,
    geometry_to_lonlat,
    load_geography,
    town_anchors,
    urban_density,
)

IntArray: TypeAlias = NDArray[np.int32]
Areal: TypeAlias = Polygon | MultiPolygon

DIVISIONS_FILE: Final = Path(__file__).parents[1] / "data" / "huadu_divisions.csv"
PIXEL_M: Final = 50.0
SIMPLIFY_M: Final = 110.0
DENSIFY_M: Final = 50.0
#: One octave of a warp: (RMS sway in m, (shortest, longest) wavelength in m, waves per axis).
Octave = tuple[float, tuple[float, float], int]
#: Warps of the plane for town boundaries and the outline, and for village boundaries.
TOWN_WARP: Final[tuple[Octave, ...]] = ((600.0, (6000.0, 20000.0), 6), (180.0, (1500.0, 5000.0), 6))
VILLAGE_WARP: Final[tuple[Octave, ...]] = ((200.0, (1500.0, 6000.0), 6), (60.0, (600.0, 1500.0), 4))
#: Each town keeps at least this much (warped) ground around its seat.
SEAT_RADIUS_M: Final = 700.0
#: Density weighting of village seeds: weight = (VILLAGE_DENSITY_FLOOR + density) ** 2.
VILLAGE_DENSITY_FLOOR: Final = 0.1


@dataclass(frozen=True)
class Division:
    """One administrative division with its geometry."""

    code: str
    name: str
    level: str
    kind: str
    parent_code: str
    geometry: Areal
    epsg: int = METRIC_EPSG

    @property
    def area_km2(self) -> float:
        """Return the area in km² (of the EPSG:4547 geometry)."""
        if self.epsg != METRIC_EPSG:
            raise ValueError("area_km2 needs the EPSG:4547 geometry")
        return float(self.geometry.area) / 1e6

    def to_lonlat(self) -> Division:
        """Return a copy with the geometry in EPSG:4490 (lon/lat)."""
        if self.epsg == LONLAT_EPSG:
            return self
        return replace(self, geometry=geometry_to_lonlat(self.geometry), epsg=LONLAT_EPSG)


@dataclass(frozen=True)
class AdminGeometry:
    """The district, its 10 towns and 261 villages, in one CRS (``epsg``)."""

    district: Division
    towns: tuple[Division, ...]
    villages: tuple[Division, ...]
    seed: int
    epsg: int = METRIC_EPSG
    _index: dict[str, Division] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        """Index the divisions by code."""
        index = {d.code: d for d in (self.district, *self.towns, *self.villages)}
        object.__setattr__(self, "_index", index)

    def __getitem__(self, code: str) -> Division:
        """Return the division with this code."""
        return self._index[code]

    def villages_of(self, town_code: str) -> tuple[Division, ...]:
        """Return the villages of one town."""
        return tuple(v for v in self.villages if v.parent_code == town_code)

    def to_lonlat(self) -> AdminGeometry:
        """Return a copy with every geometry in EPSG:4490 (lon/lat)."""
        if self.epsg == LONLAT_EPSG:
            return self
        return AdminGeometry(
            district=self.district.to_lonlat(),
            towns=tuple(t.to_lonlat() for t in self.towns),
            villages=tuple(v.to_lonlat() for v in self.villages),
            seed=self.seed,
            epsg=LONLAT_EPSG,
        )


@dataclass(frozen=True)
class DivisionRow:
    """One row of ``huadu_divisions.csv``."""

    code: str
    name: str
    level: str
    kind: str
    parent_code: str

    def division(self, geometry: Areal) -> Division:
        """Return this division with a geometry."""
        return Division(self.code, self.name, self.level, self.kind, self.parent_code, geometry)


def read_divisions(path: Path = DIVISIONS_FILE) -> tuple[DivisionRow, ...]:
    """Read the real division codes and names."""
    with path.open(encoding="utf-8", newline="") as handle:
        return tuple(DivisionRow(**row) for row in csv.DictReader(handle))


@dataclass(frozen=True)
class _Warp:
    """A smooth random displacement of the plane: a sum of plane waves per axis."""

    kx: FloatArray
    ky: FloatArray
    phase: FloatArray
    amplitude: FloatArray

    @classmethod
    def random(cls, rng: np.random.Generator, octaves: tuple[Octave, ...]) -> _Warp:
        """Draw waves per axis and octave: log-uniform wavelengths, RMS sway ``amplitude``."""
        parts = []
        for amplitude, (shortest, longest), n in octaves:
            lam = np.exp(rng.uniform(np.log(shortest), np.log(longest), size=(2, n)))
            theta = rng.uniform(0.0, 2.0 * np.pi, size=(2, n))
            phase = rng.uniform(0.0, 2.0 * np.pi, size=(2, n))
            weight = lam / lam.sum(axis=1, keepdims=True)  # longer waves sway further
            rms = np.sqrt((weight**2).sum(axis=1, keepdims=True) / 2.0)
            k = 2.0 * np.pi / lam
            parts.append((k * np.cos(theta), k * np.sin(theta), phase, amplitude * weight / rms))
        kx, ky, phase, amp = (np.concatenate(arrays, axis=1) for arrays in zip(*parts, strict=True))
        return cls(kx, ky, phase, amp)

    def __call__(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return the warped coordinates, rounded to the millimetre."""
        out = []
        for axis, base in enumerate((x, y)):
            moved = base.copy()
            for i in range(self.kx.shape[1]):
                arg = self.kx[axis, i] * x + self.ky[axis, i] * y + self.phase[axis, i]
                moved += self.amplitude[axis, i] * np.sin(arg)
            # Rounding hides last-bit differences of np.sin between CPUs from the labelling.
            out.append(np.round(moved, 3))
        return out[0], out[1]


@dataclass(frozen=True)
class _Raster:
    """A north-up pixel grid in EPSG:4547 with its pixel-centre coordinates."""

    transform: Affine
    x: FloatArray
    y: FloatArray

    @classmethod
    def cover(cls, bounds: tuple[float, float, float, float], pixel: float) -> _Raster:
        """Cover ``bounds`` with pixels whose corners are multiples of ``pixel``."""
        minx, miny, maxx, maxy = bounds
        x0, y0 = np.floor(minx / pixel) * pixel, np.ceil(maxy / pixel) * pixel
        cols = int(np.ceil((maxx - x0) / pixel))
        rows = int(np.ceil((y0 - miny) / pixel))
        xs = x0 + (np.arange(cols) + 0.5) * pixel
        ys = y0 - (np.arange(rows) + 0.5) * pixel
        x, y = np.meshgrid(xs, ys)
        return cls(Affine(pixel, 0.0, x0, 0.0, -pixel, y0), x, y)

    @property
    def pixel_area(self) -> float:
        """Return the area of one pixel in m²."""
        return float(abs(self.transform.a * self.transform.e))


def _power_labels(
    px: FloatArray, py: FloatArray, sites: FloatArray, weights: FloatArray
) -> NDArray[np.intp]:
    """Return, for each point, the index of the site with the least power distance."""
    cost = (px[:, None] - sites[None, :, 0]) ** 2 + (py[:, None] - sites[None, :, 1]) ** 2
    result: NDArray[np.intp] = np.argmin(cost - weights[None, :], axis=1)
    return result


def _town_weights(
    px: FloatArray, py: FloatArray, cell_area: float, sites: FloatArray, targets: FloatArray
) -> FloatArray:
    """Iterate power weights towards the target areas, keeping every seat in its own cell.

    Site ``i`` keeps the disk of radius ``SEAT_RADIUS_M`` around itself while
    ``w_j - w_i <= d_ij² - 2 d_ij SEAT_RADIUS_M`` for every ``j``; weights are capped to that.
    """
    d = np.hypot(*(sites[:, None, :] - sites[None, :, :]).transpose(2, 0, 1))
    limit = np.maximum(d**2 - 2.0 * d * SEAT_RADIUS_M, 0.0)
    np.fill_diagonal(limit, np.inf)
    weights = np.zeros(len(sites))
    for _ in range(100):
        areas = np.bincount(_power_labels(px, py, sites, weights), minlength=len(sites))
        error = targets - areas * cell_area
        if np.max(np.abs(error) / targets) < 0.005:
            break
        weights = weights + 0.6 * error / np.pi
        for _ in range(len(sites)):  # w_j <= min_i (w_i + limit_ij), to a fixed point
            capped = np.minimum(weights, (weights[:, None] + limit).min(axis=0))
            if np.array_equal(capped, weights):
                break
            weights = capped
    return weights


def _village_seeds(
    px: FloatArray, py: FloatArray, weight: FloatArray, k: int, rng: np.random.Generator
) -> FloatArray:
    """Place ``k`` seeds by weighted k-means (Lloyd) over the points."""
    if k == 1:
        return np.array([[np.average(px, weights=weight), np.average(py, weights=weight)]])
    start = rng.choice(px.size, size=k, replace=False, p=weight / weight.sum())
    seeds = np.column_stack([px[start], py[start]])
    for _ in range(25):
        labels = _power_labels(px, py, seeds, np.zeros(k))
        mass = np.bincount(labels, weights=weight, minlength=k)
        empty = mass == 0
        mass[empty] = 1.0
        seeds = np.column_stack(
            [
                np.bincount(labels, weights=weight * px, minlength=k) / mass,
                np.bincount(labels, weights=weight * py, minlength=k) / mass,
            ]
        )
        if empty.any():  # restart empty clusters on random heavy points
            pick = rng.choice(
                px.size, size=int(empty.sum()), replace=False, p=weight / weight.sum()
            )
            seeds[empty] = np.column_stack([px[pick], py[pick]])
    return seeds


def _make_connected(labels: IntArray, group: IntArray) -> IntArray:
    """Merge every label's stray pieces into the same-group neighbour they touch most."""
    labels = labels.copy()
    for _ in range(20):
        pieces: dict[int, list[tuple[float, Polygon]]] = {}
        for geom, value in features.shapes(labels, connectivity=4):
            polygon = shape(geom)
            pieces.setdefault(int(value), []).append((polygon.area, polygon))
        strays = [
            (value, polygon)
            for value, parts in pieces.items()
            for _, polygon in sorted(parts, key=lambda p: p[0], reverse=True)[1:]
        ]
        if not strays:
            return labels
        burnt = features.rasterize(
            [(polygon, i + 1) for i, (_, polygon) in enumerate(strays)],
            out_shape=labels.shape,
            transform=Affine.identity(),
            fill=0,
            dtype="int32",
        )
        for i, (value, _) in enumerate(strays):
            rows, cols = np.nonzero(burnt == i + 1)
            near: Counter[int] = Counter()
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                r = np.clip(rows + dr, 0, labels.shape[0] - 1)
                c = np.clip(cols + dc, 0, labels.shape[1] - 1)
                near.update(int(v) for v in labels[r, c])
            options = [
                (count, -v) for v, count in near.items() if v != value and group[v] == group[value]
            ]
            if options:
                labels[rows, cols] = -max(options)[1]
    raise RuntimeError("labels did not become connected")


def _label_towns(
    raster: _Raster,
    inside: NDArray[np.bool_],
    warp: _Warp,
    wx: FloatArray,
    wy: FloatArray,
    codes: list[str],
) -> IntArray:
    """Return the town raster: 0 outside, ``i + 1`` for ``codes[i]``."""
    anchors = town_anchors()
    shares = load_geography().area_shares()
    # Sites are warped like the pixels, so each seat keeps its own pixel.
    ax, ay = (np.array([anchors[code][i] for code in codes]) for i in (0, 1))
    sites = np.column_stack(warp(ax, ay))
    targets = np.array([shares[code] for code in codes]) * inside.sum() * raster.pixel_area
    step = 4
    sub = inside[::step, ::step]
    weights = _town_weights(
        wx[::step, ::step][sub],
        wy[::step, ::step][sub],
        raster.pixel_area * step * step,
        sites,
        targets * sub.sum() * step * step / inside.sum(),
    )
    labels = np.zeros(inside.shape, dtype=np.int32)
    labels[inside] = _power_labels(wx[inside], wy[inside], sites, weights) + 1
    return labels


def _label_villages(
    raster: _Raster,
    towns: IntArray,
    town_codes: list[str],
    villages: list[DivisionRow],
    rng: np.random.Generator,
) -> IntArray:
    """Return the village raster: 0 outside, ``j + 1`` for ``villages[j]``."""
    warp = _Warp.random(rng, VILLAGE_WARP)
    labels = np.zeros(towns.shape, dtype=np.int32)
    density = urban_density(raster.x, raster.y)
    anchors = town_anchors()
    for t, town_code in enumerate(town_codes, start=1):
        mask = towns == t
        members = [j for j, v in enumerate(villages) if v.parent_code == town_code]
        vx, vy = warp(raster.x[mask], raster.y[mask])
        weight = (VILLAGE_DENSITY_FLOOR + density[mask]) ** 2
        thin = np.zeros(mask.shape, dtype=bool)
        thin[::2, ::2] = True
        thin = thin[mask]
        seeds = _village_seeds(vx[thin], vy[thin], weight[thin], len(members), rng)
        nearest = _power_labels(vx, vy, seeds, np.zeros(len(seeds)))
        mass = np.bincount(nearest, weights=weight, minlength=len(seeds))
        size = np.bincount(nearest, minlength=len(seeds))
        mean_weight = mass / np.maximum(size, 1)
        # Communities take the densest seeds, villages the rest; within each kind, lower codes
        # go to seeds closer to the town seat.
        ax, ay = anchors[town_code]
        distance = np.hypot(seeds[:, 0] - ax, seeds[:, 1] - ay)
        n_comm = sum(villages[j].kind == "community" for j in members)
        by_density = list(np.argsort(-mean_weight, kind="stable"))
        comm_seeds = sorted(by_density[:n_comm], key=lambda s: distance[s])
        rural_seeds = sorted(by_density[n_comm:], key=lambda s: distance[s])
        comm = sorted(j for j in members if villages[j].kind == "community")
        rural = sorted(j for j in members if villages[j].kind != "community")
        seed_to_village = np.zeros(len(seeds), dtype=np.int32)
        for s, j in zip(comm_seeds + rural_seeds, comm + rural, strict=True):
            seed_to_village[s] = j + 1
        labels[mask] = seed_to_village[nearest]
    return labels


def _to_map(transform: Affine, cols_rows: FloatArray) -> FloatArray:
    """Map (col, row) pixel-corner coordinates to EPSG:4547 with a north-up transform."""
    x = transform.c + transform.a * cols_rows[:, 0]
    y = transform.f + transform.e * cols_rows[:, 1]
    return np.column_stack([x, y])


def _polygonize(labels: IntArray, transform: Affine, count: int) -> list[Polygon]:
    """Return one edge-matched polygon per label 1..count (each label must be one region).

    GDAL merges collinear pixel edges, so two neighbours need not share vertices; densifying to
    one vertex per pixel corner (exact integers in pixel space) makes the edges match.
    """
    polygons: list[Polygon | None] = [None] * count
    for geom, value in features.shapes(labels, mask=labels > 0, connectivity=4):
        index = int(value) - 1
        if polygons[index] is not None:
            raise RuntimeError(f"label {index + 1} is not one region")
        dense = shapely.transform(shapely.segmentize(shape(geom), 1.0), np.round)
        polygons[index] = shapely.transform(dense, lambda c: _to_map(transform, c))
    missing = [i + 1 for i, p in enumerate(polygons) if p is None]
    if missing:
        raise RuntimeError(f"labels {missing} have no pixels")
    return [p for p in polygons if p is not None]


def _densify_ring(coords: FloatArray, step: float) -> FloatArray:
    """Add vertices so no segment exceeds ``step``, the same way whichever way it runs.

    Points are interpolated from the lexicographically smaller end, so the two polygons that
    share an edge get bit-identical new vertices and stay edge-matched.
    """
    start, end = coords[:-1], coords[1:]
    flip = (start[:, 0] > end[:, 0]) | ((start[:, 0] == end[:, 0]) & (start[:, 1] > end[:, 1]))
    low = np.where(flip[:, None], end, start)
    high = np.where(flip[:, None], start, end)
    out = [coords[:1]]
    for i in range(len(start)):
        pieces = max(int(np.ceil(np.hypot(*(high[i] - low[i])) / step)), 1)
        t = np.arange(1, pieces)[:, None] / pieces
        inner = low[i] + (high[i] - low[i]) * t
        out += [inner[::-1] if flip[i] else inner, end[i : i + 1]]
    return np.concatenate(out)


def _densify(geometry: Polygon, step: float) -> Polygon:
    """Return the polygon with every edge split into pieces no longer than ``step``."""
    rings = [geometry.exterior, *geometry.interiors]
    shell, *holes = (_densify_ring(np.asarray(r.coords), step) for r in rings)
    return Polygon(shell, holes)


def _check_coverage(geometries: list[Areal], what: str) -> None:
    """Raise unless the geometries are valid, non-empty and form a valid coverage."""
    array = np.array(geometries, dtype=object)
    if not shapely.is_valid(array).all() or shapely.is_empty(array).any():
        raise RuntimeError(f"{what}: invalid or empty geometry")
    if not shapely.coverage_is_valid(array):
        raise RuntimeError(f"{what}: not a valid coverage")


def build_admin(seed: int) -> AdminGeometry:
    """Build the district, 10 towns and 261 villages deterministically from ``seed``.

    Geometries are in EPSG:4547; use :meth:`AdminGeometry.to_lonlat` for EPSG:4490.
    """
    rows = read_divisions()
    (district_row,) = [r for r in rows if r.level == "district"]
    town_rows = sorted((r for r in rows if r.level == "town"), key=lambda r: r.code)
    village_rows = sorted((r for r in rows if r.level == "village"), key=lambda r: r.code)
    town_codes = [r.code for r in town_rows]

    rng = np.random.default_rng(seed)
    outline = district_outline()
    minx, miny, maxx, maxy = outline.bounds
    margin = 3.0 * sum(octave[0] for octave in TOWN_WARP)
    raster = _Raster.cover((minx - margin, miny - margin, maxx + margin, maxy + margin), PIXEL_M)
    warp = _Warp.random(rng, TOWN_WARP)
    wx, wy = warp(raster.x, raster.y)
    inside = shapely.contains_xy(outline, wx, wy)
    # The warp stretches the outline a little: rescale it once to get the declared area back.
    target = load_geography().district.area_km2 * 1e6
    factor = float(np.sqrt(target / (inside.sum() * raster.pixel_area)))
    outline = shapely.affinity.scale(outline, factor, factor, origin="centroid")
    inside = shapely.contains_xy(outline, wx, wy)

    towns = _label_towns(raster, inside, warp, wx, wy, town_codes)
    towns = _make_connected(towns, np.zeros(len(town_codes) + 1, dtype=np.int32))
    villages = _label_villages(raster, towns, town_codes, village_rows, rng)
    village_town = [0] + [town_codes.index(v.parent_code) + 1 for v in village_rows]
    villages = _make_connected(villages, np.array(village_town, dtype=np.int32))

    shapes = _polygonize(villages, raster.transform, len(village_rows))
    smooth = shapely.coverage_simplify(np.array(shapes, dtype=object), SIMPLIFY_M)
    # Short edges keep EPSG:4490 copies (and grid cells cut from them) within 0.1 mm.
    smooth = [_densify(polygon, DENSIFY_M) for polygon in smooth]
    _check_coverage(smooth, "villages")

    village_divisions = tuple(
        row.division(geom) for row, geom in zip(village_rows, smooth, strict=True)
    )
    town_divisions = tuple(
        row.division(
            shapely.coverage_union_all(
                [v.geometry for v in village_divisions if v.parent_code == row.code]
            )
        )
        for row in town_rows
    )
    _check_coverage([t.geometry for t in town_divisions], "towns")
    district = district_row.division(
        shapely.coverage_union_all([t.geometry for t in town_divisions])
    )
    _check_coverage([district.geometry], "district")
    return AdminGeometry(district, town_divisions, village_divisions, seed)
