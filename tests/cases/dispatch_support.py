"""Helpers of the dispatch tests: the test district's features and case builders.

The grid (lon/lat, EPSG:4490), 0.01° cells, north row first:

    y 23.41–23.42   A1 440114001201001 | A2 440114001201002 | B1 440114001202001
    y 23.40–23.41   C1 440114109001001 | C2 440114109001002 | B2 440114001202002
                    x 113.20–113.21      x 113.21–113.22      x 113.22–113.23

A = 新街村委会 and B = 大陵村委会 (新华街道); C = 狮岭居委会 (狮岭镇).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import shapely
from shapely.geometry import MultiPolygon, Point, box
from sqlalchemy import Engine

from cases.intake import receive
from cases.models import Case, CaseIn

SH = ZoneInfo("Asia/Shanghai")
X0, Y0, D = 113.20, 23.40, 0.01
CELLS = {  # code -> (column, row from the south)
    "440114001201001": (0, 1),
    "440114001201002": (1, 1),
    "440114001202001": (2, 1),
    "440114109001001": (0, 0),
    "440114109001002": (1, 0),
    "440114001202002": (2, 0),
}
TOWN_NAMES = {"440114001": "新华街道", "440114109": "狮岭镇"}
UNITS = ("花都区路灯管理所", "花都区市政设施管理所", "新华街道城市管理办公室")


def cell_box(column: int, row: int) -> shapely.Polygon:
    """Return the lon/lat box of a cell."""
    x0, y0 = round(X0 + column * D, 6), round(Y0 + row * D, 6)
    return box(x0, y0, round(x0 + D, 6), round(y0 + D, 6))


@dataclass(frozen=True)
class HouseNumber:
    """One standard address of the test district."""

    address_code: str
    town_code: str
    village_code: str
    road: str
    number: str
    lon: float
    lat: float

    @property
    def address(self) -> str:
        return f"广东省广州市花都区{TOWN_NAMES[self.town_code]}{self.road}{self.number}"


def _houses() -> list[HouseNumber]:
    houses: list[HouseNumber] = []

    def add(
        town: str,
        village: str,
        road_code: str,
        road: str,
        number: str,
        n: int,
        lon: float,
        lat: float,
    ) -> None:
        code = f"{town}{road_code}{n:06d}"
        houses.append(HouseNumber(code, town, village, road, number, round(lon, 7), round(lat, 7)))

    for n in range(1, 21):  # 迎宾大道 1–20号, 新华街道, village A, y = 23.415
        add(
            "440114001",
            "440114001201",
            "00001",
            "迎宾大道",
            f"{n}号",
            n,
            113.2005 + 0.0008 * n,
            23.415,
        )
    add(
        "440114001",
        "440114001201",
        "00001",
        "迎宾大道",
        "12号之一",
        912,
        113.2005 + 0.0008 * 12,
        23.4153,
    )
    add("440114001", "440114001202", "00002", "公益路", "8号", 8, 113.225, 23.417)
    add("440114109", "440114109001", "00002", "公益路", "8号", 8, 113.205, 23.405)
    for n in (1, 3, 5, 7, 10):  # 建设北街 in 狮岭镇, village C
        add(
            "440114109",
            "440114109001",
            "00003",
            "建设北街",
            f"{n}号",
            n,
            113.212 + 0.0005 * n,
            23.403,
        )
    return houses


@dataclass(frozen=True)
class District:
    """What was loaded, for independent checks."""

    cells: dict[str, shapely.Polygon]
    villages: dict[str, shapely.Geometry]
    houses: list[HouseNumber]
    lamps: dict[str, tuple[float, float]]
    manholes: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def house(self, road: str, number: str, town: str = "440114001") -> HouseNumber:
        return next(
            h for h in self.houses if h.road == road and h.number == number and h.town_code == town
        )


def frames(district: District) -> dict[str, gpd.GeoDataFrame]:
    def multi(geom: shapely.Geometry) -> MultiPolygon:
        return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])

    return {
        "village_boundary": gpd.GeoDataFrame(
            [
                {"code": code, "name": code, "kind": "village", "town_code": code[:9]}
                for code in district.villages
            ],
            geometry=[multi(g) for g in district.villages.values()],
            crs=4490,
        ),
        "grid_cell": gpd.GeoDataFrame(
            [
                {"code": code, "name": f"网格{code[-3:]}", "village_code": code[:12]}
                for code in district.cells
            ],
            geometry=[multi(g) for g in district.cells.values()],
            crs=4490,
        ),
        "house_number": gpd.GeoDataFrame(
            [
                {
                    "address_code": h.address_code,
                    "address": h.address,
                    "road_name": h.road,
                    "number": h.number,
                    "town_code": h.town_code,
                    "village_code": h.village_code,
                }
                for h in district.houses
            ],
            geometry=[Point(h.lon, h.lat) for h in district.houses],
            crs=4490,
        ),
        "street_lamp": gpd.GeoDataFrame(
            [
                {
                    "code": code,
                    "state": "intact",
                    "maintenance_unit": UNITS[i % len(UNITS)],
                    "road_name": "迎宾大道",
                }
                for i, code in enumerate(district.lamps)
            ],
            geometry=[Point(*xy) for xy in district.lamps.values()],
            crs=4490,
        ),
        "manhole_cover": gpd.GeoDataFrame(
            [
                {
                    "code": code,
                    "kind": kind,
                    "state": "damaged",
                    "maintenance_unit": "花都区水务工程管理所"
                    if kind == "sewage"
                    else "供电局花都分局",
                }
                for code, (kind, _, _) in district.manholes.items()
            ],
            geometry=[Point(x, y) for _, x, y in district.manholes.values()],
            crs=4490,
        ),
    }


def make_district() -> District:
    """Return the test district's features."""
    cells = {code: cell_box(*cr) for code, cr in CELLS.items()}
    villages: dict[str, shapely.Geometry] = {}
    for code, polygon in cells.items():
        village = code[:12]
        villages[village] = (
            shapely.union(villages[village], polygon) if village in villages else polygon
        )
    return District(
        cells=cells,
        villages={k: shapely.normalize(v) for k, v in villages.items()},
        houses=_houses(),
        lamps={"4401140100000001": (113.2155, 23.4155), "4401140100000002": (113.2255, 23.4055)},
        manholes={
            "4401140100005001": ("sewage", 113.2251, 23.4151),
            "4401140100005002": ("power", 113.22504, 23.41503),
        },
    )


_serial = iter(range(1, 10**9))


def new_id(prefix: str = "T") -> str:
    """Return a source id no other test uses."""
    return f"{prefix}{os.getpid()}-{next(_serial):06d}"


def case_in(
    item: str = "CA01",
    *,
    lon: float | None = None,
    lat: float | None = None,
    crs: str = "EPSG:4490",
    address: str | None = None,
    reported_at: datetime | None = None,
    source_id: str | None = None,
    system: str = "platform",
    **extra: Any,
) -> CaseIn:
    """Return a CaseIn with sensible defaults."""
    return CaseIn(
        source_system=system,
        source_id=source_id or new_id(),
        item_code=item,
        reported_at=reported_at or datetime(2026, 3, 2, 9, 0, tzinfo=SH),
        location=None if lon is None else {"lon": lon, "lat": lat, "crs": crs},
        address=address,
        reporter=extra.pop("reporter", {"name": "测试"}),
        **extra,
    )


def submit(
    db: Engine, catalog, calendar, cin: CaseIn, now: datetime | None = None, **kwargs: Any
) -> tuple[Case, bool]:
    """Receive a case in its own transaction."""
    with db.begin() as conn:
        return receive(conn, catalog, None, calendar, cin, now=now or cin.reported_at, **kwargs)
