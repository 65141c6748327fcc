"""Constants and types of the notebook tests (imported by their conftest and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from schemas.catalog import Catalog
from schemas.settings import Settings

SH = ZoneInfo("Asia/Shanghai")
START = date(2026, 1, 1)
DAYS = 181  # 2026-01-01 .. 2026-06-30
END = datetime(2026, 7, 1, tzinfo=SH)
PER_DAY = 3.0
LAYERS = (
    "district_boundary",
    "town_boundary",
    "village_boundary",
    "grid_cell",
    "house_number",
    "road_centerline",
    "emergency_shelter",
    "emergency_stockpile",
    "street_lamp",
    "manhole_cover",
)
#: The layer the upload notebook uploads (not loaded beforehand; its file has defects).
UPLOAD_LAYER = "water_valve"


class Clock:
    """A clock the fixture sets: the app asks it for ``now``."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class NotebookDistrict:
    """The loaded district: settings, engine, catalog, the generated folder, cases posted."""

    settings: Settings
    engine: Engine
    catalog: Catalog
    folder: Path
    cases: int

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
