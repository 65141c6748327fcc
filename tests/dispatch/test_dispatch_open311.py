"""Open311 GeoReport v2: schema-valid JSON, spec XML, spec errors, a real client (georeport)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import georeport
import httpx
import pytest
from dispatch_support import SH, new_id
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cases.rules import load_routing_rules
from schemas.geodesy import wgs84_to_bd09, wgs84_to_gcj02

# shared/ sits beside the checkout (CI lays a copy there); a developer's is at /work/shared.
_CANDIDATES = tuple(
    base / "data" / "open311-georeport-v2-schemas"
    for base in (Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared"))
)
SCHEMAS = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
T = datetime(2026, 7, 6, 10, tzinfo=SH)  # a Monday
BASE = "/open311/v2"


FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339: a full date and time with an offset (jsonschema skips it without extras)."""
    if not isinstance(value, str):
        return True
    moment = datetime.fromisoformat(value)
    return "T" in value and moment.utcoffset() is not None


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.path)) and " " not in value


def _validator(name: str) -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.glob("*.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents, DRAFT202012)))
    registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=registry, format_checker=FORMATS)


def valid(name: str, document: object) -> None:
    assert document, "an empty document proves nothing"
    errors = sorted(_validator(name).iter_errors(document), key=str)
    assert not errors, [e.message for e in errors[:5]]


def xml_root(response) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml")
    return ET.fromstring(response.content)


def form(**extra: str) -> dict[str, str]:
    lon, lat = 113.2151, 23.4052  # cell C1 (狮岭镇) in WGS84
    glon, glat = (f"{float(v):.7f}" for v in wgs84_to_gcj02(lon, lat))
    data = {
        "api_key": "mini-program-key",
        "jurisdiction_id": "440114",
        "service_code": "CA01",
        "lat": glat,
        "long": glon,
        "attribute[datum]": "gcj02",
        "attribute[reported_at]": T.isoformat(),
        "description": "垃圾桶满溢，周边散落垃圾",
        "device_id": "wx-0123456789abcdef",
        "account_id": "oAbCdEfGhIjKlMnOpQrStUvWxYz1",
        "email": "citizen@example.cn",
        "media_url": "https://mp.sibiao.example/media/abc.jpg",
    }
    data.update(extra)
    return data


def errors_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    if response.headers["content-type"].startswith("text/xml"):
        root = xml_root(response)
        assert root.tag == "errors"
        (error,) = root.findall("error")
        assert error.findtext("code") == str(status)
        return error.findtext("description") or ""
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    assert set(body[0]) == {"code", "description"} and body[0]["code"] == status
    return body[0]["description"]


def test_discovery_in_json_and_xml(client):
    body = client.get(f"{BASE}/discovery.json").json()
    (endpoint,) = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and "text/xml" in endpoint["formats"]
    assert datetime.fromisoformat(body["changeset"]).utcoffset() == timedelta(hours=8)
    root = xml_root(client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]


