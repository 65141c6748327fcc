"""Accept a case sent over HTTP: refuse what cannot be a case of this district, then receive it.

:func:`cases.intake.receive` keeps a case whose point it cannot snap (flagged for a manual
location). What it must never see is a point that is not in the district at all (a phone in
Beijing, swapped lon/lat, a datum error of degrees) or a report time no calendar can count from:
those are refused here with ``InvalidInput`` before anything is stored. The area is the
district's lon/lat extent grown by a margin (settings ``district_extent`` and
``extent_margin_deg``); a point inside it but outside every grid cell is still received and
placed by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Connection

from cases.intake import DEFAULT_DISTRICT, IntakeState, intake_state, receive
from cases.models import Case, CaseIn, LocationIn
from cases.normalise import from_source
from cases.rules import WorkingCalendar
from cases.sources import SourcePayload
from cases.store import fetch_case
from schemas.catalog import Catalog
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG, to_storage

#: Report times outside [EARLIEST, now + FUTURE_SLACK] are refused (clock errors, typos).
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DistrictArea:
    """Where a case may lie: a lon/lat box in storage coordinates, margin included."""

    minx: float
    miny: float
    maxx: float
    maxy: float
    srid: int = STORAGE_EPSG

    @classmethod
    def from_extent(
        cls, extent: tuple[float, float, float, float], margin: float, srid: int = STORAGE_EPSG
    ) -> DistrictArea:
        """Return the area of a district extent grown by ``margin`` degrees."""
        minx, miny, maxx, maxy = extent
        return cls(minx - margin, miny - margin, maxx + margin, maxy + margin, srid)

    def contains(self, lon: float, lat: float) -> bool:
        """Return whether a storage lon/lat lies in the area."""
        return self.minx <= lon <= self.maxx and self.miny <= lat <= self.maxy

    def check(self, location: LocationIn) -> tuple[float, float]:
        """Return the point in storage lon/lat; raise InvalidInput when it is not in the area."""
        crs = location.source_crs
        if crs.crs is None or crs.crs.is_geographic:
            if not (-180.0 <= location.lon <= 180.0 and -90.0 <= location.lat <= 90.0):
                raise InvalidInput(
                    f"({location.lon}, {location.lat}) in {crs.canonical} is not a "
                    "longitude/latitude (lon first, then lat)"
                )
        try:
            x, y = to_storage(location.lon, location.lat, crs, self.srid)
            lon, lat = float(x), float(y)
        except (ValueError, ArithmeticError):
            lon = lat = math.nan
        if not (math.isfinite(lon) and math.isfinite(lat) and self.contains(lon, lat)):
            raise InvalidInput(
                f"({location.lon}, {location.lat}) in {crs.canonical} is outside the district "
                f"(lon {self.minx:.2f}–{self.maxx:.2f}, lat {self.miny:.2f}–{self.maxy:.2f} in "
                f"EPSG:{self.srid}); check the datum and the order of lon and lat"
            )
        return lon, lat


def check_report_time(reported_at: datetime, now: datetime) -> None:
    """Raise InvalidInput when a report time is before 2000 or more than a day ahead of now."""
    if reported_at < EARLIEST:
        raise InvalidInput(f"reported_at {reported_at.isoformat()} is before 2000")
    if reported_at > now + FUTURE_SLACK:
        raise InvalidInput(
            f"reported_at {reported_at.isoformat()} is in the future (now {now.isoformat()})"
        )


def accept_case(
    conn: Connection,
    catalog: Catalog,
    calendar: WorkingCalendar,
    case_in: CaseIn,
    *,
    now: datetime,
    area: DistrictArea,
    district_code: str = DEFAULT_DISTRICT,
    state: IntakeState | None = None,
) -> tuple[Case, bool]:
    """Check a case belongs to the district, then receive it; return it and whether it is new.

    ``state``: :func:`cases.intake.intake_state` when the caller already read it.
    """
    check_report_time(case_in.reported_at, now)
    point = None if case_in.location is None else area.check(case_in.location)
    return receive(
        conn,
        catalog,
        None,
        calendar,
        case_in,
        now=now,
        srid=area.srid,
        district_code=district_code,
        state=state,
        storage_point=point,
    )


def accept_payload(
    conn: Connection,
    catalog: Catalog,
    calendar: WorkingCalendar,
    payload: SourcePayload,
    *,
    now: datetime,
    area: DistrictArea,
    district_code: str = DEFAULT_DISTRICT,
) -> tuple[Case, bool]:
    """Normalise a sending system's parsed payload under the current rules and accept it.

    A re-send answers with the stored case before anything else is looked at.
    """
    state = intake_state(conn, payload.system.value, payload.source_id())
    if state.existing is not None:
        return fetch_case(conn, state.existing), False
    case_in = from_source(payload.system, payload, rules=state.rules)
    return accept_case(
        conn,
        catalog,
        calendar,
        case_in,
        now=now,
        area=area,
        district_code=district_code,
        state=state,
    )
