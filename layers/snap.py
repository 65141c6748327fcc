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
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from sqlalchemy import Connection, RowMapping, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION

from schemas.catalog import Catalog, LayerRole
from schemas.database import driver_sql
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG, metres_to_degrees_hint
from schemas.tables import LAYER_SCHEMA

DEFAULT_TOLERANCE_M: Final = 200.0
# Above this many points a batch is snapped with the cells driving the join (measured on the
# full-scale grid: equal at ~50 points, 1.6x faster at 200, 2.6x at 3,000).
POLYGON_DRIVEN_MIN: Final = 100


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


def _tables(catalog: Catalog) -> tuple[str, str]:
    grid = f'{LAYER_SCHEMA}."{catalog.by_role(LayerRole.grid_cell).table_name}"'
    village = f'{LAYER_SCHEMA}."{catalog.by_role(LayerRole.village).table_name}"'
    return grid, village


def _nearest(catalog: Catalog, pts: str) -> str:
    """Return the per-point lookup (nearest cell, else village, within ``:deg``) of ``pts``.

    ``pts`` is a query of ``(i, g)`` rows; one LATERAL index lookup per point.
    """
    return _nearest_sql(*_tables(catalog), pts)


def _nearest_sql(grid: str, village: str, pts: str) -> str:
    """Return :func:`_nearest` over the grid and village tables (quoted names)."""
    return f"""
    SELECT p.i, coalesce(gc.code, vc.code) IS NOT NULL AS hit,
           gc.code AS grid_code, gc.name AS grid_name,
           coalesce(gc.village_code, vc.code) AS village_code,
           coalesce(gc.dist, vc.dist) AS dist,
           coalesce(gc.edge, vc.edge) AS edge
    FROM ({pts}) p
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
    """


def _named(rows: str) -> str:
    """Return ``rows`` (snapping rows) with the registered names of their divisions, by ``i``."""
    return f"""
    SELECT s.*, dv.name AS village_name, dt.name AS town_name, dd.name AS district_name
    FROM ({rows}) s
    LEFT JOIN divisions dv ON s.hit AND dv.code = s.village_code
    LEFT JOIN divisions dt ON s.hit AND dt.code = left(s.village_code, 9)
    LEFT JOIN divisions dd ON s.hit AND dd.code = left(s.village_code, 6)
    ORDER BY s.i
    """


_POINTS: Final = """
        SELECT t.i, ST_SetSRID(ST_MakePoint(t.x, t.y), :srid) AS g
        FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS t(x, y, i)"""


#: One point (intake's case): with no array to unnest, PostgreSQL plans the prepared statement
#: once (a generic plan) instead of on every execution.
_ONE_POINT: Final = """
        SELECT 1::bigint AS i,
               ST_SetSRID(ST_MakePoint(CAST(:x AS float8), CAST(:y AS float8)), :srid) AS g"""


@lru_cache(maxsize=32)
def _point_sql(grid: str, village: str, one: bool) -> str:
    """Return the per-point snapping statement (driver style) for one point or arrays."""
    return driver_sql(_named(_nearest_sql(grid, village, _ONE_POINT if one else _POINTS)))


def _polygon_sql(catalog: Catalog, table: str) -> str:
    """Return the polygon-driven snapping statement over the points in temp ``table``.

    Each cell is tested against the points through their GiST index (PostGIS prepares the
    cell once); a point on a shared edge goes to the smallest code. Only the points outside
    every cell take the per-point nearest-within-tolerance lookup.
    """
    grid, _ = _tables(catalog)
    inside = f"""
        SELECT DISTINCT ON (s.i) s.i, c.code, c.name, c.village_code, s.edge
        FROM {grid} c
        CROSS JOIN LATERAL (
            SELECT t.i, NOT ST_ContainsProperly(c.geom, t.g) AS edge
            FROM {table} t WHERE ST_Intersects(c.geom, t.g)
        ) s
        ORDER BY s.i, c.code"""
    rest = (
        f"SELECT t.i, t.g FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM inside n WHERE n.i = t.i)"
    )
    rows = f"""
    SELECT n.i, true AS hit, n.code AS grid_code, n.name AS grid_name, n.village_code,
           0.0::float8 AS dist, n.edge
    FROM inside n
    UNION ALL ({_nearest(catalog, rest)})"""
    return f"WITH inside AS MATERIALIZED ({inside}) {_named(rows)}"


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
    """Snap lon/lat points (storage CRS); None where outside the district.

    Batches above ``POLYGON_DRIVEN_MIN`` points go through a temporary table and the
    polygon-driven join (:func:`_polygon_sql`); smaller ones take one lookup per point.
    """
    _check(points, tolerance_m)
    if not points:
        return []
    worst_lat = max(abs(lat) for _, lat in points)
    deg = metres_to_degrees_hint(max(tolerance_m, 0.01), worst_lat)
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    if len(points) > POLYGON_DRIVEN_MIN and _temp_tables_allowed(conn):
        rows = _polygon_rows(conn, catalog, xs, ys, srid=srid, deg=deg)
    else:
        rows = _point_rows(conn, catalog, xs, ys, srid=srid, deg=deg)
    return _results(rows, tolerance_m)


