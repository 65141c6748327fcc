"""Put a few known defects into a layer's rows, as real deliveries have, and record each one.

Defects are drawn per batch from one generator seeded by ``(seed, crc32(layer code))``, so the
same chunks and seed give the same defects. Each batch gets ``Binomial(rows, rate)`` defects at
distinct rows (never the file's first row, so a duplicate always has an earlier row to copy);
the batch that opens a layer of at least ``all_kinds_from`` rows gets at least one of every
applicable kind. A row gets at most one defect; a duplicated key is copied from a clean row.
Geometry defects are made in EPSG:4547 metres, except ``swapped_latlon``, which the caller
applies once coordinates are lon/lat (:meth:`DefectInjector.inject` returns those rows).
"""

from __future__ import annotations

import itertools
import math
import zlib
from functools import lru_cache
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from layers.synthetic.geography import district_outline
from layers.synthetic.manifest import Defect, DefectKind
from schemas.catalog import GeometryType, Layer

#: Values no enum of the catalog allows (checked against each enum's values and labels).
BAD_ENUM_VALUES: Final = ("待核实", "其它类", "未知", "N/A", "#N/A", "0")
OUTSIDE_MIN_M: Final = 20_000.0
OUTSIDE_MAX_M: Final = 50_000.0
#: A moved geometry must stay this far from the district outline (its warp sways < 1 km).
DISTRICT_MARGIN_M: Final = 5_000.0
MIN_BOWTIE_M: Final = 10.0
_SOURCE_TRIES: Final = 32

GeometryArray = NDArray[np.object_]


@lru_cache(maxsize=1)
def _district_zone() -> BaseGeometry:
    """Return the district outline plus margin, prepared for fast tests (EPSG:4547)."""
    zone = district_outline().buffer(DISTRICT_MARGIN_M)
    shapely.prepare(zone)
    return zone


def applicable_kinds(layer: Layer, *, geographic: bool) -> tuple[DefectKind, ...]:
    """Return the defect kinds that make sense for a layer delivered in a file."""
    kinds = [DefectKind.duplicate_key, DefectKind.outside_district]
    if layer.geometry.single is GeometryType.polygon:
        kinds.append(DefectKind.self_intersection)
    if _blankable(layer):
        kinds.append(DefectKind.missing_required)
    if _enum_fields(layer):
        kinds.append(DefectKind.bad_enum)
    if geographic and layer.geometry is GeometryType.point:
        kinds.append(DefectKind.swapped_latlon)
    return tuple(k for k in DefectKind if k in kinds)


def _blankable(layer: Layer) -> tuple[str, ...]:
    """Return the required attributes outside the natural key."""
    return tuple(a.name for a in layer.attributes if a.required and a.name not in layer.natural_key)


def _enum_fields(layer: Layer) -> tuple[str, ...]:
    """Return the attributes with an enum."""
    return tuple(a.name for a in layer.attributes if a.enum)


def bowtie(geom: BaseGeometry, multi: bool) -> BaseGeometry:
    """Return a self-intersecting ring over the bounds of ``geom`` (unequal lobes)."""
    x0, y0, x1, y1 = geom.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = max(x1 - x0, MIN_BOWTIE_M), max(y1 - y0, MIN_BOWTIE_M)
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    ring = Polygon([(x0, y0), (x1, y1), (x1, y0 + 0.4 * h), (x0, y1), (x0, y0)])
    return MultiPolygon([ring]) if multi else ring


