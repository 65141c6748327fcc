"""Bounded memory of the generator: blocks, slices, spilled reads, stock and disk caches."""

from __future__ import annotations

import pickle
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely import STRtree

from layers.registry import load_catalog
from layers.synthetic import cache, sites
from layers.synthetic.addresses import town_address_blocks
from layers.synthetic.blocks import blocks
from layers.synthetic.generate import _sliced
from layers.synthetic.world import World

CATALOG = load_catalog()
SEED = 11


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(catalog=CATALOG, scale=0.05, seed=SEED, spill_dir=tmp_path_factory.mktemp("spill"))


def test_blocks_cover_every_item_once_within_the_limit():
    sizes = np.array([3, 3, 3, 5, 9, 1, 1, 0, 2])
    parts = list(blocks(sizes, limit=6))
    assert [p.start for p in parts] == [0, *(p.stop for p in parts[:-1])]
    assert parts[-1].stop == sizes.size
    for part in parts:
        assert sizes[part].sum() <= 6 or part.stop - part.start == 1  # one oversized item alone
    assert list(blocks(np.zeros(0, dtype=np.int64))) == []


def test_chunks_are_sliced_without_losing_or_reordering_rows():
    frame = gpd.GeoDataFrame(
        {"n": np.arange(25)}, geometry=shapely.points(np.arange(25), np.zeros(25)), crs=4547
    )
    empty = frame.iloc[:0]
    slices = list(_sliced([frame.iloc[:12], empty, frame.iloc[12:]], rows=5))
    assert [len(s) for s in slices] == [5, 5, 2, 0, 5, 5, 3]
    assert np.concatenate([s["n"].to_numpy() for s in slices]).tolist() == list(range(25))


def test_town_addresses_in_blocks_still_number_roads_and_never_overlap(world):
    town = world.towns[0]
    roads = world.roads_of(town.code)
    parts = list(
        town_address_blocks(
            town,
            world.villages_of(town.code),
            roads,
            scale=world.scale,
            rng=np.random.default_rng(SEED),
            block_rows=400,
        )
    )
    assert len(parts) > 2
    codes = np.concatenate([p.house_numbers["address_code"].to_numpy() for p in parts])
    assert len(codes) == len(set(codes))
    road_of = [code[:14] for code in codes]
    changes = [i for i in range(1, len(road_of)) if road_of[i] != road_of[i - 1]]
    assert len(changes) == len(set(road_of)) - 1  # each road's numbers in one run, whole
    for start, stop in zip([0, *changes], [*changes, len(codes)], strict=True):
        run = [int(code[14:]) for code in codes[start:stop]]
        assert run == sorted(run)
    footprints = np.concatenate([p.buildings.geometry.to_numpy() for p in parts])
    left, right = STRtree(footprints).query(footprints, predicate="intersects")
    assert (left == right).all(), "buildings of different blocks overlap"


def test_spilled_files_are_read_back_in_batches(world, monkeypatch):
    monkeypatch.setattr("layers.synthetic.world.SPILL_BATCH_ROWS", 300)
    town = max(world.towns, key=lambda t: t.area_km2)
    batches = list(world.spilled("house_numbers", town))
    whole = world.addresses_of(town).house_numbers
    assert len(batches) > 1 and all(len(b) <= 300 for b in batches)
    assert sum(len(b) for b in batches) == len(whole)
    assert batches[0].crs.to_epsg() == 4547
    last = batches[-1]["address_code"].to_numpy()
    assert (last == whole["address_code"].to_numpy()[-len(last) :]).all()


def test_stock_cache_stays_within_budget_and_reloads_the_same(world, monkeypatch):
    first = {t.code: sites.town_sites(world, t).buildings for t in world.towns}
    monkeypatch.setattr(sites, "STOCK_BUDGET_ROWS", 1)
    world.extras.pop("sites:stock", None)
    for town in world.towns:
        again = sites.town_sites(world, town).buildings
        for name, values in first[town.code].items():
            assert np.array_equal(values, again[name]), (town.code, name)
        held = world.extras["sites:stock"]
        assert len(held) <= 2  # the town asked for, and at most the one before it
    # house numbers and columns come back as well after their stock was dropped
    town = world.towns[0]
    site = sites.town_sites(world, town)
    row = np.array([0])
    assert (
        site.fetch("house_numbers", row, ["address_code"])["address_code"][0]
        == (site.house_numbers["address_code"][0])
    )


def test_disk_cache_returns_what_was_built_and_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    calls: list[int] = []

    def build() -> dict[str, object]:
        calls.append(1)
        return {"geom": shapely.box(0, 0, 1, 1), "array": np.arange(5)}

    made = cache.cached("thing", 3, "x", build)
    again = cache.cached("thing", 3, "x", build)
    other = cache.cached("thing", 4, "x", build)
    assert len(calls) == 2  # seed 3 once, seed 4 once
    assert again["geom"].equals_exact(made["geom"], 0)
    assert np.array_equal(again["array"], made["array"])
    assert other is not again
    entries = sorted(Path(tmp_path).glob("thing-*.pickle"))
    assert len(entries) == 2
    entries[0].write_bytes(b"not a pickle")  # a damaged entry is rebuilt, not trusted
    cache.cached("thing", int(entries[0].name.split("-")[1]), "x", build)
    assert len(calls) == 3
    assert isinstance(pickle.loads(entries[0].read_bytes()), dict)
    cache.cached("thing", 3, "other code", build)  # a new key replaces the entry of seed 3
    assert len(calls) == 4 and len(list(Path(tmp_path).glob("thing-3-*.pickle"))) == 1
    monkeypatch.setenv(cache.ENV, "off")
    assert cache.cache_dir() is None
    cache.cached("thing", 3, "x", build)
    assert len(calls) == 5


def test_admin_from_the_disk_cache_equals_a_fresh_build(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    cold = World(catalog=CATALOG, scale=0.05, seed=SEED, spill_dir=tmp_path / "a").admin
    warm = World(catalog=CATALOG, scale=0.05, seed=SEED, spill_dir=tmp_path / "b").admin
    assert cold is not warm
    assert [d.code for d in cold.villages] == [d.code for d in warm.villages]
    for a, b in zip(cold.villages, warm.villages, strict=True):
        assert a.geometry.equals_exact(b.geometry, 0)
        assert shapely.to_wkb(a.geometry) == shapely.to_wkb(b.geometry)
