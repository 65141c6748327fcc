"""Statistics, case lists with filters and paging, and versioned routing rules."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from dispatch_support import SH, case_in, submit

from cases import workflow
from cases.queries import CaseFilter, get_case, list_cases
from cases.routing import current_rules, rules_version, update_rules
from cases.rules import load_routing_rules
from cases.stats import case_stats
from schemas.errors import InvalidInput, NotFound

JULY = datetime(2026, 7, 6, 9, tzinfo=SH)  # a Monday
AUGUST = datetime(2026, 8, 1, tzinfo=SH)
XINHUA = (113.205, 23.415)  # cell A1, 新华街道
SHILING = (113.215, 23.405)  # cell C2, 狮岭镇


def _run(db, case_id: int, actions: list[str], at: datetime) -> None:
    with db.begin() as conn:
        for action in actions:
            workflow.apply(conn, case_id, action, who="u", now=at)


@pytest.fixture(scope="module")
def july(db, catalog, calendar):
    """Cases received in July 2026: closed on time, closed late, running overdue, merged."""

    def new(item, where, day, hour=9):
        at = JULY + timedelta(days=day, hours=hour - 9)
        return submit(
            db,
            catalog,
            calendar,
            case_in(item, lon=where[0] + 0.0001 * day, lat=where[1], reported_at=at),
            now=at,
        )[0]

    on_time = new("RT01", XINHUA, 0)  # 3 working days
    late = new("RT01", XINHUA, 1)
    running = new("RT01", SHILING, 2)
    merged = new("RT01", SHILING, 2)
    other = new("SO02", SHILING, 3)  # 4 working hours
    close = ["dispatch", "start", "resolve", "visit", "close"]
    _run(db, on_time.id, close, JULY + timedelta(days=1))  # 24 h later, within 3 working days
    _run(db, late.id, close, JULY + timedelta(days=10))  # 9 days after receipt
    _run(db, other.id, ["dispatch"], JULY + timedelta(days=3))
    with db.begin() as conn:
        workflow.merge(conn, merged.id, running.id, who="d", now=JULY + timedelta(days=2))
    return {"on_time": on_time, "late": late, "running": running, "merged": merged, "other": other}


def test_stats_by_town_category_and_period(db, july):
    now = JULY + timedelta(days=20)
    with db.connect() as conn:
        towns = {r.key: r for r in case_stats(conn, by="town", start=JULY, end=AUGUST, now=now)}
        categories = {
            r.key: r for r in case_stats(conn, by="category", start=JULY, end=AUGUST, now=now)
        }
        weeks = case_stats(conn, by="period", period="week", start=JULY, end=AUGUST, now=now)
        units = {r.key: r for r in case_stats(conn, by="unit", start=JULY, end=AUGUST, now=now)}
    xinhua, shiling = towns["440114001"], towns["440114109"]
    assert (xinhua.label, xinhua.received, xinhua.closed, xinhua.closure_rate) == (
        "新华街道",
        2,
        2,
        1.0,
    )
    assert xinhua.on_time_rate == 0.5 and xinhua.overdue_now == 0
    assert xinhua.median_hours_to_close == pytest.approx((24 + 9 * 24) / 2)
    assert (shiling.received, shiling.closed, shiling.overdue_now) == (2, 0, 2)  # merged left out
    assert shiling.on_time_rate == 0.0 and shiling.median_hours_to_close is None
    assert (categories["RT"].received, categories["SO"].received) == (3, 1)
    assert [(w.key, w.received) for w in weeks] == [("2026-07-06", 4)]
    assert units["狮岭镇综合行政执法办公室"].received == 1
    with pytest.raises(InvalidInput, match="by must be"):
        case_stats(conn, by="colour", start=JULY, end=AUGUST, now=now)


def test_list_filters_and_paging(db, july):
    now = JULY + timedelta(days=20)
    window = {"received_from": JULY, "received_to": AUGUST}
    with db.connect() as conn:
        everything = list_cases(conn, CaseFilter(**window), now=now, limit=2)
        page2 = list_cases(conn, CaseFilter(**window), now=now, limit=2, offset=2)
        closed = list_cases(conn, CaseFilter(status=["closed"], **window), now=now)
        overdue = list_cases(conn, CaseFilter(overdue=True, **window), now=now)
        shiling = list_cases(conn, CaseFilter(town_code="440114109", **window), now=now)
        grid = list_cases(conn, CaseFilter(grid_code="440114001201001", **window), now=now)
        boxed = list_cases(conn, CaseFilter(bbox=(113.21, 23.40, 113.22, 23.41), **window), now=now)
        items = list_cases(conn, CaseFilter(item_code="SO02", category="SO", **window), now=now)
        dept = list_cases(conn, CaseFilter(department="区住房和城乡建设局", **window), now=now)
        merged = list_cases(conn, CaseFilter(status=["merged"], **window), now=now)
        none = list_cases(conn, CaseFilter(status=[], **window), now=now)
        with pytest.raises(InvalidInput, match="statuses are"):
            list_cases(conn, CaseFilter(status=["lost"]), now=now)
        with pytest.raises(InvalidInput, match="limit"):
            list_cases(conn, now=now, limit=0)
        with pytest.raises(InvalidInput, match="bbox"):
            list_cases(conn, CaseFilter(bbox=(1, 2, 0, 3)), now=now)
    ids = lambda page: {c.id for c in page.items}  # noqa: E731
    assert everything.total == 5 and len(everything.items) == 2 and page2.total == 5
    assert not ids(everything) & ids(page2)
    assert everything.items[0].received_at >= everything.items[1].received_at
    assert ids(closed) == {july["on_time"].id, july["late"].id}
    assert ids(overdue) == {july["running"].id, july["other"].id}  # overdue now
    assert ids(shiling) == {july["running"].id, july["merged"].id, july["other"].id}
    assert ids(grid) == {july["on_time"].id, july["late"].id}
    assert ids(boxed) == ids(shiling)
    assert ids(items) == {july["other"].id}
    assert ids(dept) == {july["on_time"].id, july["late"].id, july["running"].id, july["merged"].id}
    assert ids(merged) == {july["merged"].id} and none.total == 0
    with db.connect() as conn:
        with pytest.raises(NotFound):
            get_case(conn, 10**12)


def test_rule_changes_are_versioned_and_cases_keep_theirs(db, catalog, calendar):
    at = datetime(2026, 9, 7, 9, tzinfo=SH)  # a Monday
    before, _ = submit(
        db, catalog, calendar, case_in("CA02", lon=113.225, lat=23.415, reported_at=at), now=at
    )
    packaged = load_routing_rules()
    data = packaged.model_dump(mode="json")
    for item in data["items"]:
        if item["code"] == "CA02":
            item["deadline"] = {"amount": 1, "unit": "working_hours"}
            item["lead_department"] = "区城市管理和综合执法局环卫科"
    with db.begin() as conn:
        version = update_rules(conn, data, "规则管理员", catalog=catalog, now=at)
        assert current_rules(conn).version == version >= 2
    after, _ = submit(
        db, catalog, calendar, case_in("CA02", lon=113.2251, lat=23.4151, reported_at=at), now=at
    )
    try:
        assert (before.rule_version, after.rule_version) == (1, version)
        assert before.deadline == at + timedelta(hours=6)  # 4 working hours over lunch
        assert after.deadline == at + timedelta(hours=1)
        assert after.responsible_unit == "区城市管理和综合执法局环卫科"
        with db.connect() as conn:
            assert rules_version(conn, 1).item("CA02").deadline.amount == 4
            assert get_case(conn, before.id).case.rule_version == 1
            with pytest.raises(NotFound):
                rules_version(conn, 999)
        bad = dict(data, items=data["items"][:-1])
        layer = dict(
            data,
            items=[
                dict(i, asset_layers=["no_such_layer"]) if i["code"] == "CA02" else i
                for i in data["items"]
            ],
        )
        with db.begin() as conn:
            with pytest.raises(InvalidInput, match="expected 36 items"):
                update_rules(conn, bad, "x")
            with pytest.raises(InvalidInput, match="no_such_layer"):
                update_rules(conn, layer, "x", catalog=catalog)
            with pytest.raises(InvalidInput, match="author"):
                update_rules(conn, data, " ")
    finally:
        with db.begin() as conn:  # later tests route with the packaged rules again
            restored = update_rules(conn, packaged, "tests", note="restore the packaged rules")
    assert restored == version + 1
