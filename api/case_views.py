"""How cases look over HTTP: response models and the functions that shape domain objects."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from cases.models import Case, CaseDetail, CaseEvent, DepartmentCall, Escalation
from cases.sources import LOCAL_ZONE
from cases.workflow import allowed_actions
from layers.divisions import default_divisions
from schemas.errors import CatalogError


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Link(_Out):
    """A link to a related resource."""

    rel: str
    href: str
    type: str = "application/json"


class AssetOut(_Out):
    """The asset a case was attached to (nearest of its item's asset layers)."""

    layer: str
    code: str
    maintenance_unit: str | None
    distance_m: float | None


class PointOut(_Out):
    """A point with its coordinate system."""

    lon: float
    lat: float
    crs: str


class CaseOut(_Out):
    """A case: where it is, who must act by when, and where it stands."""

    id: int
    source_system: str
    source_id: str
    item_code: str
    category: str
    description: str | None
    status: str
    step: int
    allowed_actions: list[str]
    reported_at: datetime
    received_at: datetime
    location: PointOut | None = Field(description="stored point (storage CRS)")
    reported_location: PointOut | None = Field(description="the point as sent, in its datum")
    address: str | None
    location_method: str | None
    geocode_confidence: float | None
    needs_manual_location: bool
    snap_distance_m: float | None
    grid_code: str | None
    village_code: str | None
    village_name: str | None
    town_code: str | None
    town_name: str | None
    district_code: str
    district_name: str | None
    level: str | None
    department: str | None
    responsible_unit: str | None
    fallback_department: str | None
    deadline: datetime | None
    overdue: bool = Field(description="still running and past the deadline now")
    escalated: bool
    escalated_at: datetime | None
    rule_version: int | None
    duplicate_of: int | None
    merged_into: int | None
    asset: AssetOut | None
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    links: list[Link]


class CaseDetailOut(_Out):
    """A case with its reporters, original payload and timeline."""

    case: CaseOut
    reporters: list[dict[str, Any]]
    payload: dict[str, Any] | None
    events: list[CaseEvent]
    calls: list[DepartmentCall]
    escalations: list[Escalation]


class CasePageOut(_Out):
    """One page of cases."""

    items: list[CaseOut]
    total: int
    limit: int
    offset: int
    links: list[Link]


class MergeOut(_Out):
    """Both cases of a merge."""

    merged: CaseOut
    into: CaseOut


@lru_cache(maxsize=1)
def _division_names() -> dict[str, str]:
    try:
        return {d.code: d.name for d in default_divisions()}
    except CatalogError:
        return {}


def local(moment: datetime) -> datetime:
    """Return a datetime in Asia/Shanghai."""
    return moment.astimezone(LOCAL_ZONE)


def maybe_local(moment: datetime | None) -> datetime | None:
    """Return a datetime in Asia/Shanghai, or None."""
    return None if moment is None else local(moment)


M = TypeVar("M", bound=BaseModel)


def localise(model: M) -> M:
    """Return a model with every datetime field in Asia/Shanghai."""
    moved = {k: local(v) for k, v in model if isinstance(v, datetime)}
    return model.model_copy(update=moved)


def case_url(request: Request, case_id: int) -> str:
    """Return the URL of a case."""
    return str(request.url_for("get_case_detail", case_id=case_id))


def case_out(request: Request, case: Case, now: datetime) -> CaseOut:
    """Return the HTTP shape of a case."""
    asset = None
    if case.asset_layer and case.asset_code:
        asset = AssetOut(
            layer=case.asset_layer,
            code=case.asset_code,
            maintenance_unit=case.asset_maintenance_unit,
            distance_m=case.asset_distance_m,
        )
    located = None
    if case.lon is not None and case.lat is not None:
        located = PointOut(lon=case.lon, lat=case.lat, crs="EPSG:4490")
    reported = None
    if case.reported_lon is not None and case.reported_lat is not None:
        reported = PointOut(
            lon=case.reported_lon, lat=case.reported_lat, crs=case.source_crs or "EPSG:4490"
        )
    links = [Link(rel="self", href=case_url(request, case.id))]
    for rel, other in (("duplicate-of", case.duplicate_of), ("merged-into", case.merged_into)):
        if other is not None:
            links.append(Link(rel=rel, href=case_url(request, other)))
    return CaseOut(
        id=case.id,
        source_system=case.source_system,
        source_id=case.source_id,
        item_code=case.item_code,
        category=case.category,
        description=case.description,
        status=case.status.value,
        step=case.step,
        allowed_actions=[a.value for a in allowed_actions(case.status)],
        reported_at=local(case.reported_at),
        received_at=local(case.received_at),
        location=located,
        reported_location=reported,
        address=case.address_text,
        location_method=case.location_method,
        geocode_confidence=case.geocode_confidence,
        needs_manual_location=case.needs_manual_location,
        snap_distance_m=case.snap_distance_m,
        grid_code=case.grid_code,
        village_code=case.village_code,
        village_name=case.village_name,
        town_code=case.town_code,
        town_name=case.town_name,
        district_code=case.district_code,
        district_name=_division_names().get(case.district_code),
        level=case.level,
        department=case.department,
        responsible_unit=case.responsible_unit,
        fallback_department=case.fallback_department,
        deadline=maybe_local(case.deadline),
        overdue=case.is_overdue(now),
        escalated=case.escalated,
        escalated_at=maybe_local(case.escalated_at),
        rule_version=case.rule_version,
        duplicate_of=case.duplicate_of,
        merged_into=case.merged_into,
        asset=asset,
        resolved_at=maybe_local(case.resolved_at),
        closed_at=maybe_local(case.closed_at),
        created_at=local(case.created_at),
        updated_at=local(case.updated_at),
        links=links,
    )


def detail_out(request: Request, detail: CaseDetail, now: datetime) -> CaseDetailOut:
    """Return the HTTP shape of a case with its timeline."""
    return CaseDetailOut(
        case=case_out(request, detail.case, now),
        reporters=detail.case.reporters,
        payload=detail.case.payload,
        events=[localise(e) for e in detail.events],
        calls=[localise(c) for c in detail.calls],
        escalations=[localise(e) for e in detail.escalations],
    )
