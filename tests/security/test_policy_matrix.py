"""The policy against the real app: every route has a rule; every rule holds for every role.

The matrix is generated from api/policy.yaml over the routes the app has now: for each rule
(and each sensitivity of layer a layer rule can meet) every role gets "not 401/403" when the
rule allows it, 401 when anonymous and not allowed, 403 otherwise. The action x role matrix of
case transitions (the policy's ``case_actions``) is in test_case_actions.py.
"""

from __future__ import annotations

import warnings
from urllib.parse import urlencode

import pytest
from fastapi.routing import iter_route_contexts
from security_support import SYSTEM

from api.security.policy import POLICY_FILE, Rule, default_policy, load_policy
from schemas.accounts import Role
from schemas.catalog import Sensitivity

POLICY = default_policy()
POLICY_TEXT = POLICY_FILE.read_text(encoding="utf-8")
LAYERS = {
    Sensitivity.public: "school",
    Sensitivity.internal: "manhole_cover",
    Sensitivity.restricted: "population",
}
RASTERS = {Sensitivity.public: "dem"}
SAMPLES = {
    "code": "school",
    "collectionId": "school",
    "featureId": "1",
    "tileMatrixSetId": "WebMercatorQuad",
    "tileMatrix": "10",
    "tileRow": "440",
    "tileCol": "833",
    "load_id": "999999",
    "case_id": "999999",
    "call_id": "999999",
    "system": SYSTEM,
    "name": "nobody_at_all",
    "key_id": "999999",
    "fmt": "json",
    "service_code": "0101",
    "service_request_id": "999999",
    "rest": "nothing",
    "path": "nothing.js",
    "grid_code": "440114001001001",
    "z": "10",
    "y": "440",
    "x": "833",
}


def app_routes(app) -> dict[tuple[str, str], object]:
    """Return every (template, method) of the app with its route (HEAD only where alone)."""
    found = {}
    for route in iter_route_contexts(app.routes):
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")
        for method in methods:
            found[(route.path, method)] = route
    return found


@pytest.fixture(scope="module")
def routes(secure_client):
    return app_routes(secure_client.app)


def test_every_route_of_the_app_has_a_rule(routes):
    missing = sorted(f"{m} {p}" for p, m in routes if POLICY.rule(p, m) is None)
    assert not missing, f"routes without a rule in api/policy.yaml (refused to all): {missing}"


def test_policy_and_app_overlap_and_unbuilt_routes_are_named(routes):
    both = POLICY.templates() & set(routes)
    paths = {p for p, _ in both}
    assert ("/layers/{code}/loads", "POST") in both and ("/health", "GET") in both
    assert {"/catalog/groups", "/catalog/layers", "/catalog/layers/{code}"} <= paths
    unbuilt = sorted(f"{m} {p}" for p, m in POLICY.templates() - set(routes))
    if unbuilt:
        warnings.warn(f"policy rules for routes the app does not have yet: {unbuilt}", stacklevel=1)


def test_layer_parameters_of_rules_exist_on_their_routes(routes):
    """A rule reading ?layers= is useless if the route renamed it: check the names."""
    for (path, method), route in routes.items():
        rule = POLICY.rule(path, method)
        if rule is None or rule.layer is None or rule.layer.query is None:
            continue
        names = {p.alias for p in route.dependant.query_params}
        assert rule.layer.query in names, (path, method, names)


def _variants(path: str, rule: Rule) -> list[Sensitivity | None]:
    if rule.layer is None:
        return [None]
    table = RASTERS if path.startswith("/rasters/") else LAYERS
    return list(table)


def _request(path: str, method: str, rule: Rule, level: Sensitivity | None):
    params = dict(SAMPLES)
    query: dict[str, str] = {}
    if level is not None:
        code = (RASTERS if path.startswith("/rasters/") else LAYERS)[level]
        if rule.layer.path:
            params[rule.layer.path] = code
        else:
            query[rule.layer.query] = code
    url = path.replace(":path}", "}").format(**params)
    if query:
        url += "?" + urlencode(query)
    kwargs = {}
    if method in ("POST", "PUT", "PATCH"):
        if path.startswith("/open311/"):
            kwargs["data"] = {"api_key": "matrix"}
        elif path == "/auth/token":
            kwargs["data"] = {}
        else:
            kwargs["json"] = {}
    return url, kwargs


