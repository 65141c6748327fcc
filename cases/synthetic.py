"""A deterministic synthetic stream of citizens' cases, as the source systems send them.

Incidents happen at real addresses, next to real assets or at random points of villages
(weighted towards dense ones), with the daily and weekly rhythm of a district's reporting; each
is reported through one of the systems of :mod:`cases.sources`, in that system's dialect, and
about 5 % are reported a second time through another system. The truth travels beside each
payload so that intake, geocoding, routing and duplicate detection can be scored against it.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import Polygon

from cases.rules import Item, RoutingRules, WorkingCalendar, load_calendar, load_routing_rules
from cases.sources import LOCAL_ZONE, SourceSystem
from cases.synthetic_payloads import Report, word_report
from layers.divisions import default_divisions
from schemas.errors import CatalogError, InvalidInput

#: Huadu's half-year: 12,000+ grid cases in the first half of 2020.
DEFAULT_PER_DAY: Final = 12_000 / 182
DUPLICATE_RATE: Final = 0.05
ASSET_OFFSET_M: Final = 25.0  # an asset item happens this close to its asset, at most
GPS_SIGMA_M: Final = 4.0
DUPLICATE_OFFSET_M: Final = 50.0
DUPLICATE_DELAY_MIN: Final = (3.0, 8 * 60.0)  # log-uniform, minutes
AT_ADDRESS_P: Final = 0.6  # share of non-asset incidents at a house number (others: a village)
M_PER_DEG: Final = 111_320.0

#: Relative frequency of items: street order and city appearance lead, emergencies are rare.
ITEM_WEIGHTS: Final[Mapping[str, float]] = {
    "CA01": 10, "CA02": 2, "CA03": 4, "AD01": 3, "AD02": 5, "CM01": 3, "CM02": 2, "CM03": 2,
    "EM01": 0.2, "EM02": 0.3, "EM03": 0.2, "SO01": 12, "SO02": 8, "SO03": 6, "SO04": 5,
    "PU01": 4, "PU02": 1.5, "PU03": 1, "PU04": 0.5, "RT01": 3, "RT02": 1, "LG01": 1.5,
    "LG02": 1, "WF01": 2.5, "WF02": 1, "WF03": 1.5, "WF04": 0.2, "SF01": 3, "SF02": 0.8,
    "SF03": 1, "MR01": 4, "MR02": 2.5, "CS01": 3, "CS02": 1.5, "EE01": 2.5, "EE02": 1,
}  # fmt: skip
#: Base share of each system, multiplied by its affinity for an item (item, category or '*').
SYSTEM_SHARE: Final[Mapping[SourceSystem, float]] = {
    SourceSystem.community_grid: 0.40,
    SourceSystem.city_management: 0.22,
    SourceSystem.hotline_12345: 0.15,
    SourceSystem.open311: 0.10,
    SourceSystem.migrant_management: 0.08,
    SourceSystem.illegal_construction: 0.05,
}
AFFINITY: Final[Mapping[SourceSystem, Mapping[str, float]]] = {
    SourceSystem.community_grid: {"*": 1.0},
    SourceSystem.city_management: {
        "CA": 1.5, "AD": 1.5, "SO": 1.5, "PU": 1.5, "RT": 1.2, "LG": 1.0, "CM": 0.0,
        "CM03": 0.6, "WF": 0.8, "EE": 0.6, "EM": 0.5, "SF": 0.3, "*": 0.0,
    },
    SourceSystem.hotline_12345: {"MR": 0.3, "PU04": 0.2, "CS": 1.5, "EE": 1.5, "*": 1.0},
    SourceSystem.open311: {
        "CA": 1.0, "AD": 0.5, "SO": 1.0, "PU": 1.2, "RT": 1.2, "LG": 0.8, "WF": 1.0, "EE": 1.0,
        "CS": 0.5, "SF": 0.5, "EM": 0.5, "CM": 0.3, "*": 0.0,
    },
    SourceSystem.migrant_management: {"MR": 5.0, "SF01": 1.0, "CS01": 0.5, "*": 0.0},
    SourceSystem.illegal_construction: {"CM01": 6.0, "CM02": 6.0, "*": 0.0},
}  # fmt: skip
#: Systems that send no coordinates of their own (mostly): incidents sit at a house number.
ADDRESS_SYSTEMS: Final = frozenset({SourceSystem.hotline_12345, SourceSystem.migrant_management})
#: Reports per hour of the day (local time): staff work office hours; the public reports later.
STAFF_HOURS: Final = (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 1.5, 3.5, 5.0, 5.5, 4.5,
                      2.0, 1.5, 3.0, 4.5, 4.8, 3.8, 1.8, 1.0, 0.8, 0.6, 0.4, 0.3)  # fmt: skip
PUBLIC_HOURS: Final = (0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.8, 3.0, 3.8, 4.0, 3.6,
                       2.8, 2.6, 3.0, 3.4, 3.4, 3.2, 3.0, 3.2, 3.3, 2.8, 2.0, 1.3)  # fmt: skip
PUBLIC_SYSTEMS: Final = frozenset({SourceSystem.hotline_12345, SourceSystem.open311})
WEEKDAY_FACTOR: Final = (1.12, 1.15, 1.10, 1.08, 1.02, 0.80, 0.73)  # Monday first
HOLIDAY_FACTOR: Final = 0.6


@dataclass(frozen=True, slots=True)
class AddressPoint:
    """A house number: its standard address, parts, divisions and lon/lat (EPSG:4490)."""

    address: str
    road: str
    number: str
    town_code: str
    town_name: str
    village_code: str
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class CaseTruth:
    """What really happened behind one report."""

    report_id: str
    incident_id: str
    duplicate_of: str | None  # the incident this report repeats; None on its first report
    item: str
    lon: float  # the incident, WGS84
    lat: float
    address_key: str | None  # standard address the payload's text names, if it names one
    reported_at: str  # ISO 8601, +08:00
    reported_crs: str | None  # datum of the payload's point; None when it has none

    def to_json(self) -> dict[str, Any]:
        """Return the truth as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GeneratedCase:
    """One report: the system, its payload as sent, and the truth."""

    system: SourceSystem
    payload: dict[str, Any]
    truth: CaseTruth


