"""Turn each sending system's payload (``cases.sources``) into one ``CaseIn``.

The item comes from the payload: the grid app and the mini-program send item codes; 数字城管,
来穗 and 12345 send the names of their own dictionaries, matched to the items' Chinese names; 拆违
sends the kind of illegal construction. A payload whose kind matches no item is refused with
``InvalidInput`` naming what was sent — it is not guessed into the wrong department.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import ValidationError

from cases.models import CaseIn, CaseSystem, LocationIn
from cases.routing import item_of, packaged_rules
from cases.rules import RoutingRules
from cases.sources import (
    CityManagementPayload,
    CommunityGridPayload,
    Hotline12345Payload,
    IllegalConstructionPayload,
    MigrantManagementPayload,
    Open311Payload,
    SourcePayload,
    SourceSystem,
    parse_payload,
)
from schemas.errors import InvalidInput

#: 拆违 kinds of illegal construction -> items.
ILLEGAL_KINDS: Final = {"在建违建": "CM01", "存量违建": "CM02", "违建复建": "CM02"}
_PUNCT: Final = re.compile(r"[\s\W_]+")


def _key(name: str) -> str:
    return _PUNCT.sub("", unicodedata.normalize("NFKC", name))


def item_by_name(rules: RoutingRules, name: str, *, system: str) -> str:
    """Return the item code whose Chinese name is ``name`` (spaces/punctuation ignored)."""
    wanted = _key(name)
    for item in rules.items:
        if _key(item.zh) == wanted:
            return item.code
    raise InvalidInput(
        f"{system}: {name!r} names no item of the routing rules (version {rules.version}); "
        "send one of the 36 item names or codes"
    )


def _location(payload: SourcePayload) -> LocationIn | None:
    pos = payload.position()
    return None if pos is None else LocationIn(lon=pos.lon, lat=pos.lat, crs=pos.crs.canonical)


def _city(p: CityManagementPayload, rules: RoutingRules) -> dict[str, Any]:
    return {
        "item_code": item_by_name(rules, p.wtlx, system=p.system.value),
        "description": p.wtms,
        "reporter": {"source": p.ajly, "supervisor": p.jdybh},
        "town_hint": p.jdmc,
    }


def _illegal(p: IllegalConstructionPayload, rules: RoutingRules) -> dict[str, Any]:
    return {
        "item_code": ILLEGAL_KINDS[p.WJLX],
        "description": p.BZ,
        "reporter": {"patroller": p.XCRY},
        "town_hint": p.SSZJ,
    }


def _grid(p: CommunityGridPayload, rules: RoutingRules) -> dict[str, Any]:
    return {
        "item_code": p.eventType,
        "description": p.content,
        "reporter": {"worker_id": p.reporter.workerId, "role": p.reporter.role},
        "town_hint": p.communityCode[:9],
    }


def _migrant(p: MigrantManagementPayload, rules: RoutingRules) -> dict[str, Any]:
    return {
        "item_code": item_by_name(rules, p.sjlx, system=p.system.value),
        "description": p.sjms,
        "reporter": {"officer": p.xxybh},
        "town_hint": p.sszj,
    }


def _hotline(p: Hotline12345Payload, rules: RoutingRules) -> dict[str, Any]:
    name = p.appeal.classification.rsplit("/", 1)[-1]
    return {
        "item_code": item_by_name(rules, name, system=p.system.value),
        "description": f"{p.appeal.title}：{p.appeal.content}"[:4000],
        "reporter": {"name": p.caller.name, "phone": p.caller.phone, "channel": p.channel},
    }


def _open311(p: Open311Payload, rules: RoutingRules) -> dict[str, Any]:
    return {
        "item_code": p.service_code,
        "description": p.description,
        "reporter": {"device_id": p.device_id, "account_id": p.account_id},
    }


_FIELDS: Final[Mapping[SourceSystem, Callable[[Any, RoutingRules], dict[str, Any]]]] = {
    SourceSystem.city_management: _city,
    SourceSystem.illegal_construction: _illegal,
    SourceSystem.community_grid: _grid,
    SourceSystem.migrant_management: _migrant,
    SourceSystem.hotline_12345: _hotline,
    SourceSystem.open311: _open311,
}


def from_source(
    system: SourceSystem | str,
    payload: SourcePayload | Mapping[str, Any],
    *,
    rules: RoutingRules | None = None,
) -> CaseIn:
    """Return the CaseIn of one payload of a sending system; InvalidInput when it does not fit."""
    try:
        source = SourceSystem(system)
    except ValueError:
        raise InvalidInput(
            f"unknown system {system!r}; one of {', '.join(s.value for s in SourceSystem)}"
        ) from None
    if not isinstance(payload, SourcePayload):
        try:
            payload = parse_payload(source, payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InvalidInput(f"{source.value} payload, {where}: {first['msg']}{more}") from None
    elif payload.system is not source:
        raise InvalidInput(f"a {payload.system.value} payload was sent as {source.value}")
    rules = rules or packaged_rules()
    fields = _FIELDS[source](payload, rules)
    item_of(rules, fields["item_code"])
    try:
        return CaseIn(
            source_system=CaseSystem(source.value),
            source_id=payload.source_id(),
            reported_at=payload.reported_at(),
            location=_location(payload),
            address=payload.address_text(),
            payload=payload.model_dump(mode="json", by_alias=True, exclude_none=True),
            **fields,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{source.value} payload: {first['msg']}") from None
