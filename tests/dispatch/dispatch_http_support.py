"""Helpers of the dispatch HTTP tests: a movable clock, a synthetic stream in the tiny district."""

from __future__ import annotations

from datetime import date, datetime

from dispatch_support import TOWN_NAMES, District

from cases.synthetic import AddressPoint, GeneratedCase, generate_cases


class Clock:
    """A clock the tests set: the app asks it for ``now``."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def synthetic_stream(
    district: District, *, start: date, days: int, per_day: float, seed: int
) -> list[GeneratedCase]:
    """Return a synthetic case stream whose incidents happen in the tiny district."""
    addresses = [
        AddressPoint(
            h.address,
            h.road,
            h.number,
            h.town_code,
            TOWN_NAMES[h.town_code],
            h.village_code,
            h.lon,
            h.lat,
        )
        for h in district.houses
    ]
    manholes = [(x, y) for kind, x, y in district.manholes.values() if kind == "sewage"]
    assets = {
        "street_lamp": tuple(zip(*district.lamps.values(), strict=True)),
        "manhole_cover": tuple(zip(*manholes, strict=True)),
    }
    return list(
        generate_cases(
            addresses=addresses,
            assets=assets,
            villages=dict(district.villages),
            days=days,
            per_day=per_day,
            seed=seed,
            start=start,
        )
    )