@dataclass(frozen=True, slots=True)
class _Place:
    """Where an incident happens: its point (WGS84), the address it is told by, its village."""

    lon: float
    lat: float
    address: AddressPoint
    village: str


@dataclass(frozen=True, slots=True)
class _Pending:
    """A report decided but not yet worded."""

    report: Report
    incident_id: str
    duplicate_of: str | None
    true_lon: float
    true_lat: float


def _offset(lon: float, lat: float, rng: random.Random, radius_m: float) -> tuple[float, float]:
    """Return a point uniformly within ``radius_m`` of (lon, lat)."""
    r = radius_m * math.sqrt(rng.random())
    a = 2 * math.pi * rng.random()
    dlat = r * math.sin(a) / M_PER_DEG
    dlon = r * math.cos(a) / (M_PER_DEG * math.cos(math.radians(lat)))
    return lon + dlon, lat + dlat


class _World:
    """Addresses, assets and villages, indexed for sampling and nearest-address look-ups."""

    def __init__(
        self,
        addresses: Sequence[AddressPoint],
        assets: Mapping[str, tuple[ArrayLike, ArrayLike]],
        villages: Mapping[str, Polygon],
    ) -> None:
        if not addresses:
            raise InvalidInput("synthetic cases need at least one address point")
        self.addresses = tuple(addresses)
        self.lon = np.array([a.lon for a in self.addresses], dtype=np.float64)
        self.lat = np.array([a.lat for a in self.addresses], dtype=np.float64)
        self.kx = math.cos(math.radians(float(self.lat.mean())))
        self.tree = shapely.STRtree(shapely.points(self.lon * self.kx, self.lat))
        self.assets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for code in sorted(assets):
            xs, ys = (np.asarray(v, dtype=np.float64).ravel() for v in assets[code])
            if xs.shape != ys.shape:
                raise InvalidInput(f"asset layer {code}: lon and lat arrays differ in length")
            if xs.size:
                self.assets[code] = (xs, ys)
        self.village_codes = sorted(villages)
        self.polygons = [villages[code] for code in self.village_codes]
        for polygon in self.polygons:
            shapely.prepare(polygon)
        counts = Counter(a.village_code for a in self.addresses)
        self.village_cum = list(accumulate(counts[c] + 1.0 for c in self.village_codes))
        self.village_tree = shapely.STRtree(self.polygons) if self.polygons else None

    def nearest(self, lon: float, lat: float) -> AddressPoint:
        """Return the address point nearest (lon, lat)."""
        index = self.tree.query_nearest(shapely.Point(lon * self.kx, lat))
        return self.addresses[int(index[0])]

    def village_of(self, lon: float, lat: float, fallback: str) -> str:
        """Return the code of the village containing (lon, lat), else ``fallback``."""
        if self.village_tree is not None:
            hits = self.village_tree.query(shapely.Point(lon, lat), predicate="intersects")
            if hits.size:
                return self.village_codes[int(hits.min())]
        return fallback

    def village_point(self, rng: random.Random) -> tuple[float, float, str]:
        """Return a random point of a village chosen by address density, and its code."""
        k = rng.choices(range(len(self.village_codes)), cum_weights=self.village_cum)[0]
        polygon = self.polygons[k]
        x0, y0, x1, y1 = polygon.bounds
        for _ in range(8):
            xs = np.array([rng.uniform(x0, x1) for _ in range(16)])
            ys = np.array([rng.uniform(y0, y1) for _ in range(16)])
            inside = np.flatnonzero(shapely.contains_xy(polygon, xs, ys))
            if inside.size:
                return float(xs[inside[0]]), float(ys[inside[0]]), self.village_codes[k]
        point = polygon.representative_point()
        return point.x, point.y, self.village_codes[k]


