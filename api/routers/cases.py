"""Cases over HTTP: list and read them, move them through the loop, merge, place, call.

Every write runs in one transaction committed before the answer. Who acts is the
``X-Sibiao-User`` header until authentication exists (default ``anonymous``).
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.case_views import (
    CaseDetailOut,
    CaseOut,
    CasePageOut,
    Link,
    MergeOut,
    case_out,
    detail_out,
    local,
    localise,
)
from api.deps import CatalogDep, ConnectionDep, EngineDep
from api.dispatch import ActorDep, AreaDep, CalendarDep, NowDep, ScopeDep, check_values
from api.security.case_actions import case_action_permit
from cases import workflow
from cases.calls import DEFAULT_RESPONSE, call_department, respond_call
from cases.intake import locate_manually
from cases.models import DepartmentCall, LocationIn
from cases.queries import MAX_LIMIT, MAX_POINTS, CaseFilter, case_points, get_case, list_cases
from cases.rules import Deadline
from cases.store import ensure_in_scope
from schemas.errors import InvalidInput
from schemas.geodesy import parse_crs, to_storage

router = APIRouter(tags=["dispatch"])
CaseId = Annotated[int, Path(ge=1, le=2**62, description="case id")]
CallId = Annotated[int, Path(ge=1, le=2**62, description="department call id")]
Text = Annotated[str | None, Query(max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TransitionIn(_Body):
    """An action on a case."""

    action: str = Field(max_length=16, description="dispatch, start, resolve, visit, close, …")
    note: str | None = Field(default=None, max_length=2000)
    unit: str | None = Field(default=None, max_length=200, description="for dispatch/reassign")


class MergeIn(_Body):
    """The open case a duplicate is folded into."""

    into: int = Field(ge=1, le=2**62)
    note: str | None = Field(default=None, max_length=2000)


class CallIn(_Body):
    """A town's call to a district department."""

    department: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    within: Deadline = Field(default=DEFAULT_RESPONSE, description="time to respond")


class ResponseIn(_Body):
    """A department's response to a call."""

    response: str = Field(min_length=1, max_length=4000)


