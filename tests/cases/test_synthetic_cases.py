"""The synthetic case stream: volume, rhythm, dialects, duplicates, places and determinism."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, datetime

import numpy as np
import pytest
from pydantic import ValidationError
from shapely.geometry import box

from cases.rules import load_routing_rules
from cases.sources import PAYLOAD_MODELS, SourceSystem, parse_payload
from cases.synthetic import ITEM_WEIGHTS, AddressPoint, generate_cases, write_case_stream
from schemas.errors import InvalidInput
from schemas.geodesy import geodesic_distance_m

TOWNS = (("440114001", "新华街道"), ("440114002", "花城街道"), ("440114109", "狮岭镇"))
ROADS = ("迎宾大道", "公益路", "建设北街", "新街大街", "花山公路", "天贵路")
FULLWIDTH = re.compile("[０-９]")


def _world(seed: int = 3):
    """Return addresses, assets and villages of a small made-up piece of Huadu."""
    rng = np.random.default_rng(seed)
    addresses, villages = [], {}
    for t, (town_code, town_name) in enumerate(TOWNS):
        for v, size in enumerate((500, 250, 60)):
            code = f"{town_code}{v + 1:03d}"
            x0, y0 = 113.15 + 0.06 * t + 0.02 * v, 23.35 + 0.01 * v
            villages[code] = box(x0, y0, x0 + 0.02, y0 + 0.02)
            centre = (x0 + 0.01, y0 + 0.01)
            for j in range(size):
                road = ROADS[j % len(ROADS)]
                number = f"{j // len(ROADS) + 1}号"
                lon = float(np.clip(rng.normal(centre[0], 0.004), x0, x0 + 0.02))
                lat = float(np.clip(rng.normal(centre[1], 0.004), y0, y0 + 0.02))
                text = f"广东省广州市花都区{town_name}{road}{number}"
                addresses.append(
                    AddressPoint(text, road, number, town_code, town_name, code, lon, lat)
                )
    assets = {
        code: (rng.uniform(113.15, 113.33, 400), rng.uniform(23.35, 23.39, 400))
        for code in load_routing_rules().asset_layer_codes
    }
    return addresses, assets, villages


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.fixture(scope="module")
def stream(world):
    addresses, assets, villages = world
    return list(generate_cases(addresses=addresses, assets=assets, villages=villages, seed=7))


@pytest.fixture(scope="module")
def parsed(stream):
    return [parse_payload(case.system, case.payload) for case in stream]


def test_default_volume_and_order(stream):
    assert 10_800 <= len(stream) <= 13_200
    times = [datetime.fromisoformat(c.truth.reported_at) for c in stream]
    assert times == sorted(times)
    assert times[0].date() >= date(2026, 1, 1)
    assert (times[-1].date() - date(2026, 1, 1)).days <= 182
    assert len({c.truth.report_id for c in stream}) == len(stream)


def test_every_payload_validates_and_every_system_present(stream, parsed):
    assert {c.system for c in stream} == set(SourceSystem)
    for case, model in zip(stream, parsed, strict=True):
        assert isinstance(model, PAYLOAD_MODELS[case.system])
        truth_at = datetime.fromisoformat(case.truth.reported_at)
        assert abs((model.reported_at() - truth_at).total_seconds()) < 60, case.system
    shapes = {c.system: frozenset(c.payload) for c in stream}
    assert len(set(shapes.values())) == len(SourceSystem)  # six different dialects


def test_daily_and_weekly_rhythm(stream):
    times = [datetime.fromisoformat(c.truth.reported_at) for c in stream]
    hours = Counter(t.hour for t in times)
    weekdays = Counter(t.weekday() for t in times)
    assert hours[10] > 4 * hours[3]
    assert hours[15] > 2 * hours[1]
    assert weekdays[1] > 1.2 * weekdays[6]  # Tuesday over Sunday


def test_item_frequencies(stream):
    rules = load_routing_rules()
    assert set(ITEM_WEIGHTS) == {i.code for i in rules.items}
    by_category = Counter(c.truth.item[:2] for c in stream)
    top_two = {code for code, _ in by_category.most_common(2)}
    assert top_two == {"SO", "CA"}
    assert by_category["EM"] < 0.02 * len(stream)
    assert len({c.truth.item for c in stream}) == 36


def test_duplicates_about_five_percent_through_other_systems(stream, parsed):
    first = {c.truth.incident_id: c for c in stream if c.truth.duplicate_of is None}
    repeats = [c for c in stream if c.truth.duplicate_of is not None]
    assert 0.04 <= len(repeats) / len(first) <= 0.06
    for case in repeats:
        original = first[case.truth.duplicate_of]
        assert case.system != original.system
        assert case.truth.item == original.truth.item
        assert (case.truth.lon, case.truth.lat) == (original.truth.lon, original.truth.lat)
        delay = datetime.fromisoformat(case.truth.reported_at) - datetime.fromisoformat(
            original.truth.reported_at
        )
        assert 0 < delay.total_seconds() <= 8 * 3600 + 60


def test_asset_items_happen_near_an_asset(stream, world):
    _, assets, _ = world
    rules = load_routing_rules()
    checked = 0
    for case in stream:
        layers = rules.item(case.truth.item).asset_layers
        if not layers:
            continue
        lon = np.concatenate([assets[code][0] for code in layers])
        lat = np.concatenate([assets[code][1] for code in layers])
        assert geodesic_distance_m(case.truth.lon, case.truth.lat, lon, lat).min() <= 30.0
        checked += 1
    assert checked > 1_000


def test_reported_points_keep_their_datum(stream, parsed):
    distances = defaultdict(list)
    for case, model in zip(stream, parsed, strict=True):
        position = model.position()
        if position is None:
            continue
        assert case.truth.reported_crs == position.crs.canonical
        d = float(geodesic_distance_m(position.lon, position.lat, case.truth.lon, case.truth.lat))
        distances[position.crs.canonical].append(d)
    assert set(distances) == {"gcj02", "EPSG:4326", "EPSG:4490"}
    assert 300 <= min(distances["gcj02"]) and max(distances["gcj02"]) <= 700
    assert max(distances["EPSG:4326"] + distances["EPSG:4490"]) <= 60
    open311 = [m for m in parsed if m.system is SourceSystem.open311]
    assert open311 and all(m.position().crs.canonical == "gcj02" for m in open311)
    hotline = [m for m in parsed if m.system is SourceSystem.hotline_12345]
    assert hotline and all(m.position() is None for m in hotline)


def test_address_texts_name_real_numbers_with_variants(stream, parsed, world):
    addresses = {a.address: a for a in world[0]}
    texts = []
    for case, model in zip(stream, parsed, strict=True):
        text = model.address_text()
        if case.truth.address_key is None:
            continue
        assert text is not None
        key = addresses[case.truth.address_key]
        stem = key.road.removesuffix("大道").removesuffix("大街").removesuffix("公路")
        assert stem in text
        texts.append(text)
    assert len(texts) > 3_000

    def share(cond: Callable[[str], bool]) -> float:
        return sum(map(cond, texts)) / len(texts)

    assert 0.15 < share(lambda t: t.startswith("广东省广州市花都区")) < 0.6
    assert share(lambda t: "花都区" not in t) > 0.1
    assert share(lambda t: bool(FULLWIDTH.search(t))) > 0.03
    assert share(lambda t: any(s in t for s in ("号之一", "号-1", "号附1"))) > 0.01
    assert share(lambda t: not any(town in t for _, town in TOWNS)) > 0.05


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, world):
    addresses, assets, villages = world
    outputs = []
    for run, seed in enumerate((11, 11, 12)):
        out = tmp_path / f"run{run}" / "cases.jsonl"
        count = write_case_stream(
            generate_cases(
                addresses=addresses, assets=assets, villages=villages, days=21, seed=seed
            ),
            out,
        )
        truth = out.with_name("cases.jsonl.truth.jsonl")
        lines = out.read_bytes()
        assert count == lines.count(b"\n") == truth.read_bytes().count(b"\n") > 1_000
        outputs.append((lines, truth.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] != outputs[2][0] and outputs[0][1] != outputs[2][1]


def test_per_day_and_missing_assets(world):
    addresses, _, villages = world
    cases = list(
        generate_cases(addresses=addresses, assets={}, villages=villages, days=10, per_day=30)
    )
    assert 240 <= len(cases) <= 360
    for case in cases:
        parse_payload(case.system, case.payload)


@pytest.mark.parametrize(
    "kwargs", [{"days": 0}, {"per_day": -1.0}, {"seed": -1}, {"addresses": []}]
)
def test_bad_arguments_are_refused(world, kwargs):
    addresses, assets, villages = world
    arguments = {"addresses": addresses, "assets": assets, "villages": villages} | kwargs
    with pytest.raises(InvalidInput):
        next(generate_cases(**arguments))


def test_contracts_refuse_what_they_must(stream):
    samples = {c.system: c.payload for c in stream}
    hotline = samples[SourceSystem.hotline_12345] | {"created_at": "2026-01-05T09:12:33"}
    city = {k: v for k, v in samples[SourceSystem.city_management].items() if k not in {"zb", "dz"}}
    grid = samples[SourceSystem.community_grid]
    grid = grid | {"location": grid["location"] | {"coordType": "bd09"}}
    open311 = samples[SourceSystem.open311] | {"attribute[datum]": "wgs84", "extra": "x"}
    for system, payload in (
        (SourceSystem.hotline_12345, hotline),
        (SourceSystem.city_management, city),
        (SourceSystem.community_grid, grid),
        (SourceSystem.open311, open311),
    ):
        with pytest.raises(ValidationError):
            parse_payload(system, payload)
