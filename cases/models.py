"""What goes into the dispatch domain (``CaseIn``) and what comes out (``Case`` and friends)."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from cases.sources import SourceSystem
from schemas.errors import InvalidInput
from schemas.geodesy import SourceCrs, parse_crs
from schemas.tables import CASE_STATUSES

ITEM_CODE_RE: Final = r"^[A-Z]{2}[0-9]{2}$"


class CaseSystem(StrEnum):
    """Where a case comes from: the six sending systems and two of the platform's own."""

    city_management = SourceSystem.city_management.value  # 数字城管
    illegal_construction = SourceSystem.illegal_construction.value  # 拆违
    community_grid = SourceSystem.community_grid.value  # 城市社区网格
    migrant_management = SourceSystem.migrant_management.value  # 来穗管理
    hotline_12345 = SourceSystem.hotline_12345.value  # 12345 热线
    open311 = SourceSystem.open311.value  # WeChat mini-program (GeoReport v2)
    platform = "platform"  # entered by the command centre on the platform (POST /cases)
    emergency = "emergency"  # raised by the emergency / flood-control (三防) modules


class Status(StrEnum):
    """Statuses of the five-step loop, plus ``merged`` for duplicates folded into another case."""

    reported = "reported"  # 1 巡查报告
    dispatched = "dispatched"  # 2 调度派遣
    handling = "handling"  # 3 协调处置
    resolved = "resolved"  # 4 跟踪回访 (handled, awaiting the follow-up visit)
    visited = "visited"  # 4 跟踪回访 (visited, awaiting evaluation)
    closed = "closed"  # 5 评价结案
    merged = "merged"  # folded into another case (terminal)


assert tuple(Status) == CASE_STATUSES, "schemas.tables.CASE_STATUSES and Status disagree"

#: The step of the five-step loop each status belongs to.
STEP: Final = {
    Status.reported: 1,
    Status.dispatched: 2,
    Status.handling: 3,
    Status.resolved: 4,
    Status.visited: 4,
    Status.closed: 5,
    Status.merged: 5,
}
#: Statuses whose handling deadline still runs (it stops once the unit reports it handled).
RUNNING: Final = frozenset({Status.reported, Status.dispatched, Status.handling})
#: Statuses of cases not finished (duplicates link only to these).
OPEN: Final = frozenset({*RUNNING, Status.resolved, Status.visited})


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LocationIn(_In):
    """A reported point with the datum it was given in (EPSG code, 'wgs84', 'gcj02', 'bd09'…)."""

    lon: float
    lat: float
    crs: str = "EPSG:4490"

    @field_validator("lon", "lat")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str) -> str:
        try:
            return parse_crs(value).canonical
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @property
    def source_crs(self) -> SourceCrs:
        """Return the parsed datum."""
        return parse_crs(self.crs)


class CaseIn(_In):
    """A case as intake accepts it, whatever system sent it."""

    source_system: CaseSystem
    source_id: str = Field(min_length=1, max_length=128)
    item_code: Annotated[str, Field(pattern=ITEM_CODE_RE)]
    category_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    description: str | None = Field(default=None, max_length=4000)
    reported_at: AwareDatetime
    reporter: dict[str, Any] | None = None
    location: LocationIn | None = None
    address: str | None = Field(default=None, max_length=200)
    town_hint: str | None = Field(
        default=None, max_length=50, description="town name or code the sender gave"
    )
    payload: dict[str, Any] | None = Field(default=None, description="the original payload")

    @model_validator(mode="after")
    def _category_fits_item(self) -> Self:
        if self.category_code is not None and not self.item_code.startswith(self.category_code):
            raise ValueError(f"item {self.item_code} is not in category {self.category_code}")
        return self


class Case(BaseModel):
    """A stored case: where it is, who must act by when, and where it stands."""

    model_config = ConfigDict(frozen=True)

    id: int
    source_system: str
    source_id: str
    item_code: str
    category: str
    description: str | None
    status: Status
    step: int
    reported_at: datetime
    received_at: datetime
    lon: float | None
    lat: float | None
    source_crs: str | None
    reported_lon: float | None
    reported_lat: float | None
    address_text: str | None
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
    level: str | None
    department: str | None
    responsible_unit: str | None
    fallback_department: str | None
    deadline: datetime | None
    overdue: bool
    escalated: bool
    escalated_at: datetime | None
    rule_version: int | None
    duplicate_of: int | None
    merged_into: int | None
    asset_layer: str | None
    asset_code: str | None
    asset_maintenance_unit: str | None
    asset_distance_m: float | None
    reporter: dict[str, Any] | None
    reporters: list[dict[str, Any]]
    payload: dict[str, Any] | None
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def is_overdue(self, now: datetime) -> bool:
        """Return whether the case is overdue now: still running and past its deadline.

        The ``overdue`` column is history instead: set when the case was escalated.
        """
        return self.status in RUNNING and self.deadline is not None and self.deadline < now


class CaseEvent(BaseModel):
    """One line of a case's timeline."""

    model_config = ConfigDict(frozen=True)

    id: int
    case_id: int
    action: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str | None
    detail: dict[str, Any] | None


class DepartmentCall(BaseModel):
    """A town's call to a district department on a case (有呼必应)."""

    model_config = ConfigDict(frozen=True)

    id: int
    case_id: int
    department: str
    caller: str
    note: str | None
    called_at: datetime
    deadline: datetime
    responded_at: datetime | None
    responder: str | None
    response: str | None
    escalated: bool


class Escalation(BaseModel):
    """A missed deadline reported to the supervision office."""

    model_config = ConfigDict(frozen=True)

    id: int
    case_id: int | None
    call_id: int | None
    deadline: datetime
    reason: str
    escalated_to: str
    at: datetime


class CaseDetail(BaseModel):
    """A case with its timeline, department calls and escalations."""

    model_config = ConfigDict(frozen=True)

    case: Case
    events: list[CaseEvent]
    calls: list[DepartmentCall]
    escalations: list[Escalation]


class CasePage(BaseModel):
    """One page of a case list and the total matching the filters."""

    model_config = ConfigDict(frozen=True)

    items: list[Case]
    total: int
    limit: int
    offset: int