def _affinity(system: SourceSystem, item: Item) -> float:
    table = AFFINITY[system]
    for key in (item.code, item.category, "*"):
        if key in table:
            return table[key]
    return 0.0


def _daily_means(
    start: date, days: int, reports_per_day: float, calendar: WorkingCalendar | None
) -> np.ndarray:
    """Return the expected number of incidents on each day."""
    factors = np.empty(days)
    for d in range(days):
        day = start + timedelta(days=d)
        factor = WEEKDAY_FACTOR[day.weekday()]
        if calendar is not None:
            try:
                if not calendar.is_working_day(day) and day.weekday() < 5:
                    factor = HOLIDAY_FACTOR
                elif day in calendar.makeup_workdays:
                    factor = WEEKDAY_FACTOR[4]
            except KeyError:
                pass
        factors[d] = factor
    incidents = reports_per_day * days / (1.0 + DUPLICATE_RATE)
    return np.asarray(incidents * factors / factors.sum(), dtype=np.float64)


class _Generator:
    """The state of one stream: world, rules, random generator and counters."""

    def __init__(
        self, world: _World, rules: RoutingRules, seed: int, village_names: Mapping[str, str]
    ) -> None:
        self.world = world
        self.rules = rules
        self.seed = seed
        self.rng = random.Random(seed)
        self.counts_rng = np.random.default_rng(seed)
        self.village_names = village_names
        self.items = rules.items
        self.categories = {cat.code: cat for cat in rules.categories}
        self.item_cum = list(accumulate(ITEM_WEIGHTS.get(it.code, 1.0) for it in self.items))
        self.systems = tuple(SYSTEM_SHARE)
        self.system_w = [
            [SYSTEM_SHARE[s] * _affinity(s, it) for s in self.systems] for it in self.items
        ]
        self.seq = 0
        self.incidents = 0
        self.hour_cum = {
            "staff": list(accumulate(STAFF_HOURS)),
            "public": list(accumulate(PUBLIC_HOURS)),
        }

    def _system(self, row: int, exclude: SourceSystem | None = None) -> SourceSystem | None:
        w = [
            0.0 if s == exclude else v
            for s, v in zip(self.systems, self.system_w[row], strict=True)
        ]
        if sum(w) <= 0:
            return None
        return self.rng.choices(self.systems, w)[0]

    def _moment(self, day: date, system: SourceSystem) -> datetime:
        profile = self.hour_cum["public" if system in PUBLIC_SYSTEMS else "staff"]
        hour = self.rng.choices(range(24), cum_weights=profile)[0]
        second = self.rng.randrange(3600)
        midnight = datetime(day.year, day.month, day.day, tzinfo=LOCAL_ZONE)
        return midnight + timedelta(hours=hour, seconds=second)

    def _place(self, item: Item, system: SourceSystem) -> _Place:
        """Return where an incident of ``item`` reported through ``system`` happens."""
        world, rng = self.world, self.rng
        layers = [code for code in item.asset_layers if code in world.assets]
        if layers:
            xs, ys = world.assets[layers[rng.randrange(len(layers))]]
            k = rng.randrange(xs.size)
            lon, lat = _offset(float(xs[k]), float(ys[k]), rng, ASSET_OFFSET_M)
            addr = world.nearest(lon, lat)
            return _Place(lon, lat, addr, world.village_of(lon, lat, addr.village_code))
        if system in ADDRESS_SYSTEMS or not world.village_codes or rng.random() < AT_ADDRESS_P:
            addr = world.addresses[rng.randrange(len(world.addresses))]
            village = addr.village_code or world.village_of(addr.lon, addr.lat, "")
            return _Place(addr.lon, addr.lat, addr, village)
        lon, lat, village = world.village_point(rng)
        return _Place(lon, lat, world.nearest(lon, lat), village)

    def _gps_noise(self) -> float:
        return max(-12.0, min(12.0, self.rng.gauss(0.0, GPS_SIGMA_M)))

    def _pending(
        self,
        item: Item,
        system: SourceSystem,
        at: datetime,
        place: _Place,
        *,
        incident: str,
        duplicate_of: str | None = None,
    ) -> _Pending:
        """Return the report of ``place``; a duplicate's point is up to 50 m away."""
        lon, lat = place.lon, place.lat
        if duplicate_of is not None:
            rep_lon, rep_lat = _offset(lon, lat, self.rng, DUPLICATE_OFFSET_M)
        else:
            rep_lon = lon + self._gps_noise() / (M_PER_DEG * math.cos(math.radians(lat)))
            rep_lat = lat + self._gps_noise() / M_PER_DEG
        report = Report(
            seq=self.seq,
            system=system,
            item=item,
            category=self.categories[item.category],
            at=at,
            lon=rep_lon,
            lat=rep_lat,
            address=place.address,
            village_code=place.village,
            village_name=self.village_names.get(place.village),
        )
        self.seq += 1
        return _Pending(report, incident, duplicate_of, lon, lat)

    def incidents_of(self, day: date, count: int) -> Iterator[_Pending]:
        """Decide ``count`` incidents of ``day`` and their duplicate reports."""
        rng = self.rng
        for _ in range(count):
            row = rng.choices(range(len(self.items)), cum_weights=self.item_cum)[0]
            system = self._system(row)
            if system is None:
                continue
            self.incidents += 1
            incident = f"I{self.incidents:06d}"
            item = self.items[row]
            at = self._moment(day, system)
            place = self._place(item, system)
            yield self._pending(item, system, at, place, incident=incident)
            if rng.random() < DUPLICATE_RATE:
                second = self._system(row, exclude=system)
                if second is None:
                    continue
                lo, hi = (math.log(v) for v in DUPLICATE_DELAY_MIN)
                later = at + timedelta(minutes=math.exp(rng.uniform(lo, hi)))
                yield self._pending(
                    item, second, later, place, incident=incident, duplicate_of=incident
                )