def _storage_bbox(text: str, crs: str, srid: int) -> tuple[float, float, float, float]:
    """Return a 'minx,miny,maxx,maxy' box given in ``crs`` as a storage lon/lat box."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidInput(f"bbox must be four numbers minx,miny,maxx,maxy, not {text!r}") from None
    if len(values) != 4 or not all(map(math.isfinite, values)):
        raise InvalidInput(f"bbox must be four finite numbers minx,miny,maxx,maxy, not {text!r}")
    minx, miny, maxx, maxy = values
    if minx > maxx or miny > maxy:
        raise InvalidInput("bbox must be minx,miny,maxx,maxy with min ≤ max")
    xs, ys = to_storage([minx, minx, maxx, maxx], [miny, maxy, miny, maxy], parse_crs(crs), srid)
    box = (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))
    if not all(map(math.isfinite, box)):
        raise InvalidInput(f"bbox {text!r} cannot be expressed in EPSG:{srid}")
    return box


def _statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def case_filter(
    request: Request,
    scope: ScopeDep,
    status: Annotated[
        list[str] | None, Query(description="status; repeat or comma-separate for several")
    ] = None,
    town: Annotated[str | None, Query(max_length=9, description="town code")] = None,
    village: Annotated[str | None, Query(max_length=12, description="village code")] = None,
    grid: Annotated[str | None, Query(max_length=15, description="grid cell code")] = None,
    department: Annotated[
        str | None, Query(max_length=200, description="rule department or responsible unit")
    ] = None,
    item: Annotated[str | None, Query(max_length=4, description="item code")] = None,
    category: Annotated[str | None, Query(max_length=2, description="category code")] = None,
    source: Annotated[str | None, Query(max_length=32, description="source system")] = None,
    overdue: Annotated[bool | None, Query(description="running and past the deadline")] = None,
    manual: Annotated[bool | None, Query(description="needs a manual location")] = None,
    duplicates: Annotated[
        bool | None, Query(description="only (true) or no (false) duplicates")
    ] = None,
    received_from: Annotated[
        AwareDatetime | None, Query(alias="from", description="received at or after")
    ] = None,
    received_to: Annotated[
        AwareDatetime | None, Query(alias="to", description="received before")
    ] = None,
    bbox: Annotated[
        str | None, Query(max_length=200, description="minx,miny,maxx,maxy in crs")
    ] = None,
    crs: Annotated[str, Query(max_length=100, description="CRS of bbox")] = "EPSG:4490",
) -> CaseFilter:
    """Return the filters of a case list from the query (shared by /cases and /cases/points)."""
    srid = request.app.state.settings.storage_epsg
    return CaseFilter(
        status=_statuses(status),
        town_code=town,
        village_code=village,
        grid_code=grid,
        department=department,
        item_code=item,
        category=category,
        source_system=source,
        overdue=overdue,
        needs_manual_location=manual,
        duplicates=duplicates,
        received_from=received_from,
        received_to=received_to,
        bbox=None if bbox is None else _storage_bbox(bbox, crs, srid),
        scope=scope,
    )


CaseFilterDep = Annotated[CaseFilter, Depends(case_filter)]


@router.get("/cases", response_model=CasePageOut, summary="List cases")
def get_cases(
    request: Request,
    conn: ConnectionDep,
    now: NowDep,
    filters: CaseFilterDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JSONResponse:
    """Return one page of the cases matching every filter given, newest received first."""
    srid = request.app.state.settings.storage_epsg
    page = list_cases(conn, filters, now=now, limit=limit, offset=offset, srid=srid)
    links = [Link(rel="self", href=str(request.url))]
    if offset + limit < page.total:
        nxt = request.url.include_query_params(offset=offset + limit, limit=limit)
        links.append(Link(rel="next", href=str(nxt)))
    if offset > 0:
        prev = request.url.include_query_params(offset=max(0, offset - limit), limit=limit)
        links.append(Link(rel="prev", href=str(prev)))
    body = CasePageOut(
        items=[case_out(request, c, now) for c in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        links=links,
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/cases/points", summary="Located cases as compact GeoJSON points (for maps)")
def get_case_points(
    request: Request,
    conn: ConnectionDep,
    now: NowDep,
    filters: CaseFilterDep,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 5000,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JSONResponse:
    """Return a page of the located cases matching the filters: id, status, item, overdue."""
    srid = request.app.state.settings.storage_epsg
    page = case_points(conn, filters, now=now, limit=limit, offset=offset, srid=srid)
    features = [
        {
            "type": "Feature",
            "id": p.id,
            "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
            "properties": {
                "status": p.status,
                "item_code": p.item_code,
                "category": p.category,
                "overdue": p.overdue,
                "duplicate_of": p.duplicate_of,
                "town_code": p.town_code,
                "received_at": local(p.received_at).isoformat(),
            },
        }
        for p in page.items
    ]
    return JSONResponse(
        {
            "type": "FeatureCollection",
            "numberMatched": page.total,
            "numberReturned": len(features),
            "unlocated": page.unlocated,
            "limit": page.limit,
            "offset": page.offset,
            "features": features,
        }
    )


@router.get("/cases/{case_id}", response_model=CaseDetailOut, summary="A case and its timeline")
def get_case_detail(
    request: Request, case_id: CaseId, conn: ConnectionDep, now: NowDep, scope: ScopeDep
) -> JSONResponse:
    """Return a case with its events, department calls and escalations."""
    detail = get_case(conn, case_id, scope=scope)
    return JSONResponse(detail_out(request, detail, now).model_dump(mode="json"))


@router.post(
    "/cases/{case_id}/transitions",
    response_model=CaseOut,
    responses={
        403: {"description": "the caller's role may not take this action (api/policy.yaml)"},
        409: {"description": "not legal now; the message lists the legal actions"},
    },
    summary="Move a case through the five-step loop",
)
def post_transition(
    request: Request,
    case_id: CaseId,
    body: TransitionIn,
    engine: EngineDep,
    calendar: CalendarDep,
    actor: ActorDep,
    now: NowDep,
    scope: ScopeDep,
) -> JSONResponse:
    """Apply dispatch, start, resolve, visit, close, return, reassign or reopen.

    Which role may take which action is the policy's ``case_actions`` table.
    """
    check_values(body.model_dump(), ["body"])
    if body.action == workflow.Action.merge.value:
        raise InvalidInput(f"merge with POST /cases/{case_id}/merge and the case to merge into")
    with engine.begin() as conn:
        case = workflow.apply(
            conn,
            case_id,
            body.action,
            who=actor,
            now=now,
            note=body.note or None,
            unit=body.unit or None,
            calendar=calendar,
            scope=scope,
            permit=case_action_permit(request),
        )
    return JSONResponse(case_out(request, case, now).model_dump(mode="json"))


@router.post(
    "/cases/{case_id}/merge",
    response_model=MergeOut,
    responses={
        403: {"description": "the caller's role may not merge (api/policy.yaml case_actions)"},
        409: {"description": "either case is not in a state that allows it"},
    },
    summary="Fold a duplicate into another open case",
)
def post_merge(
    request: Request,
    case_id: CaseId,
    body: MergeIn,
    engine: EngineDep,
    actor: ActorDep,
    now: NowDep,
    scope: ScopeDep,
) -> JSONResponse:
    """Merge this case into ``into``; return both."""
    check_values(body.model_dump(), ["body"])
    with engine.begin() as conn:
        merged, kept = workflow.merge(
            conn,
            case_id,
            body.into,
            who=actor,
            now=now,
            note=body.note,
            scope=scope,
            permit=case_action_permit(request),
        )
    out = MergeOut(merged=case_out(request, merged, now), into=case_out(request, kept, now))
    return JSONResponse(out.model_dump(mode="json"))


@router.post(
    "/cases/{case_id}/location",
    response_model=CaseOut,
    summary="Place a case by hand",
)
def post_location(
    request: Request,
    case_id: CaseId,
    body: LocationIn,
    engine: EngineDep,
    catalog: CatalogDep,
    area: AreaDep,
    actor: ActorDep,
    now: NowDep,
    scope: ScopeDep,
) -> JSONResponse:
    """Set the case's point: snapped, attached to an asset, its units re-resolved."""
    area.check(body)
    with engine.begin() as conn:
        ensure_in_scope(conn, case_id, scope)
        case = locate_manually(conn, catalog, case_id, body, who=actor, now=now, srid=area.srid)
    return JSONResponse(case_out(request, case, now).model_dump(mode="json"))


