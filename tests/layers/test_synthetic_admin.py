"""Synthetic Huadu: geography data, administrative partition and basic grid (no database)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest
import shapely
import yaml
from pydantic import ValidationError

from layers.synthetic.admin import AdminGeometry, Division, build_admin, read_divisions
from layers.synthetic.geography import (
    GEOGRAPHY_FILE,
    LONLAT_EPSG,
    METRIC_EPSG,
    Geography,
    load_geography,
    to_metric,
    town_anchors,
    urban_density,
)
from layers.synthetic.grid import SLIVER_SHARE, GridCellSpec, build_grid

SEED = 20240601
SUBDISTRICTS = ("440114001", "440114002", "440114003", "440114004")
RURAL = ("440114103", "440114104")  # Timian (mountains) and Huashan
CRS = (METRIC_EPSG, LONLAT_EPSG)


@pytest.fixture(scope="module")
def admin() -> AdminGeometry:
    return build_admin(SEED)


@pytest.fixture(scope="module")
def admin_by_crs(admin: AdminGeometry) -> dict[int, AdminGeometry]:
    return {METRIC_EPSG: admin, LONLAT_EPSG: admin.to_lonlat()}


@pytest.fixture(scope="module")
def grid(admin: AdminGeometry) -> list[GridCellSpec]:
    return build_grid(admin, 1.0, SEED)


@pytest.fixture(scope="module")
def grid_by_crs(grid: list[GridCellSpec]) -> dict[int, list[GridCellSpec]]:
    return {METRIC_EPSG: grid, LONLAT_EPSG: [cell.to_lonlat() for cell in grid]}


def _max_overlap(geometries: Sequence[shapely.Geometry]) -> float:
    """Return the largest intersection area of any two distinct geometries."""
    array = np.array(geometries, dtype=object)
    left, right = shapely.STRtree(array).query(array, predicate="intersects")
    pairs = left < right
    if not pairs.any():
        return 0.0
    return float(shapely.area(shapely.intersection(array[left[pairs]], array[right[pairs]])).max())


def _wkb(geometries: Sequence[shapely.Geometry]) -> list[bytes]:
    return [shapely.to_wkb(g) for g in geometries]


# --- geography data -------------------------------------------------------------------------


def test_geography_file_lists_the_ten_towns_of_the_csv() -> None:
    geo = load_geography()
    csv_towns = {r.code for r in read_divisions() if r.level == "town"}
    assert {t.code for t in geo.towns} == csv_towns
    assert sum(geo.area_shares().values()) == pytest.approx(1.0)
    for code in SUBDISTRICTS:
        assert 35 <= geo.town(code).area_km2 <= 60


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("towns", 1, "code"), "440114001", "not unique"),
        (("towns", 0, "anchor"), [113.49, 23.63], "outside the district outline"),
        (("towns", 6, "area_km2"), 900, "more than 10 %"),
        (("district", "outline", 3), [114.5, 23.5], "outside the Huadu box"),
        (("towns", 0, "density"), 1.5, "less than or equal to 1"),
    ],
)
def test_geography_rejects_bad_data(
    path: tuple[str | int, ...], value: object, message: str
) -> None:
    data = yaml.safe_load(GEOGRAPHY_FILE.read_text(encoding="utf-8"))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValidationError, match=message):
        Geography.model_validate(data)


def test_urban_density_is_vectorised_bounded_and_peaks_in_the_south_centre() -> None:
    anchors = town_anchors()
    x = np.linspace(400_000, 446_000, 60)
    y = np.linspace(2_570_000, 2_615_000, 50)
    field = urban_density(*np.meshgrid(x, y))
    assert field.shape == (50, 60)
    assert field.min() >= 0.0 and field.max() <= 1.0
    core = urban_density(*anchors["440114001"])
    assert core > 0.9
    assert urban_density(*anchors["440114103"]) < 0.3  # Timian, in the hills
    hills_x, hills_y = to_metric(113.33, 23.60)
    assert urban_density(hills_x, hills_y) < 0.1
    centre = np.array(anchors["440114001"])
    for code in ("440114104", "440114105", "440114107", "440114108", "440114109"):
        seat = np.array(anchors[code])
        beyond = seat + 5000.0 * (seat - centre) / np.linalg.norm(seat - centre)
        # Every town seat is a bump below the city core; density falls off away from the city.
        assert core > urban_density(*seat) > urban_density(*beyond), code


# --- administrative divisions ---------------------------------------------------------------


def test_every_csv_division_is_built_with_its_parent(admin: AdminGeometry) -> None:
    rows = read_divisions()
    assert len(admin.towns) == 10 and len(admin.villages) == 261
    built = {d.code: d for d in (admin.district, *admin.towns, *admin.villages)}
    assert set(built) == {r.code for r in rows}
    for row in rows:
        division = built[row.code]
        assert (division.name, division.level, division.kind, division.parent_code) == (
            row.name,
            row.level,
            row.kind,
            row.parent_code,
        )
    assert all(admin[v.parent_code].level == "town" for v in admin.villages)


@pytest.mark.parametrize("epsg", CRS)
def test_every_polygon_is_valid_and_without_slivers(
    admin_by_crs: dict[int, AdminGeometry], epsg: int
) -> None:
    admin = admin_by_crs[epsg]
    divisions: list[Division] = [admin.district, *admin.towns, *admin.villages]
    assert all(d.epsg == epsg for d in divisions)
    geometries = np.array([d.geometry for d in divisions], dtype=object)
    assert shapely.is_valid(geometries).all()
    assert not shapely.is_empty(geometries).any()
    metric = admin_by_crs[METRIC_EPSG]
    parts = shapely.get_parts(
        [d.geometry for d in (metric.district, *metric.towns, *metric.villages)]
    )
    assert shapely.area(parts).min() > 0.05e6


@pytest.mark.parametrize("epsg", CRS)
def test_towns_partition_the_district(admin_by_crs: dict[int, AdminGeometry], epsg: int) -> None:
    admin = admin_by_crs[epsg]
    towns = [t.geometry for t in admin.towns]
    district = admin.district.geometry
    union = shapely.union_all(towns)
    assert shapely.symmetric_difference(union, district).area < 1e-6 * district.area
    assert _max_overlap(towns) == 0.0
    assert shapely.coverage_is_valid(np.array(towns, dtype=object))
    assert all(shapely.covered_by(t, district) for t in towns)


@pytest.mark.parametrize("epsg", CRS)
def test_villages_partition_their_town(admin_by_crs: dict[int, AdminGeometry], epsg: int) -> None:
    admin = admin_by_crs[epsg]
    all_villages = [v.geometry for v in admin.villages]
    # Shared edges have identical vertices, in EPSG:4490 too: the whole set is a valid coverage.
    assert shapely.coverage_is_valid(np.array(all_villages, dtype=object))
    assert _max_overlap(all_villages) == 0.0
    for town in admin.towns:
        villages = [v.geometry for v in admin.villages_of(town.code)]
        assert villages
        assert all(shapely.covered_by(v, town.geometry) for v in villages)
        union = shapely.union_all(villages)
        gap = shapely.symmetric_difference(union, town.geometry).area
        assert gap < 1e-6 * town.geometry.area, town.code


def test_district_area_and_bounds(admin_by_crs: dict[int, AdminGeometry]) -> None:
    assert 900 <= admin_by_crs[METRIC_EPSG].district.area_km2 <= 1050
    lon_min, lat_min, lon_max, lat_max = admin_by_crs[LONLAT_EPSG].district.geometry.bounds
    assert 113.0 <= lon_min < lon_max <= 113.5
    assert 23.2 <= lat_min < lat_max <= 23.65
    assert lon_max - lon_min > 0.35 and lat_max - lat_min > 0.3  # real extent, not a blob


def test_town_areas_are_near_their_targets(admin: AdminGeometry) -> None:
    geo = load_geography()
    for town in admin.towns:
        target = geo.town(town.code).area_km2
        assert abs(town.area_km2 / target - 1.0) < 0.25, (town.code, town.area_km2, target)


def test_town_anchors_lie_in_their_towns(admin: AdminGeometry) -> None:
    anchors = town_anchors()
    for town in admin.towns:
        seat = shapely.Point(anchors[town.code])
        assert seat.within(town.geometry), town.code
        assert town.geometry.exterior.distance(seat) > 200.0, town.code


def test_subdistricts_are_smaller_and_denser_than_the_mountain_towns(admin: AdminGeometry) -> None:
    def villages_per_km2(code: str) -> float:
        return len(admin.villages_of(code)) / admin[code].area_km2

    for sub in SUBDISTRICTS:
        for rural in RURAL:
            assert admin[sub].area_km2 < admin[rural].area_km2
            assert villages_per_km2(sub) > villages_per_km2(rural)
    urban = np.median([v.area_km2 for c in SUBDISTRICTS for v in admin.villages_of(c)])
    rural = np.median([v.area_km2 for c in RURAL for v in admin.villages_of(c)])
    assert urban < rural / 2


def test_communities_sit_where_their_town_is_densest(admin: AdminGeometry) -> None:
    def density(d: Division) -> float:
        point = d.geometry.representative_point()
        return float(urban_density(point.x, point.y))

    for town in admin.towns:
        kinds = defaultdict(list)
        for village in admin.villages_of(town.code):
            kinds[village.kind].append(density(village))
        if kinds["community"] and kinds["village"]:
            assert np.mean(kinds["community"]) > np.mean(kinds["village"]), town.code


def test_lonlat_copy_keeps_codes_and_matches_a_direct_transform(
    admin_by_crs: dict[int, AdminGeometry],
) -> None:
    metric, lonlat = admin_by_crs[METRIC_EPSG], admin_by_crs[LONLAT_EPSG]
    assert lonlat.epsg == LONLAT_EPSG and lonlat.to_lonlat() is lonlat
    assert [v.code for v in lonlat.villages] == [v.code for v in metric.villages]
    x, y = shapely.get_coordinates(metric.villages[0].geometry).T
    lon, lat = shapely.get_coordinates(lonlat.villages[0].geometry).T
    back_x, back_y = to_metric(lon, lat)
    assert np.abs(back_x - x).max() < 1e-3 and np.abs(back_y - y).max() < 1e-3
    with pytest.raises(ValueError, match="4547"):
        lonlat.district.area_km2  # noqa: B018


# --- basic grid -----------------------------------------------------------------------------


def test_grid_codes_are_village_code_plus_serial(
    grid: list[GridCellSpec], admin: AdminGeometry
) -> None:
    serials: dict[str, list[int]] = defaultdict(list)
    for cell in grid:
        assert len(cell.code) == 15 and cell.code.isdigit()
        assert cell.code[:12] == cell.village_code
        assert cell.town_code == admin[cell.village_code].parent_code
        serials[cell.village_code].append(cell.serial)
    assert set(serials) == {v.code for v in admin.villages}
    for values in serials.values():
        assert sorted(values) == list(range(1, len(values) + 1))  # unique, from 001, no holes
    assert len({cell.code for cell in grid}) == len(grid)


def test_grid_serials_run_west_to_east_then_north_to_south(grid: list[GridCellSpec]) -> None:
    by_village: dict[str, list[GridCellSpec]] = defaultdict(list)
    for cell in grid:
        by_village[cell.village_code].append(cell)
    multi_row = 0
    for cells in by_village.values():
        cells.sort(key=lambda c: c.serial)
        positions = [(c.row, c.col) for c in cells]
        assert positions == sorted(positions)
        multi_row += len({c.row for c in cells}) > 1
        for cell in cells:  # the lattice position is where the cell really is
            assert (
                cell.geometry.intersection(cell.lattice_square()).area > 0.05 * cell.geometry.area
            )
    assert multi_row > 100  # the ordering was exercised on real 2-D lattices


@pytest.mark.parametrize("epsg", CRS)
def test_cells_tile_their_village(
    grid_by_crs: dict[int, list[GridCellSpec]], admin_by_crs: dict[int, AdminGeometry], epsg: int
) -> None:
    admin, grid = admin_by_crs[epsg], grid_by_crs[epsg]
    by_village: dict[str, list[shapely.Geometry]] = defaultdict(list)
    for cell in grid:
        assert cell.epsg == epsg
        by_village[cell.village_code].append(cell.geometry)
    for village in admin.villages:
        cells = by_village[village.code]
        array = np.array(cells, dtype=object)
        assert shapely.is_valid(array).all() and shapely.coverage_is_valid(array)
        gap = shapely.symmetric_difference(shapely.union_all(cells), village.geometry).area
        assert gap < 1e-6 * village.geometry.area, village.code
    # Across villages the cells meet along the same lines (vertices may differ): no overlaps.
    district_area = admin.district.geometry.area
    assert _max_overlap([c.geometry for c in grid]) < 1e-9 * district_area


def test_grid_has_about_1800_cells_smaller_where_dense(grid: list[GridCellSpec]) -> None:
    assert 1500 <= len(grid) <= 2200
    area: dict[str, list[float]] = defaultdict(list)
    for cell in grid:
        area[cell.town_code].append(cell.geometry.area)
    urban = np.median([a for code in SUBDISTRICTS for a in area[code]])
    rural = np.median([a for code in RURAL for a in area[code]])
    assert urban < rural / 3


def test_grid_has_no_slivers(grid: list[GridCellSpec], admin: AdminGeometry) -> None:
    per_village: dict[str, int] = defaultdict(int)
    for cell in grid:
        per_village[cell.village_code] += 1
    for cell in grid:
        if per_village[cell.village_code] > 1:
            assert cell.geometry.area >= SLIVER_SHARE * cell.cell_size_m**2, cell.code
    assert all(cell.geometry.geom_type == "Polygon" for cell in grid)


def test_small_scale_grid_is_fast_and_covers_every_village(
    admin: AdminGeometry, grid: list[GridCellSpec]
) -> None:
    start = time.perf_counter()
    small = build_grid(admin, 0.05, SEED)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    assert {c.village_code for c in small} == {v.code for v in admin.villages}
    assert len(small) < len(grid) / 3
    total = sum(c.geometry.area for c in small)
    assert total == pytest.approx(admin.district.geometry.area, rel=1e-6)


def test_grid_needs_metric_admin_and_positive_scale(admin_by_crs: dict[int, AdminGeometry]) -> None:
    with pytest.raises(ValueError, match="4547"):
        build_grid(admin_by_crs[LONLAT_EPSG], 1.0, SEED)
    with pytest.raises(ValueError, match="positive"):
        build_grid(admin_by_crs[METRIC_EPSG], 0.0, SEED)


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_same_geometries_other_seed_other_geometries(
    admin: AdminGeometry, grid: list[GridCellSpec]
) -> None:
    def geometries(a: AdminGeometry) -> list[shapely.Geometry]:
        return [d.geometry for d in (a.district, *a.towns, *a.villages)]

    again = build_admin(SEED)
    assert _wkb(geometries(again)) == _wkb(geometries(admin))
    assert _wkb([c.geometry for c in build_grid(again, 1.0, SEED)]) == _wkb(
        [c.geometry for c in grid]
    )
    other = build_admin(SEED + 1)
    assert _wkb(geometries(other)) != _wkb(geometries(admin))
    assert _wkb([c.geometry for c in build_grid(admin, 1.0, SEED + 1)]) != _wkb(
        [c.geometry for c in grid]
    )
