"""Geocoding Chinese address text against the house-number layer."""

from __future__ import annotations

import pytest

from layers.geocode import (
    RoadAliases,
    build_gazetteer,
    clean,
    geocode,
    parse_address,
    parse_number,
)

TOWNS = {"新华街道": "440114001", "狮岭镇": "440114109"}


@pytest.mark.parametrize(
    "text",
    [
        "广东省广州市花都区新华街道迎宾大道12号",
        "广州市花都区新华街道迎宾大道12号",
        "花都区新华街道迎宾大道12号",
        "新华街道迎宾大道12号",
        "新华街道 迎宾大道 １２号",
        "新华街道迎宾大道１２号",
    ],
)
def test_variants_of_one_address_are_exact(db, catalog, district, text):
    house = district.house("迎宾大道", "12号")
    with db.connect() as conn:
        found = geocode(conn, catalog, text)
    assert found is not None
    assert (found.address_code, found.lon, found.lat) == (house.address_code, house.lon, house.lat)
    assert found.confidence == 1.0 and found.method == "exact"


@pytest.mark.parametrize(
    ("text", "confidence"),
    [
        ("广东省广州市花都区新华街道迎宾大道12号之一", 1.0),
        ("新华街道迎宾大道12号-1", 1.0),
        ("新华街道迎宾大道12号附1", 1.0),
        ("新华街道迎宾大道12-1号", 1.0),
        ("新华街道迎宾大道１２号之１", 1.0),
        ("迎宾大道12号之一", 0.8),
        ("新华街道迎宾大道12号之一旁边", 0.9),
    ],
)
def test_sub_numbers_are_one_sub_number(db, catalog, district, text, confidence):
    house = district.house("迎宾大道", "12号之一")
    with db.connect() as conn:
        found = geocode(conn, catalog, text)
    assert found is not None and found.address_code == house.address_code
    assert (found.lon, found.lat) == (house.lon, house.lat)
    assert found.confidence == confidence


def test_confidence_tiers(db, catalog, district):
    with db.connect() as conn:
        alias = geocode(conn, catalog, "新华街道迎宾路7号")  # 迎宾大道 written 迎宾路
        no_town = geocode(conn, catalog, "迎宾大道7号")
        hinted = geocode(conn, catalog, "迎宾大道7号", town_hint="新华街道")
        hinted_code = geocode(conn, catalog, "迎宾大道7号", town_hint="440114001201")
        near_words = geocode(conn, catalog, "花都区新华街道迎宾大道7号附近")
        unknown_sub = geocode(conn, catalog, "新华街道迎宾大道7号之二")  # only 7号 exists
    seven = district.house("迎宾大道", "7号")
    for found, confidence in (
        (alias, 0.9),
        (no_town, 0.8),
        (hinted, 0.9),
        (hinted_code, 0.9),
        (near_words, 0.9),
        (unknown_sub, 0.9),
    ):
        assert found is not None and found.address_code == seven.address_code
        assert found.confidence == confidence


def test_same_road_and_number_in_two_towns_needs_the_town(db, catalog, district):
    with db.connect() as conn:
        ambiguous = geocode(conn, catalog, "公益路8号")
        xinhua = geocode(conn, catalog, "新华街道公益路8号")
        shiling = geocode(conn, catalog, "公益路8号", town_hint="狮岭镇")
    assert ambiguous is None
    assert xinhua is not None and xinhua.town_code == "440114001" and xinhua.confidence == 1.0
    assert shiling is not None and shiling.town_code == "440114109"
    assert (shiling.lon, shiling.lat) == (113.205, 23.405)


def test_nearest_number_on_the_same_road(db, catalog, district):
    with db.connect() as conn:
        nine = geocode(conn, catalog, "狮岭镇建设北街9号")  # 7 (same side) beats 10
        eight = geocode(conn, catalog, "狮岭镇建设北街8号")  # 10 (even side) beats 7
        far = geocode(conn, catalog, "狮岭镇建设北街30号")  # nothing within 4 numbers
    assert nine is not None and nine.confidence == 0.5 and nine.method == "nearest"
    assert nine.address_code == district.house("建设北街", "7号", "440114109").address_code
    assert eight is not None
    assert eight.address_code == district.house("建设北街", "10号", "440114109").address_code
    assert far is None


@pytest.mark.parametrize(
    "text", ["", "   ", "随便写的地址", "迎宾大道", "新华街道某某路12号", "12号", "!!!"]
)
def test_nonsense_is_none(db, catalog, text):
    with db.connect() as conn:
        assert geocode(conn, catalog, text) is None


def test_normalisation_pieces():
    assert clean("广东省 广州市，花都区（新华街道）迎宾大道１２号") == "新华街道迎宾大道12号"
    assert parse_number("12号之一") == (12, 1, 5)
    assert parse_number("12号-3") == (12, 3, 5)
    assert parse_number("12号附近") == (12, None, 3)
    assert parse_number("15号之十二")[:2] == (15, 12)
    assert parse_number("号") is None
    gaz = build_gazetteer(
        TOWNS,
        ["迎宾大道", "迎宾路", "107国道"],
        RoadAliases(suffixes=(("路", "大道"),), names={"一零七国道": "107国道"}),
    )
    literal = parse_address("新华街道迎宾路3号", gaz)
    assert literal is not None and literal.road == "迎宾路" and literal.literal_road
    numbered = parse_address("一零七国道12号", gaz)
    assert numbered is not None and (numbered.road, numbered.number) == ("107国道", 12)
    assert not numbered.literal_road
    assert parse_address("107国道88号", gaz).number == 88  # digits in the road name
