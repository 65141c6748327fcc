"""Check a batch of rows against the catalog: types, required, enums, ranges, geometry.

Everything is vectorised per batch. A row is either accepted (its values converted to
the attribute types, its geometry in the storage CRS as EWKB) or rejected with its row
number, the field and the reason. Geometries that are invalid but can be repaired
without changing their type are repaired and reported as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from shapely.geometry.base import BaseGeometry

from ingest.convert import arrow_convert, number, text_series
from ingest.fields import FieldMapping
from ingest.points import plain_xy, point_ewkb
from ingest.sources import SourceBatch
from schemas.catalog import Attribute, AttributeType, GeometryType, Layer
from schemas.geodesy import SourceCrs, parse_crs, transform_geometry, transform_xy

_TYPE_IDS = {
    "Point": 0,
    "LineString": 1,
    "Polygon": 3,
    "MultiPoint": 4,
    "MultiLineString": 5,
    "MultiPolygon": 6,
}


@dataclass
class Rejected:
    """Rejected rows of a batch: row number, field (None = the row/geometry), reason, value."""

    rows: list[int] = field(default_factory=list)
    fields: list[str | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    wkb: list[bytes | None] = field(default_factory=list)


@dataclass
class Checked:
    """The accepted rows of a batch, typed, and the rejected ones."""

    rows: np.ndarray
    columns: dict[str, pa.Array]
    rejected: Rejected
    repaired: list[int]
    geoms: np.ndarray | None  # the accepted geometries (storage CRS); None for plain points
    srid: int
    xy: tuple[np.ndarray, np.ndarray] | None = None  # accepted points' x/y (point layers)

    def ewkb(self) -> pa.Array:
        """Return the accepted geometries as EWKB (made by the thread that encodes the rows)."""
        if self.xy is not None:
            return point_ewkb(*self.xy, self.srid)
        assert self.geoms is not None
        wkb = shapely.to_wkb(
            shapely.set_srid(self.geoms, self.srid), include_srid=True, output_dimension=2
        )
        return pa.array(wkb, pa.binary())

    def anchors(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the x/y each accepted feature is placed by (a point on its surface)."""
        if self.xy is not None:
            return self.xy
        assert self.geoms is not None
        anchors = shapely.point_on_surface(self.geoms)
        return shapely.get_x(anchors), shapely.get_y(anchors)


class _Problems:
    """The first problem of each row of a batch."""

    def __init__(self, n: int):
        self.bad = np.zeros(n, dtype=bool)
        self.field = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.value = np.full(n, None, dtype=object)
        self.repaired: list[int] = []  # rows whose geometry was repaired

    def add(
        self, mask: np.ndarray, fieldname: str | None, reasons: object, values: object = None
    ) -> None:
        new = mask & ~self.bad
        if not new.any():
            return
        self.bad |= new
        self.field[new] = fieldname
        self.reason[new] = reasons[new] if isinstance(reasons, np.ndarray) else reasons
        if values is not None:
            where = np.flatnonzero(new)
            if isinstance(values, pa.Array | pa.ChunkedArray):
                picked = values.take(pa.array(where)).to_pylist()
                self.value[where] = np.array(picked + [None], dtype=object)[:-1]
            else:
                vals = np.asarray(values, dtype=object)
                self.value[new] = vals[new] if vals.shape else vals


