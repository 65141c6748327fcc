"""Hostile input: every request below gets a clear 4xx, never a 5xx, and writes nothing.

Malformed JSON, wrong content types, huge numbers, NaN/Infinity coordinates, deeply nested
GeoJSON, oversized bodies, and SQL-injection strings in the parameters that reach SQL (layer
codes, property names, sortby, filter, bbox, case filters). Already covered elsewhere and not
repeated: injection into /collections/{id}/items' query (tests/api/test_ogc_features.py), NaN
in intake payloads and snap batches (tests/dispatch), Open311 lat/long (test_dispatch_open311),
SQL in asset lookups and the geocoder (tests/cases/test_assets.py), bad files
(tests/ingest/test_bad_input.py).

Auth is off (the ``client`` of tests/conftest.py is unrestricted), so every request reaches
its router and its SQL; the checks are that nothing changed: the counts of cases, events,
batches and accounts, and every layer table still there.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, text

from api.security.bodylimit import MAX_BODY_BYTES

EVIL = (
    "x'; DROP TABLE cases; --",
    'school"; DROP TABLE layers.school; --',
    "1) OR 1=1 --",
    "' UNION SELECT password_hash FROM users --",
    "%' OR '%'='",
    "\\x00'",
)


def _snapshot(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("cases", "case_events", "load_batches", "users", "api_keys")
        }
        counts["layer_tables"] = int(
            conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'layers'")
            ).scalar_one()
        )
    return counts


@pytest.fixture()
def unchanged(engine: Engine):
    """Assert after the test that nothing was written."""
    before = _snapshot(engine)
    yield
    assert _snapshot(engine) == before


def _clear_4xx(answer) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    kind = answer.headers.get("content-type", "")
    assert "json" in kind or "xml" in kind, kind
    body = answer.text
    for leak in ("Traceback", "psycopg", "sqlalchemy", "syntax error at or near"):
        assert leak not in body, body


# --- malformed JSON and wrong content types --------------------------------------------------

JSON_ROUTES = [
    ("POST", "/within"),
    ("POST", "/snap"),
    ("POST", "/cases"),
    ("POST", "/cases/987654321/transitions"),
    ("POST", "/cases/987654321/merge"),
    ("POST", "/cases/987654321/calls"),
    ("POST", "/rasters/dem/stats"),
    ("PUT", "/routing/rules"),
    ("POST", "/users"),
    ("POST", "/keys"),
]
MALFORMED = [
    b"{",
    b'{"layers": ["school"],}',
    b"\xff\xfe\x00{",
    b"[1, 2",
    b'{"a": "\\ud800"}',
    b"null",
    b"12345678901234567890" * 300,  # an integer of 6,000 digits
    b"",
]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_malformed_json_is_a_clear_4xx(client, unchanged, method, path):
    for body in MALFORMED:
        answer = client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        _clear_4xx(answer)


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_wrong_content_type_is_a_clear_4xx(client, unchanged, method, path):
    for kind, body in (
        ("text/plain", b'{"layers": ["school"]}'),
        ("application/xml", b"<layers><layer>school</layer></layers>"),
        ("application/x-www-form-urlencoded", b"layers=school"),
        ("multipart/form-data; boundary=xyz", b"--xyz--"),
    ):
        answer = client.request(method, path, content=body, headers={"Content-Type": kind})
        _clear_4xx(answer)


# --- huge numbers, NaN and Infinity ----------------------------------------------------------

NOT_FINITE = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")


@pytest.mark.parametrize("bad", NOT_FINITE)
def test_not_finite_coordinates_are_refused(client, unchanged, bad):
    bodies = [
        ("/within", f'{{"layers": ["school"], "point": [{bad}, 23.4], "buffer_m": 100}}'),
        ("/within", f'{{"layers": ["school"], "point": [113.2, 23.4], "buffer_m": {bad}}}'),
        (
            "/within",
            f'{{"layers": ["school"], "geometry": {{"type": "Point", "coordinates": [{bad}, 1]}}}}',
        ),
        (
            "/within",
            '{"layers": ["school"], "geometry": {"type": "Polygon", "coordinates": '
            f"[[[113.2, 23.4], [113.3, 23.4], [{bad}, 23.5], [113.2, 23.4]]]}}}}",
        ),
        ("/snap", f'{{"points": [[113.2, {bad}]]}}'),
        ("/snap", f'{{"points": [[113.2, 23.4]], "tolerance_m": {bad}}}'),
        ("/rasters/dem/stats", f'{{"type": "Point", "coordinates": [{bad}, 23.4]}}'),
        (
            "/cases",
            '{"source_system": "platform", "source_id": "hostile", "item_code": "CM01", '
            '"reported_at": "2026-08-03T09:00:00+08:00", '
            f'"location": {{"lon": {bad}, "lat": 23.4, "crs": "EPSG:4490"}}}}',
        ),
    ]
    for path, body in bodies:
        answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
        _clear_4xx(answer)
    for path, params in (
        ("/snap", {"lon": bad, "lat": "23.4"}),
        ("/nearby", {"lon": bad, "lat": "23.4", "layers": "school"}),
        ("/nearby", {"lon": "113.2", "lat": "23.4", "layers": "school", "radius_m": bad}),
        ("/coverage", {"layer": "school", "lon": bad, "lat": "23.4"}),
        ("/rasters/dem/point", {"lon": bad, "lat": "23.4"}),
        ("/collections/school/items", {"bbox": f"{bad},23,114,24"}),
        ("/cases", {"bbox": f"{bad},23,114,24"}),
        ("/cases/points", {"bbox": f"113,23,114,{bad}"}),
    ):
        _clear_4xx(client.get(path, params=params))


@pytest.mark.parametrize(
    "body",
    [
        {"layers": ["school"], "point": [113.2, 23.4], "buffer_m": 1e308},
        {"layers": ["school"], "point": [1e308, -1e308], "buffer_m": 10},
        {"layers": ["school"], "point": [113.2, 23.4], "buffer_m": -5},
        {"layers": ["school"], "point": [113.2, 23.4], "buffer_m": 10, "limit": 10**30},
        {"layers": ["school"], "geometry": {"type": "Point", "coordinates": [1e308, 1e308]}},
        {"layers": ["school"], "geometry": {"type": "Point", "coordinates": [23.4, 113.2]}},
    ],
)
def test_huge_numbers_in_within_are_refused(client, unchanged, body):
    _clear_4xx(client.post("/within", json=body))


@pytest.mark.parametrize(
    "body",
    [
        {"layers": ["school"] * 5000, "point": [113.2, 23.4], "buffer_m": 10},  # deduplicated
    ],
)
def test_harmless_extremes_in_within_find_nothing(client, unchanged, body):
    answer = client.post("/within", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["layers"]["school"]["features"] == []


def test_huge_numbers_in_queries_are_refused(client, unchanged):
    big = "9" * 5000
    for path, params in (
        ("/collections/school/items", {"limit": big}),
        ("/collections/school/items", {"offset": big}),
        ("/nearby", {"lon": "113.2", "lat": "23.4", "layers": "school", "k": big}),
        ("/cases", {"limit": big}),
        ("/cases", {"offset": "-1"}),
        (f"/cases/{big}", {}),
        (f"/loads/{big}", {}),
        ("/tiles/WebMercatorQuad/99/1/1", {"collections": "school"}),
        (f"/tiles/WebMercatorQuad/10/{big}/1", {"collections": "school"}),
    ):
        _clear_4xx(client.get(path, params=params))


# --- deeply nested GeoJSON -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [10_000, 900, 60])
def test_deeply_nested_geojson_is_refused(client, unchanged, depth):
    nested = "[" * depth + "113.2, 23.4" + "]" * depth
    for path, body in (
        ("/within", f'{{"layers": ["school"], "geometry": {{"type": "Polygon", '
         f'"coordinates": {nested}}}}}'),
        ("/within", f'{{"layers": ["school"], "point": {nested}, "buffer_m": 10}}'),
        ("/snap", f'{{"points": {nested}}}'),
        ("/rasters/dem/stats", f'{{"type": "MultiPolygon", "coordinates": {nested}}}'),
    ):  # fmt: skip
        answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
        _clear_4xx(answer)


def test_deeply_nested_objects_are_refused(client, unchanged):
    nested = '{"a": ' * 5000 + "1" + "}" * 5000
    answer = client.post(
        "/within",
        content=f'{{"layers": ["school"], "geometry": {nested}}}',
        headers={"Content-Type": "application/json"},
    )
    _clear_4xx(answer)


# --- oversized bodies ------------------------------------------------------------------------


def test_oversized_body_is_413_before_it_is_read(client, unchanged):
    body = b'{"layers": ["school"], "pad": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    answer = client.post("/within", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "larger than" in answer.json()["detail"]


def test_oversized_chunked_body_is_413_while_it_arrives(client, unchanged):
    def chunks():
        yield b'{"points": ['
        for _ in range(MAX_BODY_BYTES // 2**16 + 2):
            yield b"[113.2, 23.4]," * (2**16 // 13)
        yield b"[113.2, 23.4]]}"

    answer = client.post("/snap", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert "larger than" in answer.json()["detail"]


def test_oversized_open311_body_is_a_georeport_413(client, unchanged):
    body = b"service_code=CA01&description=" + b"x" * (MAX_BODY_BYTES + 10)
    answer = client.post(
        "/open311/v2/requests.xml",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    assert b"<errors><error><code>413</code>" in answer.content


def test_bad_content_length_is_400(client, unchanged):
    answer = client.post(
        "/within",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "-5"},
    )
    assert answer.status_code == 400, answer.text
    assert "Content-Length" in answer.json()["detail"]


def test_body_under_the_limit_still_goes_through(client, unchanged):
    points = [[113.2 + i * 1e-6, 23.4] for i in range(10_000)]
    answer = client.post("/snap", json={"points": points})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 10_000


# --- SQL-injection strings in every parameter that reaches SQL -------------------------------


def _injection_requests(evil: str) -> list[tuple[str, str, dict]]:
    code = quote(evil, safe="")
    return [
        ("GET", f"/collections/{code}", {}),
        ("GET", f"/collections/{code}/queryables", {}),
        ("GET", f"/collections/{code}/items/1", {}),
        ("GET", f"/collections/school/items/{code}", {}),
        ("GET", f"/collections/{code}/tiles/WebMercatorQuad/10/440/833", {}),
        ("GET", "/tiles/WebMercatorQuad/10/440/833", {"params": {"collections": evil}}),
        ("GET", "/nearby", {"params": {"lon": "113.2", "lat": "23.4", "layers": evil}}),
        ("GET", "/nearby", {"params": {"lon": evil, "lat": "23.4", "layers": "school"}}),
        ("GET", "/coverage", {"params": {"layer": evil}}),
        ("GET", "/coverage", {"params": {"layer": "school", "by": evil}}),
        ("GET", f"/rasters/{code}/point", {"params": {"lon": "113.2", "lat": "23.4"}}),
        ("GET", "/snap", {"params": {"lon": "113.2", "lat": "23.4", "crs": evil}}),
        ("GET", f"/layers/{code}/versions", {}),
        ("GET", f"/layers/{code}/loads", {}),
        ("GET", f"/catalog/layers/{code}", {}),
        ("POST", "/within", {"json": {"layers": [evil], "point": [113.2, 23.4], "buffer_m": 9}}),
        ("POST", "/within", {"json": {"layers": ["school"], "point": [113.2, 23.4],
                                      "buffer_m": 9}, "params": {"crs": evil}}),
        ("POST", "/snap", {"json": {"points": [[113.2, 23.4]], "crs": evil}}),
        ("POST", f"/layers/{code}/rollback", {"params": {"to": "1"}}),
        ("POST", "/cases/987654321/transitions", {"json": {"action": evil[:16]}}),
        ("POST", "/cases/987654321/transitions", {"json": {"action": "dispatch", "unit": evil}}),
        ("POST", "/cases/987654321/calls", {"json": {"department": evil}}),
        ("GET", "/cases", {"params": {"status": evil}}),
        ("GET", "/cases", {"params": {"town": evil[:9]}}),
        ("GET", "/cases", {"params": {"village": evil[:12]}}),
        ("GET", "/cases", {"params": {"grid": evil[:15]}}),
        ("GET", "/cases", {"params": {"department": evil}}),
        ("GET", "/cases", {"params": {"item": evil[:4]}}),
        ("GET", "/cases", {"params": {"category": evil[:2]}}),
        ("GET", "/cases", {"params": {"source": evil}}),
        ("GET", "/cases", {"params": {"bbox": evil}}),
        ("GET", "/cases", {"params": {"crs": evil}}),
        ("GET", "/cases", {"params": {"from": evil}}),
        ("GET", "/cases/points", {"params": {"department": evil, "status": evil}}),
        ("GET", "/stats/cases", {"params": {"by": evil}}),
        ("GET", "/stats/cases", {"params": {"town": evil[:9]}}),
        ("GET", "/audit", {"params": {"who": evil}}),
        ("GET", "/audit", {"params": {"action": evil}}),
        ("GET", f"/open311/v2/services/{code}.json", {}),
        ("GET", f"/open311/v2/requests/{code}.json", {}),
        ("GET", "/open311/v2/requests.json", {"params": {"service_code": evil}}),
        ("GET", "/open311/v2/requests.json", {"params": {"status": evil}}),
        ("GET", "/open311/v2/requests.json", {"params": {"service_request_id": evil}}),
        ("GET", f"/intake/{code}", {}),
        ("POST", f"/intake/{code}", {"json": {}}),
        ("POST", f"/users/{code}/disable", {}),
        ("POST", "/auth/token", {"data": {"username": evil, "password": evil}}),
    ]  # fmt: skip


@pytest.mark.parametrize("evil", EVIL)
def test_sql_injection_strings_are_refused_or_harmless(client, unchanged, evil):
    for method, path, kwargs in _injection_requests(evil):
        answer = client.request(method, path, **kwargs)
        assert answer.status_code < 500, (method, path, kwargs, answer.text[:300])
        if answer.status_code >= 400:
            _clear_4xx(answer)


def test_injection_in_cases_filters_finds_nothing(client, unchanged):
    for name in ("department", "source", "status"):
        answer = client.get("/cases", params={name: "x' OR '1'='1"})
        assert answer.status_code in (200, 400, 422), answer.text
        if answer.status_code == 200:
            assert answer.json()["total"] == 0, (name, answer.json()["total"])


def test_json_keys_are_not_sql(client, unchanged):
    body = json.dumps({"layers": ["school"], "point": [113.2, 23.4], "buffer_m": 9,
                       "x'; DROP TABLE cases; --": 1})  # fmt: skip
    answer = client.post("/within", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, answer.text


@pytest.mark.parametrize(
    "url",
    [
        "/audit?who=%00",
        "/cases?department=%00",
        "/cases/points?source=a%00",
        "/collections/school/items/%00",
        "/nearby?lon=113.2&lat=23.4&layers=school%00",
        "/open311/v2/requests.json?service_code=%00",
    ],
)
def test_nul_in_the_url_is_400(client, unchanged, url):
    answer = client.get(url)
    assert answer.status_code == 400, answer.text
    _clear_4xx(answer)
    assert "NUL" in answer.text


def test_nul_in_a_sign_in_is_a_plain_401(client, unchanged):
    answer = client.post("/auth/token", data={"username": "a\x00b", "password": "x\x00" * 6})
    assert answer.status_code == 401, answer.text
