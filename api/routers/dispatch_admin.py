"""The dispatch's numbers and rule book: case statistics, routing rules (read, new version)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from api.deps import CatalogDep, ConnectionDep, EngineDep
from api.dispatch import ActorDep, NowDep, ScopeDep, check_values, invalid
from cases.routing import current_rules, rules_version, update_rules
from cases.rules import RoutingRules
from cases.stats import case_stats
from schemas.errors import InvalidInput

router = APIRouter(tags=["dispatch"])
DEFAULT_SPAN = timedelta(days=30)


class StatRowOut(BaseModel):
    """The figures of one group."""

    model_config = ConfigDict(frozen=True)

    key: str | None
    label: str | None
    received: int
    closed: int
    closure_rate: float | None
    on_time_rate: float | None
    overdue_now: int
    median_hours_to_close: float | None


class StatsOut(BaseModel):
    """Statistics of the cases received in [from, to)."""

    model_config = ConfigDict(frozen=True)

    by: str
    period: str | None
    start: datetime
    end: datetime
    rows: list[StatRowOut]


@router.get("/stats/cases", response_model=StatsOut, summary="Case statistics")
def get_stats(
    conn: ConnectionDep,
    now: NowDep,
    scope: ScopeDep,
    by: Annotated[
        str, Query(max_length=16, description="town, department, unit, category, item or period")
    ] = "town",
    start: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="received at or after (default to − 30 days)"),
    ] = None,
    end: Annotated[
        AwareDatetime | None, Query(alias="to", description="received before (default now)")
    ] = None,
    period: Annotated[
        str, Query(max_length=8, description="day, week, month, quarter or year (by=period)")
    ] = "month",
) -> JSONResponse:
    """Return received, closed, closure and on-time rates, overdue now, median hours to close."""
    end = end or now
    try:
        start = start or end - DEFAULT_SPAN
    except OverflowError:
        raise InvalidInput("from/to are out of range") from None
    rows = case_stats(conn, by=by, start=start, end=end, now=now, period=period, scope=scope)
    out = StatsOut(
        by=by,
        period=period if by == "period" else None,
        start=start,
        end=end,
        rows=[StatRowOut(**asdict(r)) for r in rows],
    )
    return JSONResponse(out.model_dump(mode="json"))


@router.get("/routing/rules", summary="The routing rules (current, or one version)")
def get_rules(
    conn: ConnectionDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="default: newest")] = None,
) -> JSONResponse:
    """Return the 13 categories and 36 items with their version."""
    rules = current_rules(conn) if version is None else rules_version(conn, version)
    return JSONResponse(rules.model_dump(mode="json"))


@router.put(
    "/routing/rules",
    responses={422: {"description": "the rules are not valid; the problem says where"}},
    summary="Store new routing rules as the next version",
)
def put_rules(
    body: Annotated[dict[str, Any], Body(description="categories and items (version is ignored)")],
    engine: EngineDep,
    catalog: CatalogDep,
    actor: ActorDep,
    now: NowDep,
    note: Annotated[str | None, Query(max_length=500, description="why the rules change")] = None,
) -> JSONResponse:
    """Validate the rules (shape, 13/36, catalog layers) and store them as a new version."""
    check_values(body, ["body"])
    try:
        checked = RoutingRules.model_validate({**body, "version": 1})
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ]
        ) from None
    try:
        with engine.begin() as conn:
            version = update_rules(conn, checked, actor, catalog=catalog, note=note, now=now)
    except InvalidInput as exc:
        raise invalid(["body"], exc.message) from None
    stored = checked.model_copy(update={"version": version})
    return JSONResponse(
        stored.model_dump(mode="json"),
        headers={"Location": f"/routing/rules?version={version}"},
    )
