"""Vector tiles: content equals a shapely query, ETag/304, empty tiles, cache invalidation."""

from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import pyproj
import pytest
import shapely

from ingest.pipeline import LoadRequest, run_load

TMS = morecantile.tms.get("WebMercatorQuad")
TO_3857 = pyproj.Transformer.from_crs(4490, 3857, always_xy=True)
MVT = "application/vnd.mapbox-vector-tile"


def _busiest_tile(district, layer: str, z: int) -> morecantile.Tile:
    lon, lat = district.rows(
        f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Collect(geom)) c FROM "
        f'(SELECT geom FROM layers."{layer}" ORDER BY fid LIMIT 400) s) t'
    )[0]
    return TMS.tile(float(lon), float(lat), z)


def _expected_ids(district, layer: str, tile: morecantile.Tile) -> set[int]:
    """Return the fids of lines/polygons meeting the tile, of points in the tile + buffer."""
    left, bottom, right, top = TMS.xy_bounds(tile)
    points = district.catalog.layer(layer).geometry.single.value == "Point"
    grow = (right - left) * 64 / 4096 if points else 0.0
    box = shapely.box(left - grow, bottom - grow, right + grow, top + grow)
    rows = district.rows(f'SELECT fid, ST_AsBinary(geom) FROM layers."{layer}"')
    fids = [int(fid) for fid, _ in rows]
    geoms = shapely.from_wkb([bytes(wkb) for _, wkb in rows])
    moved = shapely.transform(geoms, lambda x, y: TO_3857.transform(x, y), interleaved=False)
    return {fid for fid, hit in zip(fids, shapely.intersects(moved, box), strict=True) if hit}


def _decode(content: bytes) -> dict:
    return mapbox_vector_tile.decode(content)


