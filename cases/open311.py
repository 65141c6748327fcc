"""Open311 GeoReport v2 over the dispatch domain: discovery, services, the POST form.

Services are the 36 items of the routing rules (``group`` is the category's name). A POST form
becomes a ``CaseIn`` of source system ``open311``: coordinates are WGS84 unless
``attribute[datum]`` says ``gcj02`` (the WeChat mini-program) or ``bd09``; the report time is
``attribute[reported_at]`` (default: receipt); the idempotency key is ``attribute[source_id]``
when the client gives one, else a hash of the form (``api_key`` left out), so an identical
retried POST answers with the same request. ``api_key`` must be present and non-empty; only its
SHA-256 fingerprint is recorded (authentication proper comes with the security work).
Reading service requests is :mod:`cases.open311_requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import Connection

from cases.accept import DistrictArea, accept_case
from cases.intake import DEFAULT_DISTRICT
from cases.models import CaseIn, CaseSystem, LocationIn
from cases.open311_requests import is_http_url, iso, service_notice
from cases.routing import current_rules
from cases.rules import RoutingRules, WorkingCalendar
from schemas.catalog import Catalog
from schemas.errors import Forbidden, InvalidInput, NotFound

SPECIFICATION: Final = "http://wiki.open311.org/GeoReport_v2"
FORMATS: Final = ("text/xml", "application/json")
DATUMS: Final = ("wgs84", "gcj02", "bd09")
CONTACT_FIELDS: Final = ("first_name", "last_name", "email", "phone", "device_id", "account_id")
FIELD_LIMITS: Final = {
    "jurisdiction_id": 32,
    "service_code": 8,
    "lat": 40,
    "long": 40,
    "address_string": 200,
    "address_id": 64,
    "email": 254,
    "device_id": 128,
    "account_id": 128,
    "first_name": 100,
    "last_name": 100,
    "phone": 32,
    "description": 4000,
    "media_url": 2048,
}
_ATTRIBUTE: Final = re.compile(r"^attribute\[([A-Za-z0-9_]{1,64})\]$")


# --- services --------------------------------------------------------------------------------

ATTRIBUTES: Final = (
    {
        "variable": True,
        "code": "datum",
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": "Datum of lat/long: wgs84 (GPS; the default), gcj02 (WeChat "
        "mini-program, AMap and Tencent maps: they must send it) or bd09 (Baidu maps).",
        "order": 1,
        "description": "坐标系 (datum of lat and long)",
        "values": [
            {"key": "wgs84", "name": "WGS84 (GPS)"},
            {"key": "gcj02", "name": "GCJ-02 (微信、高德、腾讯地图)"},
            {"key": "bd09", "name": "BD-09 (百度地图)"},
        ],
    },
    {
        "variable": True,
        "code": "reported_at",
        "datatype": "datetime",
        "required": False,
        "datatype_description": "ISO 8601 with a time zone, e.g. 2026-03-02T09:15:00+08:00; "
        "when the citizen reported (queued offline reports). Default: when we receive it.",
        "order": 2,
        "description": "上报时间 (time of the report)",
    },
    {
        "variable": True,
        "code": "source_id",
        "datatype": "string",
        "required": False,
        "datatype_description": "The client's own id of the report (at most 128 characters); "
        "a POST re-sent with the same id answers with the same service request.",
        "order": 3,
        "description": "客户端编号 (the client's id of the report)",
    },
)


def services(rules: RoutingRules) -> list[dict[str, Any]]:
    """Return the GeoReport service list: one service per item of the rules."""
    out = []
    for item in rules.items:
        category = rules.category(item.category)
        out.append(
            {
                "service_code": item.code,
                "service_name": item.zh,
                "description": f"{item.en}. 立案条件：{item.filing_condition}",
                "metadata": bool(ATTRIBUTES),
                "type": "realtime",
                "keywords": f"{item.en}, {category.en}",
                "group": category.zh,
            }
        )
    return out


def service_definition(rules: RoutingRules, service_code: str) -> dict[str, Any]:
    """Return the definition (extra attributes) of one service; NotFound when unknown."""
    try:
        item = rules.item(service_code)
    except KeyError:
        raise NotFound(f"service_code {service_code!r} was not found") from None
    return {"service_code": item.code, "attributes": [dict(a) for a in ATTRIBUTES]}


def discovery(endpoint_url: str, changeset: datetime, *, contact: str) -> dict[str, Any]:
    """Return the discovery document of the endpoint at ``endpoint_url``."""
    return {
        "changeset": iso(changeset),
        "contact": contact,
        "key_service": "API keys are issued by the district command centre (区指挥中心).",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": endpoint_url,
                "changeset": iso(changeset),
                "type": "production",
                "formats": list(FORMATS),
            }
        ],
    }


# --- POST requests ---------------------------------------------------------------------------


def _fields(items: Sequence[tuple[str, object]]) -> tuple[dict[str, str], dict[str, str]]:
    """Return the standard fields and the attributes of a form; InvalidInput on bad parts."""
    fields: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for key, value in items:
        if not isinstance(value, str):
            raise InvalidInput(f"{key}: files are not accepted; send media_url instead")
        if "\x00" in value:
            raise InvalidInput(f"{key}: contains a NUL character")
        value = value.strip()
        match = _ATTRIBUTE.match(key)
        target, name = (attributes, match[1]) if match else (fields, key)
        if name in target and target[name] != value:
            raise InvalidInput(f"{key} is given twice with different values")
        limit = FIELD_LIMITS.get(name, 200) if target is fields else 200
        if len(value) > limit:
            raise InvalidInput(f"{key} is longer than {limit} characters")
        target[name] = value
    return fields, attributes


def _number(fields: Mapping[str, str], name: str) -> float:
    try:
        value = float(fields[name])
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {fields[name]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(f"{name} must be a finite number")
    return value


def _location(fields: Mapping[str, str], attributes: Mapping[str, str]) -> LocationIn | None:
    datum = attributes.get("datum", "wgs84").lower() or "wgs84"
    if datum not in DATUMS:
        raise InvalidInput(f"attribute[datum] must be one of {', '.join(DATUMS)}, not {datum!r}")
    has_lat, has_long = bool(fields.get("lat")), bool(fields.get("long"))
    if has_lat != has_long:
        raise InvalidInput("lat and long go together: send both or neither")
    if not has_lat:
        if not (fields.get("address_string") or fields.get("address_id")):
            raise InvalidInput("a location is required: lat and long, address_string or address_id")
        return None
    lat, lon = _number(fields, "lat"), _number(fields, "long")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise InvalidInput(f"lat {lat} / long {lon} is not a latitude/longitude")
    return LocationIn(lon=lon, lat=lat, crs=datum)


def _reported_at(attributes: Mapping[str, str], now: datetime) -> datetime:
    text = attributes.get("reported_at")
    if not text:
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"attribute[reported_at] {text!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"attribute[reported_at] {text!r} needs a time zone, e.g. +08:00")
    return moment


def _source_id(fields: Mapping[str, str], attributes: Mapping[str, str]) -> str:
    if given := attributes.get("source_id"):
        if len(given) > 128:
            raise InvalidInput("attribute[source_id] is longer than 128 characters")
        return given
    form = {k: v for k, v in fields.items() if k != "api_key"}
    form |= {f"attribute[{k}]": v for k, v in attributes.items()}
    text = json.dumps(sorted(form.items()), ensure_ascii=False)
    return "form-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def request_case_in(
    items: Sequence[tuple[str, object]],
    *,
    rules: RoutingRules,
    now: datetime,
    district_code: str = DEFAULT_DISTRICT,
) -> CaseIn:
    """Return the case of a GeoReport POST form; Forbidden/NotFound/InvalidInput per the spec."""
    fields, attributes = _fields(items)
    api_key = fields.get("api_key", "")
    if not api_key:
        raise Forbidden("api_key is required to create a service request")
    jurisdiction = fields.get("jurisdiction_id")
    if jurisdiction and jurisdiction != district_code:
        raise NotFound(f"jurisdiction_id {jurisdiction!r} was not found; this is {district_code}")
    code = fields.get("service_code", "")
    if not code:
        raise InvalidInput("service_code was not provided")
    try:
        rules.item(code)
    except KeyError:
        raise NotFound(f"service_code {code!r} was not found") from None
    media_url = fields.get("media_url") or None
    if media_url is not None and not is_http_url(media_url):
        raise InvalidInput("media_url must be an http(s) URL")
    reporter = {k: fields[k] for k in CONTACT_FIELDS if fields.get(k)}
    payload: dict[str, Any] = {k: v for k, v in fields.items() if k != "api_key"}
    payload |= {f"attribute[{k}]": v for k, v in attributes.items()}
    payload["api_key_sha256"] = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    try:
        return CaseIn(
            source_system=CaseSystem.open311,
            source_id=_source_id(fields, attributes),
            item_code=code,
            description=fields.get("description") or None,
            reported_at=_reported_at(attributes, now),
            reporter=reporter or None,
            location=_location(fields, attributes),
            address=fields.get("address_string") or None,
            payload=payload,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        raise InvalidInput(f"{where}: {first['msg']}") from None


def submit_request(
    conn: Connection,
    catalog: Catalog,
    calendar: WorkingCalendar,
    items: Sequence[tuple[str, object]],
    *,
    now: datetime,
    area: DistrictArea,
    district_code: str = DEFAULT_DISTRICT,
) -> tuple[dict[str, Any], bool]:
    """Accept a GeoReport POST form as a case; return the spec's answer and whether it is new."""
    case_in = request_case_in(
        items, rules=current_rules(conn), now=now, district_code=district_code
    )
    case, created = accept_case(
        conn, catalog, calendar, case_in, now=now, area=area, district_code=district_code
    )
    account = (case.reporter or {}).get("account_id")
    answer = {
        "service_request_id": str(case.id),
        "service_notice": service_notice(case),
        "account_id": account if isinstance(account, str) else None,
    }
    return answer, created