@router.post(
    "/cases/{case_id}/calls",
    status_code=201,
    response_model=DepartmentCall,
    summary="A town calls a district department (有呼必应)",
)
def post_call(
    request: Request,
    case_id: CaseId,
    body: CallIn,
    engine: EngineDep,
    calendar: CalendarDep,
    actor: ActorDep,
    now: NowDep,
    scope: ScopeDep,
) -> JSONResponse:
    """Call a department on a dispatched or handling case; it must respond by the deadline."""
    check_values(body.model_dump(), ["body"])
    with engine.begin() as conn:
        ensure_in_scope(conn, case_id, scope)
        call = call_department(
            conn,
            case_id,
            body.department,
            who=actor,
            now=now,
            calendar=calendar,
            within=body.within,
            note=body.note,
        )
    href = str(request.url_for("get_case_detail", case_id=case_id))
    return JSONResponse(
        localise(call).model_dump(mode="json"), status_code=201, headers={"Location": href}
    )


@router.post(
    "/calls/{call_id}/response",
    response_model=DepartmentCall,
    responses={409: {"description": "the call was answered before"}},
    summary="A department responds to a call",
)
def post_call_response(
    call_id: CallId,
    body: ResponseIn,
    engine: EngineDep,
    actor: ActorDep,
    now: NowDep,
    scope: ScopeDep,
) -> JSONResponse:
    """Record the department's response (once); a handler answers its department's calls."""
    check_values(body.model_dump(), ["body"])
    department = None if scope is None else scope.department
    with engine.begin() as conn:
        call = respond_call(
            conn, call_id, who=actor, now=now, response=body.response, department=department
        )
    return JSONResponse(localise(call).model_dump(mode="json"))
