"""Payload contracts of the systems that send cases: ``POST /intake/{system}`` accepts these.

Five legacy systems were fused into the platform, each still speaking its own dialect, and the
public mini-program speaks Open311 GeoReport v2. Every model documents its dialect: field names,
datetime format and time zone, and the datum of its coordinates (explicit field or implied). Every
model answers the same four questions for intake: :meth:`SourcePayload.source_id`,
:meth:`~SourcePayload.reported_at`, :meth:`~SourcePayload.position` (lon/lat with its datum) and
:meth:`~SourcePayload.address_text`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.geodesy import CGCS2000, WGS84, SourceCrs, parse_crs

#: Time zone of every legacy timestamp without an offset.
LOCAL_ZONE: Final = ZoneInfo("Asia/Shanghai")

Lon = Annotated[float, Field(ge=73.0, le=136.0)]
Lat = Annotated[float, Field(ge=3.0, le=54.0)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]
Datum = Literal["wgs84", "gcj02"]


class SourceSystem(StrEnum):
    """The systems cases arrive from (the ``{system}`` of ``/intake/{system}``)."""

    city_management = "city_management"  # 数字城管
    illegal_construction = "illegal_construction"  # 拆违
    community_grid = "community_grid"  # 城市社区网格
    migrant_management = "migrant_management"  # 来穗管理
    hotline_12345 = "hotline_12345"  # 12345 政务服务便民热线
    open311 = "open311"  # public WeChat mini-program, GeoReport v2 form


@dataclass(frozen=True, slots=True)
class Position:
    """A reported point: lon/lat in the datum it was sent in."""

    lon: float
    lat: float
    crs: SourceCrs


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SourcePayload(_Part):
    """Base of every payload model."""

    system: ClassVar[SourceSystem]

    def source_id(self) -> str:
        """Return the sending system's own case number."""
        raise NotImplementedError

    def reported_at(self) -> datetime:
        """Return when the case was reported, timezone-aware."""
        raise NotImplementedError

    def position(self) -> Position | None:
        """Return the reported point with its datum, or None when only an address was sent."""
        return None

    def address_text(self) -> str | None:
        """Return the address as written by the sender, if any."""
        return None


def _local(text: str, fmt: str) -> datetime:
    """Parse a local timestamp without offset (Asia/Shanghai implied)."""
    return datetime.strptime(text, fmt).replace(tzinfo=LOCAL_ZONE)


class CityManagementXY(_Part):
    """数字城管 coordinates: x = longitude, y = latitude, WGS84 implied (城管通 GPS)."""

    x: Lon
    y: Lat


class CityManagementPayload(SourcePayload):
    """数字城管 (digital city management) case, as its case exchange interface sends it.

    Flat, lower-case pinyin abbreviations. ``fssj`` (发生时间) is local time
    ``YYYY-MM-DD HH:MM:SS`` without an offset: Asia/Shanghai is implied. ``zb`` (坐标) is
    WGS84 from the supervisor's handset, no datum field; ``dz`` (地址) is free text. At least one
    of them is present. ``wtdl``/``wtlx`` are the 大类/小类 names of the system's own dictionary.
    """

    system: ClassVar[SourceSystem] = SourceSystem.city_management
    implied_crs: ClassVar[SourceCrs] = WGS84

    ajbh: Annotated[str, Field(pattern=r"^\d{13}$", description="案件编号 yyyymmdd + serial")]
    ajly: Literal["监督员上报", "公众举报", "视频发现", "领导交办"] = Field(description="案件来源")
    ajlx: Literal["部件", "事件"] = Field(description="案件类型: component or event")
    wtdl: Text = Field(description="问题大类")
    wtlx: Text = Field(description="问题小类")
    wtms: LongText = Field(description="问题描述")
    fssj: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")]
    zb: CityManagementXY | None = None
    dz: Text | None = None
    jdmc: Text | None = Field(default=None, description="街道(镇)名称")
    sqmc: Text | None = Field(default=None, description="社区(村)名称")
    jdybh: Annotated[str, Field(pattern=r"^JDY\d{4}$")] | None = Field(
        default=None, description="监督员编号; none for public reports"
    )

    @model_validator(mode="after")
    def _located(self) -> Self:
        if self.zb is None and self.dz is None:
            raise ValueError("either zb (coordinates) or dz (address) is required")
        return self

    def source_id(self) -> str:
        """Return the case number."""
        return self.ajbh

    def reported_at(self) -> datetime:
        """Return ``fssj`` in Asia/Shanghai."""
        return _local(self.fssj, "%Y-%m-%d %H:%M:%S")

    def position(self) -> Position | None:
        """Return ``zb`` in WGS84."""
        return None if self.zb is None else Position(self.zb.x, self.zb.y, self.implied_crs)

    def address_text(self) -> str | None:
        """Return ``dz``."""
        return self.dz


