"""Case scoping: a dispatcher sees and acts on its towns' cases, a handler on its department's.

The cases are written straight into the run's database, received in a window of their own
(2031) so the lists and statistics below count nothing made by other tests.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from security_support import DEPARTMENT, Accounts
from sqlalchemy import Engine, text

from cases.queries import CaseFilter, CaseScope, get_case, list_cases
from cases.stats import case_stats
from schemas.accounts import Role
from schemas.errors import NotFound
from schemas.settings import Settings

START = datetime(2031, 3, 1, tzinfo=UTC)
END = datetime(2031, 4, 1, tzinfo=UTC)
WINDOW = {"from": START.isoformat(), "to": END.isoformat(), "limit": 1000}
OTHER_DEPARTMENT = "区水务局"


@pytest.fixture(scope="module")
def towns(engine: Engine, accounts: Accounts) -> tuple[str, str]:
    """Return (the dispatcher's town A, another town B)."""
    with engine.connect() as conn:
        other = conn.execute(
            text("SELECT code FROM divisions WHERE level = 'town' AND code <> :a ORDER BY code"),
            {"a": accounts.town},
        ).scalar()
    return accounts.town, other or "999999999"


@pytest.fixture(scope="module")
def scoped_cases(
    engine: Engine, towns: tuple[str, str], secure_settings: Settings
) -> dict[str, int]:
    """Make cases: town A / town B, each routed to the handler's department or another one."""
    town_a, town_b = towns
    tag = secrets.token_hex(4)
    made: dict[str, int] = {}
    with engine.begin() as conn:
        for i, (name, town, department) in enumerate(
            (
                ("a_dept", town_a, DEPARTMENT),
                ("a_other", town_a, OTHER_DEPARTMENT),
                ("b_dept", town_b, DEPARTMENT),
                ("b_other", town_b, OTHER_DEPARTMENT),
            )
        ):
            at = START + timedelta(days=1 + i)
            made[name] = conn.execute(
                text(
                    """
                    INSERT INTO cases (source_system, source_id, category, item_code, status,
                        step, reported_at, received_at, town_code, district_code, department,
                        responsible_unit, deadline)
                    VALUES ('test', :sid, '01', 'RT01', 'reported', 1, :at, :at, :town,
                        :district, :department, :department, :deadline)
                    RETURNING id
                    """
                ),
                {
                    "sid": f"scope-{tag}-{name}",
                    "at": at,
                    "town": town,
                    "district": secure_settings.district_code,
                    "department": department,
                    "deadline": at + timedelta(days=3),
                },
            ).scalar_one()
    return made


def _listed(secure_client, accounts: Accounts, role: Role) -> set[int]:
    response = secure_client.get("/cases", params=WINDOW, headers=accounts.headers(role))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return {item["id"] for item in body["items"]}


def test_dispatcher_lists_only_its_towns(secure_client, accounts, scoped_cases, towns):
    listed = _listed(secure_client, accounts, Role.dispatcher)
    assert listed == {scoped_cases["a_dept"], scoped_cases["a_other"]}
    response = secure_client.get(
        "/cases", params={**WINDOW, "town": towns[1]}, headers=accounts.headers(Role.dispatcher)
    )
    assert response.json()["items"] == []  # asking for town B by name does not widen the scope


def test_handler_lists_only_its_department(secure_client, accounts, scoped_cases):
    listed = _listed(secure_client, accounts, Role.department_handler)
    assert listed == {scoped_cases["a_dept"], scoped_cases["b_dept"]}


@pytest.mark.parametrize("role", [Role.supervisor, Role.admin])
def test_supervisor_and_admin_see_every_case(secure_client, accounts, scoped_cases, role):
    assert _listed(secure_client, accounts, role) == set(scoped_cases.values())


def test_out_of_scope_case_is_not_found(secure_client, accounts, scoped_cases):
    dispatcher = accounts.headers(Role.dispatcher)
    handler = accounts.headers(Role.department_handler)
    assert (
        secure_client.get(f"/cases/{scoped_cases['a_other']}", headers=dispatcher).status_code
        == 200
    )
    outside = secure_client.get(f"/cases/{scoped_cases['b_dept']}", headers=dispatcher)
    missing = secure_client.get("/cases/987654321", headers=dispatcher)
    assert outside.status_code == missing.status_code == 404
    # the answer for a case out of scope reads like the one for a case that does not exist
    assert outside.json()["detail"].replace(str(scoped_cases["b_dept"]), "N") == missing.json()[
        "detail"
    ].replace("987654321", "N")
    assert secure_client.get(f"/cases/{scoped_cases['b_dept']}", headers=handler).status_code == 200
    assert (
        secure_client.get(f"/cases/{scoped_cases['a_other']}", headers=handler).status_code == 404
    )


def test_out_of_scope_transition_is_not_found_and_changes_nothing(
    secure_client, accounts, scoped_cases, engine
):
    dispatcher = accounts.headers(Role.dispatcher)
    target = scoped_cases["b_other"]
    response = secure_client.post(
        f"/cases/{target}/transitions", json={"action": "dispatch"}, headers=dispatcher
    )
    assert response.status_code == 404
    for path, body in (
        (f"/cases/{target}/merge", {"into": scoped_cases["a_dept"]}),
        (f"/cases/{scoped_cases['a_dept']}/merge", {"into": target}),
        (f"/cases/{target}/calls", {"department": DEPARTMENT}),
    ):
        assert secure_client.post(path, json=body, headers=dispatcher).status_code == 404, path
    with engine.connect() as conn:
        status, events = conn.execute(
            text(
                "SELECT status, (SELECT count(*) FROM case_events WHERE case_id = :id) "
                "FROM cases WHERE id = :id"
            ),
            {"id": target},
        ).one()
    assert (status, events) == ("reported", 0)
    # the same transition on a case of its own town goes through
    own = secure_client.post(
        f"/cases/{scoped_cases['a_other']}/transitions",
        json={"action": "dispatch"},
        headers=dispatcher,
    )
    assert own.status_code == 200, own.text
    assert own.json()["status"] == "dispatched"


def test_stats_count_only_the_scope(secure_client, accounts, scoped_cases, towns):
    params = {"by": "town", "from": START.isoformat(), "to": END.isoformat()}

    def received(role: Role) -> dict[str | None, int]:
        response = secure_client.get("/stats/cases", params=params, headers=accounts.headers(role))
        assert response.status_code == 200, response.text
        return {row["key"]: row["received"] for row in response.json()["rows"]}

    assert received(Role.dispatcher) == {towns[0]: 2}
    assert received(Role.department_handler) == {towns[0]: 1, towns[1]: 1}
    assert received(Role.supervisor) == {towns[0]: 2, towns[1]: 2}


def test_queries_take_the_scope(engine, scoped_cases, towns):
    now = END
    window = {"received_from": START, "received_to": END}
    with engine.connect() as conn:
        nobody = list_cases(conn, CaseFilter(**window, scope=CaseScope(towns=())), now=now)
        both = list_cases(
            conn, CaseFilter(**window, scope=CaseScope(towns=towns, department=DEPARTMENT)), now=now
        )
        assert nobody.total == 0
        assert {c.id for c in both.items} == {scoped_cases["a_dept"], scoped_cases["b_dept"]}
        with pytest.raises(NotFound):
            get_case(conn, scoped_cases["a_dept"], scope=CaseScope(towns=(towns[1],)))
        stats = case_stats(
            conn, by="department", start=START, end=END, now=now, scope=CaseScope(towns=())
        )
        assert stats == []


def test_handler_answers_only_its_departments_calls(
    secure_client, accounts, scoped_cases, engine, secure_settings
):
    calls = {}
    with engine.begin() as conn:
        for department in (DEPARTMENT, OTHER_DEPARTMENT):
            calls[department] = conn.execute(
                text(
                    """
                    INSERT INTO department_calls (case_id, department, caller, called_at,
                        deadline, district_code)
                    VALUES (:case, :department, 'town', :at, :deadline, :district)
                    RETURNING id
                    """
                ),
                {
                    "case": scoped_cases["b_dept"],
                    "department": department,
                    "at": START,
                    "deadline": START + timedelta(days=1),
                    "district": secure_settings.district_code,
                },
            ).scalar_one()
    handler = accounts.headers(Role.department_handler)
    body = {"response": "on our way"}
    other = secure_client.post(
        f"/calls/{calls[OTHER_DEPARTMENT]}/response", json=body, headers=handler
    )
    assert other.status_code == 404
    own = secure_client.post(f"/calls/{calls[DEPARTMENT]}/response", json=body, headers=handler)
    assert own.status_code == 200, own.text
    with engine.connect() as conn:
        answered = (
            conn.execute(
                text(
                    "SELECT id FROM department_calls"
                    " WHERE id = ANY(:ids) AND responded_at IS NOT NULL"
                ),
                {"ids": list(calls.values())},
            )
            .scalars()
            .all()
        )
    assert answered == [calls[DEPARTMENT]]
