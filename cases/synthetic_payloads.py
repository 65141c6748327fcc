"""Write one synthetic report in the dialect of its system (see :mod:`cases.sources`).

The generator (:mod:`cases.synthetic`) decides what happened, where and when; this module only
words it: the address as people write it, a description, the ids and formats of each system.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from cases.rules import Category, Item
from cases.sources import SourceSystem
from schemas.geodesy import wgs84_to_gcj02

if TYPE_CHECKING:
    from cases.synthetic import AddressPoint

FULLWIDTH: Final = str.maketrans("0123456789", "０１２３４５６７８９")
PREFIXES: Final = ("广东省广州市花都区", "广州市花都区", "花都区", "")
PREFIX_P: Final = (0.3, 0.2, 0.25, 0.25)
SUB_NUMBERS: Final = ("号之一", "号之二", "号-1", "号-2", "号附1", "号附2")
ROAD_ALIASES: Final = (("大道", "路"), ("大街", "街"), ("公路", "路"))
NEAR: Final = ("附近", "旁边", "对面", "门口")
_NUMBER_RE: Final = re.compile(r"^(\d+)号$")

#: What people write, per item; the generic fallback is the item's name.
ITEM_PHRASES: Final[Mapping[str, tuple[str, ...]]] = {
    "CA01": ("有暴露垃圾堆放，未及时清运", "垃圾桶满溢，周边散落垃圾"),
    "CA02": ("公厕卫生差，异味严重", "公厕冲水设施损坏不能使用"),
    "CA03": ("有人偷倒建筑垃圾", "空地上堆放大量余泥渣土"),
    "AD01": ("店铺违规设置户外招牌", "广告牌松动，有坠落危险"),
    "AD02": ("墙上张贴大量小广告", "电箱上乱涂写办证电话"),
    "CM01": ("有村民正在加建楼层", "空地上正在搭建铁皮房"),
    "CM02": ("已拆除的违建又重新搭建", "楼顶违建仍未整改"),
    "CM03": ("工地夜间施工噪音很大", "工地车辆带泥上路，扬尘严重"),
    "EM01": ("路面突然塌陷，出现大坑", "人行道地面下沉开裂"),
    "EM02": ("旧房外墙开裂，有倒塌危险", "老屋屋顶瓦片掉落"),
    "EM03": ("供水管爆裂，路面大量冒水", "片区突然停水，没有通知"),
    "SO01": ("流动摊贩占道摆卖", "路口有人摆摊卖水果，影响通行"),
    "SO02": ("商铺在门口摆放货物占用人行道", "汽修店在店外维修车辆"),
    "SO03": ("共享单车乱停放堵住人行道", "电动车乱停占用盲道"),
    "SO04": ("车辆长期占用人行道停放", "小车停在消防通道上"),
    "PU01": ("路灯晚上不亮", "路灯一直闪烁", "路灯杆检修门缺失"),
    "PU02": ("雨水井盖缺失，很危险", "污水井盖破损下沉"),
    "PU03": ("通信井盖破损", "电力井盖移位，车辆经过有异响"),
    "PU04": ("路口监控摄像头损坏", "监控探头被树枝遮挡"),
    "RT01": ("路面有坑洼，雨天积水", "人行道砖松动破损"),
    "RT02": ("红绿灯不亮", "交通标志牌倒伏", "公交站亭玻璃破碎"),
    "LG01": ("大树倒伏压住道路", "树枝折断悬挂在路边"),
    "LG02": ("绿化带被人毁坏种菜", "山上有人砍伐树木"),
    "WF01": ("下水道堵塞，污水冒出", "雨水口被垃圾堵住"),
    "WF02": ("路面积水很深，车辆无法通行", "下雨后道路严重水浸"),
    "WF03": ("河涌水发黑发臭", "河面有大量漂浮垃圾", "排水口有污水直排河涌"),
    "WF04": ("山体有滑坡迹象", "河堤出现渗水"),
    "SF01": ("楼道里电动车充电，存在火灾隐患", "消防通道被杂物堵塞"),
    "SF02": ("消防栓漏水", "消防栓被撞坏"),
    "SF03": ("闻到很浓的煤气味", "有人违规存放多个液化气瓶", "疑似非法储存化工原料"),
    "MR01": ("出租屋新入住人员未登记", "出租屋未办理租赁登记"),
    "MR02": ("出租屋隔成很多小间群租", "出租屋住了二十多人，存在安全隐患"),
    "CS01": ("邻居装修噪音纠纷，要求调解", "业主与物业因收费发生纠纷"),
    "CS02": ("工厂拖欠工人工资", "老板欠薪跑路，工人集体讨薪"),
    "EE01": ("餐馆油烟直排，影响居民", "商铺音响声音太大扰民"),
    "EE02": ("工厂排放刺鼻废气", "企业偷排废水到河涌"),
}
#: 12345's own first-level classification of each category.
HOTLINE_DOMAINS: Final[Mapping[str, str]] = {
    "CA": "城市管理", "AD": "城市管理", "CM": "城乡建设", "EM": "应急管理", "SO": "城市管理",
    "PU": "城市管理", "RT": "交通运输", "LG": "城市管理", "WF": "水务", "SF": "应急管理",
    "MR": "社会治理", "CS": "社会治理", "EE": "生态环境",
}  # fmt: skip
SURNAMES: Final = "陈李黄梁林张罗刘何郭王吴邓杨冯周曾谢叶朱"
PHONE_PREFIXES: Final = ("130", "133", "135", "136", "137", "138", "139", "150", "159", "186")


@dataclass(frozen=True, slots=True)
class Report:
    """One report to word: what, where (WGS84) and when, decided by the generator."""

    seq: int
    system: SourceSystem
    item: Item
    category: Category
    at: datetime
    lon: float
    lat: float
    address: AddressPoint
    village_code: str
    village_name: str | None


@dataclass(frozen=True, slots=True)
class Worded:
    """A payload and what it reveals: the datum of its point, whether it names the address."""

    payload: dict[str, Any]
    crs: str | None
    names_address: bool


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[rng.randrange(len(options))]


def address_variant(addr: AddressPoint, rng: random.Random, *, near_p: float = 0.0) -> str:
    """Write ``addr`` as people do: prefixes dropped, aliases, full-width digits, sub-numbers."""
    prefix = rng.choices(PREFIXES, PREFIX_P)[0]
    town = addr.town_name if rng.random() < 0.8 else ""
    road = addr.road
    if rng.random() < 0.12:
        for long_form, short_form in ROAD_ALIASES:
            if road.endswith(long_form):
                road = road.removesuffix(long_form) + short_form
                break
    number = addr.number
    match = _NUMBER_RE.match(number)
    if match:
        r = rng.random()
        if r < 0.12:
            number = match[1].translate(FULLWIDTH) + "号"
        elif r < 0.20:
            number = match[1] + _pick(rng, SUB_NUMBERS)
        elif r < 0.24:
            number = match[1]
    near = _pick(rng, NEAR) if rng.random() < near_p else ""
    return f"{prefix}{town}{road}{number}{near}"


def _phrase(report: Report, rng: random.Random) -> str:
    return _pick(rng, ITEM_PHRASES.get(report.item.code, (report.item.zh,)))


def _point(report: Report, datum: str) -> tuple[float, float]:
    """Return the report's point in ``datum`` ('wgs84', 'cgcs2000' or 'gcj02'), rounded."""
    lon, lat = report.lon, report.lat
    if datum == "gcj02":
        glon, glat = wgs84_to_gcj02(lon, lat)
        lon, lat = float(glon), float(glat)
    return round(lon, 6), round(lat, 6)


