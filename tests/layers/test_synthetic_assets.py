"""Asset layers of the generator: every plan entry of layers/synthetic/assets, run at scale 0.05."""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import STRtree

from layers.registry import load_catalog
from layers.synthetic.assets._common import allocate
from layers.synthetic.identifiers import credit_codes, romanize
from layers.synthetic.plan import default_plan
from layers.synthetic.sites import short_name
from layers.synthetic.strategies import STRATEGIES
from layers.synthetic.texts import chinese_number
from layers.synthetic.world import World
from schemas.catalog import AttributeType

SCALE = 0.05
SEED = 3
#: Layers made before the asset strategies (not tested here).
EARLIER = {
    "district_boundary",
    "town_boundary",
    "village_boundary",
    "grid_cell",
    "road_centerline",
    "house_number",
    "building",
    "population",
    "street_lamp",
    "manhole_cover",
}
#: Layers that need terrain or hydrology: planned by the lead engineer, not here.
TERRAIN = {
    "river",
    "water_body",
    "dem",
    "flood_risk",
    "drainage_pipe",
    "outfall",
    "pumping_station",
    "waterlogging_point",
    "river_chief_segment",
    "water_level_gauge",
    "sluice_gate",
    "dike",
    "water_quality_station",
    "rain_gauge",
    "geohazard_point",
    "contour_line",
    "bridge",
    "drainage_channel",
    "sewage_treatment_plant",
}
#: Optional attributes that are empty by meaning for some rows (beyond params.only_if).
SEMANTIC_NULLS = {("map_sheet_index", "resolution_m"), ("place_name", "pinyin")}

CATALOG = load_catalog()
PLAN = default_plan()
CODES = sorted(code for code in PLAN.layers if code not in EARLIER | TERRAIN)


def _run(world: World) -> dict[str, list]:
    return {
        code: list(
            STRATEGIES[PLAN.layers[code].strategy](CATALOG.layer(code), PLAN.layers[code], world)
        )
        for code in CODES
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(
        catalog=CATALOG, scale=SCALE, seed=SEED, spill_dir=tmp_path_factory.mktemp("spill")
    )


@pytest.fixture(scope="module")
def chunks(world):
    return _run(world)


@pytest.fixture(scope="module")
def frames(chunks):
    return {code: pd.concat(parts, ignore_index=True) for code, parts in chunks.items()}


def test_plan_covers_every_layer_but_the_terrain_ones():
    planned = set(PLAN.layers)
    assert {lyr.code for lyr in CATALOG.layers} - planned <= TERRAIN
    assert planned <= {lyr.code for lyr in CATALOG.layers}
    assert len(CODES) == 75
    for code in CODES:
        assert PLAN.layers[code].strategy in STRATEGIES, code


@pytest.mark.parametrize("code", CODES)
def test_geometry_exactly_as_declared_valid_and_inside(code, frames, chunks, world):
    frame = frames[code]
    assert len(frame) >= 1
    declared = CATALOG.layer(code).geometry.value
    assert set(frame.geometry.geom_type) == {declared}
    geoms = frame.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    district = world.admin.district.geometry.buffer(0.01)
    assert shapely.covered_by(geoms, district).all()
    for chunk in chunks[code]:
        town = chunk.attrs.get("town_code")
        if town is not None:
            inside = shapely.covered_by(
                chunk.geometry.to_numpy(), world.admin[town].geometry.buffer(0.01)
            )
            assert inside.all(), f"{(~inside).sum()} features outside town {town}"


def _check_value(attr, value) -> str | None:
    """Return why ``value`` breaks the declaration, or None."""
    kind = attr.type
    if kind is AttributeType.string:
        if not isinstance(value, str):
            return f"not a string: {value!r}"
        if attr.enum and value not in attr.enum_values:
            return f"not in enum: {value!r}"
        if attr.max_length is not None and len(value) > attr.max_length:
            return f"longer than {attr.max_length}: {value!r}"
        if attr.pattern is not None and not re.fullmatch(attr.pattern, value):
            return f"does not match {attr.pattern}: {value!r}"
        return None
    if kind is AttributeType.boolean:
        return None if isinstance(value, bool | np.bool_) else f"not a boolean: {value!r}"
    if kind is AttributeType.date:
        ok = isinstance(value, date) and not isinstance(value, datetime)
        return None if ok else f"not a date: {value!r}"
    if kind is AttributeType.datetime:
        return None if isinstance(value, datetime) else f"not a datetime: {value!r}"
    if kind is AttributeType.integer and not isinstance(value, int | np.integer):
        return f"not an integer: {value!r}"
    if not isinstance(value, int | float | np.integer | np.floating) or not np.isfinite(value):
        return f"not a number: {value!r}"
    if attr.min is not None and value < attr.min:
        return f"below {attr.min}: {value}"
    if attr.max is not None and value > attr.max:
        return f"above {attr.max}: {value}"
    return None


def _is_null(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


@pytest.mark.parametrize("code", CODES)
def test_every_attribute_valid_against_its_declaration(code, frames):
    layer = CATALOG.layer(code)
    frame = frames[code]
    assert list(frame.columns) == [a.name for a in layer.attributes] + ["geometry"]
    only_if = PLAN.layers[code].params.get("only_if", {})
    for attr in layer.attributes:
        values = frame[attr.name].tolist()
        nulls = [_is_null(v) for v in values]
        if attr.required:
            assert not any(nulls), f"{attr.name}: required but null"
        elif attr.name not in only_if and (code, attr.name) not in SEMANTIC_NULLS:
            assert sum(nulls) <= 0.1 * len(values), f"{attr.name}: too many nulls"
        problems = [
            p
            for v, null in zip(values, nulls, strict=True)
            if not null
            for p in [_check_value(attr, v)]
            if p
        ]
        assert not problems, f"{attr.name}: {len(problems)} bad values, e.g. {problems[:3]}"


@pytest.mark.parametrize("code", CODES)
def test_natural_keys_unique(code, frames):
    key = list(CATALOG.layer(code).natural_key)
    assert not frames[code].duplicated(subset=key).any()


@pytest.mark.parametrize("code", CODES)
def test_counts_within_a_factor_two_of_target(code, frames, world):
    plan = PLAN.layers[code]
    expected = max(1.0, plan.expected(SCALE))
    if plan.strategy == "town_seats":
        expected = max(expected, len(world.towns))
    assert expected / 2 <= len(frames[code]) <= expected * 2


@pytest.mark.parametrize("code", [c for c in CODES if PLAN.layers[c].strategy == "town_seats"])
def test_town_seat_layers_have_one_per_town(code, chunks, world):
    towns = {chunk.attrs["town_code"] for chunk in chunks[code] if len(chunk)}
    assert towns == {t.code for t in world.towns}


POLYGON_CODES = [c for c in CODES if CATALOG.layer(c).geometry.single.value == "Polygon"]


@pytest.mark.parametrize("code", POLYGON_CODES)
def test_polygons_of_a_layer_do_not_overlap(code, frames):
    frame = frames[code]
    partition = PLAN.layers[code].params.get("partition")
    groups = frame.groupby(partition).indices.values() if partition else [np.arange(len(frame))]
    for rows in groups:
        geoms = frame.geometry.to_numpy()[rows]
        left, right = STRtree(geoms).query(geoms, predicate="intersects")
        pairs = left < right
        shared = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]]))
        assert (shared < 0.01).all(), f"{(shared >= 0.01).sum()} overlapping pairs"


