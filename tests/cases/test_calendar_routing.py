"""Working-calendar deadlines, and the route of every one of the 36 items."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
import yaml
from dispatch_support import SH

from cases.calendar import (
    add_deadline,
    add_working_days,
    add_working_hours,
    working_time_between,
)
from cases.routing import TOWN_MARK, VILLAGE_MARK, resolve_unit, route
from cases.rules import CALENDAR_FILE, Deadline, DeadlineUnit, Level
from schemas.errors import InvalidInput


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


# --- an independent oracle: count office minutes one by one from the raw YAML -----------------

RAW = yaml.safe_load(CALENDAR_FILE.read_text(encoding="utf-8"))
HOLIDAYS = {
    date.fromordinal(n)
    for y in RAW["years"]
    for h in y["holidays"]
    for n in range(h["start"].toordinal(), h["end"].toordinal() + 1)
}
MAKEUP = {d for y in RAW["years"] for d in y["makeup_workdays"]}
PERIODS = [
    (time.fromisoformat(p["start"]), time.fromisoformat(p["end"])) for p in RAW["working_hours"]
]


def oracle(start: datetime, minutes: int) -> datetime:
    """Step minute by minute; return the end of the ``minutes``-th office minute."""
    t = start.astimezone(SH).replace(second=0, microsecond=0)
    while minutes:
        day = t.date()
        working = day in MAKEUP or (day.weekday() < 5 and day not in HOLIDAYS)
        if working and any(a <= t.time() < b for a, b in PERIODS):
            minutes -= 1
        t += timedelta(minutes=1)
    return t


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (at(2026, 3, 6, 16), 4, at(2026, 3, 9, 11)),  # Friday → over the weekend → Monday
        (at(2026, 3, 9, 9), 3, at(2026, 3, 9, 12)),  # ends at the end of a period, not 14:00
        (at(2026, 3, 9, 12, 30), 1, at(2026, 3, 9, 15)),  # lunch break: counting starts 14:00
        (at(2026, 2, 14, 16), 2, at(2026, 2, 24, 9)),  # make-up Saturday, then 春节 holiday
        (at(2026, 2, 27, 17), 1, at(2026, 2, 28, 9)),  # Friday → make-up Saturday 2026-02-28
        (at(2026, 9, 30, 17), 2, at(2026, 10, 8, 10)),  # 国庆节 1–7 October
    ],
)
def test_working_hours(calendar, start, hours, expected):
    assert add_working_hours(calendar, start, hours) == expected
    assert oracle(start, hours * 60) == expected


def test_working_days_same_clock_time_or_end_of_day(calendar):
    # Friday 13 Feb 2026 16:00 + 1 working day: the make-up Saturday 14 Feb counts.
    assert add_working_days(calendar, at(2026, 2, 13, 16), 1) == at(2026, 2, 14, 16)
    # + 2 working days jumps the whole Spring Festival (15–23 Feb) to Tuesday 24 Feb.
    assert add_working_days(calendar, at(2026, 2, 13, 16), 2) == at(2026, 2, 24, 16)
    # From a Saturday that is not a make-up day: the end of the first working day after.
    assert add_working_days(calendar, at(2026, 3, 7, 10), 1) == at(2026, 3, 9, 17, 30)
    assert oracle(at(2026, 2, 13, 16), 2 * 7 * 60) == at(2026, 2, 24, 16)


def test_natural_hours_ignore_the_calendar(calendar):
    deadline = Deadline(amount=2, unit=DeadlineUnit.natural_hours)
    assert add_deadline(calendar, at(2026, 2, 14, 23), deadline) == at(2026, 2, 15, 1)


def test_any_zone_in_same_instant_out(calendar):
    utc = at(2026, 3, 6, 16).astimezone(UTC)
    result = add_working_hours(calendar, utc, 4)
    assert result == at(2026, 3, 9, 11) and result.utcoffset() == timedelta(hours=8)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        add_working_hours(calendar, datetime(2026, 3, 6, 16), 1)


def test_working_time_between_inverts_adding(calendar):
    start = at(2026, 2, 12, 10, 15)
    for hours in (1, 5, 9, 20, 33):
        end = add_working_hours(calendar, start, hours)
        assert working_time_between(calendar, start, end) == timedelta(hours=hours)


def test_uncovered_year_falls_back_to_weekends(calendar):
    # 2030 is not in calendar.yaml: Friday 16:00 + 2 h → Monday 09:00 (weekend rule only).
    assert add_working_hours(calendar, at(2030, 3, 1, 16), 2) == at(2030, 3, 4, 9)


# --- routing ---------------------------------------------------------------------------------

VILLAGE, TOWN = "新街村委会", "新华街道"


def expected_unit(name: str) -> str:
    return name.replace(VILLAGE_MARK, VILLAGE).replace(TOWN_MARK, TOWN)


def test_all_36_items_route(rules, calendar):
    start = at(2026, 3, 6, 16)  # a Friday afternoon: every limit crosses a weekend or not
    routed = {}
    for item in rules.items:
        r = route(
            rules, item.code, calendar=calendar, start=start, town_name=TOWN, village_name=VILLAGE
        )
        routed[item.code] = r
        assert r.level is item.level and r.category_code == item.category
        assert r.department == item.lead_department
        assert r.responsible_unit == expected_unit(item.lead_department)
        assert r.fallback_department == expected_unit(item.fallback_department)
        assert "(" not in r.responsible_unit and "(" not in r.fallback_department
        amount, unit = item.deadline.amount, item.deadline.unit
        if unit is DeadlineUnit.natural_hours:
            assert r.deadline == start + timedelta(hours=amount)
        else:
            minutes = amount * 60 * (7 if unit is DeadlineUnit.working_days else 1)
            assert r.deadline == oracle(start, minutes), item.code
        assert r.rule_version == rules.version
    assert len(routed) == 36
    assert routed["CA01"].responsible_unit == "新街村委会"  # village level → the village
    assert routed["CA03"].responsible_unit == "新华街道综合行政执法办公室"  # town level
    assert routed["PU02"].responsible_unit == "区水务局"  # district level, as written
    assert routed["CA01"].deadline == at(2026, 3, 9, 8, 30) + timedelta(minutes=30)
    assert {r.level for r in routed.values()} == set(Level)


def test_units_stay_unresolved_without_a_place(rules, calendar):
    r = route(rules, "CA01", calendar=calendar, start=at(2026, 3, 2, 9))
    assert r.responsible_unit is None and r.fallback_department is None
    assert r.department == VILLAGE_MARK
    d = route(rules, "PU01", calendar=calendar, start=at(2026, 3, 2, 9))
    assert d.responsible_unit == "区城市管理和综合执法局" and d.fallback_department is None
    assert resolve_unit("镇（街）应急管理办公室", town_name="狮岭镇", village_name=None) == (
        "狮岭镇应急管理办公室"
    )
    with pytest.raises(InvalidInput, match="unknown item"):
        route(rules, "ZZ99", calendar=calendar, start=at(2026, 3, 2, 9))
