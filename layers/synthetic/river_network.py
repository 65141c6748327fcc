"""The river network of the synthetic district, drawn before the terrain is carved.

Five main rivers follow hand-placed control points (Catmull-Rom splined, with seeded meanders
damped in the hills); seeded tributaries join them (or each other) from upstream at an angle,
flowing downhill on the raw surface and keeping 200 m clear of every other river. Each river
gets a longitudinal profile: the running minimum of the raw surface minus an incision, with a
minimum slope, never below the river it runs beside near its mouth and ending at its level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import shapely
import shapely.ops
from numpy.typing import ArrayLike
from rasterio.transform import Affine
from shapely.geometry import LineString, MultiPolygon, Polygon

from layers.synthetic import _fields
from layers.synthetic._fields import smoothstep
from layers.synthetic.geography import FloatArray, to_metric

MIN_SLOPE: Final = 5e-5  # 5 cm per km: the delta plain is very flat
TRIBUTARIES: Final = 24
TRIB_PREFIX: Final = "石大黄高平竹龙鸭横官马沙新铁田九洪芙国乌白杨水金长"
TRIB_MIDDLE: Final = "坑塘岗溪山湖口洞美泰头围岭沥迳陂"
TRIB_SUFFIX: Final = ("河", "水", "涌", "坑")
#: Main rivers: name, channel width (m), control points (lon, lat) from source to mouth, and the
#: river it joins (None: leaves the grid). Sources/mouths outside the grid are clipped.
# fmt: off
MAIN_RIVERS: Final = (
    ("白坭河", 110.0, [(113.03, 23.58), (113.06, 23.50), (113.068, 23.45), (113.07, 23.40),
                      (113.078, 23.36), (113.09, 23.32), (113.10, 23.29), (113.095, 23.22)], None),
    ("流溪河", 120.0, [(113.52, 23.54), (113.47, 23.49), (113.445, 23.45), (113.428, 23.41),
                      (113.425, 23.375), (113.41, 23.345), (113.40, 23.20)], None),
    ("天马河", 45.0, [(113.195, 23.512), (113.185, 23.47), (113.195, 23.43), (113.202, 23.39),
                     (113.19, 23.35), (113.20, 23.30), (113.215, 23.22)], None),
    ("新街河", 40.0, [(113.275, 23.518), (113.258, 23.475), (113.247, 23.43), (113.252, 23.39),
                     (113.265, 23.36), (113.285, 23.325), (113.305, 23.20)], None),
    ("巴江河", 50.0, [(113.142, 23.505), (113.132, 23.46), (113.142, 23.41), (113.128, 23.37),
                     (113.112, 23.335), (113.094, 23.316)], "白坭河"),
)
# fmt: on


@dataclass(frozen=True, eq=False)
class River:
    """One river: downstream-directed centreline and its longitudinal profile."""

    index: int
    name: str
    kind: str  # "main" or "tributary"
    parent: int | None
    line: LineString
    width_m: float
    arcs: FloatArray
    profile: FloatArray
    start_m: float = 0.0

    def z_at(self, arc: ArrayLike) -> FloatArray:
        """Return the profile level (m) at arc lengths from the source."""
        return np.interp(np.asarray(arc, dtype=np.float64), self.arcs, self.profile)

    @property
    def course(self) -> LineString:
        """Return the mapped course: below the dam when the river is dammed."""
        if self.start_m <= 0.0:
            return self.line
        cut = shapely.ops.substring(self.line, self.start_m, self.line.length)
        assert isinstance(cut, LineString)
        return cut


def flat_m(river: River) -> float:
    """Return the half-width (m) of the flat channel floor around a river's centreline."""
    return max(60.0, river.width_m / 2.0 + 20.0)


def metric(lon: float, lat: float) -> tuple[float, float]:
    """Project one lon/lat point to metres."""
    x, y = to_metric([lon], [lat])
    return float(x[0]), float(y[0])


