"""Cases in: ``POST /cases`` (the platform's own shape) and ``POST /intake/{system}``.

Every accepted case is stored (committed) before the answer leaves: 201 with the case when it is
new, 200 with the stored case when the same (source_system, source_id) was sent before.

The handlers read the app's engine, catalog, settings, calendar and clock from the app state
directly rather than as dependencies (FastAPI runs each plain-function dependency in the thread
pool: seven thread hops per case cost more CPU than locating and storing it), and receive a
case in one thread hop under a small per-process limit (:data:`INTAKE_CONCURRENCY`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Final

import anyio
import anyio.to_thread
from fastapi import APIRouter, Body, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.case_views import CaseOut, case_out
from api.deps import get_catalog, get_engine, get_settings
from api.dispatch import check_values, get_area, get_calendar, get_now
from cases.accept import accept_case, accept_payload
from cases.models import Case, CaseIn
from cases.sources import SourceSystem, parse_payload
from schemas.errors import NotFound

router = APIRouter(tags=["dispatch"])

#: Cases received at once by one worker process. Enough to keep two cores busy while the others
#: wait on the database; few enough that each finds a warm pooled connection (its prepared
#: statements) and that 50 clients wait on the event loop rather than as 40 threads and 40
#: database backends fighting over two cores.
INTAKE_CONCURRENCY: Final = 8

ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": CaseOut, "description": "sent before: the stored case"},
    400: {"description": "out of the district, unknown item, impossible report time"},
    422: {"description": "malformed body; the problem names the field"},
}


def _limiter(request: Request) -> anyio.CapacityLimiter:
    """Return this app's intake limiter for the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = getattr(
        request.app.state, "intake_limiter", None
    )
    if held is None or held[0] is not loop:
        held = (loop, anyio.CapacityLimiter(INTAKE_CONCURRENCY))
        request.app.state.intake_limiter = held
    return held[1]


async def _in_thread(request: Request, work: Callable[[], JSONResponse]) -> JSONResponse:
    """Run one case's intake in a worker thread, at most ``INTAKE_CONCURRENCY`` at once."""
    return await anyio.to_thread.run_sync(work, limiter=_limiter(request))


def _answer(request: Request, case: Case, created: bool, now: datetime) -> JSONResponse:
    out = case_out(request, case, now)
    location = next(link.href for link in out.links if link.rel == "self")
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201 if created else 200,
        headers={"Location": location},
    )


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseOut,
    responses=ANSWERS,
    summary="Receive a case",
)
async def post_case(request: Request, case_in: CaseIn) -> JSONResponse:
    """Locate, route and store a case; a re-send answers 200 with the stored case."""
    return await _in_thread(request, partial(_receive_case, request, case_in))


def _receive_case(request: Request, case_in: CaseIn) -> JSONResponse:
    check_values(case_in.model_dump(), ["body"])
    now = get_now(request)
    with get_engine(request).begin() as conn:
        case, created = accept_case(
            conn,
            get_catalog(request),
            get_calendar(request),
            case_in,
            now=now,
            area=get_area(request),
            district_code=get_settings(request).district_code,
        )
    return _answer(request, case, created, now)


@router.post(
    "/intake/{system}",
    status_code=201,
    response_model=CaseOut,
    responses={**ANSWERS, 404: {"description": "no such sending system"}},
    summary="Receive a case in a sending system's own payload",
)
async def post_intake(
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
) -> JSONResponse:
    """Normalise a legacy system's payload and receive it as ``POST /cases`` does."""
    return await _in_thread(request, partial(_receive_payload, request, system, payload))


def _receive_payload(request: Request, system: str, payload: dict[str, Any]) -> JSONResponse:
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
    now = get_now(request)
    with get_engine(request).begin() as conn:
        case, created = accept_payload(
            conn,
            get_catalog(request),
            get_calendar(request),
            parsed,
            now=now,
            area=get_area(request),
            district_code=get_settings(request).district_code,
        )
    return _answer(request, case, created, now)