def test_same_seed_same_layers(chunks, tmp_path_factory):
    again = _run(
        World(
            catalog=CATALOG,
            scale=SCALE,
            seed=SEED,
            spill_dir=tmp_path_factory.mktemp("spill_again"),
        )
    )
    for code in CODES:
        first = pd.concat(chunks[code], ignore_index=True)
        second = pd.concat(again[code], ignore_index=True)
        assert (
            shapely.to_wkb(first.geometry.to_numpy()).tolist()
            == shapely.to_wkb(second.geometry.to_numpy()).tolist()
        ), code
        pd.testing.assert_frame_equal(
            first.drop(columns="geometry"), second.drop(columns="geometry"), obj=code
        )


def test_cross_references_hold(frames):
    rented = set(frames["rental_housing"]["house_code"])
    assert rented and rented <= set(frames["real_housing"]["code"])
    shelters = set(frames["emergency_shelter"]["code"])
    assert set(frames["evacuation_route"]["shelter_code"]) <= shelters
    assert (
        frames["household"]["members"].sum()
        == frames["population_building_stats"]["residents"].sum()
    )
    stats = frames["population_building_stats"]
    assert (stats["registered"] + stats["migrants"] + stats["overseas"] == stats["residents"]).all()
    parts = frames["building_part"]
    assert (parts["code"].str[:19] == parts["building_code"]).all()


def test_facilities_named_after_where_they_are(frames, world):
    villages = {short_name(v.name) for v in world.admin.villages}
    clinics = frames["clinic"]
    village_clinics = clinics[clinics["kind"] == "village_clinic"]["name"]
    assert all(any(name.startswith(v) for v in villages) for name in village_clinics)
    hydrants = frames["fire_hydrant"]
    assert hydrants["road_name"].isin({r.name for r in world.roads}).all()
    assert frames["school"]["address"].str.startswith("广东省广州市花都区").all()


def test_code_serials_last_at_scale_ten():
    """Every serial-code format has room for ten times its scale-1 count (40 % in one town)."""
    for code in CODES:
        plan = PLAN.layers[code]
        formats = dict(plan.params.get("codes", {}))
        if "code" in plan.params:
            formats["key"] = plan.params["code"]
        for fmt in formats.values():
            match = re.search(r"\{serial(?::(\d+))?\}", fmt)
            width = int(match.group(1)) if match and match.group(1) else 6
            count = plan.expected(10) * (0.4 if "{town" in fmt or "{village" in fmt else 1.0)
            assert count < 10**width, f"{code}: {fmt} overflows at scale 10"


def test_allocate_is_exact_and_keeps_minimum():
    counts = allocate(7, [1.0, 0.0, 3.0], minimum=1)
    assert counts.sum() == 7 and counts.min() >= 1 and counts[2] > counts[0]
    assert allocate(5, [0.0, 0.0]).sum() == 5


def test_credit_codes_carry_valid_check_characters():
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    codes = credit_codes(np.arange(1, 200), ["enterprise"] * 199)
    assert len(set(codes)) == 199
    for code in codes:
        total = sum(chars.index(c) * w for c, w in zip(code[:17], weights, strict=True))
        assert code[17] == chars[(31 - total % 31) % 31]


def test_names_romanized_and_numbered_in_chinese():
    assert romanize("新华二路") == "Xinhua Er Lu"
    assert romanize("凤凰广场") == "Fenghuang Guangchang"
    assert romanize("未知路") is None
    assert [chinese_number(k) for k in (2, 10, 12, 20, 105)] == [
        "二",
        "十",
        "十二",
        "二十",
        "一百零五",
    ]
