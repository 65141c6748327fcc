"""Helpers of the dispatcher's and planner's map tests: the cases tests' tiny district, cases.

The district is ``tests/cases/dispatch_support.py``'s (six grid cells of 新华街道 and 狮岭镇,
two lamps, two manhole covers), loaded into a throwaway database of its own with the routing
rules. Cases are posted over HTTP while the app's clock (a :class:`Clock`) stands three days
before "now", so some are overdue once it moves on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cases"))

from dispatch_support import frames, make_district, new_id  # noqa: E402

from cases.routing import seed_rules  # noqa: E402
from ingest.pipeline import LoadRequest, run_load  # noqa: E402
from layers.bootstrap import prepare_database  # noqa: E402
from schemas.catalog import Catalog  # noqa: E402
from schemas.settings import Settings  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 9, 7, 10, tzinfo=SH)  # a Monday
NOW = T0 + timedelta(days=3)
#: item, lon, lat, reported at T0 (overdue by NOW) or at NOW (not overdue)
CASES = [
    ("CA01", 113.2010, 23.4150, T0),
    ("CA01", 113.2250, 23.4170, T0),
    ("SO01", 113.2060, 23.4060, T0),
    ("SO01", 113.2150, 23.4020, NOW),
    ("CA01", 113.2080, 23.4180, NOW),
    ("PU01", 113.2156, 23.4154, NOW),
]
SO_CASES = 2
OVERDUE = 3  # the CA01 and SO01 reported at T0 (2 office hours)


class Clock:
    """A clock the tests set: the app asks it for ``now``."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class OpsDb:
    """The loaded district's settings, engine and catalog."""

    settings: Settings
    engine: Engine
    catalog: Catalog


def load_district(engine: Engine, settings: Settings, catalog: Catalog, folder: Path) -> None:
    """Prepare the database, seed the routing rules and load the tiny district."""
    prepare_database(engine, settings)
    with engine.begin() as conn:
        seed_rules(conn)
    for layer, frame in frames(make_district()).items():
        path = folder / f"{layer}.gpkg"
        frame.to_file(path, driver="GPKG")
        result = run_load(engine, settings, catalog, LoadRequest(path=path, layer=layer))
        assert result.loaded == len(frame) and result.rejected == 0, (layer, result)


def post_cases(url: str, clock: Clock) -> list[dict[str, Any]]:
    """Post CASES over HTTP (clock at their report time); dispatch one; leave the clock at NOW."""
    made = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for item, lon, lat, at in CASES:
            clock.at = at
            body = {
                "source_system": "platform",
                "source_id": new_id("M"),
                "item_code": item,
                "reported_at": at.isoformat(),
                "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
            }
            response = http.post("/cases", json=body)
            assert response.status_code == 201, response.text
            made.append(response.json())
        clock.at = NOW
        answer = http.post(f"/cases/{made[-1]['id']}/transitions", json={"action": "dispatch"})
        assert answer.status_code == 200, answer.text
    return made


#: Columns a bulk copy of a case sets itself (every other column is copied as it is).
SET_BY_COPY = {"id", "source_id", "received_at", "geom", "created_at", "updated_at"}


def bulk_cases(engine: Engine, total: int) -> int:
    """Copy the stored cases until there are ``total``, spread over the district; return it.

    One INSERT … SELECT (fast): copies get new source ids, received times a minute apart
    and points scattered (deterministically) over the test district's six cells.
    """
    with engine.begin() as conn:
        have = int(conn.execute(text("SELECT count(*) FROM cases")).scalar_one())
        assert have > 0, "post some cases first"
        names = conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'cases' AND is_generated = 'NEVER' "
                "ORDER BY ordinal_position"
            )
        ).scalars()
        copied = ", ".join(f'"{n}"' for n in names if n not in SET_BY_COPY)
        copies = -(-(total - have) // have)  # ceiling
        conn.execute(
            text(f"""
            INSERT INTO cases ({copied}, source_id, received_at, geom)
            SELECT {copied}, c.source_id || '-bulk-' || g, c.received_at - g * interval '1 minute',
                   ST_SetSRID(ST_MakePoint(113.2 + ((g * 7919 + c.id * 104729) % 3000) / 1e5,
                                           23.4 + ((g * 6151 + c.id * 12289) % 2000) / 1e5), 4490)
            FROM (SELECT * FROM cases ORDER BY id) c CROSS JOIN generate_series(1, :copies) g
            ORDER BY g, c.id
            LIMIT :missing"""),
            {"copies": copies, "missing": total - have},
        )
        return int(conn.execute(text("SELECT count(*) FROM cases")).scalar_one())