class DefectInjector:
    """Choose, apply and record the defects of one layer, batch after batch."""

    def __init__(
        self,
        layer: Layer,
        *,
        kinds: tuple[DefectKind, ...],
        rate: float,
        seed: int,
        all_kinds_from: int,
    ) -> None:
        self.layer = layer
        self.kinds = kinds
        self.rate = rate
        self.all_kinds_from = all_kinds_from
        self.rng = np.random.default_rng([seed, zlib.crc32(layer.code.encode())])
        self.rows = 0
        self.defects: list[Defect] = []
        self._blankable = _blankable(layer)
        self._enums = _enum_fields(layer)
        self._key = list(layer.natural_key)
        self._last_clean: tuple[int, list[Any]] | None = None

    def inject(
        self, attrs: pd.DataFrame, geoms: GeometryArray, *, opening: bool
    ) -> NDArray[np.intp]:
        """Alter rows of a batch in place; return the rows whose x and y must be swapped.

        ``opening`` marks the batch that starts the layer; when it holds at least
        ``all_kinds_from`` rows it receives every applicable kind.
        """
        n = len(attrs)
        start = self.rows
        low = 1 if start == 0 else 0
        count = int(self.rng.binomial(n, self.rate)) if n else 0
        forced = list(self.kinds) if opening and n >= self.all_kinds_from else []
        count = min(max(count, len(forced)), max(n - low, 0))
        positions = np.zeros(0, dtype=np.intp)
        if count:
            positions = np.sort(self.rng.choice(n - low, size=count, replace=False)) + low
        extra = [self.kinds[i] for i in self.rng.integers(0, len(self.kinds), count - len(forced))]
        order = self.rng.permutation(len(forced) + len(extra))
        kinds = [(forced + extra)[i] for i in order]
        taken = {int(p) for p in positions}
        swaps: list[int] = []
        for pos, kind in zip(positions.tolist(), kinds, strict=True):
            defect = self._apply(attrs, geoms, pos, kind, taken)
            self.defects.append(defect)
            if defect.kind is DefectKind.swapped_latlon:
                swaps.append(pos)
        last = next((i for i in range(n - 1, -1, -1) if i not in taken), None)
        if last is not None:
            self._last_clean = (start + last + 1, _key_values(attrs, self._key, last))
        self.rows += n
        return np.asarray(swaps, dtype=np.intp)

    def _apply(
        self,
        attrs: pd.DataFrame,
        geoms: GeometryArray,
        pos: int,
        kind: DefectKind,
        taken: set[int],
    ) -> Defect:
        """Apply one defect at batch position ``pos`` and return its record."""
        row = self.rows + pos + 1
        if kind is DefectKind.duplicate_key:
            source = self._key_source(attrs, pos, taken)
            if source is not None:
                source_row, values = source
                for name, value in zip(self._key, values, strict=True):
                    attrs.iat[pos, attrs.columns.get_loc(name)] = value
                return Defect(row=row, kind=kind, detail=source_row)
            kind = DefectKind.outside_district  # no clean earlier row to copy from
        if kind is DefectKind.missing_required:
            field = self._blankable[int(self.rng.integers(len(self._blankable)))]
            attrs.iat[pos, attrs.columns.get_loc(field)] = None
            return Defect(row=row, kind=kind, field=field)
        if kind is DefectKind.bad_enum:
            field = self._enums[int(self.rng.integers(len(self._enums)))]
            value = self._bad_value(field)
            attrs.iat[pos, attrs.columns.get_loc(field)] = value
            return Defect(row=row, kind=kind, field=field, detail=value)
        if kind is DefectKind.self_intersection:
            geoms[pos] = bowtie(geoms[pos], self.layer.geometry.is_multi)
            return Defect(row=row, kind=kind)
        if kind is DefectKind.outside_district:
            geoms[pos], metres = self._move_out(geoms[pos])
            return Defect(row=row, kind=kind, detail=metres)
        return Defect(row=row, kind=kind)  # swapped_latlon: applied by the caller

    def _key_source(
        self, attrs: pd.DataFrame, pos: int, taken: set[int]
    ) -> tuple[int, list[Any]] | None:
        """Return (row, key values) of a clean row before ``pos``, or None."""
        tries = [int(self.rng.integers(pos)) for _ in range(_SOURCE_TRIES)] if pos else []
        for i in itertools.chain(tries, range(pos - 1, -1, -1)):
            if i not in taken:
                return self.rows + i + 1, _key_values(attrs, self._key, i)
        return self._last_clean

    def _bad_value(self, field: str) -> str:
        """Return a value outside the field's enum, its labels included."""
        attr = self.layer.attribute(field)
        allowed = {s.casefold() for e in attr.enum or () for s in (e.value, e.zh, e.en)}
        choices = [v for v in BAD_ENUM_VALUES if v.casefold() not in allowed]
        return choices[int(self.rng.integers(len(choices)))]

    def _move_out(self, geom: BaseGeometry) -> tuple[BaseGeometry, int]:
        """Move a geometry 20-50 km away, clear of the district; return it and the distance."""
        zone = _district_zone()
        for _ in range(24):
            metres = float(self.rng.uniform(OUTSIDE_MIN_M, OUTSIDE_MAX_M))
            angle = float(self.rng.uniform(0.0, 2.0 * math.pi))
            moved = _shifted(geom, metres * math.cos(angle), metres * math.sin(angle))
            if not zone.intersects(moved):
                return moved, round(metres)
        # A very large geometry: push it away from the district centre until clear.
        centre, here = zone.centroid, geom.centroid
        angle = math.atan2(here.y - centre.y, here.x - centre.x)
        metres = OUTSIDE_MAX_M
        while True:
            moved = _shifted(geom, metres * math.cos(angle), metres * math.sin(angle))
            if not zone.intersects(moved):
                return moved, round(metres)
            metres += 10_000.0


def _key_values(attrs: pd.DataFrame, key: list[str], pos: int) -> list[Any]:
    """Return the natural key values of the row at batch position ``pos``."""
    return [attrs[name].iat[pos] for name in key]


def _shifted(geom: BaseGeometry, dx: float, dy: float) -> BaseGeometry:
    """Return ``geom`` translated by (dx, dy)."""
    moved: BaseGeometry = shapely.transform(geom, lambda c: c + np.array([dx, dy]))
    return moved
