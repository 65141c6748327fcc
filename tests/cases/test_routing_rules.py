"""The routing rules (13 categories / 36 items) and the working calendar, as reviewed data."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cases.rules import (
    CALENDAR_FILE,
    ROUTING_FILE,
    DeadlineUnit,
    Level,
    check_against_catalog,
    load_calendar,
    load_routing_rules,
)
from layers.registry import load_catalog
from schemas.errors import CatalogError


@pytest.fixture(scope="module")
def rules():
    return load_routing_rules()


@pytest.fixture(scope="module")
def calendar():
    return load_calendar()


def _raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_thirteen_categories_thirty_six_items_with_unique_codes(rules):
    categories = [c.code for c in rules.categories]
    items = [i.code for i in rules.items]
    assert len(categories) == len(set(categories)) == 13
    assert len(items) == len(set(items)) == 36
    for item in rules.items:
        assert item.code.startswith(item.category)
    assert {i.category for i in rules.items} == set(categories)


def test_asset_layers_exist_in_the_catalog(rules):
    catalog = load_catalog()
    with_assets = [item for item in rules.items if item.asset_layers]
    assert len(with_assets) >= 8
    missing = sorted({c for c in rules.asset_layer_codes if not catalog.has_layer(c)})
    assert not missing, f"asset layers not in the catalog: {missing}"
    check_against_catalog(rules, catalog)
    kinds = set(catalog.layer("manhole_cover").attribute("kind").enum_values)
    filtered = [i for i in rules.items if i.asset_filter]
    assert filtered and all(set(i.asset_filter["kind"]) <= kinds for i in filtered)
    assert rules.item("PU01").asset_layers == ("street_lamp",)
    assert {"drainage_pipe", "outfall"} <= set(rules.item("WF01").asset_layers)


def test_departments_levels_and_deadlines(rules):
    for item in rules.items:
        assert item.lead_department != item.fallback_department, item.code
        assert item.deadline.amount > 0
        assert item.filing_condition and item.closing_condition
        if item.level is Level.village:
            assert item.lead_department == "村(居)委会", item.code
    assert {i.level for i in rules.items} == set(Level)
    assert {i.deadline.unit for i in rules.items} == set(DeadlineUnit)
    emergencies = rules.items_in("EM")
    assert emergencies and all(i.deadline.unit is DeadlineUnit.natural_hours for i in emergencies)
    assert max(i.duplicate_radius_m for i in rules.items) == 1000
    assert rules.item("SO01").duplicate_radius_m == 250


def test_check_against_catalog_names_item_and_field(rules):
    catalog = load_catalog()
    bad = rules.model_copy(
        update={
            "items": tuple(
                i.model_copy(update={"asset_layers": ("no_such_layer",)}) if i.code == "PU01" else i
                for i in rules.items
            )
        }
    )
    with pytest.raises(CatalogError, match=r"item PU01, field asset_layers: 'no_such_layer'"):
        check_against_catalog(bad, catalog)


def _edit_item(data: dict[str, Any], target: str, /, **changes: Any) -> dict[str, Any]:
    for item in data["items"]:
        if item["code"] == target:
            item.update(changes)
    return data


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (
            lambda d: _edit_item(d, "SO01", fallback_department="镇(街)综合行政执法办公室"),
            r"routing\.yaml: item SO01: fallback_department must differ",
        ),
        (
            lambda d: _edit_item(d, "CA01", deadline={"amount": 0, "unit": "working_hours"}),
            r"routing\.yaml: item CA01, field deadline, field amount: .*greater than 0",
        ),
        (
            lambda d: _edit_item(d, "PU02", deadline={"amount": 2, "unit": "fortnights"}),
            r"item PU02, field deadline, field unit",
        ),
        (
            lambda d: _edit_item(d, "EE02", category="XX", code="XX02"),
            r"item XX02, field category: unknown 'XX'",
        ),
        (lambda d: _edit_item(d, "CS02", code="CS01"), r"item codes repeat: CS01"),
        (lambda d: {**d, "items": d["items"][:-1]}, r"expected 36 items, found 35"),
        (lambda d: {**d, "categories": d["categories"][:-1]}, r"expected 13 categories"),
        (lambda d: _edit_item(d, "SO03", colour="red"), r"item SO03, field colour"),
    ],
)
def test_malformed_rules_name_file_item_and_field(tmp_path, edit, pattern):
    path = _write(tmp_path, "routing.yaml", edit(_raw(ROUTING_FILE)))
    with pytest.raises(CatalogError, match=pattern):
        load_routing_rules(path)


def test_unreadable_rules_file(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text("items: [unclosed", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"routing\.yaml: cannot be read as YAML"):
        load_routing_rules(path)
    path.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"expected a mapping"):
        load_routing_rules(path)


def test_calendar_2026_holidays_and_makeup_days(calendar):
    year = calendar.year(2026)
    assert not year.provisional and "2026" in (year.source or "")
    names = {h.name: (h.start, h.end) for h in year.holidays}
    assert names["春节"] == (date(2026, 2, 15), date(2026, 2, 23))
    assert names["国庆节"] == (date(2026, 10, 1), date(2026, 10, 7))
    assert len(names) == 7
    assert len(year.holiday_dates) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    makeup = {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9)}
    assert makeup | {date(2026, 9, 20), date(2026, 10, 10)} == set(year.makeup_workdays)
    for day in makeup:
        assert day.weekday() >= 5 and calendar.is_working_day(day)
    assert not calendar.is_working_day(date(2026, 2, 17))  # a Tuesday of the Spring Festival
    assert not calendar.is_working_day(date(2026, 3, 7))  # an ordinary Saturday
    assert calendar.is_working_day(date(2026, 3, 10))  # an ordinary Tuesday
    with pytest.raises(KeyError):
        calendar.is_working_day(date(2030, 1, 2))


def test_calendar_office_hours_and_provisional_2027(calendar):
    assert calendar.timezone == "Asia/Shanghai"
    spans = [(p.start, p.end) for p in calendar.working_hours]
    assert spans == [(time(8, 30), time(12, 0)), (time(14, 0), time(17, 30))]
    assert calendar.year(2027).provisional
    assert "provisional: true" in CALENDAR_FILE.read_text(encoding="utf-8")
    assert date(2027, 2, 6) in calendar.holidays  # the 2027 Lunar New Year


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (
            lambda d: d["years"][0]["makeup_workdays"].append(date(2026, 3, 4)),
            r"calendar\.yaml: year 2026: make-up working day 2026-03-04 is not on a weekend",
        ),
        (
            lambda d: d["years"][0]["holidays"][1].update(end=date(2026, 2, 1)),
            r"year 2026, holiday 春节: end 2026-02-01 is before start",
        ),
        (lambda d: d.update(timezone="Mars/Olympus"), r"field timezone: unknown time zone"),
        (
            lambda d: d["working_hours"].append({"start": "17:00", "end": "18:00"}),
            r"working hours overlap",
        ),
    ],
)
def test_malformed_calendar_names_file_and_field(tmp_path, edit, pattern):
    data = _raw(CALENDAR_FILE)
    edit(data)
    path = _write(tmp_path, "calendar.yaml", data)
    with pytest.raises(CatalogError, match=pattern):
        load_calendar(path)
