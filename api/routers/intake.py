"""Cases in: ``POST /cases`` (the platform's own shape) and ``POST /intake/{system}``.

Every accepted case is stored (committed) before the answer leaves: 201 with the case when it is
new, 200 with the stored case when the same (source_system, source_id) was sent before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.case_views import CaseOut, case_out, case_url
from api.deps import CatalogDep, EngineDep, SettingsDep
from api.dispatch import AreaDep, CalendarDep, NowDep, check_values
from cases.accept import accept_case, accept_payload
from cases.models import Case, CaseIn
from cases.sources import SourceSystem, parse_payload
from schemas.errors import NotFound

router = APIRouter(tags=["dispatch"])

ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": CaseOut, "description": "sent before: the stored case"},
    400: {"description": "out of the district, unknown item, impossible report time"},
    422: {"description": "malformed body; the problem names the field"},
}


def _answer(request: Request, case: Case, created: bool, now: datetime) -> JSONResponse:
    body = case_out(request, case, now).model_dump(mode="json")
    return JSONResponse(
        body, status_code=201 if created else 200, headers={"Location": case_url(request, case.id)}
    )


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseOut,
    responses=ANSWERS,
    summary="Receive a case",
)
def post_case(
    request: Request,
    case_in: CaseIn,
    engine: EngineDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    calendar: CalendarDep,
    area: AreaDep,
    now: NowDep,
) -> JSONResponse:
    """Locate, route and store a case; a re-send answers 200 with the stored case."""
    check_values(case_in.model_dump(), ["body"])
    with engine.begin() as conn:
        case, created = accept_case(
            conn,
            catalog,
            calendar,
            case_in,
            now=now,
            area=area,
            district_code=settings.district_code,
        )
    return _answer(request, case, created, now)


@router.post(
    "/intake/{system}",
    status_code=201,
    response_model=CaseOut,
    responses={**ANSWERS, 404: {"description": "no such sending system"}},
    summary="Receive a case in a sending system's own payload",
)
def post_intake(
    request: Request,
    system: Annotated[
        str,
        Path(
            max_length=64,
            description="city_management, illegal_construction, community_grid, "
            "migrant_management, hotline_12345 (or open311 in the mini-program's JSON shape)",
        ),
    ],
    payload: Annotated[dict[str, Any], Body(description="the system's payload (cases.sources)")],
    engine: EngineDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    calendar: CalendarDep,
    area: AreaDep,
    now: NowDep,
) -> JSONResponse:
    """Normalise a legacy system's payload and receive it as ``POST /cases`` does."""
    try:
        source = SourceSystem(system)
    except ValueError:
        known = ", ".join(s.value for s in SourceSystem)
        raise NotFound(f"no intake for system {system!r}; one of {known}") from None
    check_values(payload, ["body"])
    try:
        parsed = parse_payload(source, payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ]
        ) from None
    with engine.begin() as conn:
        case, created = accept_payload(
            conn,
            catalog,
            calendar,
            parsed,
            now=now,
            area=area,
            district_code=settings.district_code,
        )
    return _answer(request, case, created, now)
