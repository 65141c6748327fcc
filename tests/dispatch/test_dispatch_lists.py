"""Reading many cases over HTTP: filters and paging, statistics, routing rules, snapping."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest
from dispatch_support import SH, new_id

from schemas.geodesy import wgs84_to_gcj02

T = datetime(2026, 9, 7, 10, tzinfo=SH)  # a Monday
DAY = {"from": "2026-09-07T00:00:00+08:00", "to": "2026-09-08T00:00:00+08:00"}
# item, lon, lat: 新华街道 (y > 23.41) and 狮岭镇 (y < 23.41), CA01s more than 250 m apart
PLACES = [
    ("CA01", 113.2010, 23.4150),
    ("CA01", 113.2080, 23.4180),
    ("CA01", 113.2250, 23.4170),
    ("CA01", 113.2050, 23.4050),
    ("SO01", 113.2060, 23.4060),
    ("SO01", 113.2150, 23.4020),
    ("PU01", 113.2156, 23.4154),
    ("CA01", 113.2011, 23.4151),  # a duplicate of the first
]


@pytest.fixture(scope="module")
def day_cases(client, clock) -> list[dict]:
    made = []
    for k, (item, lon, lat) in enumerate(PLACES):
        clock.at = T + timedelta(minutes=k)
        body = {
            "source_system": "platform",
            "source_id": new_id("P"),
            "item_code": item,
            "reported_at": clock.at.isoformat(),
            "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
        }
        response = client.post("/cases", json=body)
        assert response.status_code == 201, response.text
        made.append(response.json())
    assert made[-1]["duplicate_of"] == made[0]["id"]
    for case in made[4:6]:
        client.post(f"/cases/{case['id']}/transitions", json={"action": "dispatch"})
    return made


def ids(response) -> set[int]:
    assert response.status_code == 200, response.text
    return {c["id"] for c in response.json()["items"]}


def test_filters_select_what_they_say(client, clock, day_cases):
    clock.at = T + timedelta(minutes=30)
    everything = {c["id"] for c in day_cases}
    assert ids(client.get("/cases", params=DAY)) == everything
    assert client.get("/cases", params=DAY).json()["total"] == len(PLACES)
    by = {c["id"]: c for c in day_cases}

    def where(**params: object) -> set[int]:
        return ids(client.get("/cases", params={**DAY, **params}))

    assert where(item="CA01") == {i for i, c in by.items() if c["item_code"] == "CA01"}
    assert where(category="SO") == {day_cases[4]["id"], day_cases[5]["id"]}
    assert where(town="440114109") == {i for i, c in by.items() if c["town_code"] == "440114109"}
    assert len(where(town="440114109")) == 3
    assert where(grid="440114001201002") == {day_cases[6]["id"]}
    assert where(village="440114001202") == {day_cases[2]["id"]}
    assert where(status="dispatched") == {day_cases[4]["id"], day_cases[5]["id"]}
    assert where(status="reported,dispatched") == everything
    assert where(status=["reported", "dispatched"]) == everything
    assert where(department="区城市管理和综合执法局") == {day_cases[6]["id"]}
    assert where(duplicates="true") == {day_cases[-1]["id"]}
    assert where(source="platform") == everything
    assert where(manual="true") == set()
    assert client.get("/cases", params={**DAY, "status": "lost"}).status_code == 400
    clock.at = T + timedelta(hours=3)  # CA01 and SO01 had 2 office hours from about 10:00
    overdue = {i for i, c in by.items() if datetime.fromisoformat(c["deadline"]) < clock.at}
    assert overdue and overdue != everything
    assert where(overdue="true") == overdue
    assert where(overdue="false") == everything - overdue
    assert all(
        c["overdue"]
        for c in client.get("/cases", params={**DAY, "overdue": "true"}).json()["items"]
    )


def test_bbox_in_any_datum_and_time_windows(client, clock, day_cases):
    clock.at = T + timedelta(minutes=30)
    south = {c["id"] for c in day_cases if c["town_code"] == "440114109"}
    box = (113.19, 23.39, 113.24, 23.4070)  # just north of the southern cases
    wgs = client.get("/cases", params={**DAY, "bbox": ",".join(map(str, box)), "crs": "wgs84"})
    assert ids(wgs) == south
    (x0, x1), (y0, y1) = wgs84_to_gcj02([box[0], box[2]], [box[1], box[3]])
    gcj = f"{x0},{y0},{x1},{y1}"
    assert ids(client.get("/cases", params={**DAY, "bbox": gcj, "crs": "gcj02"})) == south
    read_as_wgs84 = ids(client.get("/cases", params={**DAY, "bbox": gcj, "crs": "wgs84"}))
    assert read_as_wgs84 != south  # the datum matters: hundreds of metres
    for bad in ("1,2,3", "a,b,c,d", "113.3,23.4,113.2,23.5", "nan,1,2,3"):
        response = client.get("/cases", params={"bbox": bad})
        assert response.status_code == 400, bad
    assert client.get("/cases", params={"bbox": "1,2,3,4", "crs": "mars"}).status_code == 400
    first_half = {"from": DAY["from"], "to": (T + timedelta(minutes=3)).isoformat()}
    assert ids(client.get("/cases", params=first_half)) == {c["id"] for c in day_cases[:3]}
    assert client.get("/cases", params={"from": "2026-09-07T00:00:00"}).status_code == 422


def test_paging_follows_next_links_to_every_case_once(client, clock, day_cases):
    clock.at = T + timedelta(minutes=30)
    seen: list[int] = []
    url, params = "/cases", {**DAY, "limit": 3}
    pages = 0
    while True:
        page = client.get(url, params=params).json()
        pages += 1
        assert page["total"] == len(PLACES) and len(page["items"]) <= 3
        seen += [c["id"] for c in page["items"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        url, params = nxt[0], None
    assert pages == 3 and len(seen) == len(set(seen)) == len(PLACES)
    received = [c["id"] for c in sorted(day_cases, key=lambda c: (c["received_at"], c["id"]))]
    assert seen == received[::-1]  # newest received first
    assert client.get("/cases", params={"limit": 0}).status_code == 422
    assert client.get("/cases", params={"limit": 1001}).status_code == 422
    assert client.get("/cases", params={"offset": -1}).status_code == 422


def test_statistics_equal_a_direct_count(client, clock, dispatch, day_cases):
    clock.at = T + timedelta(hours=1)
    closing = day_cases[4]["id"]
    for action in ("start", "resolve", "visit", "close"):
        assert (
            client.post(f"/cases/{closing}/transitions", json={"action": action}).status_code == 200
        )
    for by, column in (("town", "town_code"), ("item", "item_code"), ("category", "category")):
        response = client.get("/stats/cases", params={"by": by, **DAY})
        assert response.status_code == 200, response.text
        got = {r["key"]: (r["received"], r["closed"]) for r in response.json()["rows"]}
        expected = {
            key: (int(n), int(c))
            for key, n, c in dispatch.rows(
                f"SELECT {column}, count(*), count(*) FILTER (WHERE status = 'closed') "
                "FROM cases WHERE status <> 'merged' AND received_at >= :a AND received_at < :b "
                "GROUP BY 1",
                a=datetime.fromisoformat(DAY["from"]),
                b=datetime.fromisoformat(DAY["to"]),
            )
        }
        assert got == expected, by
    towns = client.get("/stats/cases", params={"by": "town", **DAY}).json()["rows"]
    shiling = next(r for r in towns if r["key"] == "440114109")
    assert shiling["label"] == "狮岭镇" and shiling["closed"] == 1
    assert shiling["closure_rate"] == round(1 / shiling["received"], 4)
    days = client.get("/stats/cases", params={"by": "period", "period": "day", **DAY}).json()
    assert [(r["key"], r["received"]) for r in days["rows"]] == [("2026-09-07", len(PLACES))]
    assert client.get("/stats/cases", params={"by": "colour"}).status_code == 400
    assert client.get("/stats/cases", params={"by": "period", "period": "aeon"}).status_code == 400
    backwards = {"by": "town", "from": DAY["to"], "to": DAY["from"]}
    assert client.get("/stats/cases", params=backwards).status_code == 400
    year_one = {"by": "town", "to": "0001-01-01T00:00:00+14:00"}
    assert client.get("/stats/cases", params=year_one).status_code == 400


def test_routing_rules_are_read_and_versioned(client, clock):
    clock.at = T
    current = client.get("/routing/rules").json()
    assert len(current["items"]) == 36 and len(current["categories"]) == 13
    changed = copy.deepcopy(current)
    ca01 = next(i for i in changed["items"] if i["code"] == "CA01")
    ca01["en"] = "Exposed refuse, overflowing bins"
    response = client.put(
        "/routing/rules",
        json=changed,
        params={"note": "wording"},
        headers={"X-Sibiao-User": "admin"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == current["version"] + 1
    now = client.get("/routing/rules").json()
    assert now["version"] == current["version"] + 1
    assert next(i for i in now["items"] if i["code"] == "CA01")["en"] == ca01["en"]
    old = client.get("/routing/rules", params={"version": current["version"]}).json()
    assert (
        next(i for i in old["items"] if i["code"] == "CA01")["en"]
        == "Exposed or overflowing refuse"
    )
    assert client.get("/routing/rules", params={"version": 9999}).status_code == 404
    missing = copy.deepcopy(now)
    missing["items"] = missing["items"][1:]
    unknown_layer = copy.deepcopy(now)
    next(i for i in unknown_layer["items"] if i["code"] == "PU01")["asset_layers"] = ["moon_lamp"]
    extra = {**copy.deepcopy(now), "colour": "red"}
    for bad, words in ((missing, "36"), (unknown_layer, "moon_lamp"), (extra, "colour")):
        response = client.put("/routing/rules", json=bad)
        assert response.status_code == 422, response.text
        assert words in str(response.json()), words
    assert client.get("/routing/rules").json()["version"] == now["version"]


def test_snap_one_point_and_a_batch(client):
    hit = client.get("/snap", params={"lon": 113.205, "lat": 23.415})
    assert hit.status_code == 200, hit.text
    assert hit.json()["grid_code"] == "440114001201001"
    assert (hit.json()["village_name"], hit.json()["town_name"]) == ("新街村委会", "新华街道")
    glon, glat = (float(v) for v in wgs84_to_gcj02(113.205, 23.415))
    gcj = client.get("/snap", params={"lon": glon, "lat": glat, "crs": "gcj02"}).json()
    assert gcj["grid_code"] == "440114001201001" and abs(gcj["lon"] - 113.205) < 1e-6
    assert client.get("/snap", params={"lon": 116.4, "lat": 39.9}).status_code == 400
    assert client.get("/snap", params={"lon": "nan", "lat": 23.4}).status_code == 422
    assert client.get("/snap", params={"lon": 113.2, "lat": 23.4, "crs": "mars"}).status_code == 400
    blon, blat = (float(v) for v in wgs84_to_gcj02(113.2115, 23.415))  # cell A2 in WGS84
    batch = client.post(
        "/snap",
        json={"points": [[113.2115, 23.415], [116.4, 39.9], [blon, blat]], "crs": "gcj02"},
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert results[1] is None and batch.json()["matched"] == 2
    assert results[2]["grid_code"] == "440114001201002"
    assert results[0]["grid_code"] == "440114001201001"  # WGS84 numbers read as GCJ-02: west
    many = [[113.2 + (k % 300) * 0.0001, 23.4 + (k // 300) * 0.0005] for k in range(10_000)]
    full = client.post("/snap", json={"points": many})
    assert full.status_code == 200 and len(full.json()["results"]) == 10_000
    assert full.json()["matched"] == 10_000
    assert client.post("/snap", json={"points": [*many, [113.2, 23.4]]}).status_code == 422
    text = '{"points": [[NaN, 23.4]]}'
    response = client.post("/snap", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422
