"""Receive a case: locate, snap, attach to an asset, route, check for duplicates, store.

Everything happens in the caller's transaction (``with engine.begin() as conn``) before the case
is returned. Intake is idempotent on (source_system, source_id): a re-send — even a concurrent
one — returns the stored case with ``created = False`` and never makes a second row
(``INSERT … ON CONFLICT DO NOTHING RETURNING``, then ``SELECT``).

Duplicates: an open original case (not itself a duplicate) of the same item whose point is
within the item's ``duplicate_radius_m`` (geodesic) and whose report time is within
``duplicate_window_hours`` of the new one becomes the new case's ``duplicate_of`` (nearest first,
then oldest). Linking changes nothing on the original; only a merge adds reporters to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, func, text

from cases.locate import Located, locate, place_point
from cases.models import OPEN, STEP, Case, CaseIn, LocationIn, Status
from cases.routing import (
    NEWEST_STAMP,
    Route,
    cached_rules,
    current_rules,
    item_of,
    resolve_unit,
    route,
    rules_version,
)
from cases.rules import Item, RoutingRules, WorkingCalendar
from cases.store import (
    DUPLICATE_SQL,
    POINT_SQL,
    add_event,
    case_from_row,
    case_select,
    fetch_case,
    insert_received,
)
from layers.assets import AssetHit, nearest_asset
from layers.snap import DEFAULT_TOLERANCE_M
from schemas.catalog import Catalog
from schemas.errors import Conflict, InvalidInput
from schemas.geodesy import STORAGE_EPSG, metres_to_degrees_hint
from schemas.settings import Settings
from schemas.tables import cases

DEFAULT_DISTRICT: Final = str(Settings.model_fields["district_code"].default)


_FIND_DUPLICATE: Final = text(f"WITH p AS ({POINT_SQL}) {DUPLICATE_SQL}")
_STATE: Final = text(f"""
    SELECT (SELECT id FROM cases WHERE source_system = :system AND source_id = :source_id)
               AS existing,
           r.version, r.stamp
    FROM (SELECT 1) AS one LEFT JOIN LATERAL ({NEWEST_STAMP}) r ON true
