"""Pydantic models of the routing rules (13 categories / 36 items) and the working calendar.

The rules are reviewed data in ``cases/rules/*.yaml``; these models are the contract those
files must satisfy. Nothing here computes deadlines or routes cases: that is ``cases.routing``.
"""

from __future__ import annotations

import functools
from datetime import date, time
from enum import StrEnum
from typing import Annotated, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.catalog import CODE_RE, FIELD_RE

#: The mechanism's fixed shape: 13 categories, 36 items (令行禁止、有呼必应).
CATEGORY_COUNT: Final = 13
ITEM_COUNT: Final = 36
CATEGORY_CODE_RE: Final = r"^[A-Z]{2}$"
ITEM_CODE_RE: Final = r"^[A-Z]{2}[0-9]{2}$"

Text = Annotated[str, Field(min_length=1, max_length=200)]
LayerCode = Annotated[str, Field(pattern=CODE_RE)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Level(StrEnum):
    """The level that handles an item: village/community, town/subdistrict or district."""

    village = "village"
    town = "town"
    district = "district"


class DeadlineUnit(StrEnum):
    """How a handling time limit is counted."""

    working_hours = "working_hours"
    working_days = "working_days"
    natural_hours = "natural_hours"  # round the clock: emergencies


class Weekday(StrEnum):
    """A day of the week, named in English."""

    monday = "monday"
    tuesday = "tuesday"
    wednesday = "wednesday"
    thursday = "thursday"
    friday = "friday"
    saturday = "saturday"
    sunday = "sunday"

    @property
    def number(self) -> int:
        """Return Python's weekday number (Monday is 0)."""
        return list(Weekday).index(self)


class Deadline(_Strict):
    """A handling time limit: an amount of a unit."""

    amount: int = Field(gt=0, le=10_000)
    unit: DeadlineUnit


class Category(_Strict):
    """One of the 13 categories."""

    code: Annotated[str, Field(pattern=CATEGORY_CODE_RE)]
    zh: Text
    en: Text
    description: str | None = None


class Item(_Strict):
    """One of the 36 items: who handles it, how fast, and which assets it concerns."""

    code: Annotated[str, Field(pattern=ITEM_CODE_RE)]
    zh: Text
    en: Text
    category: Annotated[str, Field(pattern=CATEGORY_CODE_RE)]
    level: Level
    lead_department: Text = Field(description="承办主体: the unit that must handle it")
    fallback_department: Text = Field(description="兜底部门: when no unit clearly owns it")
    deadline: Deadline
    asset_layers: tuple[LayerCode, ...] = ()
    asset_filter: dict[Annotated[str, Field(pattern=FIELD_RE)], tuple[str, ...]] | None = Field(
        default=None, description="attribute -> allowed values, on every asset layer"
    )
    asset_radius_m: float = Field(default=50.0, gt=0, le=1_000)
    duplicate_radius_m: float = Field(default=250.0, gt=0, le=5_000)
    duplicate_window_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    filing_condition: Annotated[str, Field(min_length=4, max_length=300)]
    closing_condition: Annotated[str, Field(min_length=4, max_length=300)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.lead_department == self.fallback_department:
            raise ValueError(
                f"fallback_department must differ from lead_department "
                f"(both are {self.lead_department!r})"
            )
        if not self.code.startswith(self.category):
            raise ValueError(f"code {self.code!r} must start with its category {self.category!r}")
        if len(set(self.asset_layers)) != len(self.asset_layers):
            raise ValueError("asset_layers repeat a layer")
        if self.asset_filter is not None:
            if not self.asset_layers:
                raise ValueError("asset_filter needs asset_layers")
            if not self.asset_filter or not all(self.asset_filter.values()):
                raise ValueError("asset_filter must list at least one value per attribute")
        return self


class RoutingRules(_Strict):
    """The 13 categories and 36 items, validated as a whole."""

    version: int = Field(ge=1)
    categories: tuple[Category, ...]
    items: tuple[Item, ...]

    @model_validator(mode="after")
    def _whole(self) -> Self:
        for kind, codes in (
            ("category", [c.code for c in self.categories]),
            ("item", [i.code for i in self.items]),
        ):
            dupes = sorted({c for c in codes if codes.count(c) > 1})
            if dupes:
                raise ValueError(f"{kind} codes repeat: {', '.join(dupes)}")
        if len(self.categories) != CATEGORY_COUNT:
            raise ValueError(f"expected {CATEGORY_COUNT} categories, found {len(self.categories)}")
        if len(self.items) != ITEM_COUNT:
            raise ValueError(f"expected {ITEM_COUNT} items, found {len(self.items)}")
        known = {c.code for c in self.categories}
        for item in self.items:
            if item.category not in known:
                raise ValueError(f"item {item.code}, field category: unknown {item.category!r}")
        empty = sorted(known - {i.category for i in self.items})
        if empty:
            raise ValueError(f"categories without items: {', '.join(empty)}")
        return self

    def item(self, code: str) -> Item:
        """Return the item with ``code``; raise ``KeyError`` when unknown."""
        for it in self.items:
            if it.code == code:
                return it
        raise KeyError(code)

    def category(self, code: str) -> Category:
        """Return the category with ``code``; raise ``KeyError`` when unknown."""
        for cat in self.categories:
            if cat.code == code:
                return cat
        raise KeyError(code)

    def items_in(self, category: str) -> tuple[Item, ...]:
        """Return the items of a category."""
        return tuple(it for it in self.items if it.category == category)

    @property
    def asset_layer_codes(self) -> tuple[str, ...]:
        """Return every asset layer code the items name, sorted, once each."""
        return tuple(sorted({code for it in self.items for code in it.asset_layers}))


class Holiday(_Strict):
    """One public holiday period (放假调休), both ends included."""

    name: Text = Field(description="Chinese name, e.g. 春节")
    en: Text
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def days(self) -> tuple[date, ...]:
        """Return every date of the period."""
        return tuple(
            date.fromordinal(n) for n in range(self.start.toordinal(), self.end.toordinal() + 1)
        )


class CalendarYear(_Strict):
    """A year's holidays and make-up working days (调休上班)."""

    year: int = Field(ge=2000, le=2100)
    provisional: bool = False
    source: str | None = None
    holidays: tuple[Holiday, ...]
    makeup_workdays: tuple[date, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: dict[date, str] = {}
        for holiday in self.holidays:
            for day in holiday.days:
                if day.year != self.year:
                    raise ValueError(f"holiday {holiday.name}: {day} is not in {self.year}")
                if day in seen:
                    raise ValueError(f"{day} is in both {seen[day]} and {holiday.name}")
                seen[day] = holiday.name
        for day in self.makeup_workdays:
            if day.year != self.year:
                raise ValueError(f"make-up working day {day} is not in {self.year}")
            if day.weekday() < 5:
                raise ValueError(f"make-up working day {day} is not on a weekend")
            if day in seen:
                raise ValueError(f"make-up working day {day} is also a holiday")
        if len(set(self.makeup_workdays)) != len(self.makeup_workdays):
            raise ValueError("make-up working days repeat")
        return self

    @functools.cached_property
    def holiday_dates(self) -> frozenset[date]:
        """Return every holiday date of the year (computed once: deadlines ask it per case)."""
        return frozenset(day for holiday in self.holidays for day in holiday.days)


class WorkPeriod(_Strict):
    """One span of office hours within a working day."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        return self


class WorkingCalendar(_Strict):
    """Weekends, holidays, make-up days and office hours in the platform's time zone."""

    timezone: str = "Asia/Shanghai"
    weekend: tuple[Weekday, ...] = (Weekday.saturday, Weekday.sunday)
    working_hours: tuple[WorkPeriod, ...] = Field(min_length=1)
    years: tuple[CalendarYear, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for before, after in zip(self.working_hours, self.working_hours[1:], strict=False):
            if after.start < before.end:
                raise ValueError(f"working hours overlap or are unordered at {after.start}")
        years = [y.year for y in self.years]
        if len(set(years)) != len(years):
            raise ValueError("years repeat")
        if len(set(self.weekend)) != len(self.weekend):
            raise ValueError("weekend days repeat")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """Return the calendar's time zone."""
        return ZoneInfo(self.timezone)

    def year(self, year: int) -> CalendarYear:
        """Return the entry of ``year``; raise ``KeyError`` when the calendar does not cover it."""
        return self._by_year[year]

    @functools.cached_property
    def _by_year(self) -> dict[int, CalendarYear]:
        return {entry.year: entry for entry in self.years}

    @functools.cached_property
    def _weekend_numbers(self) -> frozenset[int]:
        return frozenset(w.number for w in self.weekend)

    @functools.cached_property
    def holidays(self) -> frozenset[date]:
        """Return every holiday date of every year."""
        return frozenset().union(*(y.holiday_dates for y in self.years))

    @functools.cached_property
    def makeup_workdays(self) -> frozenset[date]:
        """Return every make-up working day of every year."""
        return frozenset(day for y in self.years for day in y.makeup_workdays)

    def is_working_day(self, day: date) -> bool:
        """Return whether ``day`` is a working day; raise ``KeyError`` outside covered years."""
        entry = self.year(day.year)
        if day in entry.holiday_dates:
            return False
        if day in entry.makeup_workdays:
            return True
        return day.weekday() not in self._weekend_numbers