def _village_names() -> dict[str, str]:
    """Return village names from the packaged divisions register, if it can be read."""
    try:
        return {d.code: d.name for d in default_divisions() if d.level == "village"}
    except CatalogError:
        return {}


def generate_cases(
    *,
    addresses: Sequence[AddressPoint],
    assets: Mapping[str, tuple[ArrayLike, ArrayLike]],
    villages: Mapping[str, Polygon],
    days: int = 182,
    per_day: float | None = None,
    seed: int = 0,
    start: date = date(2026, 1, 1),
    rules: RoutingRules | None = None,
    calendar: WorkingCalendar | None = None,
) -> Iterator[GeneratedCase]:
    """Yield a synthetic case stream in reported order, deterministic for a seed.

    Parameters
    ----------
    addresses
        House numbers (EPSG:4490 ≈ WGS84) that incidents happen at and reports name.
    assets
        Asset layer code -> (lon array, lat array); items with asset layers happen within
        25 m of one of these. Layers missing here fall back to addresses and villages.
    villages
        Village/community code -> polygon (lon/lat) for incidents away from house numbers.
    days, per_day, start
        The period, and reports per day on average (default about 12,000 per 182 days).
    seed
        Seed of the stream: the same seed yields the same stream.
    rules, calendar
        Routing rules and working calendar (default: the packaged ones).
    """
    if days < 1:
        raise InvalidInput(f"days must be at least 1, not {days}")
    if per_day is not None and not (per_day > 0 and math.isfinite(per_day)):
        raise InvalidInput(f"per_day must be a positive number, not {per_day}")
    if seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, not {seed}")
    world = _World(addresses, assets, villages)
    rules = rules or load_routing_rules()
    calendar = calendar or load_calendar()
    gen = _Generator(world, rules, seed, _village_names())
    means = _daily_means(start, days, per_day or DEFAULT_PER_DAY, calendar)
    heap: list[tuple[datetime, int, _Pending]] = []
    serials: Counter[tuple[SourceSystem, str]] = Counter()
    emitted = 0

    def emit(pending: _Pending) -> GeneratedCase:
        nonlocal emitted
        emitted += 1
        report = pending.report
        key = (
            report.system,
            f"{report.at:%Y}" if report.system == "illegal_construction" else f"{report.at:%Y%m%d}",
        )
        serials[key] += 1
        worded = word_report(report, serials[key], random.Random((seed << 32) | report.seq))
        truth = CaseTruth(
            report_id=f"R{emitted:07d}",
            incident_id=pending.incident_id,
            duplicate_of=pending.duplicate_of,
            item=report.item.code,
            lon=round(pending.true_lon, 7),
            lat=round(pending.true_lat, 7),
            address_key=report.address.address if worded.names_address else None,
            reported_at=report.at.isoformat(timespec="seconds"),
            reported_crs=worded.crs,
        )
        return GeneratedCase(report.system, worded.payload, truth)

    for d in range(days):
        day = start + timedelta(days=d)
        for pending in gen.incidents_of(day, int(gen.counts_rng.poisson(means[d]))):
            heapq.heappush(heap, (pending.report.at, pending.report.seq, pending))
        next_midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), LOCAL_ZONE)
        while heap and heap[0][0] < next_midnight:
            yield emit(heapq.heappop(heap)[2])
    while heap:
        yield emit(heapq.heappop(heap)[2])


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def write_case_stream(cases: Iterable[GeneratedCase], out: Path) -> int:
    """Write the stream to ``out`` (JSON Lines) and its truth to ``<out>.truth.jsonl``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    truth_path = out.with_name(out.name + ".truth.jsonl")
    count = 0
    with (
        out.open("w", encoding="utf-8", newline="\n") as stream,
        truth_path.open("w", encoding="utf-8", newline="\n") as truth,
    ):
        for case in cases:
            stream.write(_dumps({"system": case.system.value, "payload": case.payload}) + "\n")
            truth.write(_dumps(case.truth.to_json()) + "\n")
            count += 1
    return count
