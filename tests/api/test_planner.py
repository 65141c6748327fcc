"""Planner queries against brute force: geodesic metres over every feature of a layer."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely

from schemas.geodesy import gcj02_to_wgs84, wgs84_to_gcj02

GEOD = pyproj.Geod(ellps="GRS80")
POINT = (113.225, 23.385)


def _points(district, layer: str) -> tuple[np.ndarray, np.ndarray]:
    rows = district.rows(f'SELECT fid, ST_X(geom), ST_Y(geom) FROM layers."{layer}" ORDER BY fid')
    return np.array([r[0] for r in rows]), np.array([[r[1], r[2]] for r in rows], dtype=float)


def _geodesic(lon: float, lat: float, coords: np.ndarray) -> np.ndarray:
    n = len(coords)
    _, _, dist = GEOD.inv(np.full(n, lon), np.full(n, lat), coords[:, 0], coords[:, 1])
    return np.asarray(dist)


@pytest.mark.parametrize("layer", ["house_number", "street_lamp", "fire_station"])
def test_nearby_points_equal_brute_force_geodesic(api, district, layer):
    fids, coords = _points(district, layer)
    dist = _geodesic(*POINT, coords)
    order = np.lexsort((fids, dist))[:7]
    resp = api.get("/nearby", params={"lon": POINT[0], "lat": POINT[1], "layers": layer, "k": 7})
    assert resp.status_code == 200, resp.text
    got = resp.json()["layers"][layer]["features"]
    assert [f["id"] for f in got] == [int(fids[i]) for i in order]
    assert [f["properties"]["distance_m"] for f in got] == pytest.approx(
        [dist[i] for i in order], abs=2e-3
    )


def test_nearby_radius_and_several_layers(api, district):
    fids, coords = _points(district, "street_lamp")
    dist = _geodesic(*POINT, coords)
    inside = sorted(float(d) for d in dist if d <= 600.0)[:50]
    resp = api.get(
        "/nearby",
        params={"lon": POINT[0], "lat": POINT[1], "layers": "street_lamp,school", "k": 50,
                "radius_m": 600},
    ).json()  # fmt: skip
    got = [f["properties"]["distance_m"] for f in resp["layers"]["street_lamp"]["features"]]
    assert got == pytest.approx(inside, abs=2e-3)
    assert set(resp["layers"]) == {"street_lamp", "school"}
    assert all(f["properties"]["distance_m"] <= 600 for f in resp["layers"]["school"]["features"])


@pytest.mark.parametrize("layer", ["road_centerline", "building"])
def test_nearby_lines_and_polygons_equal_brute_force(api, district, layer):
    rows = district.rows(
        f'SELECT fid, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4490)'
        f'::geography) AS d FROM layers."{layer}" ORDER BY d, fid LIMIT 5',
        x=POINT[0], y=POINT[1],
    )  # fmt: skip
    got = api.get(
        "/nearby", params={"lon": POINT[0], "lat": POINT[1], "layers": layer, "k": 5}
    ).json()["layers"][layer]["features"]
    assert [f["id"] for f in got] == [r[0] for r in rows]
    assert [f["properties"]["distance_m"] for f in got] == pytest.approx(
        [r[1] for r in rows], abs=2e-3
    )


def test_nearby_in_gcj02_and_projected_crs(api):
    wgs = api.get(
        "/nearby", params={"lon": POINT[0], "lat": POINT[1], "layers": "street_lamp", "k": 3}
    ).json()
    glon, glat = wgs84_to_gcj02(*POINT)
    gcj = api.get(
        "/nearby",
        params={"lon": float(glon), "lat": float(glat), "crs": "gcj02", "layers": "street_lamp",
                "k": 3},
    ).json()  # fmt: skip
    back = gcj02_to_wgs84(glon, glat)
    assert [float(back[0]), float(back[1])] == pytest.approx(list(POINT), abs=1e-9)
    assert [f["id"] for f in gcj["layers"]["street_lamp"]["features"]] == [
        f["id"] for f in wgs["layers"]["street_lamp"]["features"]
    ]
    x, y = pyproj.Transformer.from_crs(4490, 4547, always_xy=True).transform(*POINT)
    proj = api.get(
        "/nearby", params={"lon": x, "lat": y, "crs": "EPSG:4547", "layers": "street_lamp", "k": 3}
    ).json()
    assert proj["point"]["lon"] == pytest.approx(POINT[0], abs=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        {"lon": "x", "lat": "23", "layers": "school"},
        {"lon": "113", "lat": "123", "layers": "school"},
        {"lat": "23", "layers": "school"},
        {"lon": "113.2", "lat": "23.4", "layers": ""},
        {"lon": "113.2", "lat": "23.4", "layers": "school", "k": "0"},
        {"lon": "113.2", "lat": "23.4", "layers": "school", "k": "1000"},
        {"lon": "113.2", "lat": "23.4", "layers": "school", "radius_m": "-3"},
        {"lon": "113.2", "lat": "23.4", "layers": "school", "crs": "EPSG:0"},
    ],
)
def test_nearby_bad_input_is_400(api, params):
    assert api.get("/nearby", params=params).status_code == 400


def test_nearby_unknown_and_restricted_layers_are_404(api):
    for layer in ("population", "nope", "dem"):
        resp = api.get("/nearby", params={"lon": 113.2, "lat": 23.4, "layers": layer})
        assert resp.status_code == 404, layer


def test_within_buffer_and_polygon_equal_brute_force(api, district):
    fids, coords = _points(district, "house_number")
    dist = _geodesic(*POINT, coords)
    want = {int(f) for f, d in zip(fids, dist, strict=True) if d <= 800}
    resp = api.post(
        "/within", json={"layers": ["house_number"], "point": list(POINT), "buffer_m": 800}
    )
    assert resp.status_code == 200, resp.text
    got = resp.json()["layers"]["house_number"]
    assert {f["id"] for f in got["features"]} == want and not got["truncated"]
    area = shapely.box(113.20, 23.37, 113.24, 23.40)
    want = {int(f) for f, c in zip(fids, coords, strict=True) if area.intersects(shapely.Point(c))}
    body = {"layers": ["house_number"], "geometry": shapely.geometry.mapping(area)}
    got = api.post("/within", json=body).json()["layers"]["house_number"]["features"]
    assert {f["id"] for f in got} == want and want
    capped = api.post("/within", json=body | {"limit": 2}).json()["layers"]["house_number"]
    assert capped["numberReturned"] == 2 and capped["truncated"]


@pytest.mark.parametrize(
    "body",
    [
        {"layers": ["school"]},
        {"layers": [], "point": [113.2, 23.4], "buffer_m": 5},
        {"layers": ["school"], "point": [113.2], "buffer_m": 5},
        {"layers": ["school"], "point": [113.2, 23.4], "buffer_m": "far"},
        {"layers": ["school"], "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1]]]}},
        {"layers": ["school"], "geometry": {"type": "Bogus"}},
        {"layers": ["school"], "geometry": {"type": "Polygon", "coordinates":
            [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},
        {"layers": ["school"], "geometry": shapely.geometry.mapping(shapely.box(0, 0, 1, 1)),
         "limit": 0},
    ],
)  # fmt: skip
def test_within_bad_input_is_400(api, body):
    assert api.post("/within", json=body).status_code == 400


def test_coverage_equals_brute_force(api, district):
    distance = 2500.0
    cells = district.rows(
        "SELECT fid, ST_AsBinary(geom), population FROM layers.grid_cell ORDER BY fid"
    )
    _, stations = _points(district, "fire_station")
    uncovered = []
    for fid, wkb, _pop in cells:
        centre = shapely.from_wkb(bytes(wkb)).centroid
        if _geodesic(centre.x, centre.y, stations).min() > distance:
            uncovered.append(int(fid))
    resp = api.get("/coverage", params={"layer": "fire_station", "max_distance_m": distance})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [f["id"] for f in body["features"]] == uncovered
    assert 0 < len(uncovered) < len(cells)
    population = {int(fid): int(pop) for fid, _, pop in cells}
    totals = body["totals"]
    assert totals["cells"] == len(cells)
    assert totals["population"] == sum(population.values()) > 0
    assert totals["uncovered_cells"] == len(uncovered)
    assert totals["uncovered_population"] == sum(population[f] for f in uncovered)
    assert all("population" in f["properties"] for f in body["features"])


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"layer": "fire_station"}, 400),
        ({"layer": "fire_station", "max_distance_m": "0"}, 400),
        ({"layer": "fire_station", "max_distance_m": "abc"}, 400),
        ({"max_distance_m": "100"}, 400),
        ({"layer": "population", "max_distance_m": "100"}, 404),
    ],
)
def test_coverage_bad_input(api, params, status):
    assert api.get("/coverage", params=params).status_code == status
