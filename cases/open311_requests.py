"""GeoReport v2 service requests: a case seen through GeoReport's window, and the queries.

``status`` is open or closed, ``status_notes`` says the step of the five-step loop,
``agency_responsible`` the responsible unit and the rule's department, ``expected_datetime``
the deadline. Datetimes are ISO 8601 in Asia/Shanghai (+08:00); lat/long are WGS84. Requests
are listed by id (which overrides every other filter) or by service, status and requested
time, at most 90 days and 1000 requests at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection, or_

from cases.models import OPEN, Case, Status
from cases.routing import current_rules
from cases.sources import LOCAL_ZONE
from cases.store import case_from_row, case_select
from schemas.errors import InvalidInput, NotFound
from schemas.geodesy import STORAGE_EPSG, WGS84, from_storage
from schemas.tables import cases

MAX_REQUESTS: Final = 1000
MAX_SPAN: Final = timedelta(days=90)
STEP_NOTES: Final = {
    Status.reported: "第1步 巡查报告：已受理，待派遣 (step 1/5 reported)",
    Status.dispatched: "第2步 调度派遣：已派遣 (step 2/5 dispatched)",
    Status.handling: "第3步 协调处置：处置中 (step 3/5 handling)",
    Status.resolved: "第4步 跟踪回访：已处置，待回访 (step 4/5 resolved)",
    Status.visited: "第4步 跟踪回访：已回访，待评价 (step 4/5 visited)",
    Status.closed: "第5步 评价结案：已结案 (step 5/5 closed)",
    Status.merged: "已并入其他工单 (merged)",
}


def iso(moment: datetime | None) -> str | None:
    """Return an ISO 8601 datetime in Asia/Shanghai (+08:00)."""
    return None if moment is None else moment.astimezone(LOCAL_ZONE).isoformat(timespec="seconds")


def is_http_url(value: str) -> bool:
    """Return whether ``value`` is an absolute http(s) URL."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value


def service_notice(case: Case) -> str:
    """Return what the requester should expect: the unit, the deadline, a duplicate link."""
    parts: list[str] = []
    if case.duplicate_of is not None:
        parts.append(f"与工单 {case.duplicate_of} 为同一问题，已关联 (duplicate of request)")
    if case.needs_manual_location:
        parts.append("位置待人工核定 (location to be confirmed)")
    if case.responsible_unit:  # unknown until the place is (a generic rule name says nothing)
        parts.append(f"承办单位：{case.responsible_unit}")
    if case.deadline is not None:
        parts.append(f"处置时限：{case.deadline.astimezone(LOCAL_ZONE):%Y-%m-%d %H:%M}")
    return "；".join(parts)


def _agency(case: Case) -> str | None:
    unit, department = case.responsible_unit, case.department
    if unit and department and unit != department:
        return f"{unit}（{department}）"
    return unit or department


def _address(case: Case) -> str | None:
    if case.address_text:
        return case.address_text
    names = [n for n in ("花都区", case.town_name, case.village_name) if n]
    return "".join(names) if case.town_name else None


def request_view(
    case: Case, names: Mapping[str, str], *, srid: int = STORAGE_EPSG
) -> dict[str, Any]:
    """Return a case as a GeoReport service request."""
    lat = lon = None
    if case.lon is not None and case.lat is not None:
        x, y = from_storage(case.lon, case.lat, WGS84, srid)
        lon, lat = round(float(x), 7), round(float(y), 7)
    notes = STEP_NOTES[case.status]
    if case.status is Status.merged and case.merged_into is not None:
        notes = f"已并入工单 {case.merged_into} (merged into request {case.merged_into})"
    payload = case.payload or {}
    media = payload.get("media_url")
    return {
        "service_request_id": str(case.id),
        "status": "open" if case.status in OPEN else "closed",
        "status_notes": notes,
        "service_name": names.get(case.item_code),
        "service_code": case.item_code,
        "description": case.description,
        "agency_responsible": _agency(case),
        "service_notice": service_notice(case),
        "requested_datetime": iso(case.reported_at),
        "updated_datetime": iso(case.updated_at),
        "expected_datetime": iso(case.deadline),
        "address": _address(case),
        "address_id": payload.get("address_id")
        if isinstance(payload.get("address_id"), str)
        else None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": media if isinstance(media, str) and is_http_url(media) else None,
    }


def _when(text: str, name: str) -> datetime:
    """Parse a W3C datetime; one without an offset is read in Asia/Shanghai."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} {text!r} is not a W3C datetime (2026-03-01T00:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=LOCAL_ZONE)


def _window(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    t0 = _when(start, "start_date") if start else None
    t1 = _when(end, "end_date") if end else None
    if t0 is None and t1 is None:
        t1 = now
    try:
        if t0 is None:
            assert t1 is not None
            t0 = t1 - MAX_SPAN
        if t1 is None:
            t1 = t0 + MAX_SPAN
    except OverflowError:
        raise InvalidInput("start_date/end_date are out of range") from None
    if t1 < t0:
        raise InvalidInput("end_date is before start_date")
    if t1 - t0 > MAX_SPAN:
        raise InvalidInput("start_date and end_date may not span more than 90 days")
    return t0, t1


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 18


def _codes(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def find_requests(
    conn: Connection,
    *,
    now: datetime,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    limit: int = MAX_REQUESTS,
    srid: int = STORAGE_EPSG,
) -> list[dict[str, Any]]:
    """Return service requests, newest first: by id (overrides the rest) or by filters."""
    if not 1 <= limit <= MAX_REQUESTS:
        raise InvalidInput(f"limit must be between 1 and {MAX_REQUESTS}")
    stmt = case_select()
    if service_request_id is not None:
        wanted = _codes(service_request_id)
        if len(wanted) > MAX_REQUESTS:
            raise InvalidInput(f"at most {MAX_REQUESTS} service_request_id values")
        ids = sorted({int(v) for v in wanted if _is_id(v)})
        stmt = stmt.where(cases.c.id.in_(ids))
    else:
        t0, t1 = _window(start_date, end_date, now)
        stmt = stmt.where(cases.c.reported_at >= t0, cases.c.reported_at <= t1)
        if codes := _codes(service_code):
            stmt = stmt.where(cases.c.item_code.in_(codes))
        if status is not None:
            states = set(_codes(status))
            if not states or not states <= {"open", "closed"}:
                raise InvalidInput(f"status must be open and/or closed, not {status!r}")
            open_values = [s.value for s in OPEN]
            conditions = []
            if "open" in states:
                conditions.append(cases.c.status.in_(open_values))
            if "closed" in states:
                conditions.append(cases.c.status.not_in(open_values))
            stmt = stmt.where(or_(*conditions))
    rows = conn.execute(
        stmt.order_by(cases.c.reported_at.desc(), cases.c.id.desc()).limit(limit)
    ).all()
    names = {item.code: item.zh for item in current_rules(conn).items}
    return [request_view(case_from_row(r), names, srid=srid) for r in rows]


def get_request(
    conn: Connection, service_request_id: str, *, srid: int = STORAGE_EPSG
) -> dict[str, Any]:
    """Return one service request; NotFound when there is no such id."""
    text = service_request_id.strip()
    if not _is_id(text):
        raise NotFound(f"service request {service_request_id!r} was not found")
    rows = conn.execute(case_select().where(cases.c.id == int(text))).all()
    if not rows:
        raise NotFound(f"service request {text} was not found")
    names = {item.code: item.zh for item in current_rules(conn).items}
    return request_view(case_from_row(rows[0]), names, srid=srid)