@pytest.mark.parametrize(
    ("layer", "z"), [("house_number", 15), ("building", 14), ("road_centerline", 13)]
)
def test_tile_holds_exactly_the_intersecting_features(api, district, layer, z):
    tile = _busiest_tile(district, layer, z)
    resp = api.get(f"/collections/{layer}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == MVT
    decoded = _decode(resp.content)
    got = {int(f["id"]) for f in decoded[layer]["features"]}
    assert got == _expected_ids(district, layer, tile)
    assert len(got) > 3
    first = decoded[layer]["features"][0]["properties"]
    assert set(first) <= {a.name for a in district.catalog.layer(layer).attributes}


def test_properties_and_multi_layer_tile(api, district):
    tile = _busiest_tile(district, "house_number", 14)
    path = f"WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    single = _decode(api.get(f"/collections/house_number/tiles/{path}?properties=number").content)
    assert all(set(f["properties"]) <= {"number"} for f in single["house_number"]["features"])
    multi = api.get(f"/tiles/{path}?collections=house_number,building,road_centerline")
    assert multi.status_code == 200
    layers = _decode(multi.content)
    assert set(layers) >= {"house_number", "building"}
    ids = {int(f["id"]) for f in layers["house_number"]["features"]}
    assert ids == {int(f["id"]) for f in single["house_number"]["features"]}
    assert api.get(f"/tiles/{path}").status_code == 400  # no collections named
    assert api.get(f"/tiles/{path}?collections=population").status_code == 404


def test_etag_304_and_empty_tile(api, district):
    tile = _busiest_tile(district, "building", 14)
    url = f"/collections/building/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    first = api.get(url)
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public")
    again = api.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert api.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    empty = api.get("/collections/building/tiles/WebMercatorQuad/14/0/0")
    assert empty.status_code == 204 and empty.content == b"" and empty.headers["etag"]


def test_tiles_go_gzip_compressed_to_clients_that_accept_it(api, district):
    tile = _busiest_tile(district, "building", 15)
    url = f"/collections/building/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    packed = api.get(url, headers={"Accept-Encoding": "gzip"})
    plain = api.get(url, headers={"Accept-Encoding": "identity"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert packed.headers["etag"] == plain.headers["etag"]
    assert "Accept-Encoding" in packed.headers["vary"]
    assert packed.content == plain.content  # the client decodes gzip
    assert _decode(plain.content)["building"]["features"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/collections/building/tiles/WebMercatorQuad/23/0/0", 404),
        ("/collections/building/tiles/WebMercatorQuad/3/0/8", 404),
        ("/collections/building/tiles/WebMercatorQuad/3/8/0", 404),
        ("/collections/building/tiles/WebMercatorQuad/-1/0/0", 400),
        ("/collections/building/tiles/WebMercatorQuad/a/0/0", 400),
        ("/collections/building/tiles/WorldCRS84Quad/3/0/0", 404),
        ("/collections/population/tiles/WebMercatorQuad/3/0/0", 404),
        ("/collections/dem/tiles/WebMercatorQuad/3/0/0", 404),
        ("/collections/building/tiles/WebMercatorQuad/3/0/0?properties=nope", 400),
        ("/collections/building/tiles/WebMercatorQuad/3/0/0?limit=0", 400),
    ],
)
def test_bad_tile_requests(api, path, status):
    assert api.get(path).status_code == status


def test_tilejson_and_tileset_metadata(api):
    tj = api.get("/collections/building/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith("/collections/building/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert "floors" in tj["vector_layers"][0]["fields"]
    multi = api.get("/tiles/WebMercatorQuad/tilejson.json?collections=building,school").json()
    assert [v["id"] for v in multi["vector_layers"]] == ["building", "school"]
    sets = api.get("/collections/building/tiles").json()["tilesets"]
    assert sets[0]["dataType"] == "vector"
    assert any(lk["rel"] == "item" and lk["templated"] for lk in sets[0]["links"])
    tms = api.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["id"] == "WebMercatorQuad"


RELOADED = "manhole_cover"  # no other test reads it: reloading it disturbs nothing


def _subset_file(district, folder: Path, keep: int) -> Path:
    names = ", ".join(f'"{a.name}"' for a in district.catalog.layer(RELOADED).attributes)
    frame = gpd.read_postgis(
        f"SELECT {names}, geom FROM layers.{RELOADED} ORDER BY fid DESC LIMIT {keep}",
        district.engine,
        geom_col="geom",
    )
    path = folder / f"{RELOADED}-{keep}.gpkg"
    frame.to_file(path, driver="GPKG")
    return path


def _reloaded_tile(district) -> str:
    tile = _busiest_tile(district, RELOADED, 14)
    return f"/collections/{RELOADED}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"


def _ids(response) -> set[int]:
    if response.status_code == 204:
        return set()
    return {int(f["id"]) for f in _decode(response.content)[RELOADED]["features"]}


def test_cache_follows_a_reload_in_another_process(api, district, tmp_path):
    """A load the app did not run (the CLI's) shows within a second: versions are re-read."""
    url = _reloaded_tile(district)
    before = api.get(url)
    assert len(_ids(before)) > 2
    total = district.scalar(f"SELECT count(*) FROM layers.{RELOADED}")
    path = _subset_file(district, tmp_path, total // 2)
    run_load(district.engine, district.settings, district.catalog,
             LoadRequest(path=path, layer=RELOADED))  # fmt: skip
    time.sleep(1.1)
    after = api.get(url)
    assert after.headers["etag"] != before.headers["etag"]
    tile = morecantile.Tile(*map(int, url.rsplit("/", 3)[1:][::-1]))
    assert _ids(after) == _expected_ids(district, RELOADED, tile) != _ids(before)
    assert api.get(url, headers={"If-None-Match": before.headers["etag"]}).status_code in (200, 204)


def test_cache_is_invalidated_by_a_load_through_the_api(api, district, tmp_path):
    """A load through POST /layers/{code}/loads invalidates at once (LoadJobs.on_published)."""
    url = _reloaded_tile(district)
    before = api.get(url)
    path = _subset_file(district, tmp_path, 3)
    with path.open("rb") as handle:
        resp = api.post(f"/layers/{RELOADED}/loads", files={"file": (path.name, handle)})
    assert resp.status_code == 202, resp.text
    api.app.state.jobs.wait(resp.json()["id"], timeout=60)
    assert api.get(f"/loads/{resp.json()['id']}").json()["state"] == "committed"
    after = api.get(url)  # no sleep: the hook dropped the cached tile and version
    assert after.headers["etag"] != before.headers["etag"]
    tile = morecantile.Tile(*map(int, url.rsplit("/", 3)[1:][::-1]))
    assert _ids(after) == _expected_ids(district, RELOADED, tile)
    assert len(_ids(after)) <= 3 < len(_ids(before))
