"""Locate a case: take its point with its datum, or geocode its address; then snap it.

A point is moved to storage coordinates (GCJ-02 and BD-09 offsets removed) and snapped to the
grid. A point outside the district, or an address nobody can place, is not an error here: the
case is kept and flagged ``needs_manual_location`` with the reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from cases.models import CaseIn
from layers.geocode import GeocodeResult, geocode
from layers.snap import DEFAULT_TOLERANCE_M, SnapResult, snap
from schemas.catalog import Catalog
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG, SourceCrs, to_storage


@dataclass(frozen=True, slots=True)
class Located:
    """Where a case is (storage lon/lat), how that was found, and its cell."""

    lon: float | None
    lat: float | None
    method: str | None  # point | geocode | manual; None when not located
    snap: SnapResult | None
    geocoded: GeocodeResult | None
    note: str | None  # why it needs a manual location, if it does

    @property
    def needs_manual(self) -> bool:
        """Return whether a dispatcher must place the case."""
        return self.snap is None


def place_point(
    conn: Connection,
    catalog: Catalog,
    lon: float,
    lat: float,
    crs: SourceCrs,
    *,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    srid: int = STORAGE_EPSG,
) -> tuple[float, float, SnapResult]:
    """Return storage lon/lat of a point in ``crs`` and its snap; InvalidInput when outside."""
    x, y = to_storage(lon, lat, crs, srid)
    slon, slat = float(x), float(y)
    return slon, slat, snap(conn, catalog, slon, slat, tolerance_m=tolerance_m, srid=srid)


def locate(
    conn: Connection,
    catalog: Catalog,
    case_in: CaseIn,
    *,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    srid: int = STORAGE_EPSG,
    storage_point: tuple[float, float] | None = None,
) -> Located:
    """Return where a case is, or why it needs a manual location.

    ``storage_point``: the reported point already moved to storage lon/lat (the district check
    did it), so the datum is not removed twice.
    """
    notes: list[str] = []
    if case_in.location is not None:
        loc = case_in.location
        try:
            if storage_point is None:
                lon, lat, snapped = place_point(
                    conn,
                    catalog,
                    loc.lon,
                    loc.lat,
                    loc.source_crs,
                    tolerance_m=tolerance_m,
                    srid=srid,
                )
            else:
                lon, lat = storage_point
                snapped = snap(conn, catalog, lon, lat, tolerance_m=tolerance_m, srid=srid)
            return Located(lon, lat, "point", snapped, None, None)
        except InvalidInput as exc:
            notes.append(f"reported point {loc.lon}, {loc.lat} ({loc.crs}): {exc.message}")
    if case_in.address:
        found = geocode(conn, catalog, case_in.address, town_hint=case_in.town_hint)
        if found is None:
            notes.append(f"address {case_in.address!r} matches no house number")
        else:
            try:
                snapped = snap(
                    conn, catalog, found.lon, found.lat, tolerance_m=tolerance_m, srid=srid
                )
                return Located(found.lon, found.lat, "geocode", snapped, found, None)
            except InvalidInput as exc:
                notes.append(f"house number {found.address}: {exc.message}")
    if not notes:
        notes.append("neither a point nor an address was reported")
    return Located(None, None, None, None, None, "; ".join(notes))