def _temp_tables_allowed(conn: Connection) -> bool:
    """Return whether a temp table can live for the transaction (not autocommit, not read-only).

    In autocommit mode ``ON COMMIT DROP`` would drop the table at once; a read-only transaction
    (or a hot standby) refuses ``CREATE``.
    """
    if getattr(conn.connection.dbapi_connection, "autocommit", False):
        return False
    return conn.execute(text("SHOW transaction_read_only")).scalar_one() == "off"


def _point_rows(
    conn: Connection, catalog: Catalog, xs: list[float], ys: list[float], *, srid: int, deg: float
) -> Sequence[RowMapping]:
    """Return the snapping rows of the points, one LATERAL lookup per point.

    Run as driver SQL (no SQLAlchemy compile or cache key per call): intake snaps one point per
    case.
    """
    one = len(xs) == 1
    sql = _point_sql(*_tables(catalog), one)
    points = {"x": xs[0], "y": ys[0]} if one else {"xs": xs, "ys": ys}
    return conn.exec_driver_sql(sql, {**points, "srid": srid, "deg": deg}).mappings().all()


def _polygon_rows(
    conn: Connection, catalog: Catalog, xs: list[float], ys: list[float], *, srid: int, deg: float
) -> Sequence[RowMapping]:
    """Return the snapping rows of the points, the cells driving the join (large batches)."""
    table = f"snap_pts_{secrets.token_hex(4)}"
    conn.execute(text(f"CREATE TEMP TABLE {table} (i bigint, g geometry) ON COMMIT DROP"))
    fill = text(
        f"INSERT INTO {table} (i, g) SELECT t.i, ST_SetSRID(ST_MakePoint(t.x, t.y), :srid) "
        "FROM unnest(:xs, :ys) WITH ORDINALITY AS t(x, y, i)"
    ).bindparams(
        bindparam("xs", type_=ARRAY(DOUBLE_PRECISION)),
        bindparam("ys", type_=ARRAY(DOUBLE_PRECISION)),
    )
    conn.execute(fill, {"xs": xs, "ys": ys, "srid": srid})
    conn.execute(text(f"CREATE INDEX ON {table} USING gist (g)"))
    conn.execute(text(f"ANALYZE {table}"))
    rows = conn.execute(text(_polygon_sql(catalog, table)), {"deg": deg}).mappings().all()
    conn.execute(text(f"DROP TABLE {table}"))
    return rows


def _results(rows: Sequence[RowMapping], tolerance_m: float) -> list[SnapResult | None]:
    """Turn the snapping rows (ordered as the points, names joined) into results."""
    out: list[SnapResult | None] = []
    for row in rows:
        if not row["hit"] or row["dist"] > tolerance_m:
            out.append(None)
            continue
        village = str(row["village_code"])
        out.append(
            SnapResult(
                grid_code=row["grid_code"],
                village_code=village,
                town_code=village[:9],
                district_code=village[:6],
                names=DivisionNames(
                    grid=row["grid_name"],
                    village=row["village_name"],
                    town=row["town_name"],
                    district=row["district_name"],
                ),
                distance_m=round(float(row["dist"]), 3),
                on_boundary=bool(row["edge"]),
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