""")


@dataclass(frozen=True, slots=True)
class IntakeState:
    """What intake must know first: the case already stored under this source id, the rules."""

    existing: int | None
    rules: RoutingRules


def intake_state(conn: Connection, system: str, source_id: str) -> IntakeState:
    """Return the stored case of (system, source_id), if any, and the newest rules: one query.

    The rules come from the process cache (:func:`cases.routing.cached_rules`) unless their
    version or row changed since they were last read.
    """
    row = conn.execute(_STATE, {"system": system, "source_id": source_id}).one()
    if row.version is None:
        rules = current_rules(conn)  # seeds the packaged rules
    else:
        rules = cached_rules(conn, int(row.version), str(row.stamp))
    return IntakeState(None if row.existing is None else int(row.existing), rules)


def duplicate_params(
    item: Item, lat: float, reported_at: datetime, *, exclude: int | None = None
) -> dict[str, Any]:
    """Return the ``dup_*`` parameters of the duplicate search for an item at a latitude."""
    window = timedelta(hours=item.duplicate_window_hours)
    return {
        "dup_item": item.code,
        "dup_exclude": exclude or 0,
        "dup_t0": reported_at - window,
        "dup_t1": reported_at + window,
        "dup_deg": metres_to_degrees_hint(item.duplicate_radius_m, lat),
        "dup_radius": item.duplicate_radius_m,
    }


def find_duplicate(
    conn: Connection,
    item: Item,
    lon: float,
    lat: float,
    reported_at: datetime,
    *,
    srid: int = STORAGE_EPSG,
    exclude: int | None = None,
) -> int | None:
    """Return the open original case this report repeats, if any."""
    params = duplicate_params(item, lat, reported_at, exclude=exclude)
    row = conn.execute(_FIND_DUPLICATE, {"lon": lon, "lat": lat, "srid": srid, **params}).first()
    return None if row is None else int(row[0])


def _asset(
    conn: Connection, catalog: Catalog, item: Item, where: Located, srid: int
) -> AssetHit | None:
    if not item.asset_layers or where.lon is None or where.lat is None:
        return None
    return nearest_asset(
        conn,
        catalog,
        where.lon,
        where.lat,
        item.asset_layers,
        radius_m=item.asset_radius_m,
        filters=item.asset_filter,
        srid=srid,
    )


def _place_values(where: Located) -> dict[str, Any]:
    """Return the columns a location sets (the point itself aside)."""
    s = where.snap
    return {
        "location_method": where.method,
        "geocode_confidence": None if where.geocoded is None else where.geocoded.confidence,
        "needs_manual_location": where.needs_manual,
        "snap_distance_m": None if s is None else s.distance_m,
        "grid_code": None if s is None else s.grid_code,
        "village_code": None if s is None else s.village_code,
        "village_name": None if s is None else s.names.village,
        "town_code": None if s is None else s.town_code,
        "town_name": None if s is None else s.names.town,
    }


def _route_values(r: Route) -> dict[str, Any]:
    return {
        "level": r.level.value,
        "department": r.department,
        "responsible_unit": r.responsible_unit,
        "fallback_department": r.fallback_department,
        "rule_version": r.rule_version,
    }


def _asset_values(hit: AssetHit | None) -> dict[str, Any]:
    return {
        "asset_layer": None if hit is None else hit.layer,
        "asset_code": None if hit is None else hit.code,
        "asset_maintenance_unit": None if hit is None else hit.maintenance_unit,
        "asset_distance_m": None if hit is None else hit.distance_m,
    }


def _detail(where: Located, hit: AssetHit | None, duplicate: int | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"located_by": where.method}
    if where.snap is not None:
        detail |= {"snap_distance_m": where.snap.distance_m, "on_boundary": where.snap.on_boundary}
    if where.geocoded is not None:
        detail |= {
            "geocode_confidence": where.geocoded.confidence,
            "geocode_method": where.geocoded.method,
            "address_code": where.geocoded.address_code,
        }
    if where.note:
        detail["needs_manual_location"] = where.note
    if hit is not None:
        detail["asset"] = {"layer": hit.layer, "code": hit.code, "distance_m": hit.distance_m}
    if duplicate is not None:
        detail["duplicate_of"] = duplicate
    return detail


def receive(
    conn: Connection,
    catalog: Catalog,
    rules: RoutingRules | None,
    calendar: WorkingCalendar,
    case_in: CaseIn,
    *,
    now: datetime,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    srid: int = STORAGE_EPSG,
    district_code: str = DEFAULT_DISTRICT,
    state: IntakeState | None = None,
    storage_point: tuple[float, float] | None = None,
) -> tuple[Case, bool]:
    """Store a case located, routed and checked for duplicates; return it and whether it is new.

    ``rules`` None means the newest stored version. The deadline counts from ``now`` (receipt).
    ``state`` is :func:`intake_state` of this case when the caller already read it;
    ``storage_point`` its reported point in storage lon/lat when already computed.

    Round trips for a located case: the state, the snap, the nearest asset (only for items
    with asset layers), then one statement storing the case and its event with the duplicate
    search inside it.
    """
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    if state is None:
        state = intake_state(conn, case_in.source_system.value, case_in.source_id)
    if state.existing is not None:
        return fetch_case(conn, state.existing), False
    if rules is None:
        rules = state.rules
    elif rules.version != state.rules.version:
        rules_version(conn, rules.version)  # raises NotFound unless stored (seeds version 1)
    item = item_of(rules, case_in.item_code)
    where = locate(
        conn, catalog, case_in, tolerance_m=tolerance_m, srid=srid, storage_point=storage_point
    )
    names = where.snap.names if where.snap is not None else None
    routed = route(
        rules,
        item.code,
        calendar=calendar,
        start=now,
        town_name=None if names is None else names.town,
        village_name=None if names is None else names.village,
    )
    hit = _asset(conn, catalog, item, where, srid)
    point = None if where.lon is None or where.lat is None else (where.lon, where.lat)
    loc = case_in.location
    reporters = [case_in.reporter] if case_in.reporter else []
    values: dict[str, Any] = {
        "source_system": case_in.source_system.value,
        "source_id": case_in.source_id,
        "item_code": item.code,
        "category": item.category,
        "description": case_in.description,
        "status": Status.reported.value,
        "step": STEP[Status.reported],
        "reported_at": case_in.reported_at,
        "received_at": now,
        "reporter": case_in.reporter,
        "reporters": reporters,
        "address_text": case_in.address,
        "source_crs": None if loc is None else loc.crs,
        "reported_lon": None if loc is None else loc.lon,
        "reported_lat": None if loc is None else loc.lat,
        "district_code": where.snap.district_code if where.snap is not None else district_code,
        "deadline": routed.deadline,
        "payload": case_in.payload,
        "created_at": now,
        "updated_at": now,
        **_place_values(where),
        **_route_values(routed),
        **_asset_values(hit),
    }
    case = insert_received(
        conn,
        values,
        point=point,
        srid=srid,
        duplicate=None if point is None else duplicate_params(item, point[1], case_in.reported_at),
        note=where.note,
        detail=_detail(where, hit, None),
    )
    if case is None:  # a concurrent re-send won the race: answer with its row
        row = conn.execute(
            case_select().where(
                cases.c.source_system == case_in.source_system.value,
                cases.c.source_id == case_in.source_id,
            )
        ).one()
        return case_from_row(row), False
    return case, True


def locate_manually(
    conn: Connection,
    catalog: Catalog,
    case_id: int,
    location: LocationIn,
    *,
    who: str,
    now: datetime,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    srid: int = STORAGE_EPSG,
) -> Case:
    """Place a case by hand: snap, nearest asset, units re-resolved under its rule version."""
    case = fetch_case(conn, case_id, lock=True)
    if case.status not in OPEN:
        raise Conflict(f"case {case_id} is {case.status.value}: it cannot be moved")
    lon, lat, snapped = place_point(
        conn,
        catalog,
        location.lon,
        location.lat,
        location.source_crs,
        tolerance_m=tolerance_m,
        srid=srid,
    )
    rules = rules_version(conn, case.rule_version) if case.rule_version else current_rules(conn)
    item = item_of(rules, case.item_code)
    where = Located(lon, lat, "manual", snapped, None, None)
    hit = _asset(conn, catalog, item, where, srid)
    # The deadline stays: it depends on the item and the receipt time, not on the place.
    values: dict[str, Any] = {
        "geom": func.ST_SetSRID(func.ST_MakePoint(lon, lat), srid),
        **_place_values(where),
        **_asset_values(hit),
        "responsible_unit": resolve_unit(
            item.lead_department, town_name=snapped.names.town, village_name=snapped.names.village
        ),
        "fallback_department": resolve_unit(
            item.fallback_department,
            town_name=snapped.names.town,
            village_name=snapped.names.village,
        ),
        "source_crs": location.crs,
        "reported_lon": location.lon,
        "reported_lat": location.lat,
        "district_code": snapped.district_code,
        "updated_at": now,
    }
    conn.execute(cases.update().where(cases.c.id == case_id).values(values))
    add_event(
        conn,
        case,
        "locate",
        from_status=case.status,
        to_status=case.status,
        actor=who,
        at=now,
        detail=_detail(where, hit, None),
    )
    return fetch_case(conn, case_id)
