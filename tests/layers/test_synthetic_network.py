"""Roads, standard addresses, buildings, population and street components of the generator."""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely

from layers.synthetic.addresses import town_addresses
from layers.synthetic.admin import build_admin
from layers.synthetic.naming import id_check_char
from layers.synthetic.roads import build_roads
from layers.synthetic.utilities import Serials, manhole_covers, street_lamps

SEED = 7


@pytest.fixture(scope="module")
def admin():
    return build_admin(SEED)


@pytest.fixture(scope="module")
def roads(admin):
    return build_roads(admin, 1.0, SEED)


@pytest.fixture(scope="module")
def urban_town(admin):
    return next(t for t in admin.towns if t.code == "440114003")  # 秀全街道, small and dense


@pytest.fixture(scope="module")
def addresses(admin, roads, urban_town):
    town_roads = [r for r in roads if r.town_code == urban_town.code]
    return town_addresses(
        urban_town,
        list(admin.villages_of(urban_town.code)),
        town_roads,
        scale=1.0,
        rng=np.random.default_rng(SEED),
    )


def test_road_network_is_huadu_sized_and_denser_in_the_south(admin, roads):
    total_km = sum(r.length_m for r in roads) / 1000
    assert 3000 < total_km < 5000
    km_per_km2 = {}
    for town in admin.towns:
        km = sum(r.length_m for r in roads if r.town_code == town.code) / 1000
        km_per_km2[town.code] = km / town.area_km2
    assert km_per_km2["440114001"] > 2 * km_per_km2["440114103"]  # 新华 vs 梯面


def test_roads_inside_their_town_with_unique_codes(admin, roads):
    codes = [r.code for r in roads]
    assert len(codes) == len(set(codes))
    for road in roads[::25]:
        assert re.fullmatch(r"440114\d{8}", road.code)
        assert road.code.startswith(road.town_code)
        town = admin[road.town_code].geometry
        assert road.geometry.difference(town.buffer(0.01)).length < 1e-6


def test_house_numbers_odd_left_even_right_increasing(addresses, roads):
    hn = addresses.house_numbers
    assert len(hn) > 1000
    numbers = hn["number"].str.rstrip("号").astype(int)
    by_code = {r.code: r for r in roads}
    road_code = hn["address_code"].str[:14]
    checked = 0
    for code, group in list(hn.assign(n=numbers).groupby(road_code))[:30]:
        line = by_code[code].geometry
        assert (group["road_name"] == by_code[code].name).all()
        for parity in (0, 1):
            side = group[group.n % 2 == parity].sort_values("n")
            if len(side) < 3:
                continue
            along = np.array([line.project(p) for p in side.geometry])
            assert np.all(np.diff(along) > -1.0), code
            here = [line.interpolate(d) for d in along]
            ahead = [line.interpolate(d + 1.0) for d in along]
            cross = [
                (a.x - h.x) * (p.y - h.y) - (a.y - h.y) * (p.x - h.x)
                for h, a, p in zip(here, ahead, side.geometry, strict=True)
            ]
            left = np.mean(np.asarray(cross) > 0)
            assert left > 0.9 if parity == 1 else left < 0.1, code
            checked += 1
    assert checked > 10


def test_address_text_and_codes(addresses):
    hn = addresses.house_numbers
    assert hn["address"].str.startswith("广东省广州市花都区秀全街道").all()
    assert hn["address_code"].str.fullmatch(r"440114\d{14}").all()
    assert hn["address_code"].is_unique
    assert (hn["address"] == "广东省广州市花都区秀全街道" + hn["road_name"] + hn["number"]).all()


def test_buildings_behind_numbers_and_not_overlapping(addresses):
    buildings = addresses.buildings
    hn = addresses.house_numbers.set_index("address_code")
    assert len(buildings) > 0.6 * len(hn)
    points = hn.loc[buildings["address_code"], "geometry"].to_numpy()
    distance = shapely.distance(buildings.geometry.to_numpy(), points)
    assert np.all(distance < 15) and np.all(distance > 0)
    tree = shapely.STRtree(buildings.geometry.to_numpy())
    left, right = tree.query(buildings.geometry.to_numpy(), predicate="overlaps")
    assert np.all(left == right)


def test_population_records_well_formed(addresses):
    pop = addresses.population
    assert (pop["residents"] > 0).all()
    assert pop["id_number"].str.fullmatch(r"\d{17}[\dX]").all()
    assert all(id_check_char(i[:17]) == i[17] for i in pop["id_number"])
    assert pop["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert set(pop["building_code"]) <= set(addresses.buildings["code"])


def test_street_lamps_every_30_to_40_m_and_covers_of_every_kind(roads, urban_town):
    town_roads = [r for r in roads if r.town_code == urban_town.code]
    serials = Serials()
    lamps = street_lamps(town_roads, scale=1.0, serials=serials, rng=np.random.default_rng(1))
    lit_km = sum(r.length_m for r in town_roads if r.lit) / 1000
    assert 1000 / 41 < len(lamps) / lit_km < 1000 / 29
    covers = manhole_covers(town_roads, scale=1.0, serials=serials, rng=np.random.default_rng(2))
    assert set(covers["kind"]) == {
        "water_supply",
        "sewage",
        "rainwater",
        "power",
        "telecom",
        "gas",
        "heat",
    }
    codes = np.concatenate([lamps["code"].to_numpy(), covers["code"].to_numpy()])
    assert len(set(codes)) == codes.size
    assert all(re.fullmatch(r"44011401\d{8}", c) for c in codes[::97])


def test_same_seed_same_network_other_seed_differs(admin):
    a = build_roads(admin, 0.05, SEED)
    b = build_roads(admin, 0.05, SEED)
    c = build_roads(admin, 0.05, SEED + 1)
    assert [r.geometry.wkb for r in a] == [r.geometry.wkb for r in b]
    assert [r.geometry.wkb for r in a] != [r.geometry.wkb for r in c]


def test_plan_covers_exactly_the_packaged_catalog():
    from layers.registry import load_catalog
    from layers.synthetic.plan import default_plan
    from layers.synthetic.strategies import STRATEGIES

    catalog = load_catalog()
    plan = default_plan()
    plan.check(catalog, set(STRATEGIES) | {"raster"}, strict=True)
    assert set(plan.layers) == {layer.code for layer in catalog.layers}
