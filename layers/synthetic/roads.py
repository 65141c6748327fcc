"""A synthetic road network: arterials between town seats, street grids, winding village roads.

Everything in EPSG:4547 metres. Dense villages get a grid of streets whose spacing
shrinks with density; sparse villages get winding roads to the nearest road; town
seats are joined by curving arterials. Roads are cut at town boundaries: one road
feature per (road, town), coded 440114 + town + 5-digit serial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import LineString, MultiLineString, Point
from shapely.geometry.base import BaseGeometry

from layers.synthetic.admin import AdminGeometry, Division
from layers.synthetic.geography import load_geography, to_metric, urban_density
from layers.synthetic.naming import road_names

#: A village counts as urban (gets a street grid) from this density on.
URBAN_DENSITY = 0.3
#: Street spacing (m) at scale 1: ``BASE + SLOPE * (1 - density)``.
STREET_BASE_M = 165.0
STREET_SLOPE_M = 420.0
#: Winding village roads per km² of rural village at scale 1.
RURAL_ROADS_PER_KM2 = 1.15
MIN_PIECE_M = 60.0

GRADES = ("expressway", "highway", "arterial", "secondary_arterial", "branch", "village")


@dataclass(frozen=True)
class Road:
    """One road within one town."""

    code: str
    name: str
    grade: str
    town_code: str
    geometry: MultiLineString
    lanes: int
    width_m: float
    surface: str
    one_way: bool
    lit: bool

    @property
    def length_m(self) -> float:
        """Return the length in metres."""
        return float(self.geometry.length)


@dataclass(frozen=True)
class _Draft:
    name: str
    grade: str
    geometry: BaseGeometry


def _wiggle(
    start: tuple[float, float],
    end: tuple[float, float],
    rng: np.random.Generator,
    amplitude: float,
    step: float = 40.0,
) -> LineString:
    """Return a curving line from start to end (sum of a few sines across the chord)."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    n = max(int(length / step), 2)
    t = np.linspace(0.0, 1.0, n + 1)
    offset = np.zeros_like(t)
    for k in range(1, 4):
        offset += rng.normal(0.0, amplitude / k) * np.sin(k * math.pi * t + rng.uniform(0, 0.3))
    nx, ny = -(y1 - y0) / max(length, 1e-9), (x1 - x0) / max(length, 1e-9)
    xs = x0 + (x1 - x0) * t + nx * offset
    ys = y0 + (y1 - y0) * t + ny * offset
    return LineString(np.column_stack([xs, ys]))


def _arterials(admin: AdminGeometry, rng: np.random.Generator) -> list[_Draft]:
    """Join town seats (and exits on the district edge) by curving arterials."""
    geography = load_geography()
    lon = [t.anchor[0] for t in geography.towns]
    lat = [t.anchor[1] for t in geography.towns]
    xs, ys = to_metric(lon, lat)
    seats = [Point(x, y) for x, y in zip(xs, ys, strict=True)]
    outline = admin.district.geometry
    edge = shapely.get_exterior_ring(max(shapely.get_parts(outline), key=lambda g: g.area))
    exits = [edge.interpolate(f, normalized=True) for f in np.linspace(0, 1, 9)[:-1] + 0.03]
    nodes = shapely.MultiPoint(seats + exits)
    edges = shapely.get_parts(shapely.delaunay_triangles(nodes, only_edges=True))
    names = road_names(rng, len(edges), suffixes=("大道", "大道", "路", "公路"))
    drafts: list[_Draft] = []
    for i, seg in enumerate(sorted(edges, key=lambda g: g.wkb)):
        (ax, ay), (bx, by) = seg.coords[0], seg.coords[-1]
        if seg.length > 24_000:
            continue
        line = _wiggle((ax, ay), (bx, by), rng, amplitude=0.025 * seg.length, step=60.0)
        grade = "highway" if seg.length > 14_000 else "arterial"
        drafts.append(_Draft(names[i], grade, line))
    return drafts


def village_density(village: Division) -> float:
    """Return the urban density at a village's representative point."""
    point = village.geometry.representative_point()
    return float(urban_density(point.x, point.y))


