"""Place features in their grid cell and village while the file is read.

Each accepted feature gets the basic grid cell its anchor lies in (the point itself, else
a point on its surface), else — outside every cell — the village; the division code is
the cell's first 12 digits or the village code, the district code the division's first 6.
A point on a shared edge goes to the cell (or village) with the smallest code. The lookup
runs on its own thread, batch by batch, so it overlaps the COPY instead of following it:
points are sorted by x once per batch, and each polygon (prepared, with an index on its
edges) tests only the points inside its bounding box. Big batches are first answered
from a label raster of the polygons (``LabelRaster``): only points near an edge are tested.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from affine import Affine
from rasterio import features
from sqlalchemy import Connection, text

from schemas.catalog import Catalog, LayerRole
from schemas.tables import LAYER_SCHEMA

RASTER_SIDE = 2048  # cells of the label raster along the longer side of the polygons' box
RASTER_MIN_POINTS = 20_000  # build it once a batch this big is looked up
_KEPT: dict[str, tuple[str, Areas]] = {}  # layer code -> (digest of its rows, areas)
_KEPT_LOCK = threading.Lock()


@dataclass(frozen=True)
class LabelRaster:
    """Which polygon each pixel lies wholly inside, for answering most points by indexing.

    A pixel no polygon edge touches (edges drawn with every touched pixel, then grown by a
    pixel for safety) lies wholly inside the polygon its centre is in, or wholly outside
    all of them: a point in it needs no geometry test. Pixels an edge touches are marked
    ``EDGE`` and their points are tested exactly.
    """

    labels: np.ndarray  # int32: polygon index, -1 outside all, EDGE near an edge
    minx: float
    maxy: float
    size: float

    EDGE = -2

    @classmethod
    def build(cls, polygons: np.ndarray, bounds: np.ndarray) -> LabelRaster:
        """Rasterise polygons (the smallest index wins where they overlap)."""
        minx, miny = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        maxx, maxy = float(bounds[:, 2].max()), float(bounds[:, 3].max())
        size = max(maxx - minx, maxy - miny, 1e-9) / RASTER_SIDE
        shape = (int((maxy - miny) / size) + 2, int((maxx - minx) / size) + 2)
        transform = Affine(size, 0.0, minx, 0.0, -size, maxy)
        last_first = [(polygons[i], i) for i in range(len(polygons) - 1, -1, -1)]
        labels = features.rasterize(
            last_first, out_shape=shape, transform=transform, fill=-1, dtype="int32"
        )
        edges = features.rasterize(
            ((shapely.boundary(p), 1) for p in polygons),
            out_shape=shape,
            transform=transform,
            fill=0,
            all_touched=True,
            dtype="uint8",
        ).astype(bool)
        grown = edges.copy()
        grown[1:] |= edges[:-1]
        grown[:-1] |= edges[1:]
        grown[:, 1:] |= edges[:, :-1]
        grown[:, :-1] |= edges[:, 1:]
        labels[grown] = cls.EDGE
        return cls(labels=labels, minx=minx, maxy=maxy, size=size)

    def label(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return each point's pixel label (``EDGE`` also for points off the raster)."""
        col = np.floor((x - self.minx) / self.size)
        row = np.floor((self.maxy - y) / self.size)
        height, width = self.labels.shape
        on = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        out = np.full(x.shape[0], self.EDGE, dtype=np.int64)
        out[on] = self.labels[row[on].astype(np.intp), col[on].astype(np.intp)]
        return out


@dataclass
class Areas:
    """Polygons of one layer sorted by code (so the lowest index is the smallest code)."""

    codes: pa.Array
    polygons: np.ndarray
    bounds: np.ndarray
    raster: LabelRaster | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def read(cls, conn: Connection, code: str) -> Areas:
        """Read a layer's codes and polygons (storage CRS).

        The polygons, prepared, and their label raster are kept per content (a digest of
        what was read): the loads of a district parse, prepare and rasterise them once.
        """
        rows = conn.execute(
            text(
                f'SELECT code, ST_AsBinary(geom) FROM {LAYER_SCHEMA}."{code}" '
                "WHERE geom IS NOT NULL AND code IS NOT NULL ORDER BY code"
            )
        ).all()
        digest = hashlib.sha256()
        for row in rows:
            digest.update(str(row[0]).encode() + b"\0" + bytes(row[1]))
        key = digest.hexdigest()
        with _KEPT_LOCK:
            kept = _KEPT.get(code)
            if kept is not None and kept[0] == key:
                return kept[1]
        polygons = shapely.from_wkb([bytes(row[1]) for row in rows]) if rows else np.empty(0)
        shapely.prepare(polygons)
        areas = cls(
            codes=pa.array([str(row[0]) for row in rows], pa.string()),
            polygons=polygons,
            bounds=shapely.bounds(polygons).reshape(-1, 4),
        )
        with _KEPT_LOCK:
            _KEPT[code] = (key, areas)
        return areas

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return, per point, the index of the first polygon holding it (-1 when none).

        Big batches are answered from the label raster, except near edges. One lookup at a
        time: loads running side by side share these polygons, and GEOS prepares a
        polygon's indexes at its first test.
        """
        with self.lock:
            if x.shape[0] < RASTER_MIN_POINTS or len(self.polygons) == 0:
                return self.exact(x, y)
            if self.raster is None:
                self.raster = LabelRaster.build(self.polygons, self.bounds)
            found = self.raster.label(x, y)
            near = np.flatnonzero(found == LabelRaster.EDGE)
            found[near] = self.exact(x[near], y[near])
            return found

    def warm(self) -> None:
        """Build the label raster now, so that the first big batch finds it made."""
        with self.lock:
            if self.raster is None and len(self.polygons):
                self.raster = LabelRaster.build(self.polygons, self.bounds)

    def exact(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return, per point, the first polygon holding it, by geometry tests."""
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
    def read(
        cls, conn: Connection, catalog: Catalog, district: str, *, rows: int | None = None
    ) -> Locator:
        """Read the current grid cells and villages.

        For a file of ``rows`` (None: unknown) that will use the cells' label raster, it is
        built on a thread of its own while the load sets up and reads its first batch.
        """
        grid = Areas.read(conn, catalog.by_role(LayerRole.grid_cell).code)
        if rows is None or rows >= RASTER_MIN_POINTS:
            threading.Thread(target=grid.warm, name="sibiao-raster", daemon=True).start()
        return cls(
            grid=grid,
            village=Areas.read(conn, catalog.by_role(LayerRole.village).code),
            district=district,
        )

    def codes(self, x: np.ndarray, y: np.ndarray) -> Codes:
        """Return the codes of features placed by their anchors' x/y."""
        cell = self.grid.lookup(x, y)
        grid = _pick(self.grid.codes, cell)
        outside = np.flatnonzero(cell < 0)
        village_idx = np.full(x.shape[0], -1, dtype=np.int64)
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