def test_services_are_the_36_items_grouped_by_category(client):
    rules = load_routing_rules()
    body = client.get(f"{BASE}/services.json").json()
    valid("services.json", body)
    assert [s["service_code"] for s in body] == [i.code for i in rules.items]
    by_code = {s["service_code"]: s for s in body}
    assert by_code["PU01"]["service_name"] == "路灯不亮与损坏"
    assert by_code["PU01"]["group"] == rules.category("PU").zh
    assert all(s["metadata"] is True and s["type"] == "realtime" for s in body)
    root = xml_root(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services" and len(root.findall("service")) == 36
    assert root.find("service/metadata").text == "true"
    assert root.find("service/group").text == rules.category(rules.items[0].category).zh


def test_service_definition_lists_datum_and_report_time(client):
    body = client.get(f"{BASE}/services/PU02.json").json()
    valid("service-definition.json", body)
    codes = {a["code"]: a for a in body["attributes"]}
    assert {v["key"] for v in codes["datum"]["values"]} == {"wgs84", "gcj02", "bd09"}
    assert codes["reported_at"]["datatype"] == "datetime"
    root = xml_root(client.get(f"{BASE}/services/PU02.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "PU02"
    assert len(root.findall("attributes/attribute")) == len(body["attributes"])
    assert len(root.findall("attributes/attribute/values/value")) == 3
    assert "ZZ99" in errors_of(client.get(f"{BASE}/services/ZZ99.json"), 404)
    errors_of(client.get(f"{BASE}/services/ZZ99.xml"), 404)
    errors_of(client.get(f"{BASE}/services.csv"), 404)
    errors_of(client.get(f"{BASE}/services.json?jurisdiction_id=110000"), 404)
    errors_of(client.get(f"{BASE}/nothing/here.json"), 404)


def test_post_request_creates_a_located_case_and_a_retry_is_idempotent(client, clock, dispatch):
    clock.at = T + timedelta(minutes=2)
    data = form()
    response = client.post(f"{BASE}/requests.json", data=data)
    assert response.status_code == 201, response.text
    (answer,) = response.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert answer["account_id"] == data["account_id"]
    assert "狮岭居委会" in answer["service_notice"]
    case = client.get(f"/cases/{answer['service_request_id']}").json()
    assert case["case"]["grid_code"] == "440114109001002"  # GCJ-02 removed: the WGS84 cell
    assert case["case"]["source_system"] == "open311"
    assert case["payload"]["api_key_sha256"] and "mini-program-key" not in json.dumps(case)
    retry = client.post(f"{BASE}/requests.json", data=data)
    assert retry.status_code == 200
    assert retry.json()[0]["service_request_id"] == answer["service_request_id"]
    keyed = form(**{"attribute[source_id]": new_id("wx"), "description": "first wording"})
    first = client.post(f"{BASE}/requests.xml", data=keyed)
    assert first.status_code == 201
    root = xml_root(first)
    assert root.tag == "service_requests" and root.find("request/service_request_id") is not None
    second = client.post(f"{BASE}/requests.json", data={**keyed, "description": "reworded"})
    assert second.status_code == 200
    assert second.json()[0]["service_request_id"] == root.findtext("request/service_request_id")
    count = dispatch.scalar(
        "SELECT count(*) FROM cases WHERE source_system = 'open311' AND source_id = :s",
        s=keyed["attribute[source_id]"],
    )
    assert count == 1


def test_wgs84_is_the_default_datum_and_bd09_is_understood(client, clock):
    clock.at = T + timedelta(minutes=3)
    lon, lat = 113.2151, 23.4052
    plain = form(lat=str(lat), long=str(lon), description="wgs84 point")
    del plain["attribute[datum]"]
    blon, blat = (float(v) for v in wgs84_to_bd09(lon, lat))
    baidu = form(lat=str(blat), long=str(blon), description="bd09 point")
    baidu["attribute[datum]"] = "bd09"
    for data in (plain, baidu):
        response = client.post(f"{BASE}/requests.json", data=data)
        assert response.status_code == 201, response.text
        case = client.get(f"/cases/{response.json()[0]['service_request_id']}").json()["case"]
        assert case["grid_code"] == "440114109001002"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"api_key": ""}, 403, "api_key"),
        ({"api_key": None}, 403, "api_key"),
        ({"service_code": None}, 400, "service_code"),
        ({"service_code": "ZZ99"}, 404, "ZZ99"),
        ({"jurisdiction_id": "110000"}, 404, "jurisdiction"),
        ({"lat": "NaN"}, 400, "lat"),
        ({"long": "east"}, 400, "long"),
        ({"lat": None}, 400, "lat and long"),
        ({"lat": None, "long": None}, 400, "location"),
        ({"lat": "39.909", "long": "116.397", "attribute[datum]": "wgs84"}, 400, "district"),
        ({"attribute[datum]": "mars"}, 400, "datum"),
        ({"attribute[reported_at]": "yesterday"}, 400, "reported_at"),
        ({"attribute[reported_at]": "2026-07-06T09:00:00"}, 400, "time zone"),
        ({"description": "长" * 4001}, 400, "description"),
        ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
        ({"description": "a\x00b"}, 400, "NUL"),
    ],
)
def test_post_errors_follow_the_spec(client, clock, change, status, words):
    clock.at = T + timedelta(minutes=4)
    data = {k: v for k, v in {**form(), **change}.items() if v is not None}
    for fmt in ("json", "xml"):
        description = errors_of(client.post(f"{BASE}/requests.{fmt}", data=data), status)
        assert words in description, description


def test_an_address_id_alone_is_kept_for_a_manual_location(client, clock):
    clock.at = T + timedelta(minutes=5)
    data = {
        k: v for k, v in form(address_id="4401140010000100001").items() if k not in ("lat", "long")
    }
    response = client.post(f"{BASE}/requests.json", data=data)
    assert response.status_code == 201, response.text
    notice = response.json()[0]["service_notice"]
    assert "位置待人工核定" in notice and "承办单位" not in notice  # no unit before a place
    (request,) = client.get(
        f"{BASE}/requests/{response.json()[0]['service_request_id']}.json"
    ).json()
    assert request["address_id"] == "4401140010000100001" and request["lat"] is None
    valid("requests.json", [request])


def test_post_must_be_a_form(client):
    response = client.post(f"{BASE}/requests.json", json=form())
    assert "form" in errors_of(response, 400)


