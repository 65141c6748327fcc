"""What the dispatch routers share: the clock, calendar, district area, actor, body checks.

The clock is ``app.state.clock`` (a function returning an aware datetime), so tests and drills
move time without touching the system clock. The in-process escalation scheduler is started in
the app's lifespan when ``escalation_interval_s`` > 0 and reads the same clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine

from cases.accept import DistrictArea
from cases.escalation import FileSender
from cases.rules import WorkingCalendar, load_calendar
from cases.scheduler import EscalationScheduler
from cases.store import CaseScope
from schemas.settings import Settings

#: Who acts when a request names nobody (authentication comes with the security work).
ANONYMOUS = "anonymous"
MAX_ACTOR = 64


def utc_now() -> datetime:
    """Return the current time, timezone-aware."""
    return datetime.now(UTC)


def get_now(request: Request) -> datetime:
    """Return the app clock's time for this request."""
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", None) or utc_now
    return clock()


@lru_cache(maxsize=1)
def packaged_calendar() -> WorkingCalendar:
    """Return the packaged working calendar, read once."""
    return load_calendar()


def get_calendar(request: Request) -> WorkingCalendar:
    """Return the app's working calendar (``app.state.calendar`` or the packaged one)."""
    calendar: WorkingCalendar | None = getattr(request.app.state, "calendar", None)
    return calendar or packaged_calendar()


def get_area(request: Request) -> DistrictArea:
    """Return where case points may lie, from the settings."""
    settings: Settings = request.app.state.settings
    return DistrictArea.from_extent(
        settings.district_extent, settings.extent_margin_deg, settings.storage_epsg
    )


def get_actor(
    request: Request,
    x_sibiao_user: Annotated[
        str | None,
        Header(
            description="who acts when authentication is off (percent-encoded UTF-8); "
            "signed-in callers act under their own name"
        ),
    ] = None,
) -> str:
    """Return who performs the request: the signed-in caller, else the header's name."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and getattr(principal, "via", None) in ("token", "api_key"):
        return str(principal.name)[:MAX_ACTOR]
    actor = unquote(x_sibiao_user or "", errors="replace").replace("\x00", "").strip()
    return actor[:MAX_ACTOR] or ANONYMOUS


def get_scope(request: Request) -> CaseScope | None:
    """Return the cases the caller may see and act on.

    A dispatcher's towns, a department handler's department; None (every case) for the other
    roles and when authentication is off (no principal, or the unrestricted one).
    """
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None
    towns = principal.town_scope
    department = principal.department_scope
    if towns is None and department is None:
        return None
    return CaseScope(towns=None if towns is None else tuple(towns), department=department)


NowDep = Annotated[datetime, Depends(get_now)]
ScopeDep = Annotated[CaseScope | None, Depends(get_scope)]
CalendarDep = Annotated[WorkingCalendar, Depends(get_calendar)]
AreaDep = Annotated[DistrictArea, Depends(get_area)]
ActorDep = Annotated[str, Depends(get_actor)]


def invalid(loc: list[str | int], message: str) -> RequestValidationError:
    """Return a 422 error naming the field at ``loc``."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def check_values(value: Any, loc: list[str | int]) -> None:
    """Raise a 422 for NaN/Infinity or NUL characters anywhere in parsed JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(loc, "NaN and Infinity are not numbers in JSON")
    if isinstance(value, str) and "\x00" in value:
        raise invalid(loc, "text must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            check_values(key, loc)
            check_values(item, [*loc, str(key)])
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_values(item, [*loc, index])


def start_escalation(
    app: FastAPI, engine: Engine, settings: Settings
) -> EscalationScheduler | None:
    """Start the in-process escalation scheduler when the settings ask for one."""
    if not settings.escalation_interval_s:
        return None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    scheduler = EscalationScheduler(
        engine,
        FileSender(settings.data_dir / "outbox.log"),
        interval_s=settings.escalation_interval_s,
        clock=lambda: (getattr(app.state, "clock", None) or utc_now)(),
    )
    scheduler.start()
    return scheduler


def stop_escalation(app: FastAPI) -> None:
    """Stop the in-process escalation scheduler, if one runs."""
    scheduler: EscalationScheduler | None = getattr(app.state, "escalation", None)
    if scheduler is not None:
        scheduler.stop()
        app.state.escalation = None