def _street_grid(
    town: Division, villages: list[Division], scale: float, rng: np.random.Generator
) -> list[_Draft]:
    """Return a rotated grid of streets over the town's urban villages."""
    urban = [v for v in villages if village_density(v) >= URBAN_DENSITY]
    if not urban:
        return []
    density = float(np.mean([village_density(v) for v in urban]))
    spacing = (STREET_BASE_M + STREET_SLOPE_M * (1.0 - density)) / math.sqrt(scale)
    mask = shapely.union_all([v.geometry for v in urban])
    angle = rng.uniform(-0.45, 0.45)
    cx, cy = mask.centroid.x, mask.centroid.y
    radius = math.hypot(*(np.subtract(mask.bounds[2:], mask.bounds[:2]))) / 2 + spacing
    lines: list[LineString] = []
    kinds: list[int] = []
    for axis in (0, 1):
        offsets = np.arange(-radius, radius, spacing)
        offsets = offsets + rng.uniform(-0.15, 0.15, offsets.size) * spacing
        theta = angle + axis * math.pi / 2
        dx, dy = math.cos(theta), math.sin(theta)
        for k, off in enumerate(offsets):
            px, py = cx - dy * off, cy + dx * off
            lines.append(
                LineString(
                    [(px - dx * radius, py - dy * radius), (px + dx * radius, py + dy * radius)]
                )
            )
            kinds.append(k)
    clipped = shapely.intersection(np.array(lines, dtype=object), mask)
    names = road_names(rng, len(lines), suffixes=("路", "街", "路", "大街", "路"))
    drafts = []
    for i, geom in enumerate(clipped):
        if geom.is_empty or geom.length < MIN_PIECE_M:
            continue
        grade = "secondary_arterial" if kinds[i] % 4 == 0 else "branch"
        drafts.append(_Draft(names[i], grade, geom))
    return drafts


def _village_roads(
    villages: list[Division], network: BaseGeometry, scale: float, rng: np.random.Generator
) -> list[_Draft]:
    """Return winding roads linking sparse villages to the network, and loops within them."""
    drafts: list[_Draft] = []
    sparse = [v for v in villages if village_density(v) < URBAN_DENSITY]
    names = road_names(rng, 4 * len(sparse) + 8, suffixes=("路", "村道", "大道", "路"))
    n = 0
    for village in sparse:
        centre = village.geometry.representative_point()
        if not network.is_empty:
            target = shapely.shortest_line(centre, network).coords[-1]
            if math.dist(target, centre.coords[0]) > 30:
                link = _wiggle(
                    centre.coords[0], target, rng, 0.08 * math.dist(target, centre.coords[0])
                )
                drafts.append(_Draft(names[n % len(names)], "village", link))
                n += 1
        expected = village.area_km2 * RURAL_ROADS_PER_KM2 * math.sqrt(scale)
        for _ in range(int(rng.poisson(expected))):
            heading = rng.uniform(0, 2 * math.pi)
            reach = rng.uniform(900, 2600)
            end = (centre.x + reach * math.cos(heading), centre.y + reach * math.sin(heading))
            loop = _wiggle(centre.coords[0], end, rng, 0.12 * reach)
            inside = loop.intersection(village.geometry)
            if inside.length >= MIN_PIECE_M:
                drafts.append(_Draft(names[n % len(names)], "village", inside))
                n += 1
    return drafts


_PROFILE = {  # lanes, width, surface, lit probability
    "highway": (4, 24.0, "asphalt", 0.6),
    "arterial": (6, 36.0, "asphalt", 1.0),
    "secondary_arterial": (4, 24.0, "asphalt", 1.0),
    "branch": (2, 12.0, "asphalt", 0.95),
    "village": (1, 5.0, "concrete", 0.35),
}


def build_roads(admin: AdminGeometry, scale: float, seed: int) -> list[Road]:
    """Build the road network, cut by town, coded per town in a stable order."""
    rng = np.random.default_rng([seed, 1])
    drafts = _arterials(admin, rng)
    for town in admin.towns:
        drafts += _street_grid(town, list(admin.villages_of(town.code)), scale, rng)
    network = shapely.union_all([d.geometry for d in drafts]) if drafts else shapely.Point()
    drafts += _village_roads(list(admin.villages), network, scale, rng)
    roads: list[Road] = []
    for town in admin.towns:
        pieces = shapely.intersection(
            np.array([d.geometry for d in drafts], dtype=object), town.geometry
        )
        kept = [
            (d, shapely.line_merge(p) if p.geom_type == "MultiLineString" else p)
            for d, p in zip(drafts, pieces, strict=True)
            if not p.is_empty and p.length >= MIN_PIECE_M
        ]
        kept.sort(key=lambda item: (GRADES.index(item[0].grade), item[1].bounds))
        for serial, (draft, piece) in enumerate(kept, start=1):
            parts = [g for g in shapely.get_parts(piece) if g.geom_type == "LineString"]
            lanes, width, surface, lit_p = _PROFILE[draft.grade]
            roads.append(
                Road(
                    code=f"{town.code}{serial:05d}",
                    name=draft.name,
                    grade=draft.grade,
                    town_code=town.code,
                    geometry=MultiLineString(parts),
                    lanes=lanes,
                    width_m=width,
                    surface=surface,
                    one_way=bool(draft.grade == "branch" and rng.random() < 0.08),
                    lit=bool(rng.random() < lit_p),
                )
            )
    return roads
