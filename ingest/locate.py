"""Place features in their grid cell and village while the file is read.

Each accepted feature gets the basic grid cell its anchor lies in (the point itself, else
a point on its surface), else — outside every cell — the village; the division code is
the cell's first 12 digits or the village code, the district code the division's first 6.
A point on a shared edge goes to the cell (or village) with the smallest code. The lookup
runs in the reader thread on each batch, so it overlaps the COPY instead of following it:
points are sorted by x once per batch, and each polygon (prepared, with an index on its
edges) tests only the points inside its bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from sqlalchemy import Connection, text

from schemas.catalog import Catalog, LayerRole
from schemas.tables import LAYER_SCHEMA


@dataclass(frozen=True)
class Areas:
    """Polygons of one layer sorted by code (so the lowest index is the smallest code)."""

    codes: pa.Array
    polygons: np.ndarray
    bounds: np.ndarray

    @classmethod
    def read(cls, conn: Connection, code: str) -> Areas:
        """Read a layer's codes and polygons (storage CRS)."""
        rows = conn.execute(
            text(
                f'SELECT code, ST_AsBinary(geom) FROM {LAYER_SCHEMA}."{code}" '
                "WHERE geom IS NOT NULL AND code IS NOT NULL ORDER BY code"
            )
        ).all()
        polygons = shapely.from_wkb([bytes(row[1]) for row in rows]) if rows else np.empty(0)
        shapely.prepare(polygons)
        return cls(
            codes=pa.array([str(row[0]) for row in rows], pa.string()),
            polygons=polygons,
            bounds=shapely.bounds(polygons).reshape(-1, 4),
        )

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return, per point, the index of the first polygon holding it (-1 when none)."""
        found = np.full(x.shape[0], -1, dtype=np.int64)
        if x.shape[0] == 0 or len(self.polygons) == 0:
            return found
        order = np.argsort(x, kind="stable")
        xs, ys = x[order], y[order]
        # last to first, so a point on a shared edge keeps the smallest index
        for i in range(len(self.polygons) - 1, -1, -1):
            minx, miny, maxx, maxy = self.bounds[i]
            lo = int(np.searchsorted(xs, minx, side="left"))
            hi = int(np.searchsorted(xs, maxx, side="right"))
            if lo >= hi:
                continue
            near = np.flatnonzero((ys[lo:hi] >= miny) & (ys[lo:hi] <= maxy)) + lo
            if near.size == 0:
                continue
            hit = shapely.intersects_xy(self.polygons[i], xs[near], ys[near])
            found[order[near[hit]]] = i
        return found


@dataclass(frozen=True)
class Codes:
    """Codes of a batch's accepted features."""

    district: pa.Array
    division: pa.Array
    grid: pa.Array


@dataclass(frozen=True)
class Locator:
    """The grid cells and villages features are placed in."""

    grid: Areas
    village: Areas
    district: str

    @classmethod
    def read(cls, conn: Connection, catalog: Catalog, district: str) -> Locator:
        """Read the current grid cells and villages."""
        return cls(
            grid=Areas.read(conn, catalog.by_role(LayerRole.grid_cell).code),
            village=Areas.read(conn, catalog.by_role(LayerRole.village).code),
            district=district,
        )

    def codes(self, geoms: np.ndarray, *, points: bool) -> Codes:
        """Return the codes of features (``points``: single points, their own anchor)."""
        anchors = geoms if points else shapely.point_on_surface(geoms)
        x, y = shapely.get_x(anchors), shapely.get_y(anchors)
        cell = self.grid.lookup(x, y)
        grid = _pick(self.grid.codes, cell)
        outside = np.flatnonzero(cell < 0)
        village_idx = np.full(len(geoms), -1, dtype=np.int64)
        if outside.size:
            village_idx[outside] = self.village.lookup(x[outside], y[outside])
        village = _pick(self.village.codes, village_idx)
        division = pc.coalesce(pc.utf8_slice_codeunits(grid, 0, 12), village)
        district = pc.coalesce(
            pc.utf8_slice_codeunits(division, 0, 6), pa.scalar(self.district, pa.string())
        )
        return Codes(district=district, division=division, grid=grid)


def _pick(codes: pa.Array, index: np.ndarray) -> pa.Array:
    """Return ``codes[index]``, null where the index is -1."""
    if len(codes) == 0:
        return pa.nulls(len(index), pa.string())
    return codes.take(pa.array(index, mask=index < 0))