def _allowed(rule: Rule, level: Sensitivity | None) -> frozenset[Role]:
    roles = POLICY.expand(rule.allow) if rule.allow else frozenset(Role)
    if level is not None:
        roles &= POLICY.expand(POLICY.sensitivity[level])
    return roles


def test_every_rule_holds_for_every_role(secure_client, accounts, routes):
    checked = 0
    failures = []
    for path, method in sorted(POLICY.templates() & set(routes)):
        rule = POLICY.rule(path, method)
        for level in _variants(path, rule):
            url, kwargs = _request(path, method, rule, level)
            allowed = _allowed(rule, level)
            for role in Role:
                answer = secure_client.request(
                    method, url, headers=accounts.headers(role), **kwargs
                )
                checked += 1
                if role in allowed:
                    ok = answer.status_code not in (401, 403)
                    want = "not 401/403"
                else:
                    want = 401 if role is Role.anonymous else 403
                    ok = answer.status_code == want
                if not ok:
                    failures.append(
                        f"{method} {url} as {role.value}: {answer.status_code}, want {want}"
                    )
    assert checked > 500
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("method", "url", "role", "expected"),
    [
        ("GET", "/collections/school/items", Role.anonymous, "allowed"),
        ("GET", "/collections/manhole_cover/items", Role.anonymous, 401),
        ("GET", "/collections/manhole_cover/items", Role.planner, "allowed"),
        ("GET", "/collections/population/items", Role.planner, 403),
        ("GET", "/collections/population/items", Role.dispatcher, 403),
        ("GET", "/collections/population/items", Role.analyst, "allowed"),
        (
            "GET",
            "/tiles/WebMercatorQuad/10/440/833?collections=school,population",
            Role.planner,
            403,
        ),
        ("GET", "/nearby?layers=school&layers=manhole_cover", Role.anonymous, 401),
        ("POST", "/layers/school/loads", Role.planner, 403),
        ("POST", "/layers/school/loads", Role.anonymous, 401),
        ("POST", "/layers/school/loads", Role.analyst, "allowed"),
        ("GET", "/cases", Role.anonymous, 401),
        ("GET", "/cases", Role.planner, 403),
        ("GET", "/cases", Role.department_handler, "allowed"),
        ("POST", "/cases", Role.system, "allowed"),
        ("POST", "/cases", Role.department_handler, 403),
        ("PUT", "/routing/rules", Role.supervisor, 403),
        ("PUT", "/routing/rules", Role.admin, "allowed"),
        ("GET", "/users", Role.supervisor, 403),
        ("POST", "/keys", Role.analyst, 403),
        ("GET", "/stats/cases", Role.planner, 403),
        ("GET", "/open311/v2/services.json", Role.anonymous, "allowed"),
    ],
)
def test_chosen_cells_of_the_matrix(secure_client, accounts, method, url, role, expected):
    """Cells written by hand, so a loosened policy file fails here and not only in review."""
    kwargs = {"json": {}} if method in ("POST", "PUT") else {}
    answer = secure_client.request(method, url, headers=accounts.headers(role), **kwargs)
    if expected == "allowed":
        assert answer.status_code not in (401, 403), answer.text
    else:
        assert answer.status_code == expected, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_route_without_a_rule_is_refused_to_everyone(secure_settings, engine, accounts):
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(secure_settings)

    @app.get("/added-later")
    def added_later() -> dict[str, str]:
        return {"reached": "yes"}

    with TestClient(app) as client:
        for role in (Role.admin, Role.anonymous):
            answer = client.get("/added-later", headers=accounts.headers(role))
            assert answer.status_code == 403, answer.text
            assert "no policy rule for GET /added-later" in answer.json()["detail"]


def test_policy_file_mistakes_are_refused(tmp_path):
    bad = tmp_path / "policy.yaml"
    text = POLICY_TEXT.replace("allow: [loaders]", "allow: [loaderz]", 1)
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(Exception, match="'loaderz' is neither a role nor a group"):
        load_policy(bad)
    doubled = POLICY_TEXT + "\n  - paths: [/health]\n    methods: [GET]\n    allow: [admin]\n"
    bad.write_text(doubled, encoding="utf-8")
    with pytest.raises(Exception, match="GET /health has two rules"):
        load_policy(bad)
