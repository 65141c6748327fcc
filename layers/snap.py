"""Snap points to the basic grid: which cell, village, town and district a point lies in.

Rules, stated once:

* A point inside a cell belongs to it. A point on an edge shared by several cells (or on a
  corner) belongs to the cell with the **smallest code** among those whose closed polygon
  contains it — the same rule ``ingest.publish`` uses to place features — and is flagged
  ``on_boundary``.
* A point outside every cell but within ``tolerance_m`` (geodesic metres, GRS80) of one goes to
  the nearest cell (ties: smallest code) with the distance recorded.
* Farther than that, :func:`snap` raises ``InvalidInput`` ("outside the district") and
  :func:`snap_many` returns ``None`` for that point.
* Where the grid layer has no cell near the point, the village layer is tried the same way
  (grid code ``None``), so a district without a grid still gets villages and towns.

Division names come from the ``divisions`` register; the town and district codes are the
prefixes (9 and 6 digits) of the village code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION

from schemas.catalog import Catalog, LayerRole
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG, metres_to_degrees_hint
from schemas.tables import LAYER_SCHEMA

DEFAULT_TOLERANCE_M: Final = 200.0


@dataclass(frozen=True, slots=True)
class DivisionNames:
    """Names of the cell and divisions a point was snapped to (None when not registered)."""

    grid: str | None
    village: str | None
    town: str | None
    district: str | None


@dataclass(frozen=True, slots=True)
class SnapResult:
    """Where a point belongs: codes, names, distance to the cell (0 inside), boundary flag."""

    grid_code: str | None
    village_code: str
    town_code: str
    district_code: str
    names: DivisionNames
    distance_m: float
    on_boundary: bool

    @property
    def inside(self) -> bool:
        """Return whether the point lies in (or on the edge of) its cell."""
        return self.distance_m == 0.0


def _sql(catalog: Catalog) -> str:
    """Return the set-based snapping statement for the catalog's grid and village layers."""
    grid = f'{LAYER_SCHEMA}."{catalog.by_role(LayerRole.grid_cell).table_name}"'
    village = f'{LAYER_SCHEMA}."{catalog.by_role(LayerRole.village).table_name}"'
    return f"""
    WITH pts AS (
        SELECT t.i, ST_SetSRID(ST_MakePoint(t.x, t.y), :srid) AS g
        FROM unnest(:xs, :ys) WITH ORDINALITY AS t(x, y, i)
    )
    SELECT p.i, coalesce(gc.code, vc.code) IS NOT NULL AS hit,
           gc.code AS grid_code, gc.name AS grid_name,
           coalesce(gc.village_code, vc.code) AS village_code,
           coalesce(gc.dist, vc.dist) AS dist,
           coalesce(gc.edge, vc.edge) AS edge
    FROM pts p
    LEFT JOIN LATERAL (
        SELECT c.code, c.name, c.village_code, m.dist,
               m.dist = 0 AND ST_Intersects(ST_Boundary(c.geom), p.g) AS edge
        FROM {grid} c
        CROSS JOIN LATERAL (
            SELECT CASE WHEN ST_Intersects(c.geom, p.g) THEN 0.0
                        ELSE ST_Distance(c.geom::geography, p.g::geography) END AS dist
        ) m
        WHERE ST_DWithin(c.geom, p.g, :deg)
        ORDER BY m.dist, c.code
        LIMIT 1
    ) gc ON true
    LEFT JOIN LATERAL (
        SELECT v.code, m.dist,
               m.dist = 0 AND ST_Intersects(ST_Boundary(v.geom), p.g) AS edge
        FROM {village} v
        CROSS JOIN LATERAL (
            SELECT CASE WHEN ST_Intersects(v.geom, p.g) THEN 0.0
                        ELSE ST_Distance(v.geom::geography, p.g::geography) END AS dist
        ) m
        WHERE gc.code IS NULL AND ST_DWithin(v.geom, p.g, :deg)
        ORDER BY m.dist, v.code
        LIMIT 1
    ) vc ON true
    ORDER BY p.i
    """


def _names(conn: Connection, codes: set[str]) -> dict[str, str]:
    """Return the registered names of division codes."""
    if not codes:
        return {}
    rows = conn.execute(
        text("SELECT code, name FROM divisions WHERE code = ANY(:codes)"),
        {"codes": sorted(codes)},
    ).all()
    return {str(code): str(name) for code, name in rows}


def _check(points: Sequence[tuple[float, float]], tolerance_m: float) -> None:
    if not (math.isfinite(tolerance_m) and tolerance_m >= 0):
        raise InvalidInput(f"tolerance must be a non-negative number of metres, not {tolerance_m}")
    for k, (lon, lat) in enumerate(points):
        if not (
            math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90
        ):
            raise InvalidInput(f"point {k}: ({lon}, {lat}) is not a longitude/latitude")


def snap_many(
    conn: Connection,
    catalog: Catalog,
    points: Sequence[tuple[float, float]],
    *,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    srid: int = STORAGE_EPSG,
) -> list[SnapResult | None]:
    """Snap lon/lat points (storage CRS) in one statement; None where outside the district."""
    _check(points, tolerance_m)
    if not points:
        return []
    worst_lat = max(abs(lat) for _, lat in points)
    deg = metres_to_degrees_hint(max(tolerance_m, 0.01), worst_lat)
    stmt = text(_sql(catalog)).bindparams(
        bindparam("xs", type_=ARRAY(DOUBLE_PRECISION)),
        bindparam("ys", type_=ARRAY(DOUBLE_PRECISION)),
    )
    rows = conn.execute(
        stmt,
        {
            "xs": [float(p[0]) for p in points],
            "ys": [float(p[1]) for p in points],
            "srid": srid,
            "deg": deg,
        },
    ).all()
    codes: set[str] = set()
    for row in rows:
        if row.hit and row.dist <= tolerance_m:
            village = str(row.village_code)
            codes |= {village, village[:9], village[:6]}
    names = _names(conn, codes)
    out: list[SnapResult | None] = []
    for row in rows:
        if not row.hit or row.dist > tolerance_m:
            out.append(None)
            continue
        village = str(row.village_code)
        out.append(
            SnapResult(
                grid_code=row.grid_code,
                village_code=village,
                town_code=village[:9],
                district_code=village[:6],
                names=DivisionNames(
                    grid=row.grid_name,
                    village=names.get(village),
                    town=names.get(village[:9]),
                    district=names.get(village[:6]),
                ),
                distance_m=round(float(row.dist), 3),
                on_boundary=bool(row.edge),
            )
        )
    return out


def snap(
    conn: Connection,
    catalog: Catalog,
    lon: float,
    lat: float,
    *,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    srid: int = STORAGE_EPSG,
) -> SnapResult:
    """Snap one lon/lat point (storage CRS); raise InvalidInput when outside the district."""
    (result,) = snap_many(conn, catalog, [(lon, lat)], tolerance_m=tolerance_m, srid=srid)
    if result is None:
        raise InvalidInput(
            f"({lon:.6f}, {lat:.6f}) is outside the district: no grid cell or village within "
            f"{tolerance_m:g} m"
        )
    return result
