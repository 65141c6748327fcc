"""Which role may take which action on a case: the action x role matrix against the real app.

Every legal (status, action) pair of the workflow is tried by every role on a case of its own
(in the dispatcher's town, routed to the handler's department, so scoping lets everyone in):
a role the Huadu loop allows moves the case, any other gets 403 (401 anonymous) and the case,
its events and its timeline stay as they were. The expected table is written here by hand, so
a loosened api/policy.yaml fails this test and not only review.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from security_support import DEPARTMENT, Accounts, audit_rows
from sqlalchemy import Engine, text

from api.security.policy import POLICY_FILE, default_policy, load_policy
from cases.models import Status
from cases.workflow import TRANSITIONS, Action
from schemas.accounts import Role
from schemas.settings import Settings

POLICY = default_policy()
AT = datetime(2032, 5, 3, 2, 0, tzinfo=UTC)
S, A, R = Status, Action, Role
TOWN_DESK = frozenset({R.dispatcher, R.supervisor, R.admin})
HANDLER = frozenset({R.department_handler, R.admin})
#: The Huadu loop, by hand: who may take each action from each status it is legal from.
EXPECTED: dict[tuple[Status, Action], frozenset[Role]] = {
    (S.reported, A.dispatch): TOWN_DESK,
    (S.dispatched, A.start): HANDLER,
    (S.handling, A.resolve): HANDLER,
    (S.resolved, A.visit): TOWN_DESK,
    (S.visited, A.close): TOWN_DESK,
    (S.dispatched, A.return_): HANDLER,
    (S.handling, A.return_): HANDLER,
    (S.resolved, A.return_): TOWN_DESK,
    (S.visited, A.return_): TOWN_DESK,
    (S.dispatched, A.reassign): TOWN_DESK,
    (S.handling, A.reassign): TOWN_DESK,
    (S.closed, A.reopen): TOWN_DESK,
    (S.reported, A.merge): TOWN_DESK,
    (S.dispatched, A.merge): TOWN_DESK,
    (S.handling, A.merge): TOWN_DESK,
}


def test_expected_table_covers_the_workflow_and_matches_the_policy():
    assert set(EXPECTED) == set(TRANSITIONS)
    for (status, action), roles in EXPECTED.items():
        assert POLICY.case_action_roles(action, status) == roles, (status, action)


def _make_case(engine: Engine, settings: Settings, town: str, status: Status, tag: str) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    """
                    INSERT INTO cases (source_system, source_id, category, item_code, status,
                        step, reported_at, received_at, town_code, district_code, department,
                        responsible_unit, deadline, resolved_at, closed_at)
                    VALUES ('test', :sid, 'RT', 'RT01', :status, 1, :at, :at, :town,
                        :district, :department, :department, :deadline, :resolved, :closed)
                    RETURNING id
                    """
                ),
                {
                    "sid": f"actions-{tag}-{secrets.token_hex(6)}",
                    "status": status.value,
                    "at": AT,
                    "town": town,
                    "district": settings.district_code,
                    "department": DEPARTMENT,
                    "deadline": AT + timedelta(days=3),
                    "resolved": AT if status in (S.resolved, S.visited, S.closed) else None,
                    "closed": AT if status is S.closed else None,
                },
            ).scalar_one()
        )


def _state(engine: Engine, case_id: int) -> tuple[str, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, (SELECT count(*) FROM case_events WHERE case_id = :id) "
                "FROM cases WHERE id = :id"
            ),
            {"id": case_id},
        ).one()
    return str(row[0]), int(row[1])


def _act(client, accounts: Accounts, engine, settings, status, action, role, tag):
    case_id = _make_case(engine, settings, accounts.town, status, tag)
    headers = accounts.headers(role)
    if action is A.merge:
        into = _make_case(engine, settings, accounts.town, S.handling, tag)
        answer = client.post(f"/cases/{case_id}/merge", json={"into": into}, headers=headers)
    else:
        body = {"action": action.value, "note": "matrix", "unit": DEPARTMENT}
        answer = client.post(f"/cases/{case_id}/transitions", json=body, headers=headers)
    return case_id, answer


@pytest.mark.slow
def test_action_by_role_matrix(secure_client, accounts, engine, secure_settings):
    tag = secrets.token_hex(3)
    failures = []
    checked = 0
    for (status, action), allowed in EXPECTED.items():
        for role in Role:
            case_id, answer = _act(
                secure_client, accounts, engine, secure_settings, status, action, role, tag
            )
            checked += 1
            after = _state(engine, case_id)
            if role in allowed:
                want = (TRANSITIONS[(status, action)].value, 1)
                ok = answer.status_code == 200 and after == want
            else:
                code = 401 if role is R.anonymous else 403
                ok = answer.status_code == code and after == (status.value, 0)
                ok = ok and answer.headers["content-type"].startswith("application/problem+json")
            if not ok:
                failures.append(
                    f"{action.value} from {status.value} as {role.value}: "
                    f"{answer.status_code} {answer.text[:160]} -> {after}"
                )
    assert checked == len(EXPECTED) * len(Role)
    assert not failures, "\n".join(failures)


def test_refusal_names_action_and_role_and_is_audited(
    secure_client, accounts, engine, secure_settings
):
    case_id = _make_case(engine, secure_settings, accounts.town, S.handling, "refusal")
    answer = secure_client.post(
        f"/cases/{case_id}/transitions",
        json={"action": "close"},
        headers=accounts.headers(R.department_handler),
    )
    assert answer.status_code == 403, answer.text
    detail = answer.json()["detail"]
    assert "department_handler" in detail and "close" in detail, detail
    assert _state(engine, case_id) == ("handling", 0)
    rows = audit_rows(
        engine,
        action="POST /cases/{case_id}/transitions",
        target=f"case_id={case_id}",
    )
    assert rows and rows[0]["status"] == 403
    assert rows[0]["who"] == accounts.users[R.department_handler].name
    assert rows[0]["detail"]["case_action"] == "close"
    assert rows[0]["detail"]["case_status"] == "handling"
    assert "may not close" in rows[0]["detail"]["refused"]


def test_allowed_action_is_audited_with_its_name(secure_client, accounts, engine, secure_settings):
    case_id = _make_case(engine, secure_settings, accounts.town, S.dispatched, "allowed")
    answer = secure_client.post(
        f"/cases/{case_id}/transitions",
        json={"action": "start"},
        headers=accounts.headers(R.department_handler),
    )
    assert answer.status_code == 200, answer.text
    rows = audit_rows(engine, target=f"case_id={case_id}")
    assert rows[0]["status"] == 200 and rows[0]["detail"]["case_action"] == "start"


def test_illegal_action_of_an_allowed_role_is_409_not_403(
    secure_client, accounts, engine, secure_settings
):
    case_id = _make_case(engine, secure_settings, accounts.town, S.reported, "illegal")
    answer = secure_client.post(
        f"/cases/{case_id}/transitions",
        json={"action": "return", "note": "not ours"},
        headers=accounts.headers(R.dispatcher),
    )
    assert answer.status_code == 409, answer.text
    assert "legal now: dispatch, merge" in answer.json()["detail"]


def test_handler_of_another_department_finds_no_case(
    secure_client, accounts, engine, secure_settings
):
    case_id = _make_case(engine, secure_settings, accounts.town, S.dispatched, "scope")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE cases SET department = :d, responsible_unit = :d WHERE id = :i"),
            {"i": case_id, "d": "区水务局"},
        )
    answer = secure_client.post(
        f"/cases/{case_id}/transitions",
        json={"action": "start"},
        headers=accounts.headers(R.department_handler),
    )
    assert answer.status_code == 404, answer.text
    assert _state(engine, case_id) == ("dispatched", 0)


def test_unknown_action_is_400_for_every_role(secure_client, accounts, engine, secure_settings):
    case_id = _make_case(engine, secure_settings, accounts.town, S.reported, "unknown")
    for role in (R.dispatcher, R.department_handler):
        answer = secure_client.post(
            f"/cases/{case_id}/transitions",
            json={"action": "explode"},
            headers=accounts.headers(role),
        )
        assert answer.status_code == 400, answer.text
        assert "unknown action" in answer.json()["detail"]


POLICY_TEXT = POLICY_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  reopen: {allow: [case_workers]}\n", "", "missing \\['reopen'\\]"),
        ("      visited: [case_workers]\n", "      closed: [case_workers]\n", "not legal from"),
        ("  start: {allow: [case_handlers]}", "  start: {allow: [planner]}", "case_actions give"),
        ("  merge: {allow: [case_workers]}", "  merge: {allow: [admin]}", "case_actions give"),
        ("  close: {allow: [case_workers]}", "  close: {allow: [nobody]}", "neither a role"),
    ],
)
def test_case_action_table_mistakes_are_refused(tmp_path, old, new, message):
    assert old in POLICY_TEXT
    bad = tmp_path / "policy.yaml"
    bad.write_text(POLICY_TEXT.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(Exception, match=message):
        load_policy(bad)


def test_workflow_asks_the_permit_with_the_locked_status(engine, accounts, secure_settings):
    from cases import workflow
    from schemas.errors import Forbidden

    case_id = _make_case(engine, secure_settings, accounts.town, S.dispatched, "permit")
    asked: list[tuple[Status, Action]] = []

    def refuse(status: Status, action: Action) -> str | None:
        asked.append((status, action))
        return f"no {action.value} here"

    with pytest.raises(Forbidden, match="no start here"), engine.begin() as conn:
        workflow.apply(conn, case_id, "start", who="t", now=AT, permit=refuse)
    assert asked == [(S.dispatched, A.start)]
    assert _state(engine, case_id) == ("dispatched", 0)
    with engine.begin() as conn:
        moved = workflow.apply(conn, case_id, "start", who="t", now=AT, permit=lambda s, a: None)
    assert moved.status is S.handling
    other = _make_case(engine, secure_settings, accounts.town, S.handling, "permit")
    with pytest.raises(Forbidden), engine.begin() as conn:
        workflow.merge(conn, case_id, other, who="t", now=AT, permit=refuse)
    assert asked[-1] == (S.handling, A.merge)
    assert _state(engine, case_id) == ("handling", 1)
