"""Cut every village into basic grid cells (标准基础网格) that tile it exactly.

Each village gets its own square lattice (seeded offset) whose cell size shrinks where the village
is dense. The village boundary and the lattice lines are noded together and polygonised, so the
faces share their edges exactly and their union is the village. Faces smaller than
``SLIVER_SHARE`` of a nominal cell join the neighbour they share most boundary with. Cells are
numbered on the lattice: rows from the north, then columns from the west.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from layers.synthetic.admin import AdminGeometry, Areal, Division
from layers.synthetic.geography import (
    LONLAT_EPSG,
    METRIC_EPSG,
    FloatArray,
    geometry_to_lonlat,
    urban_density,
)

#: Cells wanted at scale 1.0 over the whole district.
CELLS_AT_SCALE_1: Final = 1800
#: Nominal cell area ∝ 1 / (DENSITY_FLOOR + density) ** DENSITY_POWER.
DENSITY_FLOOR: Final = 0.15
DENSITY_POWER: Final = 1.5
#: Faces smaller than this share of a nominal cell are merged into a neighbour.
SLIVER_SHARE: Final = 0.1
#: Extra cells per cell side of village perimeter (lattice squares cut by the edge), measured.
EDGE_CELLS: Final = 0.4
#: Spacing of the points that sample a village's density, in metres.
SAMPLE_M: Final = 200.0
MAX_SERIAL: Final = 999


@dataclass(frozen=True)
class GridCellSpec:
    """One basic grid cell: 15-digit code, parents, geometry and lattice position."""

    code: str
    village_code: str
    town_code: str
    geometry: Areal
    row: int
    col: int
    cell_size_m: float
    origin: tuple[float, float]
    epsg: int = METRIC_EPSG

    @property
    def serial(self) -> int:
        """Return the 3-digit serial within the village."""
        return int(self.code[-3:])

    def lattice_square(self) -> Polygon:
        """Return the lattice square at (row, col) in EPSG:4547."""
        x0, y0 = self.origin
        s = self.cell_size_m
        return shapely.box(
            x0 + self.col * s, y0 - (self.row + 1) * s, x0 + (self.col + 1) * s, y0 - self.row * s
        )

    def to_lonlat(self) -> GridCellSpec:
        """Return a copy with the geometry in EPSG:4490 (lon/lat)."""
        if self.epsg == LONLAT_EPSG:
            return self
        return replace(self, geometry=geometry_to_lonlat(self.geometry), epsg=LONLAT_EPSG)


def village_density(village: Areal) -> float:
    """Return the mean urban density over a village (sampled every ``SAMPLE_M`` metres)."""
    minx, miny, maxx, maxy = village.bounds
    xs = np.arange(minx + SAMPLE_M / 2, maxx, SAMPLE_M)
    ys = np.arange(miny + SAMPLE_M / 2, maxy, SAMPLE_M)
    x, y = (a.ravel() for a in np.meshgrid(xs, ys))
    inside = shapely.contains_xy(village, x, y)
    if not inside.any():
        point = village.representative_point()
        return float(urban_density(point.x, point.y))
    return float(urban_density(x[inside], y[inside]).mean())


def _expected_cells(
    k: float, areas: FloatArray, perimeters: FloatArray, weight: FloatArray
) -> float:
    """Return the expected number of cells when the nominal cell area is ``k / weight``."""
    side = np.sqrt(k / weight)
    cells = areas / side**2 + EDGE_CELLS * perimeters / side
    return float(np.maximum(cells, 1.0).sum())


def cell_sizes(admin: AdminGeometry, scale: float) -> dict[str, float]:
    """Return each village's nominal cell side in metres for ``scale``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    areas = np.array([v.geometry.area for v in admin.villages])
    perimeters = np.array([v.geometry.length for v in admin.villages])
    weight = np.array(
        [(DENSITY_FLOOR + village_density(v.geometry)) ** DENSITY_POWER for v in admin.villages]
    )
    wanted = CELLS_AT_SCALE_1 * scale
    low, high = np.log(1e2), np.log(1e12)  # bisect log(k) on the expected count
    for _ in range(60):
        mid = (low + high) / 2.0
        if _expected_cells(float(np.exp(mid)), areas, perimeters, weight) > wanted:
            low = mid
        else:
            high = mid
    sides = np.sqrt(np.exp(high) / weight)
    return {v.code: float(side) for v, side in zip(admin.villages, sides, strict=True)}


