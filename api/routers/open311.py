"""Open311 GeoReport v2 under ``/open311/v2``: discovery, services, service requests.

Every path ends in ``.json`` or ``.xml``; errors are the spec's list of {code, description}
with 400, 403 or 404 (see :mod:`api.open311_format`). Requests are created form-encoded, as the
spec says, and stored before the answer leaves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api.deps import CatalogDep, ConnectionDep, EngineDep, SettingsDep
from api.dispatch import AreaDep, CalendarDep, NowDep
from api.open311_format import Open311Route, check_format, render
from cases.open311 import discovery, service_definition, services, submit_request
from cases.open311_requests import MAX_REQUESTS, find_requests, get_request
from cases.routing import current_rules
from schemas.errors import InvalidInput, NotFound

router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route)
STARTED = datetime.now(UTC).replace(microsecond=0)
Fmt = Annotated[str, Path(description="json or xml")]
Jurisdiction = Annotated[
    str | None, Query(max_length=32, description="440114 (optional: one jurisdiction)")
]
Filter = Annotated[str | None, Query(max_length=20_000)]


def _jurisdiction(given: str | None, district_code: str) -> None:
    if given and given != district_code:
        raise NotFound(f"jurisdiction_id {given!r} was not found; this is {district_code}")


async def form_items(request: Request) -> list[tuple[str, object]]:
    """Return the fields of a form-encoded (or multipart) body, in order."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise InvalidInput("send the request form-encoded (application/x-www-form-urlencoded)")
    form = await request.form()
    return list(form.multi_items())


@router.get("/discovery.{fmt}", summary="Discovery document")
def get_discovery(request: Request, fmt: Fmt) -> Response:
    """Return where the endpoint is, which specification and formats it serves."""
    endpoint = str(request.url_for("get_services", fmt="json")).removesuffix("/services.json")
    body = discovery(endpoint, STARTED, contact="花都区指挥中心 (Huadu district command centre)")
    return render(check_format(fmt), "discovery", body)


@router.get("/services.{fmt}", summary="Service list (the 36 items)")
def get_services(
    fmt: Fmt, conn: ConnectionDep, settings: SettingsDep, jurisdiction_id: Jurisdiction = None
) -> Response:
    """Return one service per routing item; group is the category's name."""
    check_format(fmt)
    _jurisdiction(jurisdiction_id, settings.district_code)
    return render(fmt, "services", services(current_rules(conn)))


@router.get("/services/{service_code}.{fmt}", summary="Service definition")
def get_service_definition(
    service_code: Annotated[str, Path(max_length=16)],
    fmt: Fmt,
    conn: ConnectionDep,
    settings: SettingsDep,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """Return the extra attributes of a service (datum, reported_at, source_id)."""
    check_format(fmt)
    _jurisdiction(jurisdiction_id, settings.district_code)
    return render(fmt, "service_definition", service_definition(current_rules(conn), service_code))


@router.post("/requests.{fmt}", status_code=201, summary="Create a service request")
def post_request(
    fmt: Fmt,
    items: Annotated[list[tuple[str, object]], Depends(form_items)],
    engine: EngineDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    calendar: CalendarDep,
    area: AreaDep,
    now: NowDep,
) -> Response:
    """Receive a form as a case; 201 when new, 200 with the same id when re-sent."""
    check_format(fmt)
    with engine.begin() as conn:
        answer, created = submit_request(
            conn,
            catalog,
            calendar,
            items,
            now=now,
            area=area,
            district_code=settings.district_code,
        )
    return render(fmt, "service_requests", [answer], 201 if created else 200)


@router.get("/requests.{fmt}", summary="Service requests")
def get_requests(
    fmt: Fmt,
    conn: ConnectionDep,
    settings: SettingsDep,
    now: NowDep,
    service_request_id: Annotated[
        str | None, Query(max_length=20_000, description="ids, comma-separated")
    ] = None,
    service_code: Annotated[
        str | None, Query(max_length=1_000, description="codes, comma-separated")
    ] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20, description="open, closed")] = None,
    jurisdiction_id: Jurisdiction = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_REQUESTS, description="extension: at most this many")
    ] = MAX_REQUESTS,
) -> Response:
    """Return requests by id, or by service, status and requested time (default: 90 days)."""
    check_format(fmt)
    _jurisdiction(jurisdiction_id, settings.district_code)
    found = find_requests(
        conn,
        now=now,
        service_request_id=service_request_id,
        service_code=service_code,
        start_date=start_date,
        end_date=end_date,
        status=status,
        limit=limit,
        srid=settings.storage_epsg,
    )
    return render(fmt, "service_requests", found)


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request")
def get_one_request(
    service_request_id: Annotated[str, Path(max_length=40)],
    fmt: Fmt,
    conn: ConnectionDep,
    settings: SettingsDep,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """Return one request (as a list of one, as the spec does)."""
    check_format(fmt)
    _jurisdiction(jurisdiction_id, settings.district_code)
    found = get_request(conn, service_request_id, srid=settings.storage_epsg)
    return render(fmt, "service_requests", [found])


@router.api_route("/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
def not_found(rest: str) -> Response:
    """Answer any other Open311 path with the spec's 404."""
    raise NotFound(f"no Open311 resource {rest!r}")