class IllegalConstructionWZ(_Part):
    """拆违 location: JD = 经度, WD = 纬度, ZBX = 坐标系 (CGCS2000 from the survey tablets)."""

    JD: Lon
    WD: Lat
    ZBX: Literal["CGCS2000", "WGS84"]


class IllegalConstructionPayload(SourcePayload):
    """拆违 (illegal-construction control) patrol record, as the 违建治理 system exports it.

    Upper-case pinyin initials. The patrol date and time are separate local fields, ``XCRQ``
    ``YYYY/MM/DD`` and ``XCSJ`` ``HH:MM`` (no seconds, no offset: Asia/Shanghai). ``WZ`` is nested
    and carries its datum in ``ZBX``. ``WJLX`` is the kind of illegal construction.
    """

    system: ClassVar[SourceSystem] = SourceSystem.illegal_construction

    XCBH: Annotated[str, Field(pattern=r"^CW\d{4}-\d{6}$", description="巡查编号")]
    XCRQ: Annotated[str, Field(pattern=r"^\d{4}/\d{2}/\d{2}$", description="巡查日期")]
    XCSJ: Annotated[str, Field(pattern=r"^\d{2}:\d{2}$", description="巡查时间")]
    WJLX: Literal["在建违建", "存量违建", "违建复建"] = Field(description="违建类型")
    WZ: IllegalConstructionWZ
    DZ: Text | None = Field(default=None, description="地址")
    SSZJ: Text = Field(description="所属镇街 (name)")
    SSCJ: Text | None = Field(default=None, description="所属村居 (name)")
    WJMJ: float = Field(gt=0, le=100_000, description="违建面积 (m²)")
    JZCS: int = Field(ge=1, le=30, description="建筑层数")
    XCRY: Annotated[str, Field(pattern=r"^XC\d{4}$", description="巡查人员编号")]
    BZ: LongText = Field(description="备注/情况描述")

    def source_id(self) -> str:
        """Return the patrol record number."""
        return self.XCBH

    def reported_at(self) -> datetime:
        """Return ``XCRQ`` + ``XCSJ`` in Asia/Shanghai."""
        return _local(f"{self.XCRQ} {self.XCSJ}", "%Y/%m/%d %H:%M")

    def position(self) -> Position | None:
        """Return ``WZ`` in its declared datum."""
        crs = CGCS2000 if self.WZ.ZBX == "CGCS2000" else WGS84
        return Position(self.WZ.JD, self.WZ.WD, crs)

    def address_text(self) -> str | None:
        """Return ``DZ``."""
        return self.DZ


class GridLocation(_Part):
    """Grid app location: the datum travels in ``coordType`` (AMap SDK gcj02, or raw GPS wgs84)."""

    longitude: Lon
    latitude: Lat
    coordType: Datum


class GridReporter(_Part):
    """Who reported in the grid app."""

    workerId: Annotated[str, Field(pattern=r"^WG\d{6}$")]
    role: Literal["网格员", "网格长", "出租屋管理员", "治安员", "河涌巡查员", "志愿者"]