@dataclass(frozen=True)
class Extent:
    """Where features may lie (storage lon/lat): a box and, once known, the grown outline."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    area: BaseGeometry | None = None

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return which points lie inside the box."""
        return (x >= self.minx) & (x <= self.maxx) & (y >= self.miny) & (y <= self.maxy)

    def holds(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return which points lie inside the box and the grown outline."""
        inside = self.contains(x, y)
        if self.area is not None and inside.any():
            idx = np.flatnonzero(inside)
            inside[idx] = shapely.contains_xy(self.area, x[idx], y[idx])
        return inside


class Checker:
    """Validate batches of one file against one layer."""

    def __init__(
        self,
        layer: Layer,
        mapping: FieldMapping,
        source_crs: SourceCrs,
        *,
        storage_epsg: int,
        extent: Extent,
    ):
        self.layer = layer
        self.mapping = mapping
        self.crs = source_crs
        self.storage = parse_crs(storage_epsg)
        self.srid = storage_epsg
        self.extent = extent
        single = layer.geometry.single
        self.single_id = _TYPE_IDS[single.value]
        self.multi_id = _TYPE_IDS["Multi" + single.value]
        self.is_multi = layer.geometry.is_multi
        self.points = self.single_id == 0 and not self.is_multi
        self.geographic = source_crs.is_offset or bool(
            source_crs.crs is not None and source_crs.crs.is_geographic
        )

    def check(self, batch: SourceBatch) -> Checked:
        """Return the accepted and rejected rows of ``batch``."""
        n = batch.rows
        rows = np.arange(batch.first_row, batch.first_row + n)
        problems = _Problems(n)
        xy = self._point_xy(batch, problems) if self.points else None
        geoms = self._geometry(batch, problems) if xy is None else None
        columns: dict[str, pa.Array] = {}
        for attr in self.layer.attributes:
            source = self.mapping.source_of(attr.name)
            column = batch.attributes.column(source).combine_chunks() if source else None
            columns[attr.name] = self._attribute(attr, column, n, problems)
        keep = ~problems.bad
        mask = pa.array(keep)
        accepted = {name: col.filter(mask) for name, col in columns.items()}
        good: np.ndarray | None = None
        kept: tuple[np.ndarray, np.ndarray] | None
        if xy is not None:
            kept = (xy[0][keep], xy[1][keep])
        else:
            assert geoms is not None
            good = geoms[keep]
            kept = (shapely.get_x(good), shapely.get_y(good)) if self.points else None
        repaired = [int(rows[i]) for i in problems.repaired if keep[i]]
        return Checked(
            rows=rows[keep],
            columns=accepted,
            rejected=self._rejected(rows, problems, geoms, xy),
            repaired=repaired,
            geoms=good,
            srid=self.srid,
            xy=kept,
        )

    def _rejected(
        self,
        rows: np.ndarray,
        problems: _Problems,
        geoms: np.ndarray | None,
        xy: tuple[np.ndarray, np.ndarray] | None,
    ) -> Rejected:
        bad = np.flatnonzero(problems.bad)
        out = Rejected()
        if bad.size == 0:
            return out
        if geoms is None:
            assert xy is not None
            geoms = np.full(len(rows), None, dtype=object)
            geoms[bad] = shapely.points(xy[0][bad], xy[1][bad])
        shown = shapely.set_srid(geoms[bad], self.srid)
        wkb = shapely.to_wkb(shown, include_srid=True, output_dimension=2)
        out.rows = rows[bad].tolist()
        out.fields = problems.field[bad].tolist()
        out.reasons = problems.reason[bad].tolist()
        out.values = [None if v is None else str(v)[:200] for v in problems.value[bad]]
        out.wkb = list(wkb)
        return out

    def _attribute(
        self, attr: Attribute, column: pa.Array | None, n: int, problems: _Problems
    ) -> pa.Array:
        values, bad, reason, raw = arrow_convert(attr, column, n)
        problems.add(bad, attr.name, f"{attr.name} {reason}", raw)
        missing = values.is_null().to_numpy(zero_copy_only=False) & ~bad
        if attr.required:
            problems.add(missing, attr.name, f"{attr.name} is required but empty")
        if attr.enum:
            values = self._enum(attr, values, problems, raw)
        if attr.min is not None or attr.max is not None:
            low = pc.less(values, attr.min) if attr.min is not None else None
            high = pc.greater(values, attr.max) if attr.max is not None else None
            if low is not None:
                problems.add(
                    low.fill_null(False).to_numpy(zero_copy_only=False),
                    attr.name,
                    f"{attr.name} is below the minimum {attr.min:g}",
                    raw,
                )
            if high is not None:
                problems.add(
                    high.fill_null(False).to_numpy(zero_copy_only=False),
                    attr.name,
                    f"{attr.name} is above the maximum {attr.max:g}",
                    raw,
                )
        if attr.type is AttributeType.string:
            if attr.pattern:
                ok = pc.match_substring_regex(values, f"^(?:{attr.pattern})$")
                bad_pattern = pc.invert(ok.fill_null(True)).to_numpy(zero_copy_only=False)
                problems.add(
                    bad_pattern, attr.name, f"{attr.name} does not match {attr.pattern}", raw
                )
            if attr.max_length:
                long = pc.greater(pc.utf8_length(values), attr.max_length).fill_null(False)
                problems.add(
                    long.to_numpy(zero_copy_only=False),
                    attr.name,
                    f"{attr.name} is longer than {attr.max_length} characters",
                    raw,
                )
        return values

    def _enum(
        self, attr: Attribute, values: pa.Array, problems: _Problems, raw: object
    ) -> pa.Array:
        assert attr.enum is not None
        labels: list[str] = []
        targets: list[str] = []
        for item in attr.enum:
            for label in (item.value, item.zh, item.en):
                if label.casefold() not in labels:
                    labels.append(label.casefold())
                    targets.append(item.value)
        folded = pc.utf8_lower(values)
        index = pc.index_in(folded, value_set=pa.array(labels))
        mapped = pc.take(pa.array(targets), index)
        unknown = pc.and_(values.is_valid(), index.is_null()).to_numpy(zero_copy_only=False)
        allowed = ", ".join(attr.enum_values)
        problems.add(unknown, attr.name, f"{attr.name} is not one of: {allowed}", raw)
        return mapped

    def _point_xy(
        self, batch: SourceBatch, problems: _Problems
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the checked x/y (storage CRS) of a batch of plain points, else None.

        Plain: a WKB column of plain 2D points (``ingest.points``) or coordinate columns.
        """
        if batch.wkb is not None:
            plain = plain_xy(batch.wkb)
            if plain is None:
                return None
            x, y = plain
        else:
            x, bad_x = number(text_series(batch.lon, batch.rows), False)
            y, bad_y = number(text_series(batch.lat, batch.rows), False)
            problems.add(bad_x | bad_y, None, "coordinates are not numbers")
            problems.add(np.isnan(x) | np.isnan(y), None, "coordinates are missing")
            x, y = np.nan_to_num(x), np.nan_to_num(y)
        ok = self._reject_swapped(lambda rows: (x[rows], y[rows]), problems)
        x, y = x.copy(), y.copy()
        x[ok], y[ok] = transform_xy(x[ok], y[ok], self.crs, self.storage)
        self._reject_outside(ok, x[ok], y[ok], problems)
        return x, y

    def _reject_swapped(
        self,
        anchors: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        problems: _Problems,
    ) -> np.ndarray:
        """Reject rows whose lon/lat look swapped (geographic input); return the rows left.

        ``anchors`` gives the source x/y of the given rows.
        """
        ok = np.flatnonzero(~problems.bad)
        if ok.size and self.geographic and not self.crs.is_offset:
            x, y = anchors(ok)
            swapped = ~self.extent.contains(x, y) & self.extent.contains(y, x)
            problems.add(
                _rows_mask(problems, ok[swapped]), None, "latitude and longitude are swapped"
            )
            ok = np.flatnonzero(~problems.bad)
        return ok

    def _reject_outside(
        self, ok: np.ndarray, x: np.ndarray, y: np.ndarray, problems: _Problems
    ) -> None:
        """Reject rows ``ok`` whose anchors (storage x/y, one per row) lie outside the extent."""
        inside = self.extent.holds(x, y)
        problems.add(_rows_mask(problems, ok[~inside]), None, "geometry lies outside the district")

    def _geometry(self, batch: SourceBatch, problems: _Problems) -> np.ndarray:
        n = batch.rows
        if batch.wkb is not None:
            raw = batch.wkb.to_numpy(zero_copy_only=False)
            geoms = shapely.from_wkb(raw, on_invalid="ignore")
            problems.add(pd.isna(raw), None, "geometry is missing")
            problems.add(~pd.isna(raw) & pd.isna(geoms), None, "geometry cannot be decoded")
        else:
            x, bad_x = number(text_series(batch.lon, n), False)
            y, bad_y = number(text_series(batch.lat, n), False)
            problems.add(bad_x | bad_y, None, "coordinates are not numbers")
            problems.add(np.isnan(x) | np.isnan(y), None, "coordinates are missing")
            geoms = shapely.points(np.nan_to_num(x), np.nan_to_num(y))
        present = ~pd.isna(geoms)
        empty = np.zeros(n, bool)
        empty[present] = shapely.is_empty(geoms[present])
        problems.add(empty, None, "geometry is empty")
        geoms = self._fit_type(geoms, problems)
        return self._locate(geoms, problems)

    def _fit_type(self, geoms: np.ndarray, problems: _Problems) -> np.ndarray:
        ok = ~problems.bad
        ids = np.full(len(geoms), -1)
        ids[ok] = shapely.get_type_id(geoms[ok])
        parts = np.zeros(len(geoms), int)
        parts[ok] = shapely.get_num_geometries(geoms[ok])
        want = self.layer.geometry.value
        types = np.array(
            [
                "Point",
                "LineString",
                "LinearRing",
                "Polygon",
                "MultiPoint",
                "MultiLineString",
                "MultiPolygon",
                "GeometryCollection",
            ]
        )
        fits = (ids == self.single_id) | (ids == self.multi_id)
        if not self.is_multi:
            fits &= ~((ids == self.multi_id) & (parts != 1))
        wrong = ok & ~fits
        if wrong.any():
            names = np.full(len(geoms), "", dtype=object)
            names[wrong] = [
                f"geometry is a {types[i]} where {self.layer.code} takes {want}" for i in ids[wrong]
            ]
            problems.add(wrong, None, names)
        out = geoms.copy()
        if self.is_multi:
            promote = np.flatnonzero(~problems.bad & (ids == self.single_id))
            if promote.size:
                maker = {
                    0: shapely.multipoints,
                    1: shapely.multilinestrings,
                    3: shapely.multipolygons,
                }[self.single_id]
                out[promote] = maker(geoms[promote], indices=np.arange(promote.size))
        else:
            demote = np.flatnonzero(~problems.bad & (ids == self.multi_id))
            if demote.size:
                out[demote] = shapely.get_geometry(geoms[demote], 0)
        return out

    def _anchor_xy(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return a representative x, y per geometry: the point, else its box's centre.

        The box's centre is as good as the centroid for telling swapped or out-of-district
        coordinates apart (the extent has a margin) and costs a tenth as much.
        """
        if self.single_id == 0 and not self.is_multi:
            return shapely.get_x(geoms), shapely.get_y(geoms)
        box = shapely.bounds(geoms).reshape(-1, 4)
        return (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2

    def _locate(self, geoms: np.ndarray, problems: _Problems) -> np.ndarray:
        out = geoms.copy()
        if not (~problems.bad).any():
            return out
        ok = self._reject_swapped(lambda rows: self._anchor_xy(geoms[rows]), problems)
        moved = transform_geometry(geoms[ok], self.crs, self.storage)
        out[ok] = moved
        self._reject_outside(ok, *self._anchor_xy(moved), problems)
        ok = np.flatnonzero(~problems.bad)
        valid = shapely.is_valid(out[ok])
        for i in ok[~valid]:
            fixed = shapely.make_valid(out[i])
            target = self.layer.geometry
            if fixed.geom_type == "GeometryCollection" and target.is_multi:
                # e.g. a line with a collapsed component: keep the parts of the layer's kind
                same = [
                    g
                    for g in shapely.get_parts(fixed)
                    if g.geom_type == target.single.value and not g.is_empty
                ]
                dropped = shapely.get_num_geometries(fixed) - len(same)
                if (
                    same
                    and all(
                        g.geom_type != target.single.value
                        for g in shapely.get_parts(fixed)
                        if g not in same
                    )
                    and dropped
                ):
                    fixed = {
                        "Point": shapely.MultiPoint,
                        "LineString": shapely.MultiLineString,
                        "Polygon": shapely.MultiPolygon,
                    }[target.single.value](same)
            fits = fixed.geom_type in (target.value, target.single.value) and not fixed.is_empty
            if fits and fixed.geom_type != target.value and target.is_multi:
                fixed = {
                    "Point": shapely.MultiPoint,
                    "LineString": shapely.MultiLineString,
                    "Polygon": shapely.MultiPolygon,
                }[fixed.geom_type]([fixed])
            if fits:
                out[i] = fixed
                problems.repaired.append(int(i))
            else:
                reason = shapely.is_valid_reason(out[i])
                single = np.zeros(len(geoms), bool)
                single[i] = True
                problems.add(
                    single,
                    None,
                    f"geometry is invalid ({reason}) and repairing it "
                    f"would turn it into a {fixed.geom_type}",
                )
        return out


def _rows_mask(problems: _Problems, rows: np.ndarray) -> np.ndarray:
    """Return a mask over the batch, true at ``rows``."""
    mask = np.zeros(problems.bad.shape[0], bool)
    mask[rows] = True
    return mask


def geometry_family(kind: GeometryType) -> str:
    """Return 'Point', 'LineString' or 'Polygon' for a catalog geometry type."""
    return kind.single.value
