"""Build the synthetic terrain of Huadu: a 30 m DEM with its river network carved in.

Algorithm (all in EPSG:4547, numpy only, deterministic from the seed):

1. Raw surface = alluvial plain rising gently from ~5 m in the south to ~18 m at the foot of the
   hills + rolling hills in the west/north-west + mountain massifs in the north (梯面 王子山,
   花山, 芙蓉嶂, 赤坭) shaped by ridged fractal value noise; the mountains are scaled so that the
   highest cell of the district is 王子山's 578 m.
2. Rivers first, as polylines with descending profiles (:mod:`layers.synthetic.river_network`).
3. Valleys: every cell takes the profile level ``z_r`` of its nearest river point (a jump-flood
   nearest-seed transform) and its height above it is clipped between a bank floor (near
   rivers) and a valley wall (steeper in the hills), with a flat channel floor around the
   centreline; so rivers sit below both banks and descend monotonically downstream.
4. Dams close a few hill rivers a km or two below their source; the mapped course of those
   starts below the dam (:mod:`layers.synthetic.hydro` floods the valley behind it).

The DEM is valid over the whole grid (the district's bounds plus a 2 km margin): rivers and
hills go on beyond the boundary, so no cell holds the declared nodata value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Final

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from rasterio import features
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon

from layers.registry import default_catalog
from layers.synthetic import _fields
from layers.synthetic._fields import smoothstep
from layers.synthetic.admin import AdminGeometry
from layers.synthetic.geography import METRIC_EPSG, FloatArray, urban_density
from layers.synthetic.river_network import River, build_rivers, directed_parts, flat_m, metric

__all__ = ["Dam", "River", "Terrain", "build_terrain", "directed_parts"]

MARGIN_M: Final = 2000.0
PEAK_M: Final = 578.0  # 王子山, the highest point of Huadu
#: Mountain massifs: (lon, lat), weight, sigma (km) along x and y.
MASSIFS: Final = (
    ((113.315, 23.585), 1.00, 5.0, 4.0),  # 王子山, 梯面
    ((113.265, 23.580), 0.75, 4.0, 3.5),  # 梯面 west ridge
    ((113.370, 23.512), 0.62, 4.5, 3.5),  # 花山 northern hills
    ((113.445, 23.500), 0.42, 3.5, 3.0),  # hills towards 从化
    ((113.200, 23.530), 0.50, 4.0, 3.0),  # 芙蓉嶂, 狮岭 north
    ((113.120, 23.535), 0.42, 4.5, 3.5),  # north-west hills
    ((113.040, 23.470), 0.34, 3.0, 3.5),  # 赤坭 western hills
)
DAMS: Final = 5
MIN_DAMS: Final = 3
INTArray = NDArray[np.int32]


@dataclass(frozen=True)
class Dam:
    """A dam across a hill river: which river, where (arc from its source, m) and the point."""

    river: int
    arc_m: float
    x: float
    y: float


@dataclass(frozen=True, eq=False)
class Terrain:
    """The DEM (EPSG:4547) with its rivers and per-cell nearest-river fields."""

    array: NDArray[np.float32]
    transform: Affine
    nodata: float
    district: Polygon | MultiPolygon
    inside: NDArray[np.bool_]
    rivers: tuple[River, ...]
    dams: tuple[Dam, ...]
    river_index: NDArray[np.int16]
    river_arc: NDArray[np.float32]
    river_distance: NDArray[np.float32]
    hand: NDArray[np.float32]
    seed: int
    epsg: int = METRIC_EPSG

    @property
    def shape(self) -> tuple[int, int]:
        """Return (rows, cols)."""
        rows, cols = self.array.shape
        return rows, cols

    @property
    def resolution(self) -> float:
        """Return the cell size in metres."""
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return (minx, miny, maxx, maxy) of the grid."""
        return _fields.grid_bounds(self.transform, self.shape)

    def centres(self) -> tuple[FloatArray, FloatArray]:
        """Return the x of column centres and the y of row centres."""
        return _fields.cell_centres(self.transform, self.shape)

    def elevation(self, x: ArrayLike, y: ArrayLike) -> FloatArray:
        """Return the elevation (m) at metric points, bilinear; NaN outside the grid."""
        xa, ya = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return _fields.bilinear(self.array, self.transform, xa, ya)

    @cached_property
    def slope(self) -> NDArray[np.float32]:
        """Return the slope (m/m) of every cell."""
        gy, gx = np.gradient(self.array.astype(np.float64), self.resolution)
        return np.hypot(gx, gy).astype(np.float32)

    @cached_property
    def depression(self) -> NDArray[np.float32]:
        """Return how far (m) each cell lies below the mean of its ~500 m neighbourhood."""
        radius = max(1, int(round(250.0 / self.resolution)))
        return (_fields.box_mean(self.array, radius) - self.array).astype(np.float32)

    @cached_property
    def _low_candidates(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return x, y and weight of cells that can be low spots of the urban plain."""
        ok = (
            self.inside
            & (self.array < 25.0)
            & (self.hand < 4.0)
            & (self.river_distance > 60.0)
            & (self.river_distance < 1500.0)
            & (self.slope < 0.01)
            & (self.depression >= 0.2)
        )
        rows, cols = np.nonzero(ok)
        xs, ys = self.centres()
        x, y = xs[cols], ys[rows]
        density = urban_density(x, y)
        depth = self.depression[rows, cols].astype(np.float64)
        weight = depth * np.clip(density - 0.25, 0.0, None)
        keep = weight > 0
        return x[keep], y[keep], weight[keep]

    def low_spots(self, n: int, rng: np.random.Generator, spacing_m: float = 300.0) -> FloatArray:
        """Return ``n`` (x, y) low, flat points of the urban plain near rivers, ``spacing_m`` apart.

        Plain cells (below 25 m, under 4 m above the nearest river, slope under 1 %) at least
        0.2 m below their ~500 m surroundings, weighted by that depth and urban density; for
        pumping stations and waterlogging points. Fewer than ``n`` only if candidates run out.
        """
        x, y, weight = self._low_candidates
        order = np.argsort(rng.exponential(size=weight.size) / weight, kind="stable")
        chosen: list[int] = []
        for i in order[: max(50 * n, 1000)]:
            near = [(x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2 < spacing_m**2 for j in chosen]
            if not any(near):
                chosen.append(int(i))
                if len(chosen) == n:
                    break
        return np.column_stack([x[chosen], y[chosen]]).reshape(-1, 2)


def _grid(district: Polygon | MultiPolygon, res: float) -> tuple[Affine, tuple[int, int]]:
    """Return the transform and shape of a grid over the district plus the margin."""
    minx, miny, maxx, maxy = district.bounds
    x0 = np.floor((minx - MARGIN_M) / res) * res
    y0 = np.ceil((maxy + MARGIN_M) / res) * res
    cols = int(np.ceil((maxx + MARGIN_M - x0) / res))
    rows = int(np.ceil((y0 - (miny - MARGIN_M)) / res))
    return Affine(res, 0.0, x0, 0.0, -res, y0), (rows, cols)


def _raw_surface(
    rng: np.random.Generator, xs: FloatArray, ys: FloatArray, inside: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Return the raw elevation and the 0..1 hill field before any river is carved."""
    keep = np.ones((ys.size, xs.size))
    for (lon, lat), weight, sx, sy in MASSIFS:
        cx, cy = metric(lon, lat)
        gx = np.exp(-((xs - cx) ** 2) / (2 * (sx * 1000) ** 2))
        gy = np.exp(-((ys - cy) ** 2) / (2 * (sy * 1000) ** 2))
        keep *= 1.0 - weight * np.outer(gy, gx)
    hill = 1.0 - keep
    _, y_south = metric(113.2, 23.26)
    x_west, y_north = metric(113.17, 23.50)
    _, y_mid = metric(113.2, 23.40)
    plain = 5.0 + 13.0 * smoothstep((ys - y_south) / (y_north - y_south))
    rolling_mask = np.maximum(
        smoothstep((ys - y_mid) / (y_north - y_mid))[:, None],
        0.8
        * smoothstep((x_west - xs) / 8000.0)[None, :]
        * smoothstep((ys - y_south) / 12000.0)[:, None],
    )
    octaves = [
        (6000.0, 1.0),
        (3000.0, 0.5),
        (1500.0, 0.25),
        (700.0, 0.12),
        (300.0, 0.06),
        (120.0, 0.03),
    ]
    ridges = _fields.fractal_noise(rng, xs, ys, octaves)
    ridged = (1.0 - np.clip(np.abs(ridges / ridges.std()) / 2.0, 0.0, 1.0)) ** 2
    swell = _fields.fractal_noise(rng, xs, ys, [(8000.0, 1.0), (3000.0, 0.4)])
    rolling = _fields.fractal_noise(rng, xs, ys, [(3000.0, 1.0), (1200.0, 0.5), (500.0, 0.25)])
    micro = _fields.fractal_noise(
        rng, xs, ys, [(3000.0, 0.5), (1200.0, 0.25), (500.0, 0.15), (200.0, 0.08)]
    )
    mountain = hill**1.2 * (0.45 + 0.55 * ridged) * np.clip(1.0 + 0.25 * swell, 0.3, None)
    px, py = metric(*MASSIFS[0][0])
    bump = np.outer(np.exp(-((ys - py) ** 2) / 3.2e6), np.exp(-((xs - px) ** 2) / 3.2e6))
    mountain += 0.4 * bump * (0.5 + 0.5 * ridged)
    base = plain[:, None] + 28.0 * rolling_mask * np.clip(0.4 + 0.6 * rolling, 0.0, None) + micro
    scale = PEAK_M
    for _ in range(4):  # make the district's highest cell 王子山's height
        top = np.argmax(np.where(inside, base + scale * mountain, -np.inf))
        scale = (PEAK_M - base.flat[top]) / mountain.flat[top]
    return np.maximum(base + scale * mountain, 1.0), hill


def _carve(
    raw: FloatArray, hill: FloatArray, rivers: list[River], transform: Affine
) -> tuple[FloatArray, INTArray, FloatArray, FloatArray, FloatArray]:
    """Return the carved DEM and the nearest-river index, arc, distance and level per cell."""
    sx, sy, sz, sr, ss, sw = [], [], [], [], [], []
    for river in rivers:
        points = shapely.get_coordinates(shapely.line_interpolate_point(river.line, river.arcs))
        level = river.profile.copy()
        flat = np.full(river.arcs.size, flat_m(river))
        if river.parent is not None:  # the mouth lies in the parent's channel: take its level
            parent = rivers[river.parent]
            inside = shapely.distance(shapely.points(points), parent.line) < flat_m(parent)
            along = shapely.line_locate_point(parent.line, shapely.points(points[inside]))
            level[inside] = np.minimum(level[inside], parent.z_at(along))
            flat[inside] = flat_m(parent)
        sx.append(points[:, 0])
        sy.append(points[:, 1])
        sz.append(level)
        sr.append(np.full(river.arcs.size, river.index))
        ss.append(river.arcs)
        sw.append(flat)
    seed_index, distance = _fields.nearest_seed(
        transform, raw.shape, np.concatenate(sx), np.concatenate(sy)
    )
    z_r = np.concatenate(sz)[seed_index]
    flat = np.concatenate(sw)[seed_index]
    d = np.maximum(distance - flat, 0.0)
    relief = raw - z_r
    wall = (0.06 + 0.35 * hill) * d
    floor = np.minimum((0.012 + 0.08 * hill) * d, 2.5 + 15.0 * hill)
    fade = 1.0 - smoothstep((distance.astype(np.float64) - 400.0) / 600.0)
    carved = np.minimum(relief, wall)
    height = carved + fade * np.maximum(floor - carved, 0.0)
    index = np.concatenate(sr)[seed_index].astype(np.int32)
    arc = np.concatenate(ss)[seed_index]
    return z_r + height, index, arc, distance.astype(np.float64), z_r


def _dams(
    rng: np.random.Generator, rivers: list[River], district: Polygon | MultiPolygon
) -> list[Dam]:
    """Choose hill rivers to dam, a km or so below the source, inside the district.

    A first pass wants a source at 60 m or more and a 20 m drop above the dam; when that gives
    fewer than ``MIN_DAMS``, a second pass settles for 40 m and 10 m.
    """
    core = district.buffer(-300.0)
    dams: list[Dam] = []
    order = rng.permutation(len(rivers))
    for min_source, min_drop in ((60.0, 20.0), (40.0, 10.0)):
        if len(dams) >= MIN_DAMS:
            break
        for i in order:
            river = rivers[int(i)]
            if any(d.river == river.index for d in dams):
                continue
            if not core.contains(shapely.Point(river.line.coords[0])):
                continue
            ok = (river.arcs >= 1000.0) & (river.profile <= river.profile[0] - min_drop)
            ok &= (river.arcs <= river.line.length - 1500.0) & (river.profile[0] >= min_source)
            if not ok.any():
                continue
            arc = float(river.arcs[np.argmax(ok)])
            at = river.line.interpolate(arc)
            mouths = [
                river.line.project(shapely.Point(r.line.coords[-1]))
                for r in rivers
                if r.parent == river.index
            ]
            if any(m < arc + 300.0 for m in mouths):  # a creek would flow into the reservoir
                continue
            if not core.contains(at) or any(np.hypot(at.x - d.x, at.y - d.y) < 3000 for d in dams):
                continue
            dams.append(Dam(river.index, arc, at.x, at.y))
            if len(dams) == DAMS:
                break
    return sorted(dams, key=lambda d: d.river)


def build_terrain(admin: AdminGeometry, seed: int) -> Terrain:
    """Build the DEM, rivers and dams of the district deterministically from ``seed``."""
    spec = default_catalog().by_role("dem").raster
    assert spec is not None
    district = admin.district.geometry
    transform, shape = _grid(district, spec.resolution_m)
    xs, ys = _fields.cell_centres(transform, shape)
    inside = features.rasterize([district], out_shape=shape, transform=transform).astype(bool)
    rng = np.random.default_rng([seed, METRIC_EPSG])
    raw, hill = _raw_surface(rng, xs, ys, inside)
    rivers = build_rivers(rng, raw, hill, transform, district)
    dem, index, arc, distance, z_r = _carve(raw, hill, rivers, transform)
    dams = _dams(rng, rivers, district)
    for dam in dams:
        rivers[dam.river] = replace(rivers[dam.river], start_m=dam.arc_m)
    return Terrain(
        array=dem.astype(np.float32),
        transform=transform,
        nodata=float(spec.nodata),
        district=district,
        inside=inside,
        rivers=tuple(rivers),
        dams=tuple(dams),
        river_index=index.astype(np.int16),
        river_arc=arc.astype(np.float32),
        river_distance=distance.astype(np.float32),
        hand=(dem - z_r).astype(np.float32),
        seed=seed,
    )