def test_get_requests_are_schema_valid_and_filtered(client, clock):
    clock.at = T + timedelta(minutes=10)
    created = []
    for item, description in (("SO01", "占道摆卖"), ("SO02", "店外经营"), ("SO01", "又有摊贩")):
        data = form(service_code=item, description=description)
        data["attribute[source_id]"] = new_id("q")
        created.append(client.post(f"{BASE}/requests.json", data=data).json()[0])
    ids = [c["service_request_id"] for c in created]
    client.post(f"/cases/{ids[1]}/transitions", json={"action": "dispatch"})
    listed = client.get(f"{BASE}/requests.json", params={"service_request_id": ",".join(ids)})
    body = listed.json()
    valid("requests.json", body)
    assert sorted(r["service_request_id"] for r in body) == sorted(ids)
    one = next(r for r in body if r["service_request_id"] == ids[1])
    assert one["status"] == "open" and "step 2/5" in one["status_notes"]
    assert one["service_name"] == load_routing_rules().item("SO02").zh
    assert one["agency_responsible"] and one["expected_datetime"].endswith("+08:00")
    assert one["requested_datetime"] == T.isoformat()
    assert 23.40 < one["lat"] < 23.41 and 113.21 < one["long"] < 113.22  # WGS84
    assert one["media_url"] == "https://mp.sibiao.example/media/abc.jpg"
    so01 = client.get(f"{BASE}/requests.json", params={"service_code": "SO01"}).json()
    assert {r["service_request_id"] for r in so01} >= {ids[0], ids[2]}
    assert all(r["service_code"] == "SO01" for r in so01)
    window = {"start_date": "2026-07-06T00:00:00+08:00", "end_date": "2026-07-07T00:00:00+08:00"}
    open_now = client.get(f"{BASE}/requests.json", params={**window, "status": "open"}).json()
    assert set(ids) <= {r["service_request_id"] for r in open_now}
    closed = client.get(f"{BASE}/requests.json", params={**window, "status": "closed"}).json()
    assert not set(ids) & {r["service_request_id"] for r in closed}
    earlier = {"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-06-02T00:00:00Z"}
    assert not set(ids) & {
        r["service_request_id"] for r in client.get(f"{BASE}/requests.json", params=earlier).json()
    }
    root = xml_root(client.get(f"{BASE}/requests.xml", params={"service_request_id": ids[0]}))
    assert root.tag == "service_requests" and len(root.findall("request")) == 1
    assert root.findtext("request/status") == "open"
    single = client.get(f"{BASE}/requests/{ids[0]}.json").json()
    valid("requests.json", single)
    assert single[0]["service_request_id"] == ids[0]
    errors_of(client.get(f"{BASE}/requests/999999999.json"), 404)
    errors_of(client.get(f"{BASE}/requests/abc.xml"), 404)
    too_long = {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-07-01T00:00:00Z"}
    assert "90 days" in errors_of(client.get(f"{BASE}/requests.json", params=too_long), 400)
    errors_of(client.get(f"{BASE}/requests.json", params={"status": "pending"}), 400)
    errors_of(client.get(f"{BASE}/requests.json", params={"start_date": "soon"}), 400)
    errors_of(client.get(f"{BASE}/requests.xml", params={"limit": "0"}), 400)
    far_future = {"start_date": "9999-12-31T23:00:00-14:00"}
    errors_of(client.get(f"{BASE}/requests.json", params=far_future), 400)


def test_closed_and_merged_requests_read_closed(client, clock):
    clock.at = T + timedelta(minutes=20)
    ids = []
    for _ in range(2):
        data = form(service_code="SO03", description="单车乱停")
        data["attribute[source_id]"] = new_id("m")
        ids.append(client.post(f"{BASE}/requests.json", data=data).json()[0]["service_request_id"])
    merged = client.post(f"/cases/{ids[1]}/merge", json={"into": int(ids[0])})
    assert merged.status_code == 200, merged.text
    body = client.get(f"{BASE}/requests.json", params={"service_request_id": ",".join(ids)}).json()
    valid("requests.json", body)
    states = {r["service_request_id"]: r for r in body}
    assert states[ids[0]]["status"] == "open"
    assert states[ids[1]]["status"] == "closed" and ids[0] in states[ids[1]]["status_notes"]


def test_the_georeport_client_reads_services_and_requests(live, clock):
    clock.at = T + timedelta(minutes=30)
    data = form(service_code="PU01", description="路灯一直闪烁")
    data["attribute[source_id]"] = new_id("g")
    posted = httpx.post(f"{live}{BASE}/requests.json", data=data, timeout=30)
    assert posted.status_code == 201
    request_id = posted.json()[0]["service_request_id"]
    for fmt in ("json", "xml"):
        api = georeport.GeoReport(f"{live}{BASE}", jurisdiction="440114", output_format=fmt)
        services = api.get_service_list()
        assert len(services) == 36
        assert {s["service_code"] for s in services} >= {"PU01", "CA01"}
        definition = api.get_service_definition("PU01")
        assert definition["service_code"] == "PU01"
        requests = api.get_service_requests(
            start_date="2026-07-06T00:00:00+08:00", end_date="2026-07-07T00:00:00+08:00"
        )
        requests = requests if isinstance(requests, list) else [requests]
        assert request_id in {r["service_request_id"] for r in requests}
        one = api.get_service_request(request_id)
        assert one["service_code"] == "PU01" and one["status"] == "open"
