"""Cases in over HTTP: POST /cases and POST /intake/{system}, idempotent, refusing bad input."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from datetime import date, datetime, timedelta

import httpx
from dispatch_http_support import synthetic_stream
from dispatch_support import SH, new_id

from cases.sources import SourceSystem
from schemas.geodesy import gcj02_to_wgs84, geodesic_distance_m

T = datetime(2026, 3, 3, 9, tzinfo=SH)  # a Tuesday
NATIVE_ID = {
    "city_management": "ajbh",
    "illegal_construction": "XCBH",
    "community_grid": "eventId",
    "migrant_management": "rwbh",
    "hotline_12345": "order_no",
}


def case_body(item: str = "PU01", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "source_system": "platform",
        "source_id": new_id("H"),
        "item_code": item,
        "reported_at": T.isoformat(),
        "reporter": {"name": "测试"},
        "location": {"lon": 113.2156, "lat": 23.4154, "crs": "EPSG:4490"},
        "description": "路灯不亮",
    }
    body.update(extra)
    return body


def count(dispatch, source_id: str) -> int:
    return int(dispatch.scalar("SELECT count(*) FROM cases WHERE source_id = :s", s=source_id))


def test_post_case_answers_201_with_the_routed_case_then_200_on_a_resend(client, clock, dispatch):
    clock.at = T + timedelta(minutes=5)
    body = case_body()
    first = client.post("/cases", json=body)
    assert first.status_code == 201, first.text
    case = first.json()
    assert first.headers["location"].endswith(f"/cases/{case['id']}")
    assert (case["status"], case["step"], case["item_code"], case["category"]) == (
        "reported",
        1,
        "PU01",
        "PU",
    )
    assert case["grid_code"] == "440114001201002"
    assert (case["village_code"], case["village_name"]) == ("440114001201", "新街村委会")
    assert (case["town_code"], case["town_name"]) == ("440114001", "新华街道")
    assert (case["district_code"], case["district_name"]) == ("440114", "花都区")
    assert case["department"] == case["responsible_unit"] == "区城市管理和综合执法局"
    assert case["fallback_department"] == "新华街道规划建设办公室"
    assert case["asset"] == {
        "layer": "street_lamp",
        "code": "4401140100000001",
        "maintenance_unit": "花都区路灯管理所",
        "distance_m": case["asset"]["distance_m"],
    }
    assert 0 < case["asset"]["distance_m"] < 20
    # 3 working days from Tuesday 09:05 → Friday 09:05, in +08:00
    assert case["deadline"] == "2026-03-06T09:05:00+08:00"
    assert case["rule_version"] >= 1 and case["duplicate_of"] is None
    assert case["needs_manual_location"] is False and case["overdue"] is False
    assert case["allowed_actions"] == ["dispatch", "merge"]
    again = client.post("/cases", json={**body, "description": "changed on the re-send"})
    assert again.status_code == 200
    assert again.json()["id"] == case["id"] and again.json()["description"] == "路灯不亮"
    assert count(dispatch, body["source_id"]) == 1


def test_concurrent_resends_store_exactly_one_row(live, clock, dispatch):
    clock.at = T + timedelta(hours=1)
    body = case_body("CA01", location={"lon": 113.2052, "lat": 23.4151, "crs": "wgs84"})
    n = 8
    barrier = threading.Barrier(n)
    answers: list[tuple[int, int]] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=live, timeout=30) as http:
            barrier.wait()
            response = http.post("/cases", json=body)
            with lock:
                answers.append((response.status_code, response.json()["id"]))

    threads = [threading.Thread(target=send) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == n
    assert sorted(status for status, _ in answers) == [200] * (n - 1) + [201]
    assert len({case_id for _, case_id in answers}) == 1
    assert count(dispatch, body["source_id"]) == 1


def test_the_five_legacy_shapes_of_the_synthetic_stream_are_received(client, clock, dispatch):
    stream = synthetic_stream(
        dispatch.district, start=date(2026, 5, 4), days=6, per_day=60, seed=11
    )
    clock.at = datetime(2026, 5, 12, 9, tzinfo=SH)
    chosen: dict[str, list] = defaultdict(list)
    for generated in stream:
        system = generated.system.value
        if system in NATIVE_ID and generated.truth.duplicate_of is None and len(chosen[system]) < 3:
            chosen[system].append(generated)
    assert set(chosen) == set(NATIVE_ID), {s: len(v) for s, v in chosen.items()}
    for system, generated_cases in chosen.items():
        for generated in generated_cases:
            response = client.post(f"/intake/{system}", json=generated.payload)
            assert response.status_code == 201, (system, response.text)
            case = response.json()
            assert case["source_system"] == system
            assert case["source_id"] == generated.payload[NATIVE_ID[system]]
            assert case["item_code"] == generated.truth.item
            sent_at = datetime.fromisoformat(generated.truth.reported_at)
            got_at = datetime.fromisoformat(case["reported_at"])
            assert timedelta(0) <= sent_at - got_at < timedelta(minutes=1)  # some send minutes
            assert got_at.utcoffset() == timedelta(hours=8)
            if generated.truth.reported_crs is not None:  # it sent a point: placed from it
                assert case["location_method"] == "point" and case["grid_code"]
                lon, lat = generated.truth.lon, generated.truth.lat
                here = case["location"]
                assert float(geodesic_distance_m(lon, lat, here["lon"], here["lat"])) < 30
            again = client.post(f"/intake/{system}", json=generated.payload)
            assert again.status_code == 200 and again.json()["id"] == case["id"]


def test_gcj02_from_the_grid_app_lands_where_the_truth_is(client, clock, dispatch):
    stream = synthetic_stream(
        dispatch.district, start=date(2026, 5, 18), days=4, per_day=80, seed=5
    )
    clock.at = datetime(2026, 5, 25, 9, tzinfo=SH)
    gcj = [
        g
        for g in stream
        if g.system is SourceSystem.community_grid and g.truth.reported_crs == "gcj02"
    ][:3]
    assert gcj
    for generated in gcj:
        case = client.post("/intake/community_grid", json=generated.payload).json()
        loc = generated.payload["location"]
        naive = geodesic_distance_m(
            loc["longitude"], loc["latitude"], generated.truth.lon, generated.truth.lat
        )
        assert float(naive) > 200  # read as WGS84 the numbers would be hundreds of metres off
        wlon, wlat = gcj02_to_wgs84(loc["longitude"], loc["latitude"])
        got = case["location"]
        assert float(geodesic_distance_m(wlon, wlat, got["lon"], got["lat"])) < 1


def test_malformed_payloads_answer_422_naming_the_field(client, clock, dispatch):
    clock.at = T
    stream = synthetic_stream(
        dispatch.district,
        start=date(2026, 3, 2),
        days=1,
        per_day=40,
        seed=3,
    )
    grid = next(g.payload for g in stream if g.system is SourceSystem.community_grid)
    broken = {**grid, "location": {**grid["location"], "coordType": "bd09"}}
    response = client.post("/intake/community_grid", json=broken)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.location.coordType:")
    missing = {k: v for k, v in grid.items() if k != "eventId"}
    response = client.post("/intake/community_grid", json=missing)
    assert response.status_code == 422 and "eventId" in response.json()["detail"]
    response = client.post("/intake/hotline_12345", json={"order_no": "x"})
    assert response.status_code == 422 and "order_no" in response.json()["detail"]
    response = client.post("/intake/community_grid", json=["not", "an", "object"])
    assert response.status_code == 422
    response = client.post("/intake/fax_machine", json=grid)
    assert response.status_code == 404 and "fax_machine" in response.json()["detail"]
    response = client.post(
        "/cases", json=case_body(location={"lon": 113.2, "lat": 23.4, "crs": "mars"})
    )
    assert response.status_code == 422 and "location.crs" in response.json()["detail"]
    response = client.post("/cases", json=case_body("PU01", category_code="CA"))
    assert response.status_code == 422
    response = client.post("/cases", json=case_body("ZZ99"))
    assert response.status_code == 400 and "ZZ99" in response.json()["detail"]
    response = client.post("/cases", json=case_body("PU1"))
    assert response.status_code == 422 and "item_code" in response.json()["detail"]


def _raw(client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text, headers={"content-type": "application/json"})


def test_nan_infinity_and_nul_are_refused_everywhere(client, clock, dispatch):
    clock.at = T
    body = case_body()
    for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
        text = json.dumps(body).replace('"lon": 113.2156', f'"lon": {bad}')
        assert bad in text
        response = _raw(client, "/cases", text)
        assert response.status_code == 422, (bad, response.text)
        text = json.dumps(body, ensure_ascii=False)
        text = text.replace('"name": "测试"', f'"name": "x", "score": {bad}')
        assert f'score": {bad}' in text
        response = _raw(client, "/cases", text)
        assert response.status_code == 422, (bad, response.text)
        assert "reporter" in response.json()["detail"]
    response = client.post("/cases", json={**body, "description": "a\x00b"})
    assert response.status_code == 422 and "description" in response.json()["detail"]
    response = client.post("/cases", json={**body, "reporter": {"name": "a\x00b"}})
    assert response.status_code == 422
    grid_text = '{"eventId": "WG2026030200001", "location": {"longitude": NaN}}'
    assert _raw(client, "/intake/community_grid", grid_text).status_code == 422
    assert count(dispatch, body["source_id"]) == 0


def test_points_outside_the_district_are_refused_with_400(client, clock, dispatch):
    clock.at = T
    for location in (
        {"lon": 116.397, "lat": 39.909, "crs": "wgs84"},  # Beijing
        {"lon": 23.4154, "lat": 113.2156, "crs": "EPSG:4490"},  # lat/lon swapped
        {"lon": 1e300, "lat": 23.4, "crs": "gcj02"},
    ):
        body = case_body(location=location)
        response = client.post("/cases", json=body)
        assert response.status_code == 400, (location, response.text)
        assert "district" in response.json()["detail"] or "longitude" in response.json()["detail"]
        assert count(dispatch, body["source_id"]) == 0
    # inside Huadu but outside the loaded grid: kept, to be placed by hand
    body = case_body(location={"lon": 113.35, "lat": 23.5, "crs": "wgs84"})
    response = client.post("/cases", json=body)
    assert response.status_code == 201
    assert response.json()["needs_manual_location"] is True and response.json()["grid_code"] is None


def test_impossible_report_times_are_refused(client, clock):
    clock.at = T
    for when in ("2031-01-01T00:00:00+08:00", "0001-01-01T00:00:00+14:00", "1999-12-31T00:00:00Z"):
        response = client.post("/cases", json=case_body(reported_at=when))
        assert response.status_code == 400, (when, response.text)
    response = client.post("/cases", json=case_body(reported_at="2026-03-03T09:00:00"))
    assert response.status_code == 422  # no time zone
