"""Snapping points to grid cells, checked against shapely on the same polygons."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import Point
from sqlalchemy import text

import layers.snap as snap_module
from layers.snap import SnapResult, snap, snap_many
from schemas.errors import InvalidInput

GEOD = pyproj.Geod(ellps="GRS80")


def expected_cell(district, lon: float, lat: float) -> str | None:
    """Return the smallest code among the cells whose closed polygon holds the point."""
    hits = sorted(code for code, poly in district.cells.items() if poly.covers(Point(lon, lat)))
    return hits[0] if hits else None


def test_random_points_match_shapely_point_in_polygon(db, catalog, district):
    rng = np.random.default_rng(11)
    xs = rng.uniform(113.2, 113.23, 400).round(7)
    ys = rng.uniform(23.40, 23.42, 400).round(7)
    with db.connect() as conn:
        results = snap_many(conn, catalog, list(zip(xs.tolist(), ys.tolist(), strict=True)))
    assert len(results) == 400
    for x, y, result in zip(xs, ys, results, strict=True):
        assert result is not None
        assert result.grid_code == expected_cell(district, x, y)
        assert result.distance_m == 0.0
        assert result.grid_code is not None
        assert result.village_code == result.grid_code[:12]
        assert result.town_code == result.grid_code[:9]
        assert result.district_code == "440114"


def test_names_come_from_the_divisions_register(db, catalog):
    with db.connect() as conn:
        a = snap(conn, catalog, 113.205, 23.415)
        c = snap(conn, catalog, 113.205, 23.405)
    assert (a.grid_code, a.names.village, a.names.town, a.names.district) == (
        "440114001201001",
        "新街村委会",
        "新华街道",
        "花都区",
    )
    assert (c.grid_code, c.names.village, c.names.town) == (
        "440114109001001",
        "狮岭居委会",
        "狮岭镇",
    )
    assert a.names.grid == "网格001" and not a.on_boundary


@pytest.mark.parametrize(
    ("lon", "lat", "cells"),
    [
        (113.21, 23.415, ("440114001201001", "440114001201002")),  # A1 | A2, same village
        (113.22, 23.415, ("440114001201002", "440114001202001")),  # A2 | B1, two villages
        (113.205, 23.41, ("440114001201001", "440114109001001")),  # A1 / C1, two towns
        (
            113.21,
            23.41,
            (
                "440114001201001",
                "440114001201002",  # corner of four cells
                "440114109001001",
                "440114109001002",
            ),
        ),
    ],
)
def test_a_point_on_a_shared_edge_goes_to_the_smallest_code(db, catalog, district, lon, lat, cells):
    holders = sorted(c for c, p in district.cells.items() if p.covers(Point(lon, lat)))
    assert tuple(holders) == cells  # shapely agrees that the point is on all these cells
    with db.connect() as conn:
        result = snap(conn, catalog, lon, lat)
    assert result.grid_code == min(cells)
    assert result.on_boundary and result.distance_m == 0.0


def _outward(lon: float, lat: float, azimuth: float, metres: float) -> tuple[float, float]:
    x, y, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return float(x), float(y)


@pytest.mark.parametrize(
    ("edge", "azimuth", "cell"),
    [
        ((113.205, 23.42), 0.0, "440114001201001"),  # north of A1
        ((113.23, 23.405), 90.0, "440114001202002"),  # east of B2
        ((113.215, 23.40), 180.0, "440114109001002"),  # south of C2
        ((113.20, 23.415), 270.0, "440114001201001"),  # west of A1
    ],
)
def test_outside_within_tolerance_goes_to_the_nearest_cell(db, catalog, edge, azimuth, cell):
    lon, lat = _outward(edge[0], edge[1], azimuth, 100.0)
    far = _outward(edge[0], edge[1], azimuth, 300.0)
    with db.connect() as conn:
        near = snap(conn, catalog, lon, lat)
        assert near.grid_code == cell
        assert near.distance_m == pytest.approx(100.0, abs=0.5)
        assert not near.on_boundary
        with pytest.raises(InvalidInput, match="outside the district"):
            snap(conn, catalog, *far)
        assert snap_many(conn, catalog, [far, (lon, lat)])[0] is None
        wider = snap(conn, catalog, *far, tolerance_m=400)
    assert wider.grid_code == cell and wider.distance_m == pytest.approx(300.0, abs=1.0)


def test_batch_equals_one_by_one_and_keeps_order(db, catalog):
    points = [
        (113.2051, 23.4149),
        (113.21, 23.415),
        (113.2299, 23.4001),
        (113.25, 23.5),
        (113.2151, 23.4199),
    ]
    with db.connect() as conn:
        batch = snap_many(conn, catalog, points)
        single: list[SnapResult | None] = []
        for p in points:
            try:
                single.append(snap(conn, catalog, *p))
            except InvalidInput:
                single.append(None)
    assert batch == single
    assert batch[3] is None and [r.grid_code for r in batch if r][0] == "440114001201001"


def test_bad_points_are_refused(db, catalog):
    with db.connect() as conn:
        with pytest.raises(InvalidInput, match="longitude/latitude"):
            snap_many(conn, catalog, [(213.0, 23.4)])
        with pytest.raises(InvalidInput, match="tolerance"):
            snap(conn, catalog, 113.2, 23.4, tolerance_m=-1)
        assert snap_many(conn, catalog, []) == []


def test_shapely_reference_agrees_on_cell_interiors(district):
    # The independent reference itself: every cell's centre is in exactly that cell.
    for code, polygon in district.cells.items():
        centre = shapely.centroid(polygon)
        assert expected_cell(district, centre.x, centre.y) == code


def test_large_batches_match_the_per_point_path_and_shapely(db, catalog, district, monkeypatch):
    # Above POLYGON_DRIVEN_MIN the cells drive the join through a temp table: same results as
    # the per-point lookup, incl. edges, corners, points just outside and far away.
    rng = np.random.default_rng(23)
    inside = np.column_stack(
        [rng.uniform(113.2, 113.23, 1200).round(7), rng.uniform(23.40, 23.42, 1200).round(7)]
    )
    edges = [(113.21, 23.415), (113.22, 23.415), (113.205, 23.41), (113.21, 23.41)]
    edges += [(x, 23.42) for x in np.linspace(113.2, 113.23, 7).round(4)]  # outer edge
    around = np.column_stack(
        [rng.uniform(113.19, 113.24, 300).round(7), rng.uniform(23.39, 23.43, 300).round(7)]
    )
    points = [tuple(p) for p in inside.tolist()] + edges + [tuple(p) for p in around.tolist()]
    points += [(113.25, 23.5), (113.0, 23.0)]
    rng.shuffle(points)
    assert len(points) > snap_module.POLYGON_DRIVEN_MIN
    with db.connect() as conn:
        fast = snap_many(conn, catalog, points)
        monkeypatch.setattr(snap_module, "POLYGON_DRIVEN_MIN", len(points))
        slow = snap_many(conn, catalog, points)
        # A second large batch in the same transaction (temp table names do not clash).
        monkeypatch.setattr(snap_module, "POLYGON_DRIVEN_MIN", 0)
        again = snap_many(conn, catalog, points[:10])
    assert fast == slow
    assert again == slow[:10]
    assert sum(r is None for r in fast) >= 2 and sum(
        r is not None and r.distance_m > 0 for r in fast
    )
    assert sum(r is not None and r.on_boundary for r in fast) >= len(edges)
    for (x, y), result in zip(points, fast, strict=True):
        cell = expected_cell(district, x, y)
        if cell is not None:
            assert result is not None and result.grid_code == cell and result.distance_m == 0.0
        else:
            assert result is None or result.distance_m > 0.0


def test_a_read_only_transaction_takes_the_per_point_path(db, catalog, monkeypatch):
    monkeypatch.setattr(snap_module, "POLYGON_DRIVEN_MIN", 0)
    points = [(113.2051, 23.4149), (113.21, 23.415), (113.25, 23.5)]
    with db.connect() as conn:
        expected = snap_many(conn, catalog, points)
        conn.rollback()
        conn.execute(text("SET TRANSACTION READ ONLY"))
        assert snap_many(conn, catalog, points) == expected