class CommunityGridPayload(SourcePayload):
    """城市社区网格 (community grid) event, as the grid workers' app posts it.

    English camelCase JSON. ``reportTime`` is epoch milliseconds (UTC by definition).
    ``eventType`` is already one of the platform's item codes (the fused app uses them).
    ``location.coordType`` says the datum: gcj02 when the app's map picker was used, wgs84 for
    raw GPS. ``communityCode`` is the 12-digit village/community code of the worker's grid.
    """

    system: ClassVar[SourceSystem] = SourceSystem.community_grid

    eventId: Annotated[str, Field(pattern=r"^WG\d{8}\d{5}$")]
    eventType: Annotated[str, Field(pattern=r"^[A-Z]{2}\d{2}$")]
    eventTypeName: Text
    reportTime: int = Field(gt=1_500_000_000_000, lt=4_000_000_000_000)
    location: GridLocation
    address: Text | None = None
    communityCode: Annotated[str, Field(pattern=r"^440114\d{6}$")]
    reporter: GridReporter
    content: LongText
    attachments: tuple[Annotated[str, Field(pattern=r"^IMG_\d{8}_\d{6}_\d\.jpg$")], ...] = ()

    def source_id(self) -> str:
        """Return the event id."""
        return self.eventId

    def reported_at(self) -> datetime:
        """Return ``reportTime`` in Asia/Shanghai."""
        return datetime.fromtimestamp(self.reportTime / 1000, tz=UTC).astimezone(LOCAL_ZONE)

    def position(self) -> Position | None:
        """Return ``location`` in its declared datum."""
        loc = self.location
        return Position(loc.longitude, loc.latitude, parse_crs(loc.coordType))

    def address_text(self) -> str | None:
        """Return ``address``."""
        return self.address


class MigrantManagementPayload(SourcePayload):
    """来穗管理 (migrant and rental-housing management) task, as the 来穗 system exports it.

    Flat, lower-case pinyin. Mostly rental-housing addresses (``fwdz`` 房屋地址, always present).
    ``djsj`` (登记时间) is local time in Chinese form ``YYYY年MM月DD日 HH时MM分`` (Asia/Shanghai).
    ``gps`` is a ``"lon,lat"`` string in WGS84 when the information officer's phone had a fix,
    else the empty string. ``sszj``/``sscj`` are the town and village codes.
    """

    system: ClassVar[SourceSystem] = SourceSystem.migrant_management
    implied_crs: ClassVar[SourceCrs] = WGS84

    rwbh: Annotated[str, Field(pattern=r"^LS\d{8}\d{6}$", description="任务编号")]
    sjlx: Text = Field(description="事件类型")
    sjms: LongText = Field(description="事件描述")
    fwdz: Text = Field(description="房屋地址")
    sszj: Annotated[str, Field(pattern=r"^440114\d{3}$")]
    sscj: Annotated[str, Field(pattern=r"^440114\d{6}$")]
    djsj: Annotated[str, Field(pattern=r"^\d{4}年\d{2}月\d{2}日 \d{2}时\d{2}分$")]
    gps: Annotated[str, Field(pattern=r"^$|^\d{2,3}\.\d+,\d{1,2}\.\d+$")] = ""
    zhrs: int | None = Field(default=None, ge=0, le=500, description="住户人数")
    xxybh: Annotated[str, Field(pattern=r"^XXY\d{5}$", description="信息员编号")]

    def source_id(self) -> str:
        """Return the task number."""
        return self.rwbh

    def reported_at(self) -> datetime:
        """Return ``djsj`` in Asia/Shanghai."""
        return _local(self.djsj, "%Y年%m月%d日 %H时%M分")

    def position(self) -> Position | None:
        """Return ``gps`` in WGS84, or None when empty."""
        if not self.gps:
            return None
        lon, lat = (float(v) for v in self.gps.split(","))
        return Position(lon, lat, self.implied_crs)

    def address_text(self) -> str | None:
        """Return ``fwdz``."""
        return self.fwdz


class HotlineCaller(_Part):
    """The 12345 caller; the phone number is masked in the exchange."""

    name: Text
    phone: Annotated[str, Field(pattern=r"^1\d{2}\*{4}\d{4}$")]


