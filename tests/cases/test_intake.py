"""Intake: locate (datum, geocoding), snap, asset, route, duplicates, idempotency, normalising."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta

import pytest
from dispatch_support import SH, case_in, new_id, submit
from pydantic import ValidationError
from sqlalchemy import func, select

from cases.intake import locate_manually, receive
from cases.models import CaseIn, CaseSystem, LocationIn
from cases.normalise import from_source
from cases.queries import get_case
from cases.sources import SourceSystem
from cases.synthetic import AddressPoint, generate_cases
from layers.geocode import clean
from schemas.errors import InvalidInput
from schemas.geodesy import geodesic_distance_m, wgs84_to_bd09, wgs84_to_gcj02
from schemas.tables import case_events, cases


def day(n: int, hour: int = 9) -> datetime:
    """Return a distinct day of 2026 for each test, so their cases never meet."""
    return datetime(2026, 4, 1, hour, tzinfo=SH) + timedelta(days=n)


def test_point_case_is_located_routed_and_audited(db, catalog, calendar):
    cin = case_in("CA01", lon=113.2051, lat=23.4152, reported_at=day(0))
    case, created = submit(db, catalog, calendar, cin, now=day(0, 16))
    assert created and case.status == "reported" and case.step == 1
    assert (case.grid_code, case.village_name, case.town_name) == (
        "440114001201001",
        "新街村委会",
        "新华街道",
    )
    assert case.location_method == "point" and not case.needs_manual_location
    assert case.snap_distance_m == 0.0 and case.district_code == "440114"
    assert (case.level, case.department, case.responsible_unit) == (
        "village",
        "村(居)委会",
        "新街村委会",
    )
    assert case.fallback_department == "新华街道综合行政执法办公室"
    assert case.deadline == day(1, 9)  # Wednesday 16:00 + 2 working hours
    assert case.rule_version == 1 and case.category == "CA" and case.reporters == [{"name": "测试"}]
    with db.connect() as conn:
        detail = get_case(conn, case.id)
    assert [(e.action, e.from_status, e.to_status) for e in detail.events] == [
        ("receive", None, "reported")
    ]
    assert detail.events[0].detail["located_by"] == "point"


def test_gcj02_and_bd09_land_where_their_wgs84_original_does(db, catalog, calendar):
    lon, lat = 113.2070, 23.4120  # cell A1; its GCJ-02 numbers read as WGS84 fall in C2
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    blon, blat = (float(v) for v in wgs84_to_bd09(lon, lat))
    got = {}
    for crs, x, y in (
        ("wgs84", lon, lat),
        ("gcj02", glon, glat),
        ("bd09", blon, blat),
        ("EPSG:4490", glon, glat),
    ):
        case, _ = submit(
            db, catalog, calendar, case_in("PU01", lon=x, lat=y, crs=crs, reported_at=day(1))
        )
        got[crs] = case
    assert (
        got["wgs84"].grid_code
        == got["gcj02"].grid_code
        == got["bd09"].grid_code
        == ("440114001201001")
    )
    assert got["EPSG:4490"].grid_code == "440114109001002"  # the trap: datum ignored
    for crs in ("gcj02", "bd09"):
        assert geodesic_distance_m(got[crs].lon, got[crs].lat, lon, lat) < 0.05
        assert got[crs].source_crs == crs and got[crs].reported_lon != got[crs].lon
    assert geodesic_distance_m(glon, glat, lon, lat) > 300


def test_address_only_case_is_geocoded(db, catalog, calendar, district):
    house = district.house("迎宾大道", "5号")
    case, _ = submit(
        db,
        catalog,
        calendar,
        case_in(
            "SO01", address="花都区新华街道迎宾大道５号", reported_at=day(2), system="hotline_12345"
        ),
    )
    assert case.location_method == "geocode" and case.geocode_confidence == 1.0
    assert (case.lon, case.lat) == (house.lon, house.lat)
    assert case.responsible_unit == "新华街道综合行政执法办公室"


def test_unplaceable_cases_are_kept_for_a_manual_location(db, catalog, calendar):
    nonsense, _ = submit(
        db, catalog, calendar, case_in("CA01", address="不知道在哪里", reported_at=day(3))
    )
    far, _ = submit(
        db,
        catalog,
        calendar,
        case_in("RT01", lon=113.60, lat=23.80, crs="wgs84", reported_at=day(3)),
    )
    nothing, _ = submit(db, catalog, calendar, case_in("CS01", reported_at=day(3)))
    for case in (nonsense, far, nothing):
        assert case.id and case.needs_manual_location and case.lon is None
        assert case.grid_code is None and case.deadline is not None
    assert nonsense.responsible_unit is None  # a village item needs the village
    assert far.responsible_unit == "区住房和城乡建设局"  # a district item does not
    assert far.reported_lon == 113.60 and far.district_code == "440114"
    with db.connect() as conn:
        note = get_case(conn, far.id).events[0].note
    assert "outside the district" in note
    with db.begin() as conn:
        placed = locate_manually(
            conn,
            catalog,
            nonsense.id,
            LocationIn(lon=113.225, lat=23.405, crs="EPSG:4490"),
            who="调度员",
            now=day(3, 10),
        )
        with pytest.raises(InvalidInput, match="outside the district"):
            locate_manually(
                conn,
                catalog,
                nonsense.id,
                LocationIn(lon=113.9, lat=23.9),
                who="调度员",
                now=day(3, 10),
            )
    assert not placed.needs_manual_location and placed.location_method == "manual"
    assert (placed.grid_code, placed.responsible_unit) == ("440114001202002", "大陵村委会")
    assert placed.deadline == nonsense.deadline


def test_nearest_asset_respects_item_filters(db, catalog, calendar):
    sewage, _ = submit(
        db, catalog, calendar, case_in("PU02", lon=113.2250, lat=23.4150, reported_at=day(4))
    )
    power, _ = submit(
        db, catalog, calendar, case_in("PU03", lon=113.2250, lat=23.4150, reported_at=day(4))
    )
    lamp, _ = submit(
        db, catalog, calendar, case_in("PU01", lon=113.2153, lat=23.4153, reported_at=day(4))
    )
    none, _ = submit(
        db, catalog, calendar, case_in("PU01", lon=113.2030, lat=23.4030, reported_at=day(4))
    )
    assert (sewage.asset_layer, sewage.asset_code) == ("manhole_cover", "4401140100005001")
    assert sewage.asset_maintenance_unit == "花都区水务工程管理所"
    assert 10 < sewage.asset_distance_m < 20
    assert power.asset_code == "4401140100005002" and power.asset_distance_m < 8
    assert lamp.asset_code == "4401140100000001" and lamp.asset_distance_m < 35
    assert none.asset_code is None


def test_resends_are_idempotent_even_concurrently(db, catalog, calendar):
    source_id = new_id("R")
    cin = case_in(
        "SO03",
        lon=113.215,
        lat=23.405,
        source_id=source_id,
        reported_at=day(5),
        system="community_grid",
    )
    barrier = threading.Barrier(8)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            barrier.wait()
            with db.begin() as conn:
                case, created = receive(conn, catalog, None, calendar, cin, now=day(5, 10))
            results.append((case.id, created))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({cid for cid, _ in results}) == 1 and sum(c for _, c in results) == 1
    again, created = submit(db, catalog, calendar, cin)
    assert not created and again.id == results[0][0]
    with db.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(cases)
            .where(cases.c.source_system == "community_grid", cases.c.source_id == source_id)
        ).scalar()
        events = conn.execute(
            select(func.count()).select_from(case_events).where(case_events.c.case_id == again.id)
        ).scalar()
    assert rows == 1 and events == 1


def test_duplicates_linked_within_radius_and_window_only(db, catalog, calendar):
    t = day(6)
    original, _ = submit(
        db, catalog, calendar, case_in("CA01", lon=113.2250, lat=23.4050, reported_at=t)
    )
    near, _ = submit(
        db,
        catalog,
        calendar,
        case_in("CA01", lon=113.2265, lat=23.4050, reported_at=t + timedelta(hours=3)),
    )
    far, _ = submit(
        db,
        catalog,
        calendar,
        case_in("CA01", lon=113.2285, lat=23.4050, reported_at=t + timedelta(hours=3)),
    )
    late, _ = submit(
        db,
        catalog,
        calendar,
        case_in("CA01", lon=113.2251, lat=23.4050, reported_at=t + timedelta(hours=25)),
    )
    other_item, _ = submit(
        db,
        catalog,
        calendar,
        case_in("AD02", lon=113.2251, lat=23.4050, reported_at=t + timedelta(hours=1)),
    )
    assert 150 < geodesic_distance_m(113.2250, 23.405, 113.2265, 23.405) < 250
    assert geodesic_distance_m(113.2250, 23.405, 113.2285, 23.405) > 250
    assert original.duplicate_of is None
    assert near.duplicate_of == original.id
    assert far.duplicate_of is None  # 357 m > CA01's 250 m
    assert late.duplicate_of is None  # 25 h > CA01's 24 h window
    assert other_item.duplicate_of is None
    again, _ = submit(
        db,
        catalog,
        calendar,
        case_in("CA01", lon=113.22501, lat=23.40501, reported_at=t + timedelta(hours=4)),
    )
    assert again.duplicate_of == original.id  # the nearest open original, never a duplicate
    with db.connect() as conn:
        assert get_case(conn, original.id).case.reporters == original.reporters  # unchanged


def test_case_in_is_checked():
    with pytest.raises(ValidationError, match="not in category"):
        CaseIn(
            source_system="platform",
            source_id="x",
            item_code="CA01",
            category_code="PU",
            reported_at=day(0),
        )
    with pytest.raises(ValidationError, match="unknown coordinate system"):
        LocationIn(lon=113.2, lat=23.4, crs="mars2000")
    with pytest.raises(ValidationError):
        CaseIn(source_system="fax", source_id="x", item_code="CA01", reported_at=day(0))
    with pytest.raises(ValidationError):
        CaseIn(
            source_system="platform",
            source_id="x",
            item_code="CA01",
            reported_at=datetime(2026, 4, 1, 9),
        )  # naive
    assert len(CaseSystem) == 8 and {s.value for s in SourceSystem} < {s.value for s in CaseSystem}


def test_unknown_item_is_refused(db, catalog, calendar):
    with pytest.raises(InvalidInput, match="unknown item"):
        submit(db, catalog, calendar, case_in("ZZ01", lon=113.205, lat=23.405))


def test_every_system_normalises_and_lands(db, catalog, calendar, district):
    towns = {"440114001": "新华街道", "440114109": "狮岭镇"}
    houses = [
        AddressPoint(
            h.address,
            h.road,
            h.number,
            h.town_code,
            towns[h.town_code],
            h.village_code,
            h.lon,
            h.lat,
        )
        for h in district.houses
        if "之" not in h.number and h.road != "公益路"
    ]
    lamps = district.lamps.values()
    stream = list(
        generate_cases(
            addresses=houses,
            assets={"street_lamp": ([x for x, _ in lamps], [y for _, y in lamps])},
            villages=district.villages,
            days=6,
            per_day=30,
            seed=4,
            start=day(10).date(),
        )
    )
    assert {c.system for c in stream} == set(SourceSystem)
    by_key = {h.address: h for h in houses}
    sub_number = district.house("迎宾大道", "12号之一")
    geocoded = 0
    for generated in stream:
        cin = from_source(generated.system, generated.payload)
        assert cin.item_code == generated.truth.item
        case, created = submit(db, catalog, calendar, cin)
        assert created and not case.needs_manual_location, generated.payload
        distance = geodesic_distance_m(case.lon, case.lat, generated.truth.lon, generated.truth.lat)
        if case.location_method == "geocode":
            geocoded += 1
            assert generated.truth.address_key is not None
            house = by_key[generated.truth.address_key]
            if house.road == "迎宾大道" and re.search(r"12号?(之一|-1|附1)", clean(cin.address)):
                house = sub_number  # 12号之一 is a house of its own here
            assert (case.lon, case.lat) == (house.lon, house.lat), cin.address
        else:
            assert float(distance) < 70, (generated.system, distance)
    assert geocoded >= 5
    with pytest.raises(InvalidInput, match="names no item"):
        hotline = next(g for g in stream if g.system is SourceSystem.hotline_12345)
        payload = {
            **hotline.payload,
            "appeal": {**hotline.payload["appeal"], "classification": "城市管理/其他/外星人"},
        }
        from_source("hotline_12345", payload)
    with pytest.raises(InvalidInput, match="open311 payload"):
        from_source("open311", {"service_code": "CA01"})
