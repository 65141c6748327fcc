"""Synthetic Huadu: terrain, rivers, water bodies, flood risk and their COGs (no database)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from numpy.typing import NDArray
from rasterio import features
from rasterio.transform import rowcol
from rio_cogeo.cogeo import cog_validate

from layers.registry import default_catalog
from layers.synthetic.admin import AdminGeometry, build_admin
from layers.synthetic.conform import problem, sample_pattern
from layers.synthetic.geography import METRIC_EPSG, urban_density
from layers.synthetic.hydro import flood_risk, rivers, water_bodies, write_cogs
from layers.synthetic.terrain import Terrain, build_terrain

SEED = 20240601
SCALE = 0.05
SUBDISTRICTS = ("440114001", "440114002", "440114003", "440114004")
HILL_TOWNS = ("440114103", "440114104")  # 梯面 Timian, 花山 Huashan
MAIN_RIVERS = {"白坭河", "流溪河", "天马河", "新街河", "巴江河"}
STEP_M = 100.0
RISE_TOLERANCE_M = 0.05
BANK_M = 200.0


@pytest.fixture(scope="module")
def admin() -> AdminGeometry:
    return build_admin(SEED)


@pytest.fixture(scope="module")
def terrain(admin: AdminGeometry) -> Terrain:
    return build_terrain(admin, SEED)


@pytest.fixture(scope="module")
def river_frame(terrain: Terrain) -> gpd.GeoDataFrame:
    return rivers(terrain)


@pytest.fixture(scope="module")
def bodies(terrain: Terrain, admin: AdminGeometry) -> gpd.GeoDataFrame:
    return water_bodies(terrain, admin, SCALE, SEED)


@pytest.fixture(scope="module")
def flood(
    terrain: Terrain, river_frame: gpd.GeoDataFrame, bodies: gpd.GeoDataFrame
) -> NDArray[np.uint8]:
    return flood_risk(terrain, river_frame, bodies)


@pytest.fixture(scope="module")
def cogs(
    terrain: Terrain, flood: NDArray[np.uint8], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    return write_cogs(terrain, flood, tmp_path_factory.mktemp("cogs"))


def _mask(terrain: Terrain, geometry: object) -> NDArray[np.bool_]:
    """Return the cells of the terrain grid inside a geometry."""
    burnt = features.rasterize([geometry], out_shape=terrain.shape, transform=terrain.transform)
    return burnt.astype(bool)


def _samples(line: shapely.LineString) -> NDArray[np.float64]:
    """Return points every STEP_M along a line from its start."""
    arcs = np.arange(0.0, line.length, STEP_M)
    return shapely.get_coordinates(shapely.line_interpolate_point(line, arcs))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- terrain ----------------------------------------------------------------------------------


def test_grid_is_the_catalog_dem_over_the_district_plus_margin(terrain: Terrain) -> None:
    spec = default_catalog().by_role("dem").raster
    assert spec is not None
    assert terrain.resolution == spec.resolution_m
    assert terrain.transform.e == -spec.resolution_m and terrain.transform.b == 0
    assert terrain.array.dtype == np.dtype(spec.dtype) and terrain.nodata == spec.nodata
    minx, miny, maxx, maxy = terrain.district.bounds
    gx0, gy0, gx1, gy1 = terrain.bounds
    for margin in (minx - gx0, miny - gy0, gx1 - maxx, gy1 - maxy):
        assert 1900.0 <= margin <= 2100.0
    assert np.isfinite(terrain.array).all() and not (terrain.array == terrain.nodata).any()
    assert terrain.inside.sum() * terrain.resolution**2 == pytest.approx(
        terrain.district.area, rel=0.01
    )


def test_north_is_higher_than_the_southern_plain(terrain: Terrain, admin: AdminGeometry) -> None:
    hills = np.mean([terrain.array[_mask(terrain, admin[c].geometry)].mean() for c in HILL_TOWNS])
    city = np.mean([terrain.array[_mask(terrain, admin[c].geometry)].mean() for c in SUBDISTRICTS])
    assert hills > 100.0 and city < 30.0
    assert hills > 4 * city
    timian = terrain.array[_mask(terrain, admin["440114103"].geometry)]
    assert timian.mean() > 150.0


def test_elevation_range_is_plausible(terrain: Terrain, admin: AdminGeometry) -> None:
    inside = terrain.array[terrain.inside]
    assert 550.0 <= inside.max() <= 600.0  # 王子山, 578 m
    assert -1.0 <= inside.min() <= 10.0
    south = _mask(terrain, admin["440114004"].geometry) | _mask(
        terrain, admin["440114107"].geometry
    )
    low, median, high = np.percentile(terrain.array[south], [5, 50, 95])
    assert 2.0 <= low and 4.0 <= median <= 20.0 and high <= 80.0
    highest = np.unravel_index(
        np.argmax(np.where(terrain.inside, terrain.array, -1)), terrain.shape
    )
    xs, ys = terrain.centres()
    peak = shapely.Point(xs[highest[1]], ys[highest[0]])
    assert admin["440114103"].geometry.distance(peak) < 1000.0  # in Timian


def test_elevation_samples_bilinearly(terrain: Terrain) -> None:
    xs, ys = terrain.centres()
    rows, cols = np.array([10, 500, 900]), np.array([20, 700, 1200])
    assert terrain.elevation(xs[cols], ys[rows]) == pytest.approx(
        terrain.array[rows, cols], abs=1e-3
    )
    mid = terrain.elevation((xs[700] + xs[701]) / 2, ys[500])
    assert mid == pytest.approx(terrain.array[500, 700:702].mean(), abs=1e-3)
    grid = terrain.elevation(xs[:3][None, :], ys[:2][:, None])
    assert grid.shape == (2, 3)
    minx, miny, _, _ = terrain.bounds
    assert np.isnan(terrain.elevation(minx - 10.0, miny + 100.0))


def test_every_river_descends_downstream(terrain: Terrain, river_frame: gpd.GeoDataFrame) -> None:
    lines = [r.course for r in terrain.rivers]
    lines += [part for geom in river_frame.geometry for part in geom.geoms]
    assert len(terrain.rivers) >= 20
    for line in lines:
        p = _samples(line)
        z = terrain.elevation(p[:, 0], p[:, 1])
        assert np.isfinite(z).all()
        assert np.all(np.diff(z) <= RISE_TOLERANCE_M)
        if line.length > 2000.0:
            assert z[0] > z[-1]


def test_rivers_lie_below_their_banks(terrain: Terrain) -> None:
    checked = total = 0
    for river in terrain.rivers:
        p = _samples(river.course)[1:-1]
        tangent = np.gradient(p, axis=0)
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        normal /= np.hypot(normal[:, 0], normal[:, 1])[:, None]
        left, right = p + BANK_M * normal, p - BANK_M * normal
        total += len(p)
        own = np.ones(len(p), dtype=bool)
        for bank in (left, right):
            r, c = rowcol(terrain.transform, bank[:, 0], bank[:, 1])
            r, c = np.asarray(r), np.asarray(c)
            ok = (r >= 0) & (r < terrain.shape[0]) & (c >= 0) & (c < terrain.shape[1])
            r, c = np.clip(r, 0, terrain.shape[0] - 1), np.clip(c, 0, terrain.shape[1] - 1)
            own &= ok & (terrain.river_index[r, c] == river.index)  # not another river's valley
        z = terrain.elevation(p[:, 0], p[:, 1])
        banks = (terrain.elevation(*left.T) + terrain.elevation(*right.T)) / 2.0
        assert (z[own] < banks[own]).all(), river.name
        checked += int(own.sum())
    assert checked >= 0.85 * total


def test_low_spots_are_low_flat_urban_and_near_rivers(terrain: Terrain) -> None:
    spots = terrain.low_spots(30, np.random.default_rng(3))
    assert spots.shape == (30, 2)
    assert np.array_equal(spots, terrain.low_spots(30, np.random.default_rng(3)))
    assert shapely.contains_xy(terrain.district, spots[:, 0], spots[:, 1]).all()
    r, c = rowcol(terrain.transform, spots[:, 0], spots[:, 1])
    assert (terrain.depression[r, c] > 0).all() and (terrain.array[r, c] < 40).all()
    assert (terrain.river_distance[r, c] < 1500).all() and (terrain.slope[r, c] < 0.02).all()
    assert (urban_density(spots[:, 0], spots[:, 1]) > 0.2).all()
    gaps = np.hypot(*(spots[:, None, :] - spots[None, :, :]).transpose(2, 0, 1))
    assert gaps[np.triu_indices(30, 1)].min() >= 300.0


# --- vector layers ----------------------------------------------------------------------------


def _assert_follows_catalog(frame: gpd.GeoDataFrame, role: str) -> None:
    layer = default_catalog().by_role(role)
    assert frame.crs.to_epsg() == METRIC_EPSG
    assert set(frame.columns) == {a.name for a in layer.attributes} | {"geometry"}
    assert set(frame.geom_type) == {layer.geometry.value}
    for attr in layer.attributes:
        for value in frame[attr.name]:
            value = (
                None if value is None or (isinstance(value, float) and np.isnan(value)) else value
            )
            assert problem(attr, value) is None, (attr.name, value)
    keys = frame[list(layer.natural_key)].apply(tuple, axis=1)
    assert keys.is_unique


def test_rivers_follow_the_catalog(river_frame: gpd.GeoDataFrame, terrain: Terrain) -> None:
    _assert_follows_catalog(river_frame, "river")
    assert MAIN_RIVERS <= set(river_frame["name"])
    assert river_frame["name"].map(lambda n: re.fullmatch(r"[\u4e00-\u9fff]{2,6}", n)).all()
    assert river_frame.geometry.is_valid.all()
    assert river_frame.geometry.within(terrain.district.buffer(1.0)).all()
    lengths = river_frame.geometry.length / 1000.0
    assert np.allclose(lengths, river_frame["length_km"], atol=0.01)
    main = river_frame[river_frame["name"].isin(MAIN_RIVERS)]
    assert (main["avg_width_m"] > river_frame["avg_width_m"].drop(main.index).max()).all()


def test_water_bodies_are_valid_inside_and_apart(
    bodies: gpd.GeoDataFrame, river_frame: gpd.GeoDataFrame, terrain: Terrain
) -> None:
    _assert_follows_catalog(bodies, "water_body")
    kinds = bodies["kind"].value_counts()
    assert kinds.get("reservoir", 0) >= 1 and kinds.get("lake", 0) >= 2
    assert kinds.get("pond", 0) >= 12 and len(bodies) >= 5
    geoms = np.asarray(bodies.geometry.values, dtype=object)
    assert shapely.is_valid(geoms).all()
    assert shapely.within(geoms, terrain.district).all()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    assert (left == right).all()  # no two water bodies touch
    hit, _ = shapely.STRtree(geoms).query(
        np.asarray(river_frame.geometry.values, dtype=object), predicate="intersects"
    )
    assert hit.size == 0  # no river crosses a water body
    reservoirs = bodies[bodies["kind"] == "reservoir"]
    assert (reservoirs.geometry.area <= 3e6).all()
    z = terrain.elevation(reservoirs.geometry.centroid.x, reservoirs.geometry.centroid.y)
    ponds = bodies[bodies["kind"] == "pond"]
    zp = terrain.elevation(ponds.geometry.centroid.x, ponds.geometry.centroid.y)
    assert np.median(z) > 40.0 > np.median(zp)  # reservoirs in the hills, ponds in the plain


def test_water_body_count_scales(terrain: Terrain, admin: AdminGeometry) -> None:
    small = water_bodies(terrain, admin, SCALE, SEED)["kind"].value_counts()
    large = water_bodies(terrain, admin, 4 * SCALE, SEED)["kind"].value_counts()
    assert large["pond"] >= 3 * small["pond"]
    assert large["reservoir"] == small["reservoir"]


# --- flood risk -------------------------------------------------------------------------------


def test_flood_risk_classes_and_nodata(flood: NDArray[np.uint8], terrain: Terrain) -> None:
    spec = default_catalog().by_role("flood_risk").raster
    assert spec is not None
    assert flood.dtype == np.dtype(spec.dtype) and flood.shape == terrain.shape
    assert (flood[~terrain.inside] == spec.nodata).all()
    values = set(np.unique(flood[terrain.inside]).tolist())
    assert values == {0, 1, 2, 3, 4, 5}


def test_flood_risk_is_high_near_plain_rivers_and_low_in_the_hills(
    flood: NDArray[np.uint8], terrain: Terrain, admin: AdminGeometry
) -> None:
    plain = terrain.inside & (terrain.array < 30.0)
    near = plain & (terrain.river_distance < 300.0)
    far = plain & (terrain.river_distance > 1500.0)
    timian = _mask(terrain, admin["440114103"].geometry) & terrain.inside
    assert flood[near].mean() >= 3.0
    assert flood[near].mean() > flood[far].mean() + 1.0
    assert (flood[timian] == 0).mean() > 0.85
    spots = terrain.low_spots(40, np.random.default_rng(5))
    r, c = rowcol(terrain.transform, spots[:, 0], spots[:, 1])
    assert flood[r, c].mean() > flood[plain].mean() + 0.5


# --- COGs and determinism ---------------------------------------------------------------------


def test_cogs_are_valid_and_declared(
    cogs: dict[str, Path], terrain: Terrain, flood: NDArray[np.uint8]
) -> None:
    catalog = default_catalog()
    assert set(cogs) == {"dem", "flood_risk"}
    for role, expected in (("dem", terrain.array), ("flood_risk", flood)):
        spec = catalog.by_role(role).raster
        assert spec is not None
        valid, errors, _ = cog_validate(cogs[role], quiet=True)
        assert valid, errors
        with rasterio.open(cogs[role]) as src:
            assert src.crs.to_epsg() == METRIC_EPSG
            assert src.transform == terrain.transform
            assert src.nodata == spec.nodata and src.dtypes[0] == spec.dtype
            assert src.tags(1)["units"] == spec.unit and src.descriptions[0]
            assert src.compression is not None and src.compression.value == "DEFLATE"
            assert src.overviews(1)
            assert np.array_equal(src.read(1), expected)


def test_same_seed_same_everything_other_seed_differs(
    terrain: Terrain,
    admin: AdminGeometry,
    bodies: gpd.GeoDataFrame,
    flood: NDArray[np.uint8],
    cogs: dict[str, Path],
    tmp_path: Path,
) -> None:
    again = build_terrain(admin, SEED)
    assert np.array_equal(again.array, terrain.array)
    assert [r.course.wkb for r in again.rivers] == [r.course.wkb for r in terrain.rivers]
    assert again.dams == terrain.dams
    again_bodies = water_bodies(again, admin, SCALE, SEED)
    assert again_bodies.drop(columns="geometry").equals(bodies.drop(columns="geometry"))
    assert again_bodies.geometry.geom_equals_exact(bodies.geometry, 0.0).all()
    again_flood = flood_risk(again, rivers(again), again_bodies)
    assert np.array_equal(again_flood, flood)
    paths = write_cogs(again, again_flood, tmp_path / "again")
    assert {k: _sha256(p) for k, p in paths.items()} == {k: _sha256(p) for k, p in cogs.items()}

    other = build_terrain(admin, SEED + 1)
    assert not np.array_equal(other.array, terrain.array)
    assert [r.course.wkb for r in other.rivers] != [r.course.wkb for r in terrain.rivers]
    other_paths = write_cogs(other, flood_risk(other, rivers(other), bodies), tmp_path / "other")
    assert _sha256(other_paths["dem"]) != _sha256(cogs["dem"])


# --- attribute conformance --------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern", [r"^[0-9A-Z]{6,20}$", r"^440114\d{8}$", r"^(HL|SK)-\d{3}[a-c]?$", r"^\d{1,18}$"]
)
def test_sample_pattern_matches(pattern: str) -> None:
    rng = np.random.default_rng(1)
    values = {sample_pattern(pattern, rng) for _ in range(20)}
    assert all(re.fullmatch(pattern, v) for v in values) and len(values) > 10


def test_problem_rejects_values_outside_the_declaration() -> None:
    layer = default_catalog().by_role("water_body")
    kind, area, code = layer.attribute("kind"), layer.attribute("area_m2"), layer.attribute("code")
    assert problem(kind, "lake") is None and problem(kind, "sea") is not None
    assert problem(kind, None) == "missing" and problem(layer.attribute("name"), None) is None
    assert problem(area, -1.0) is not None and problem(area, 12.5) is None
    assert problem(code, "sk-1") is not None and problem(code, "SK4401140001") is None