def _faces(village: Areal, side: float, origin: tuple[float, float]) -> list[Polygon]:
    """Cut the village by the lattice and return the faces inside it (edge-matched)."""
    x0, y0 = origin
    minx, miny, maxx, maxy = village.bounds
    cols = np.arange(np.floor((minx - x0) / side) + 1, np.ceil((maxx - x0) / side))
    rows = np.arange(np.floor((y0 - maxy) / side) + 1, np.ceil((y0 - miny) / side))
    if cols.size == 0 and rows.size == 0:
        return list(getattr(village, "geoms", [village]))
    lines = [LineString([(x0 + c * side, miny - 1), (x0 + c * side, maxy + 1)]) for c in cols]
    lines += [LineString([(minx - 1, y0 - r * side), (maxx + 1, y0 - r * side)]) for r in rows]
    noded = shapely.union_all([village.boundary, *lines])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    points = shapely.point_on_surface(faces)
    keep = shapely.contains_xy(village, shapely.get_x(points), shapely.get_y(points))
    return list(faces[keep])


def _merge_slivers(faces: list[Polygon], threshold: float) -> list[list[int]]:
    """Group faces so that every group but a lone one reaches ``threshold`` area."""
    groups: dict[int, list[int]] = {i: [i] for i in range(len(faces))}
    area = {i: faces[i].area for i in range(len(faces))}
    tree = shapely.STRtree(faces)
    shared: dict[tuple[int, int], float] = {}
    for i, j in tree.query(faces, predicate="intersects").T:
        if i < j:
            length = shapely.intersection(faces[i].boundary, faces[j].boundary).length
            if length > 0:
                shared[(int(i), int(j))] = length
    owner = list(range(len(faces)))
    while len(groups) > 1:
        small = [g for g in groups if area[g] < threshold]
        if not small:
            break
        g = min(small, key=lambda k: (area[k], k))
        touching: dict[int, float] = {}
        for (i, j), length in shared.items():
            if owner[i] == g and owner[j] != g:
                touching[owner[j]] = touching.get(owner[j], 0.0) + length
            elif owner[j] == g and owner[i] != g:
                touching[owner[i]] = touching.get(owner[i], 0.0) + length
        if not touching:  # an island part of a multipolygon village: keep it as its own cell
            area[g] = threshold
            continue
        target = max(touching, key=lambda k: (touching[k], -k))
        for face in groups.pop(g):
            owner[face] = target
            groups[target].append(face)
        area[target] += area.pop(g)
    return list(groups.values())


def _village_cells(
    village: Division, side: float, origin: tuple[float, float]
) -> list[tuple[Areal, int, int, float, float]]:
    """Return (geometry, row, col, -y, x) of each cell of one village, unsorted."""
    faces = _faces(village.geometry, side, origin)
    cells = []
    for group in _merge_slivers(faces, SLIVER_SHARE * side * side):
        members = [faces[i] for i in group]
        anchor = max(members, key=lambda f: f.area)
        point = anchor.point_on_surface()
        geometry = members[0] if len(members) == 1 else shapely.coverage_union_all(members)
        row = int(np.floor((origin[1] - point.y) / side))
        col = int(np.floor((point.x - origin[0]) / side))
        cells.append((geometry, row, col, -point.y, point.x))
    return cells


def build_grid(admin: AdminGeometry, scale: float, seed: int) -> list[GridCellSpec]:
    """Cut every village into grid cells, about ``1800 * scale`` in all, at least one each.

    Geometries are in EPSG:4547; use :meth:`GridCellSpec.to_lonlat` for EPSG:4490.
    """
    if admin.epsg != METRIC_EPSG:
        raise ValueError(f"build_grid needs the admin geometry in EPSG:{METRIC_EPSG}")
    rng = np.random.default_rng(seed)
    sides = cell_sizes(admin, scale)
    minx, _, _, maxy = admin.district.geometry.bounds
    result: list[GridCellSpec] = []
    for village in admin.villages:
        side = sides[village.code]
        dx, dy = rng.uniform(0.0, side, size=2)
        origin = (float(minx - dx), float(maxy + dy))
        cells = sorted(_village_cells(village, side, origin), key=lambda c: c[1:])
        if len(cells) > MAX_SERIAL:
            raise ValueError(f"village {village.code} would get {len(cells)} cells")
        for serial, (geometry, row, col, _, _) in enumerate(cells, start=1):
            result.append(
                GridCellSpec(
                    code=f"{village.code}{serial:03d}",
                    village_code=village.code,
                    town_code=village.parent_code,
                    geometry=geometry,
                    row=row,
                    col=col,
                    cell_size_m=side,
                    origin=origin,
                )
            )
    return result