def _token(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _city_management(r: Report, serial: int, rng: random.Random) -> Worded:
    source = rng.choices(["监督员上报", "公众举报", "视频发现", "领导交办"], [75, 10, 12, 3])[0]
    has_point = rng.random() < 0.85
    has_text = not has_point or rng.random() < 0.4
    lon, lat = _point(r, "wgs84")
    payload: dict[str, Any] = {
        "ajbh": f"{r.at:%Y%m%d}{serial:05d}",
        "ajly": source,
        "ajlx": "部件" if r.item.asset_layers else "事件",
        "wtdl": r.category.zh,
        "wtlx": r.item.zh,
        "wtms": f"{r.address.road}{_phrase(r, rng)}。",
        "fssj": f"{r.at:%Y-%m-%d %H:%M:%S}",
    }
    if has_point:
        payload["zb"] = {"x": lon, "y": lat}
    if has_text:
        payload["dz"] = address_variant(r.address, rng, near_p=0.2)
    if rng.random() < 0.7:
        payload["jdmc"] = r.address.town_name
    if r.village_name and rng.random() < 0.5:
        payload["sqmc"] = r.village_name
    if source == "监督员上报":
        payload["jdybh"] = f"JDY{rng.randrange(1, 400):04d}"
    return Worded(payload, "EPSG:4326" if has_point else None, has_text)


def _illegal_construction(r: Report, serial: int, rng: random.Random) -> Worded:
    if r.item.code == "CM01":
        kind = "在建违建"
    else:
        kind = "违建复建" if rng.random() < 0.4 else "存量违建"
    lon, lat = _point(r, "cgcs2000")
    has_text = rng.random() < 0.6
    payload: dict[str, Any] = {
        "XCBH": f"CW{r.at:%Y}-{serial:06d}",
        "XCRQ": f"{r.at:%Y/%m/%d}",
        "XCSJ": f"{r.at:%H:%M}",
        "WJLX": kind,
        "WZ": {"JD": lon, "WD": lat, "ZBX": "CGCS2000"},
    }
    if has_text:
        payload["DZ"] = address_variant(r.address, rng)
    payload["SSZJ"] = r.address.town_name
    if r.village_name and rng.random() < 0.8:
        payload["SSCJ"] = r.village_name
    payload["WJMJ"] = round(rng.lognormvariate(math.log(60.0), 0.7) + 1.0, 1)
    payload["JZCS"] = rng.randrange(1, 5)
    payload["XCRY"] = f"XC{rng.randrange(1, 200):04d}"
    payload["BZ"] = f"{_phrase(r, rng)}，{kind}。"
    return Worded(payload, "EPSG:4490", has_text)


def _grid_role(r: Report, rng: random.Random) -> str:
    if r.item.category == "MR":
        return "出租屋管理员"
    if r.item.code == "WF03":
        return "河涌巡查员"
    roles = ["网格员", "网格长", "治安员", "志愿者"]
    return rng.choices(roles, [80, 5, 10, 5])[0]


def _community_grid(r: Report, serial: int, rng: random.Random) -> Worded:
    datum = "gcj02" if rng.random() < 0.3 else "wgs84"
    lon, lat = _point(r, datum)
    has_text = rng.random() < 0.5
    payload: dict[str, Any] = {
        "eventId": f"WG{r.at:%Y%m%d}{serial:05d}",
        "eventType": r.item.code,
        "eventTypeName": r.item.zh,
        "reportTime": int(r.at.timestamp() * 1000),
        "location": {"longitude": lon, "latitude": lat, "coordType": datum},
    }
    if has_text:
        payload["address"] = address_variant(r.address, rng)
    payload["communityCode"] = r.village_code
    payload["reporter"] = {
        "workerId": f"WG{r.village_code[7:12]}{rng.randrange(0, 10)}",
        "role": _grid_role(r, rng),
    }
    payload["content"] = f"{_phrase(r, rng)}，已拍照上报。"
    photos = rng.randrange(0, 4)
    payload["attachments"] = [f"IMG_{r.at:%Y%m%d_%H%M%S}_{k + 1}.jpg" for k in range(photos)]
    return Worded(payload, "gcj02" if datum == "gcj02" else "EPSG:4326", has_text)


def _migrant_management(r: Report, serial: int, rng: random.Random) -> Worded:
    has_gps = rng.random() < 0.2
    lon, lat = _point(r, "wgs84")
    payload: dict[str, Any] = {
        "rwbh": f"LS{r.at:%Y%m%d}{serial:06d}",
        "sjlx": r.item.zh,
        "sjms": _phrase(r, rng),
        "fwdz": address_variant(r.address, rng),
        "sszj": r.village_code[:9],
        "sscj": r.village_code,
        "djsj": f"{r.at:%Y年%m月%d日 %H时%M分}",
        "gps": f"{lon:.6f},{lat:.6f}" if has_gps else "",
        "zhrs": rng.randrange(1, 40) if r.item.category == "MR" else None,
        "xxybh": f"XXY{rng.randrange(1, 3000):05d}",
    }
    return Worded(payload, "EPSG:4326" if has_gps else None, True)


def _hotline_12345(r: Report, serial: int, rng: random.Random) -> Worded:
    address = address_variant(r.address, rng, near_p=0.3)
    if r.item.category == "CS":
        kind = "求助"
    else:
        kind = rng.choices(["投诉", "举报", "求助", "建议"], [70, 15, 10, 5])[0]
    domain = HOTLINE_DOMAINS.get(r.item.category, "其他")
    phone = f"{_pick(rng, PHONE_PREFIXES)}****{rng.randrange(0, 10_000):04d}"
    caller = f"{_pick(rng, SURNAMES)}{'先生' if rng.random() < 0.55 else '女士'}"
    demand = _pick(rng, ("要求尽快处理。", "希望相关部门核查处理。", "影响出行，请尽快处理。"))
    payload: dict[str, Any] = {
        "order_no": f"GZ{r.at:%Y%m%d}{serial:06d}",
        "created_at": r.at.isoformat(timespec="seconds"),
        "channel": rng.choices(["phone", "wechat", "web", "app"], [70, 15, 5, 10])[0],
        "district": "花都区",
        "urgent": r.item.deadline.unit.value == "natural_hours",
        "caller": {"name": caller, "phone": phone},
        "appeal": {
            "kind": kind,
            "classification": f"{domain}/{r.category.zh}/{r.item.zh}",
            "title": f"反映{r.address.road}{r.item.zh}问题",
            "content": f"市民来电反映：{address}{_phrase(r, rng)}，{demand}",
            "address": address,
        },
    }
    return Worded(payload, None, True)


def _open311(r: Report, serial: int, rng: random.Random) -> Worded:
    lon, lat = _point(r, "gcj02")
    user = rng.randrange(0, 3000)
    payload: dict[str, Any] = {
        "jurisdiction_id": "440114",
        "service_code": r.item.code,
        "lat": f"{lat:.6f}",
        "long": f"{lon:.6f}",
    }
    has_text = rng.random() < 0.5
    if has_text:
        payload["address_string"] = address_variant(r.address, rng, near_p=0.2)
    payload["description"] = _phrase(r, rng)
    payload["device_id"] = f"wx-{_token('device', user)[:16]}"
    payload["account_id"] = f"o{_token('account', user)[:27]}"
    if rng.random() < 0.6:
        payload["media_url"] = f"https://mp.sibiao.example/media/{_token(r.seq, serial)[:20]}.jpg"
    payload["attribute[datum]"] = "gcj02"
    payload["attribute[reported_at]"] = r.at.isoformat(timespec="seconds")
    return Worded(payload, "gcj02", has_text)


_WRITERS: Final[Mapping[SourceSystem, Callable[[Report, int, random.Random], Worded]]] = {
    SourceSystem.city_management: _city_management,
    SourceSystem.illegal_construction: _illegal_construction,
    SourceSystem.community_grid: _community_grid,
    SourceSystem.migrant_management: _migrant_management,
    SourceSystem.hotline_12345: _hotline_12345,
    SourceSystem.open311: _open311,
}


def word_report(report: Report, serial: int, rng: random.Random) -> Worded:
    """Return the payload ``report.system`` would send for ``report``, numbered ``serial``."""
    return _WRITERS[report.system](report, serial, rng)