class HotlineAppeal(_Part):
    """What the caller asked for, as the 12345 agent recorded it."""

    kind: Literal["投诉", "求助", "举报", "建议", "咨询"]
    classification: Text = Field(description="12345 classification path, '/'-separated")
    title: Text
    content: LongText
    address: Text


class Hotline12345Payload(SourcePayload):
    """12345 hotline work order, as the city's 12345 platform dispatches it to the district.

    English snake_case, nested. Address text only: no coordinates. ``created_at`` is ISO 8601
    with an explicit ``+08:00`` offset. ``appeal.classification`` is 12345's own taxonomy.
    """

    system: ClassVar[SourceSystem] = SourceSystem.hotline_12345

    order_no: Annotated[str, Field(pattern=r"^GZ\d{8}\d{6}$")]
    created_at: AwareDatetime
    channel: Literal["phone", "wechat", "web", "app"]
    district: Literal["花都区"]
    urgent: bool = False
    caller: HotlineCaller
    appeal: HotlineAppeal

    def source_id(self) -> str:
        """Return the work order number."""
        return self.order_no

    def reported_at(self) -> datetime:
        """Return ``created_at``."""
        return self.created_at

    def address_text(self) -> str | None:
        """Return the appeal's address."""
        return self.appeal.address


class Open311Payload(SourcePayload):
    """Open311 GeoReport v2 ``POST /requests`` form, as the WeChat mini-program sends it.

    Standard fields (``service_code``, ``lat``, ``long``, ``address_string``, ``description``,
    ``device_id``, ``account_id``, ``media_url``; values are form strings). The mini-program's map
    gives GCJ-02, not the WGS84 the spec assumes, so the datum travels as the extended attribute
    ``attribute[datum]``; ``attribute[reported_at]`` is the client time (ISO 8601, +08:00), since
    the spec's POST has no timestamp and the mini-program queues reports offline.
    """

    model_config = ConfigDict(populate_by_name=True)
    system: ClassVar[SourceSystem] = SourceSystem.open311

    jurisdiction_id: Literal["440114"] = "440114"
    service_code: Annotated[str, Field(pattern=r"^[A-Z]{2}\d{2}$")]
    lat: Lat
    long: Lon
    address_string: Text | None = None
    description: LongText
    device_id: Annotated[str, Field(pattern=r"^wx-[0-9a-f]{16}$")]
    account_id: Annotated[str, Field(pattern=r"^o[0-9A-Za-z_-]{27}$")] | None = None
    media_url: str | None = None
    datum: Datum = Field(alias="attribute[datum]")
    client_time: AwareDatetime = Field(alias="attribute[reported_at]")

    def source_id(self) -> str:
        """Return a client-side key (the intake assigns ``service_request_id``)."""
        return f"{self.device_id}@{self.client_time.isoformat()}"

    def reported_at(self) -> datetime:
        """Return the client time."""
        return self.client_time

    def position(self) -> Position | None:
        """Return ``long``/``lat`` in the declared datum."""
        return Position(self.long, self.lat, parse_crs(self.datum))

    def address_text(self) -> str | None:
        """Return ``address_string``."""
        return self.address_string


#: The payload model of each system.
PAYLOAD_MODELS: Final[Mapping[SourceSystem, type[SourcePayload]]] = MappingProxyType(
    {
        SourceSystem.city_management: CityManagementPayload,
        SourceSystem.illegal_construction: IllegalConstructionPayload,
        SourceSystem.community_grid: CommunityGridPayload,
        SourceSystem.migrant_management: MigrantManagementPayload,
        SourceSystem.hotline_12345: Hotline12345Payload,
        SourceSystem.open311: Open311Payload,
    }
)


def parse_payload(system: SourceSystem | str, payload: Mapping[str, Any]) -> SourcePayload:
    """Validate ``payload`` against the model of ``system``."""
    return PAYLOAD_MODELS[SourceSystem(system)].model_validate(payload)