def _spline(points: FloatArray, step: float = 40.0) -> FloatArray:
    """Return a Catmull-Rom curve through the points, about ``step`` apart."""
    ext = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        n = max(2, int(np.linalg.norm(p2 - p1) / step))
        t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
        out.append(
            0.5
            * (
                (2 * p1)
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.vstack(out)


def _meander(
    rng: np.random.Generator,
    path: FloatArray,
    amplitude: float,
    straight: tuple[FloatArray, Affine],
    taper_m: float = 600.0,
) -> FloatArray:
    """Return the path swayed sideways by a few sine waves, fixed at both ends.

    ``straight`` is a 0..1 field (with its transform) that damps the sway: hill streams run
    straighter than plain rivers.
    """
    seg = np.hypot(*np.diff(path, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    tangent = np.gradient(path, axis=0)
    tangent /= np.hypot(tangent[:, 0], tangent[:, 1])[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    offset = np.zeros_like(s)
    for k, share in enumerate((1.0, 0.5, 0.25)):
        wavelength = rng.uniform(1500.0, 4000.0) / (1.0 + 0.5 * k)
        offset += share * amplitude * np.sin(2 * np.pi * s / wavelength + rng.uniform(0, 2 * np.pi))
    offset *= smoothstep(s / taper_m) * smoothstep((s[-1] - s) / taper_m)
    offset *= 1.0 - 0.85 * np.nan_to_num(_fields.bilinear(*straight, path[:, 0], path[:, 1]))
    return path + offset[:, None] * normal


def directed_parts(line: LineString, area: Polygon | MultiPolygon) -> list[LineString]:
    """Return the pieces of the line inside ``area``, each in the line's direction, in order."""
    inside = shapely.line_merge(line.intersection(area))
    pieces = []
    for part in shapely.get_parts(inside):
        if not isinstance(part, LineString) or part.length == 0:
            continue
        coords = np.asarray(part.coords)
        start, end = line.project(shapely.Point(coords[0])), line.project(shapely.Point(coords[-1]))
        pieces.append((min(start, end), LineString(coords if start <= end else coords[::-1])))
    return [piece for _, piece in sorted(pieces, key=lambda p: p[0])]


def _directed_piece(line: LineString, area: Polygon) -> LineString:
    """Return the longest piece of the line inside ``area``, in the line's direction."""
    return max(directed_parts(line, area), key=lambda g: g.length)


def _tangent(line: LineString, arc: float) -> FloatArray:
    """Return the unit downstream direction of the line at an arc length."""
    a, b = shapely.line_interpolate_point(line, [max(arc - 60, 0), min(arc + 60, line.length)])
    d = np.array([b.x - a.x, b.y - a.y])
    return d / np.hypot(*d)


@dataclass
class _Draft:
    """A river before its profile is known."""

    name: str
    kind: str
    parent: int | None
    line: LineString
    width_m: float


def _main_rivers(
    rng: np.random.Generator, frame: Polygon, hill: tuple[FloatArray, Affine]
) -> list[_Draft]:
    """Return the five main rivers, clipped to the grid frame."""
    drafts: list[_Draft] = []
    for name, width, lonlat, joins in MAIN_RIVERS:
        points = np.array([metric(lon, lat) for lon, lat in lonlat])
        if joins is not None:
            target = next(d for d in drafts if d.name == joins).line
            end = target.interpolate(target.project(shapely.Point(points[-1])))
            points[-1] = (end.x, end.y)
        parent = None if joins is None else [d.name for d in drafts].index(joins)
        for _ in range(50):  # redraw the meanders until the river keeps clear of the others
            line = _directed_piece(LineString(_meander(rng, _spline(points), 220.0, hill)), frame)
            head = shapely.ops.substring(line, 0.0, line.length - 800.0)
            if line.is_simple and all(
                (head if i == parent else line).distance(d.line) > 400.0
                for i, d in enumerate(drafts)
            ):
                break
        else:
            raise RuntimeError(f"{name} cannot keep clear of the other rivers")
        drafts.append(_Draft(name, "main", parent, line, width))
    return drafts


def _tributaries(
    rng: np.random.Generator,
    drafts: list[_Draft],
    raw: FloatArray,
    hill: FloatArray,
    transform: Affine,
    frame: Polygon,
    district: Polygon | MultiPolygon,
) -> None:
    """Add seeded tributaries that run downhill into existing rivers without crossing any."""
    reach = district.buffer(1500.0)
    inner = frame.buffer(-500.0)
    names = {d.name for d in drafts}
    for _ in range(2000):
        if len(drafts) - len(MAIN_RIVERS) >= TRIBUTARIES:
            break
        weights = np.array(
            [
                d.line.length * (1.0 if d.kind == "main" else 0.35 * (d.line.length > 5000))
                for d in drafts
            ]
        )
        parent = int(rng.choice(len(drafts), p=weights / weights.sum()))
        lines = np.array([d.line for d in drafts])
        line = drafts[parent].line
        arc = rng.uniform(0.05, 0.9) * line.length
        join = np.asarray(line.interpolate(arc).coords[0])
        t = _tangent(line, arc)
        side = rng.choice([-1.0, 1.0])
        phi = np.radians(rng.uniform(45.0, 85.0))
        length = rng.uniform(2500.0, 10000.0)
        direction = -t * np.cos(phi) + side * np.array([-t[1], t[0]]) * np.sin(phi)
        source = join + length * direction
        middle = (
            join
            + 0.5 * length * direction
            + np.array([-direction[1], direction[0]]) * (rng.normal(0.0, 0.08 * length))
        )
        amplitude = min(0.025 * length, 150.0)
        path = _meander(
            rng, _spline(np.array([source, middle, join])), amplitude, (hill, transform), 400.0
        )
        path[-1] = join
        candidate = LineString(path)
        z = _fields.bilinear(
            raw, transform, np.array([source[0], join[0]]), np.array([source[1], join[1]])
        )
        if not (inner.contains(shapely.Point(source)) and reach.contains(shapely.Point(source))):
            continue
        if not (z[0] >= z[1] + 3.0 and candidate.is_simple):
            continue
        head = shapely.ops.substring(candidate, 0.0, candidate.length - 400.0)
        tail = shapely.ops.substring(candidate, 0.0, candidate.length - 20.0)
        clear = shapely.distance(candidate, lines) >= 200.0
        clear[parent] = head.distance(lines[parent]) >= 200.0 and tail.distance(line) > 5.0
        if not clear.all():
            continue
        name = ""
        while not name or name in names:
            name = str(rng.choice(list(TRIB_PREFIX))) + str(rng.choice(list(TRIB_MIDDLE)))
            name += str(rng.choice([s for s in TRIB_SUFFIX if s != name[-1]]))
        names.add(name)
        width = float(np.clip(length / 500.0 + rng.uniform(2.0, 6.0), 4.0, 30.0))
        drafts.append(_Draft(name, "tributary", parent, candidate, width))


def _profile(
    draft: _Draft, raw: FloatArray, hill: FloatArray, transform: Affine, parent: River | None
) -> tuple[FloatArray, FloatArray]:
    """Return arcs and a strictly descending level profile along a river."""
    length = draft.line.length
    step = transform.a / 2.0
    arcs = np.append(np.arange(0.0, length, step), length)
    points = shapely.get_coordinates(shapely.line_interpolate_point(draft.line, arcs))
    z_raw = _fields.bilinear(raw, transform, points[:, 0], points[:, 1])
    incision = 2.0 + 8.0 * _fields.bilinear(hill, transform, points[:, 0], points[:, 1])
    lifted = np.minimum.accumulate(z_raw - incision + MIN_SLOPE * arcs)
    z = lifted - MIN_SLOPE * arcs
    if parent is not None:
        z_end = float(parent.z_at(parent.line.project(shapely.Point(points[-1]))))
        if z[-1] > z_end:
            ramp = smoothstep((arcs - (length - 1500.0)) / 1500.0)
            z = z - (z[-1] - z_end) * ramp
        z = np.maximum(z, z_end + MIN_SLOPE * (length - arcs))
        # Near the mouth the channel runs beside the parent: never below the parent's level.
        near = shapely.distance(shapely.points(points), parent.line) < 300.0
        stretch = np.flatnonzero(~near)
        first = stretch[-1] + 1 if stretch.size else 0
        beside = np.full(arcs.size, -np.inf)
        along = shapely.line_locate_point(parent.line, shapely.points(points[first:]))
        beside[first:] = parent.z_at(along - flat_m(parent) - 45.0)
        z = np.maximum(z, np.maximum.accumulate(beside[::-1])[::-1])
    return arcs, z


def build_rivers(
    rng: np.random.Generator,
    raw: FloatArray,
    hill: FloatArray,
    transform: Affine,
    district: Polygon | MultiPolygon,
) -> list[River]:
    """Return the main rivers and tributaries over the raw surface, parents before children."""
    minx, miny, maxx, maxy = _fields.grid_bounds(transform, raw.shape)
    frame = shapely.box(minx, miny, maxx, maxy).buffer(-transform.a)
    drafts = _main_rivers(rng, frame, (hill, transform))
    _tributaries(rng, drafts, raw, hill, transform, frame, district)
    rivers: list[River] = []
    for i, draft in enumerate(drafts):
        parent = None if draft.parent is None else rivers[draft.parent]
        arcs, profile = _profile(draft, raw, hill, transform, parent)
        rivers.append(
            River(i, draft.name, draft.kind, draft.parent, draft.line, draft.width_m, arcs, profile)
        )
    return rivers
