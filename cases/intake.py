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

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, func, text
from sqlalchemy.dialects import postgresql

from cases.locate import Located, locate, place_point
from cases.models import OPEN, STEP, Case, CaseIn, LocationIn, Status
from cases.routing import Route, current_rules, item_of, resolve_unit, route, rules_version
from cases.rules import Item, RoutingRules, WorkingCalendar
from cases.store import add_event, case_from_row, case_select, fetch_case
from layers.assets import AssetHit, nearest_asset
from layers.snap import DEFAULT_TOLERANCE_M
from schemas.catalog import Catalog
from schemas.errors import Conflict, InvalidInput
from schemas.geodesy import STORAGE_EPSG, metres_to_degrees_hint
from schemas.settings import Settings
from schemas.tables import cases

DEFAULT_DISTRICT: Final = str(Settings.model_fields["district_code"].default)


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
    window = timedelta(hours=item.duplicate_window_hours)
    row = conn.execute(
        text("""
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), :srid) AS g)
        SELECT c.id FROM cases c, p
        WHERE c.item_code = :item AND c.status = ANY(:open) AND c.duplicate_of IS NULL
          AND c.geom IS NOT NULL AND c.id <> :exclude
          AND c.reported_at BETWEEN :t0 AND :t1
          AND ST_DWithin(c.geom, p.g, :deg)
          AND ST_DWithin(c.geom::geography, p.g::geography, :radius)
        ORDER BY ST_Distance(c.geom::geography, p.g::geography), c.reported_at, c.id
        LIMIT 1
        """),
        {
            "x": lon,
            "y": lat,
            "srid": srid,
            "item": item.code,
            "open": sorted(s.value for s in OPEN),
            "exclude": exclude or 0,
            "t0": reported_at - window,
            "t1": reported_at + window,
            "deg": metres_to_degrees_hint(item.duplicate_radius_m, lat),
            "radius": item.duplicate_radius_m,
        },
    ).first()
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


def _place_values(where: Located, srid: int) -> dict[str, Any]:
    """Return the columns a location sets."""
    s = where.snap
    return {
        "geom": None
        if where.lon is None
        else func.ST_SetSRID(func.ST_MakePoint(where.lon, where.lat), srid),
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


def _ensure_version(conn: Connection, rules: RoutingRules | None) -> RoutingRules:
    if rules is None:
        return current_rules(conn)
    rules_version(conn, rules.version)  # raises NotFound unless stored (seeds version 1)
    return rules


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
) -> tuple[Case, bool]:
    """Store a case located, routed and checked for duplicates; return it and whether it is new.

    ``rules`` None means the newest stored version. The deadline counts from ``now`` (receipt).
    """
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    existing = conn.execute(
        case_select().where(
            cases.c.source_system == case_in.source_system.value,
            cases.c.source_id == case_in.source_id,
        )
    ).first()
    if existing is not None:
        return case_from_row(existing), False
    rules = _ensure_version(conn, rules)
    item = item_of(rules, case_in.item_code)
    where = locate(conn, catalog, case_in, tolerance_m=tolerance_m, srid=srid)
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
    duplicate = None
    if where.lon is not None and where.lat is not None:
        duplicate = find_duplicate(conn, item, where.lon, where.lat, case_in.reported_at, srid=srid)
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
        "duplicate_of": duplicate,
        "payload": case_in.payload,
        "created_at": now,
        "updated_at": now,
        **_place_values(where, srid),
        **_route_values(routed),
        **_asset_values(hit),
    }
    stmt = postgresql.insert(cases).values(values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["source_system", "source_id"])
    new_id = conn.execute(stmt.returning(cases.c.id)).scalar()
    if new_id is None:  # a concurrent re-send won the race: answer with its row
        row = conn.execute(
            case_select().where(
                cases.c.source_system == case_in.source_system.value,
                cases.c.source_id == case_in.source_id,
            )
        ).one()
        return case_from_row(row), False
    case = fetch_case(conn, int(new_id))
    add_event(
        conn,
        case,
        "receive",
        to_status=Status.reported,
        actor=f"{case_in.source_system.value}",
        at=now,
        note=where.note,
        detail=_detail(where, hit, duplicate),
    )
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
        **_place_values(where, srid),
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
