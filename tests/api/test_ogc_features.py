"""OGC API - Features Parts 1-3 over the district, with GDAL and OWSLib as real clients."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyproj
import pytest
import shapely
from owslib.ogcapi.features import Features

from api.links import OPENAPI_30

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
OGRINFO = shutil.which("ogrinfo")
OGR2OGR = shutil.which("ogr2ogr")


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _follow(api, first: str) -> tuple[list[dict], list[int]]:
    """Collect every feature by following next links; return them and numberMatched seen."""
    features: list[dict] = []
    matched: list[int] = []
    url: str | None = first
    while url:
        resp = api.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["numberReturned"] == len(body["features"])
        matched.append(body["numberMatched"])
        features += body["features"]
        url = next((_path(lk["href"]) for lk in body["links"] if lk["rel"] == "next"), None)
    return features, matched


def test_landing_links_and_conformance(api):
    body = api.get("/").json()
    rels = {lk["rel"]: lk for lk in body["links"]}
    assert rels["service-desc"]["type"] == OPENAPI_30
    assert {"service-doc", "conformance", "data", "self"} <= set(rels)
    classes = api.get("/conformance").json()["conformsTo"]
    for suffix in ("features-1/1.0/conf/core", "features-2/1.0/conf/crs",
                   "features-3/1.0/conf/filter", "cql2/1.0/conf/cql2-text",
                   "cql2/1.0/conf/basic-cql2", "tiles-1/1.0/conf/mvt"):  # fmt: skip
        assert any(c.endswith(suffix) for c in classes), suffix


def _walk(node, found):
    if isinstance(node, dict):
        if isinstance(node.get("type"), list) or node.get("type") == "null":
            found.append(node)
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def test_openapi_30_document(api, district):
    resp = api.get("/api")
    assert resp.headers["content-type"] == OPENAPI_30
    doc = resp.json()
    assert doc["openapi"].startswith("3.0.")
    bad: list[dict] = []
    _walk(doc, bad)
    assert bad == []  # 3.1-only type forms are converted
    limit = doc["components"]["parameters"]["limit"]
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}
    assert (limit["style"], limit["explode"]) == ("form", False)
    items = doc["paths"]["/collections/building/items"]["get"]
    assert {"$ref": "#/components/parameters/limit"} in items["parameters"]
    assert "/collections/population/items" not in doc["paths"]  # restricted
    generic = doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    assert {"$ref": "#/components/parameters/bbox"} in generic


def test_collections_hide_restricted_and_describe_extent_and_crs(api, district):
    body = api.get("/collections").json()
    by_id = {c["id"]: c for c in body["collections"]}
    assert "population" not in by_id and "dem" not in by_id
    assert "manhole_cover" in by_id  # internal layers are served
    building = by_id["building"]
    assert building["title_zh"] == "建筑物" and building["title_en"]
    assert building["storageCrs"] == f"{EPSG}4490"
    assert set(building["crs"]) == {CRS84, *(f"{EPSG}{c}" for c in (4490, 4326, 4547, 3857))}
    box = building["extent"]["spatial"]["bbox"][0]
    xmin, ymin, xmax, ymax = district.rows(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom) e FROM layers.building) s"
    )[0]
    assert box == pytest.approx([xmin, ymin, xmax, ymax])
    lamps = by_id["street_lamp"]["extent"]["temporal"]["interval"][0]
    first = district.scalar("SELECT min(installed_on) FROM layers.street_lamp")
    assert lamps[0].startswith(str(first))
    assert "temporal" not in building["extent"]
    assert api.get("/collections/population").status_code == 404
    assert api.get("/collections/nope").status_code == 404
    assert api.get("/collections/" + "x" * 500 + "/items").status_code == 404


def test_paging_yields_number_matched_features(api, district):
    total = district.scalar("SELECT count(*) FROM layers.fire_station")
    features, matched = _follow(api, "/collections/street_lamp/items?limit=250")
    lamps = district.scalar("SELECT count(*) FROM layers.street_lamp")
    assert set(matched) == {lamps} and len(features) == lamps
    assert len({f["id"] for f in features}) == lamps
    features, matched = _follow(api, "/collections/fire_station/items?limit=3")
    assert matched[0] == total == len(features)


def test_filtered_paging_counts_exactly(api, district):
    url = "/collections/house_number/items?limit=90&filter=number LIKE '1%25'"
    features, matched = _follow(api, url)
    want = district.scalar("SELECT count(*) FROM layers.house_number WHERE number LIKE '1%'")
    assert set(matched) == {want} == {len(features)}
    assert all(f["properties"]["number"].startswith("1") for f in features)


def test_limit_is_clamped_and_checked(api):
    body = api.get("/collections/house_number/items?limit=50000").json()
    assert body["numberReturned"] == min(10000, body["numberMatched"])
    nxt = [lk for lk in body["links"] if lk["rel"] == "next"]
    if nxt:
        assert parse_qs(urlsplit(nxt[0]["href"]).query)["limit"] == ["10000"]
    for bad in ("0", "-5", "abc", "1.5", ""):
        resp = api.get(f"/collections/house_number/items?limit={bad}")
        assert resp.status_code == (200 if bad == "" else 400), bad
    assert api.get("/collections/house_number/items?offset=-1").status_code == 400


def test_default_page_is_100_and_prev_link(api):
    body = api.get("/collections/house_number/items?offset=100").json()
    assert body["numberReturned"] == 100
    rels = {lk["rel"] for lk in body["links"]}
    assert {"self", "alternate", "next", "prev"} <= rels
    assert (
        api.get("/collections/house_number/items", headers={"Accept": "*/*"})
        .headers["content-type"]
        .startswith("application/geo+json")
    )


@pytest.mark.parametrize("epsg", [4547, 3857])
def test_projected_output_equals_pyproj_in_epsg_axis_order(api, epsg):
    """EPSG:4547 is northing, easting by its EPSG definition (OGC Part 2); 3857 is x, y."""
    base = "/collections/house_number/items?limit=50"
    lonlat = api.get(base).json()["features"]
    resp = api.get(f"{base}&crs={EPSG}{epsg}")
    assert resp.headers["content-crs"] == f"<{EPSG}{epsg}>"
    projected = resp.json()["features"]
    authority_order = pyproj.Transformer.from_crs(4490, epsg)  # lat, lon in; EPSG order out
    for a, b in zip(lonlat, projected, strict=True):
        assert a["id"] == b["id"]
        lon, lat = a["geometry"]["coordinates"]
        assert b["geometry"]["coordinates"] == pytest.approx(
            list(authority_order.transform(lat, lon)), abs=1e-3
        )
    first = projected[0]["geometry"]["coordinates"]
    assert first[0] > 2_000_000 if epsg == 4547 else first[0] > 12_000_000


@pytest.mark.parametrize("epsg", [4326, 4490])
def test_geographic_epsg_output_is_lat_lon(api, epsg):
    base = "/collections/building/items?limit=5"
    plain = api.get(base).json()["features"]
    resp = api.get(f"{base}&crs={EPSG}{epsg}")
    assert resp.headers["content-crs"] == f"<{EPSG}{epsg}>"
    for a, b in zip(plain, resp.json()["features"], strict=True):
        ring_a = a["geometry"]["coordinates"][0][0]
        ring_b = b["geometry"]["coordinates"][0][0]
        np.testing.assert_allclose(np.array(ring_a)[:, ::-1], np.array(ring_b), atol=1e-9)
        assert 20 < ring_b[0][0] < 25 and 110 < ring_b[0][1] < 115


def test_bbox_and_bbox_crs(api, district):
    box = (113.15, 23.30, 113.30, 23.45)
    want = district.scalar(
        "SELECT count(*) FROM layers.building WHERE ST_Intersects(geom, "
        "ST_MakeEnvelope(:a, :b, :c, :d, 4490))",
        a=box[0], b=box[1], c=box[2], d=box[3],
    )  # fmt: skip
    got = api.get("/collections/building/items", params={"bbox": ",".join(map(str, box))})
    assert got.json()["numberMatched"] == want > 0
    latlon = f"{box[1]},{box[0]},{box[3]},{box[2]}"
    swapped = api.get(f"/collections/building/items?bbox={latlon}&bbox-crs={EPSG}4326")
    assert swapped.json()["numberMatched"] == want
    for bad in ("1,2,3", "a,b,c,d", "113.3,23.3,113.1,23.5", "1,2,3,4,5", "nan,1,2,3"):
        assert api.get(f"/collections/building/items?bbox={bad}").status_code == 400, bad
    bad_crs = "/collections/building/items?bbox=1,2,3,4&bbox-crs=EPSG:999"
    assert api.get(bad_crs).status_code == 400


def test_datetime_on_time_field(api, district):
    want = district.scalar(
        "SELECT count(*) FROM layers.street_lamp WHERE installed_on BETWEEN '2015-01-01' "
        "AND '2019-12-31'"
    )
    body = api.get("/collections/street_lamp/items?datetime=2015-01-01/2019-12-31").json()
    assert body["numberMatched"] == want > 0
    later = district.scalar(
        "SELECT count(*) FROM layers.street_lamp WHERE installed_on >= '2018-06-01'"
    )
    assert api.get(
        "/collections/street_lamp/items?datetime=2018-06-01T00:00:00Z/.."
    ).json()["numberMatched"] == later  # fmt: skip
    for bad in ("yesterday", "2020-13-01", "2020-01-01/2019-01-01", "../..", "a/b/c"):
        resp = api.get(f"/collections/street_lamp/items?datetime={bad}")
        assert resp.status_code == 400, bad
    assert api.get("/collections/building/items?datetime=2020-01-01").status_code == 400


def test_cql2_text_and_json_agree(api, district):
    want = district.scalar(
        "SELECT count(*) FROM layers.building WHERE floors >= 6 AND use IN "
        "('residential', 'commercial')"
    )
    text_filter = "floors >= 6 AND use IN ('residential','commercial')"
    by_text = api.get("/collections/building/items", params={"filter": text_filter})
    assert by_text.status_code == 200, by_text.text
    json_filter = {
        "op": "and",
        "args": [
            {"op": ">=", "args": [{"property": "floors"}, 6]},
            {"op": "in", "args": [{"property": "use"}, ["residential", "commercial"]]},
        ],
    }
    by_json = api.get(
        "/collections/building/items",
        params={"filter": json.dumps(json_filter), "filter-lang": "cql2-json"},
    )
    assert by_json.status_code == 200, by_json.text
    assert by_text.json()["numberMatched"] == by_json.json()["numberMatched"] == want > 0
    ids = {f["id"] for f in by_text.json()["features"]}
    assert ids == {f["id"] for f in by_json.json()["features"]}


def test_cql2_spatial_between_and_casei(api, district):
    spatial = api.get(
        "/collections/house_number/items",
        params={"filter": "S_INTERSECTS(geometry, BBOX(113.15,23.30,113.30,23.45))"},
    ).json()
    want = district.scalar(
        "SELECT count(*) FROM layers.house_number WHERE ST_Intersects(geom, "
        "ST_MakeEnvelope(113.15, 23.30, 113.30, 23.45, 4490))"
    )
    assert spatial["numberMatched"] == want > 0
    polygon = shapely.box(113.15, 23.30, 113.30, 23.45).wkt
    same = api.get(
        "/collections/house_number/items", params={"filter": f"S_INTERSECTS(geom, {polygon})"}
    ).json()
    assert same["numberMatched"] == want
    between = api.get(
        "/collections/building/items", params={"filter": "floors BETWEEN 2 AND 4"}
    ).json()
    assert between["numberMatched"] == district.scalar(
        "SELECT count(*) FROM layers.building WHERE floors BETWEEN 2 AND 4"
    )
    arithmetic = api.get(
        "/collections/building/items", params={"filter": "floors / 2 > underground_floors"}
    )
    assert arithmetic.json()["numberMatched"] == district.scalar(
        "SELECT count(*) FROM layers.building WHERE floors / 2.0 > underground_floors"
    )
    casei = api.get(
        "/collections/building/items", params={"filter": "CASEI(use) = casei('RESIDENTIAL')"}
    ).json()
    assert casei["numberMatched"] == district.scalar(
        "SELECT count(*) FROM layers.building WHERE use = 'residential'"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "floors >",  # syntax
        "nosuch = 1",  # unknown property
        "floors = 'many'",  # type mismatch
        "foo(floors) = 1",  # unknown function
        "use LIKE 5",
        "floors",  # not a condition
        "S_INTERSECTS(geometry, POINT(1 2 3 4))",
        "floors / 0 > 1",  # division by zero in the database
        "floors IN (1, 'x')",
        "floors = TRUE",
    ],
)
def test_bad_filters_are_400(api, bad):
    resp = api.get("/collections/building/items", params={"filter": bad})
    assert resp.status_code == 400, (bad, resp.text)
    assert resp.json()["detail"]


def test_bad_filter_lang_and_json(api):
    params = {"filter": "{not json", "filter-lang": "cql2-json"}
    assert api.get("/collections/building/items", params=params).status_code == 400
    params = {"filter": "floors = 1", "filter-lang": "sql"}
    assert api.get("/collections/building/items", params=params).status_code == 400


def test_properties_and_sortby(api, district):
    body = api.get("/collections/school/items?properties=name,students&sortby=-students").json()
    students = [f["properties"]["students"] for f in body["features"]]
    assert all(set(f["properties"]) == {"name", "students"} for f in body["features"])
    assert students == sorted(students, reverse=True)
    body = api.get("/collections/building/items?sortby=+floors,-height_m&limit=500").json()
    keys = [(f["properties"]["floors"], -f["properties"]["height_m"]) for f in body["features"]]
    assert keys == sorted(keys)
    assert api.get("/collections/school/items?properties=").json()["features"][0][
        "properties"
    ] == {}  # fmt: skip
    assert api.get("/collections/school/items?properties=nope").status_code == 400
    assert api.get("/collections/school/items?sortby=fid;drop").status_code == 400
    assert api.get("/collections/school/items?bogus=1").status_code == 400


def test_single_feature_and_queryables(api, district):
    fid = district.scalar("SELECT min(fid) FROM layers.school")
    resp = api.get(f"/collections/school/items/{fid}?crs={EPSG}4547")
    assert resp.status_code == 200 and resp.json()["id"] == fid
    assert resp.headers["content-crs"] == f"<{EPSG}4547>"
    assert resp.json()["geometry"]["coordinates"][0] > 1000
    assert api.get("/collections/school/items/999999999").status_code == 404
    assert api.get("/collections/school/items/abc").status_code == 404
    schema = api.get("/collections/building/queryables")
    assert schema.headers["content-type"] == "application/schema+json"
    props = schema.json()["properties"]
    assert props["floors"]["type"] == "integer" and props["geometry"]["x-ogc-role"]
    assert api.get("/collections/population/queryables").status_code == 404


INJECTIONS = [
    ("/collections/school/items", {"filter": "name = 'x'; DROP TABLE layers.school; --"}),
    ("/collections/school/items", {"filter": "name = 'x'' OR 1=1; DROP TABLE layers.school --'"}),
    ("/collections/school/items", {"sortby": "name; DROP TABLE layers.school"}),
    ("/collections/school/items", {"properties": 'name"; DROP TABLE layers.school; --'}),
    ("/collections/school;DROP TABLE layers.school/items", {}),
    ('/collections/school"--/items', {}),
    ("/collections/school/items", {"bbox": "1,2,3,4); DROP TABLE layers.school; --"}),
    ("/collections/school/items", {"datetime": "2020-01-01'; DROP TABLE layers.school; --"}),
    ("/collections/school/items", {"crs": "4326; DROP TABLE layers.school"}),
    ("/collections/school/items", {"filter-lang": "cql2-text'; DROP TABLE layers.school"}),
]


@pytest.mark.parametrize(("path", "params"), INJECTIONS)
def test_sql_injection_is_refused_or_harmless(api, district, path, params):
    before = district.scalar("SELECT count(*) FROM layers.school")
    resp = api.get(path, params=params)
    assert resp.status_code in (200, 400, 404), resp.text
    if resp.status_code == 200:
        assert resp.json()["numberMatched"] == 0
    assert district.scalar("SELECT count(*) FROM layers.school") == before > 0


def test_ogrinfo_lists_collections(live_server):
    assert OGRINFO, "gdal-bin is not installed (make setup installs it)"
    out = subprocess.run(
        [OGRINFO, "-ro", "-so", f"OAPIF:{live_server}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert ": building (" in out and ": grid_cell (" in out
    assert "population (" not in out


def test_ogr2ogr_downloads_a_layer_through_paging(live_server, district, tmp_path: Path):
    assert OGR2OGR, "gdal-bin is not installed (make setup installs it)"
    out = tmp_path / "building.gpkg"
    subprocess.run(
        [OGR2OGR, "-f", "GPKG", str(out), f"OAPIF:{live_server}", "building",
         "-oo", "PAGE_SIZE=500"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    import pyogrio

    info = pyogrio.read_info(out, layer="building")
    assert info["features"] == district.scalar("SELECT count(*) FROM layers.building") > 2000
    assert "floors" in list(info["fields"])


def test_owslib_reads_collections_and_items(live_server, district):
    api = Features(live_server)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"building", "school", "house_number"} <= ids
    page = api.collection_items("house_number", bbox=[113.15, 23.30, 113.30, 23.45], limit=7)
    assert page["numberReturned"] == len(page["features"]) == 7
    want = district.scalar(
        "SELECT count(*) FROM layers.house_number WHERE ST_Intersects(geom, "
        "ST_MakeEnvelope(113.15, 23.30, 113.30, 23.45, 4490))"
    )
    assert page["numberMatched"] == want
    assert set(api.collection_queryables("school")["properties"]) >= {"name", "geometry"}
