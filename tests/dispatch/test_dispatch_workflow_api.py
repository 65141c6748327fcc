"""The loop over HTTP: transitions (legal 200, illegal 409), merge, manual location, calls."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

from dispatch_support import SH, new_id

T = datetime(2026, 8, 3, 9, tzinfo=SH)  # a Monday
WHO = {"X-Sibiao-User": quote("调度员甲")}


def post_case(client, item: str = "CM01", **location: float) -> dict:
    body = {
        "source_system": "platform",
        "source_id": new_id("W"),
        "item_code": item,
        "reported_at": T.isoformat(),
        "location": {"lon": 113.2251, "lat": 23.4155, "crs": "EPSG:4490", **location},
    }
    response = client.post("/cases", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def act(client, case_id: int, action: str, **extra: str):
    return client.post(
        f"/cases/{case_id}/transitions", json={"action": action, **extra}, headers=WHO
    )


def test_the_five_steps_are_legal_and_recorded_in_the_timeline(client, clock):
    clock.at = T
    case = post_case(client)
    steps = [
        ("dispatch", "dispatched", 2),
        ("start", "handling", 3),
        ("resolve", "resolved", 4),
        ("visit", "visited", 4),
        ("close", "closed", 5),
    ]
    for k, (action, status, step) in enumerate(steps, start=1):
        clock.at = T + timedelta(hours=k)
        response = act(client, case["id"], action, note=f"{action} done")
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["step"]) == (status, step)
    closed = response.json()
    assert closed["allowed_actions"] == ["reopen"]
    assert closed["closed_at"] == (T + timedelta(hours=5)).isoformat()
    detail = client.get(f"/cases/{case['id']}").json()
    assert [e["action"] for e in detail["events"]] == [
        "receive", "dispatch", "start", "resolve", "visit", "close",
    ]  # fmt: skip
    assert {e["actor"] for e in detail["events"][1:]} == {"调度员甲"}
    assert detail["events"][2]["note"] == "start done"
    reopened = act(client, case["id"], "reopen", note="问题复发")
    assert reopened.status_code == 200 and reopened.json()["status"] == "handling"


def test_illegal_transitions_answer_409_with_the_legal_actions(client, clock):
    clock.at = T
    case = post_case(client)
    response = act(client, case["id"], "close")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "cannot close a case that is reported" in detail and "dispatch, merge" in detail
    assert client.get(f"/cases/{case['id']}").json()["case"]["status"] == "reported"
    assert act(client, case["id"], "teleport").status_code == 400
    assert act(client, case["id"], "merge").status_code == 400
    dispatched = act(client, case["id"], "dispatch", unit="新华街道综合行政执法办公室")
    assert dispatched.json()["responsible_unit"] == "新华街道综合行政执法办公室"
    assert act(client, case["id"], "return").status_code == 400  # return needs a note
    assert act(client, case["id"], "return", note="不属本单位").json()["status"] == "reported"
    assert client.post("/cases/999999999/transitions", json={"action": "start"}).status_code == 404
    bad = client.post(f"/cases/{case['id']}/transitions", json={"action": "start", "x": 1})
    assert bad.status_code == 422


def test_merge_folds_a_duplicate_into_the_original(client, clock):
    clock.at = T + timedelta(days=1)
    first = post_case(client, "SO03", lon=113.2055, lat=23.4155)
    second = post_case(client, "SO03", lon=113.2056, lat=23.4156)
    assert second["duplicate_of"] == first["id"]
    response = client.post(f"/cases/{second['id']}/merge", json={"into": first["id"]}, headers=WHO)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["merged"]["status"] == "merged" and body["merged"]["merged_into"] == first["id"]
    assert body["into"]["id"] == first["id"]
    again = client.post(f"/cases/{second['id']}/merge", json={"into": first["id"]})
    assert again.status_code == 409
    assert client.post(f"/cases/{first['id']}/merge", json={"into": first["id"]}).status_code == 400


def test_a_case_without_a_place_is_placed_by_hand(client, clock):
    clock.at = T + timedelta(days=2)
    body = {
        "source_system": "platform",
        "source_id": new_id("L"),
        "item_code": "PU02",
        "reported_at": (T + timedelta(days=2)).isoformat(),
        "address": "火星大道99号",
    }
    case = client.post("/cases", json=body).json()
    assert case["needs_manual_location"] is True and case["grid_code"] is None
    assert (
        case["responsible_unit"] == "区水务局"
        and case["fallback_department"] == "区城市管理和综合执法局"
    )
    far = client.post(f"/cases/{case['id']}/location", json={"lon": 116.4, "lat": 39.9})
    assert far.status_code == 400
    placed = client.post(
        f"/cases/{case['id']}/location",
        json={"lon": 113.2251, "lat": 23.4151, "crs": "EPSG:4490"},
        headers=WHO,
    )
    assert placed.status_code == 200, placed.text
    out = placed.json()
    assert out["needs_manual_location"] is False and out["grid_code"] == "440114001202001"
    assert out["location_method"] == "manual"
    assert out["asset"]["code"] == "4401140100005001"  # the sewage cover, not the power one
    events = client.get(f"/cases/{case['id']}").json()["events"]
    assert events[-1]["action"] == "locate" and events[-1]["actor"] == "调度员甲"


def test_a_town_calls_a_department_which_responds_once(client, clock):
    clock.at = T + timedelta(days=3)
    case = post_case(client, "CM01")
    early = client.post(f"/cases/{case['id']}/calls", json={"department": "区规划和自然资源局"})
    assert early.status_code == 409  # not dispatched yet
    act(client, case["id"], "dispatch")
    response = client.post(
        f"/cases/{case['id']}/calls",
        json={
            "department": "区规划和自然资源局",
            "note": "需认定违建",
            "within": {"amount": 4, "unit": "working_hours"},
        },
        headers={"X-Sibiao-User": quote("新华街道")},
    )
    assert response.status_code == 201, response.text
    call = response.json()
    assert call["caller"] == "新华街道" and call["responded_at"] is None
    # Thursday 09:00 + 4 office hours: 09:00–12:00, then 14:00–15:00
    assert call["deadline"] == (T + timedelta(days=3, hours=6)).isoformat()
    answered = client.post(f"/calls/{call['id']}/response", json={"response": "已认定为违建"})
    assert answered.status_code == 200 and answered.json()["response"] == "已认定为违建"
    twice = client.post(f"/calls/{call['id']}/response", json={"response": "again"})
    assert twice.status_code == 409
    assert client.post("/calls/999999999/response", json={"response": "x"}).status_code == 404
    detail = client.get(f"/cases/{case['id']}").json()
    assert [c["id"] for c in detail["calls"]] == [call["id"]]
    assert [e["action"] for e in detail["events"]][-2:] == ["call", "respond"]
    bad = client.post(
        f"/cases/{case['id']}/calls",
        json={"department": "x", "within": {"amount": 0, "unit": "working_hours"}},
    )
    assert bad.status_code == 422
