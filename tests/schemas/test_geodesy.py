"""Tests of schemas.geodesy: CRS parsing, GCJ-02/BD-09 offsets, EPSG transforms, distances."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyproj
import pytest
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import LineString, Point, Polygon

from schemas import geodesy as geo
from schemas.errors import InvalidInput

# Huadu district extent with a margin of ~5 km.
HUADU = (113.03, 113.47, 23.24, 23.62)
MARGIN = 0.05
HUADU_CENTRE = (113.22, 23.40)

GEOD = pyproj.Geod(ellps="GRS80")


def huadu_grid(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    lon = np.linspace(HUADU[0] - MARGIN, HUADU[1] + MARGIN, n)
    lat = np.linspace(HUADU[2] - MARGIN, HUADU[3] + MARGIN, n)
    glon, glat = np.meshgrid(lon, lat)
    return glon.ravel(), glat.ravel()


def metres_apart(a: tuple[ArrayLike, ArrayLike], b: tuple[ArrayLike, ArrayLike]) -> np.ndarray:
    return geo.geodesic_distance_m(a[0], a[1], b[0], b[1])


# --- parse_crs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("wgs84", "EPSG:4326"),
        ("WGS-84", "EPSG:4326"),
        ("WGS 84", "EPSG:4326"),
        ("EPSG:4326", "EPSG:4326"),
        ("epsg:4326", "EPSG:4326"),
        (4326, "EPSG:4326"),
        ("4490", "EPSG:4490"),
        (" 4490 ", "EPSG:4490"),
        ("cgcs2000", "EPSG:4490"),
        ("CGCS2000", "EPSG:4490"),
        ("EPSG:4547", "EPSG:4547"),
        (3857, "EPSG:3857"),
        ("urn:ogc:def:crs:EPSG::4490", "EPSG:4490"),
        ("gcj02", "gcj02"),
        ("gcj-02", "gcj02"),
        ("GCJ02", "gcj02"),
        ("GCJ_02", "gcj02"),
        ("bd09", "bd09"),
        ("bd-09", "bd09"),
        ("BD09", "bd09"),
        ("OGC:CRS84", "OGC:CRS84"),
        ("CRS84", "OGC:CRS84"),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", "OGC:CRS84"),
        ("http://www.opengis.net/def/crs/EPSG/0/4326", "EPSG:4326"),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", "EPSG:4490"),
        ("https://www.opengis.net/def/crs/EPSG/0/4547", "EPSG:4547"),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84"),
    ],
)
def test_parse_crs_accepts(text: str | int, canonical: str) -> None:
    parsed = geo.parse_crs(text)
    assert parsed.canonical == canonical
    assert str(parsed) == canonical
    assert geo.parse_crs(parsed.canonical) == parsed  # the canonical form parses back


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "wgs",
        "gcj",
        "mars",
        "EPSG:",
        "EPSG:abc",
        "EPSG:43 26",
        "http://www.opengis.net/def/crs/EPSG/0/",
        "http://example.com/def/crs/EPSG/0/4326",
        "x" * 5000,
    ],
)
def test_parse_crs_refuses_unknown_text_listing_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        geo.parse_crs(text)
    message = str(caught.value)
    for form in ("EPSG:4490", "OGC:CRS84", "gcj02", "bd09", "wgs84", "cgcs2000"):
        assert form in message
    assert len(message) < 400  # long input is not echoed back whole


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (999999, "EPSG:999999 is not a known"),
        ("EPSG:999999", "EPSG:999999 is not a known"),
        ("EPSG:5773", "Vertical"),  # EGM96 height: not horizontal
        (4978, "Geocentric"),
        (0, "not a valid EPSG code"),
        (-4326, "not a valid EPSG code"),
        (True, "must be text or an integer"),
        (4326.0, "must be text or an integer"),
        (None, "must be text or an integer"),
    ],
)
def test_parse_crs_refuses_bad_codes_and_types(value: object, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        geo.parse_crs(value)  # type: ignore[arg-type]


def test_source_crs_describes_itself() -> None:
    wgs84, cgcs, crs84 = geo.parse_crs("wgs84"), geo.parse_crs(4490), geo.parse_crs("OGC:CRS84")
    gcj, bd = geo.parse_crs("gcj02"), geo.parse_crs("bd09")
    assert wgs84 == geo.WGS84 and cgcs == geo.CGCS2000 and gcj == geo.GCJ02 and bd == geo.BD09
    assert cgcs.crs == pyproj.CRS.from_epsg(4490)
    assert crs84.crs == pyproj.CRS("OGC:CRS84")
    assert gcj.crs is None and bd.crs is None
    assert gcj.is_offset and bd.is_offset and not wgs84.is_offset and not crs84.is_offset
    assert gcj.base_epsg == bd.base_epsg == crs84.base_epsg == 4326
    assert cgcs.uri == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert crs84.uri == geo.CRS84_URI and gcj.uri is None
    assert len({wgs84, geo.parse_crs("EPSG:4326"), crs84, gcj}) == 3  # hashable, value-equal
    with pytest.raises(dataclasses.FrozenInstanceError):
        cgcs.epsg = 4326  # type: ignore[misc]
    with pytest.raises(ValueError, match="inconsistent"):
        geo.SourceCrs(geo.CrsKind.gcj02, 4326)
    with pytest.raises(ValueError, match="inconsistent"):
        geo.SourceCrs(geo.CrsKind.epsg)


def test_output_crs_uris() -> None:
    assert geo.STORAGE_EPSG == 4490
    assert geo.CRS84_URI == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert list(geo.OUTPUT_CRS_URIS) == [
        "OGC:CRS84",
        "EPSG:4490",
        "EPSG:4326",
        "EPSG:4547",
        "EPSG:3857",
    ]
    for name, uri in geo.OUTPUT_CRS_URIS.items():
        assert geo.parse_crs(uri).canonical == name
        assert geo.parse_crs(uri).uri == uri
    assert geo.crs_uri(4490) == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert geo.crs_uri(3857) == "http://www.opengis.net/def/crs/EPSG/0/3857"
    with pytest.raises(InvalidInput, match="EPSG:4549 is not offered"):
        geo.crs_uri(4549)


# --- GCJ-02 / BD-09 against published reference pairs ---------------------------------------

# googollee/eviltransform, python/test.py and go/transform_test.go (same data):
# (wgs lat, wgs lng, gcj lat, gcj lng) for Shanghai, Shenzhen, Beijing.
EVILTRANSFORM_WGS_GCJ = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
]


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM_WGS_GCJ)
def test_gcj02_matches_eviltransform(wlat: float, wlon: float, glat: float, glon: float) -> None:
    lon, lat = geo.wgs84_to_gcj02(wlon, wlat)
    assert float(lon) == pytest.approx(glon, abs=1e-9)
    assert float(lat) == pytest.approx(glat, abs=1e-9)
    # eviltransform's exact inverse promises < 0.5 m; ours is far tighter.
    back = geo.gcj02_to_wgs84(glon, glat)
    assert float(metres_apart(back, (np.float64(wlon), np.float64(wlat)))) < 0.001


def test_gcj02_and_bd09_match_coordtransform_readme() -> None:
    # wandergis/coordtransform README.md (also asserted in dromara/hutool CoordinateUtilTest).
    assert np.allclose(
        geo.wgs84_to_gcj02(116.404, 39.915), (116.41024449916938, 39.91640428150164), atol=1e-9
    )
    assert np.allclose(
        geo.gcj02_to_bd09(116.404, 39.915), (116.41036949371029, 39.92133699351021), atol=1e-9
    )
    # The README's bd09togcj02 is the closed form, off by a few cm: ours refines it, so
    # it lies within 1e-6 degrees of it but reproduces the BD-09 input far better.
    closed_form = np.array([116.39762729119315, 39.90865673957631])
    ours = np.array(geo.bd09_to_gcj02(116.404, 39.915))
    assert np.allclose(ours, closed_form, atol=1e-6)
    ours_error = np.abs(np.array(geo.gcj02_to_bd09(*ours)) - [116.404, 39.915]).max()
    closed_error = np.abs(np.array(geo.gcj02_to_bd09(*closed_form)) - [116.404, 39.915]).max()
    assert ours_error < 1e-9 < closed_error


@pytest.mark.parametrize(
    ("wgs", "bd"),
    [
        # dromara/hutool: hutool-core/src/test/java/org/dromara/hutool/core/util/
        # CoordinateUtilTest.java (wgs84ToBd09Test, wgs84toBd09Test2)
        ((116.404, 39.915), (116.41662724378733, 39.922699552216216)),
        ((122.99395597, 44.99804071), (123.00636516028885, 45.0063690918959)),  # tool.lu
    ],
)
def test_bd09_matches_hutool(wgs: tuple[float, float], bd: tuple[float, float]) -> None:
    assert np.allclose(geo.wgs84_to_bd09(*wgs), bd, atol=1e-9)
    back = geo.bd09_to_wgs84(*bd)
    assert float(metres_apart(back, (np.float64(wgs[0]), np.float64(wgs[1])))) < 0.001


# hujiulong/gcoord test/fixtures/china-cities.json: city centres (lon, lat), 7 decimals.
# Its WGS84 column agrees with the published algorithm to ~0.5 m only (gcoord itself tests
# GCJ02->WGS84 to 4 decimals), its GCJ02->BD09 pairs to the rounding.
GCOORD_CITIES = {
    "guangzhou_yuexiu": (
        (113.2590543, 23.131788),
        (113.2643859, 23.1291146),
        (113.2708188, 23.135343),
    ),
    "qingyuan_qingcheng": (  # just north-west of Huadu
        (113.050561, 23.6842365),
        (113.0560349, 23.6817695),
        (113.0625034, 23.6879993),
    ),
    "foshan_chancheng": (
        (113.1159502, 23.0240264),
        (113.1214418, 23.0214833),
        (113.1279555, 23.027333),
    ),
}


@pytest.mark.parametrize("city", sorted(GCOORD_CITIES))
def test_offsets_match_gcoord_near_huadu(city: str) -> None:
    wgs, gcj, bd = (np.array(p) for p in GCOORD_CITIES[city])
    assert float(metres_apart(geo.wgs84_to_gcj02(*wgs), tuple(gcj))) < 1.0
    assert float(metres_apart(geo.gcj02_to_wgs84(*gcj), tuple(wgs))) < 1.0
    assert np.allclose(geo.gcj02_to_bd09(*gcj), bd, atol=2e-7)
    assert np.allclose(geo.bd09_to_gcj02(*bd), gcj, atol=2e-7)


def test_gcj02_offset_over_huadu_is_hundreds_of_metres_east_and_south() -> None:
    lon, lat = huadu_grid(60)
    glon, glat = geo.wgs84_to_gcj02(lon, lat)
    shift_m = metres_apart((lon, lat), (glon, glat))
    assert np.all(glon - lon > 0.004) and np.all(glon - lon < 0.007)  # east
    assert np.all(glat - lat < -0.001) and np.all(glat - lat > -0.004)  # south
    assert shift_m.min() > 500 and shift_m.max() < 700
    blon, blat = geo.gcj02_to_bd09(glon, glat)
    assert np.all(blon - glon > 0.005) and np.all(blat - glat > 0.005)  # BD-09: north-east


# --- inverse accuracy over Huadu --------------------------------------------------------------


def test_gcj02_inverse_is_exact_over_huadu() -> None:
    lon, lat = huadu_grid()
    forward_of_inverse = geo.wgs84_to_gcj02(*geo.gcj02_to_wgs84(lon, lat))
    assert metres_apart(forward_of_inverse, (lon, lat)).max() < 0.01
    inverse_of_forward = geo.gcj02_to_wgs84(*geo.wgs84_to_gcj02(lon, lat))
    assert metres_apart(inverse_of_forward, (lon, lat)).max() < 0.01
    assert np.abs(np.asarray(forward_of_inverse) - [lon, lat]).max() < 1e-9


def test_bd09_inverse_is_exact_over_huadu() -> None:
    lon, lat = huadu_grid()
    gcj_round = geo.gcj02_to_bd09(*geo.bd09_to_gcj02(lon, lat))
    assert np.abs(np.asarray(gcj_round) - [lon, lat]).max() < 1e-9
    wgs_round = geo.wgs84_to_bd09(*geo.bd09_to_wgs84(lon, lat))
    assert metres_apart(wgs_round, (lon, lat)).max() < 0.01
    inverse_of_forward = geo.bd09_to_wgs84(*geo.wgs84_to_bd09(lon, lat))
    assert metres_apart(inverse_of_forward, (lon, lat)).max() < 0.01


@pytest.mark.parametrize(
    "point",
    [
        (2.3522, 48.8566),
        (139.6917, 35.6895),
        (-74.006, 40.7128),
        (151.2093, -33.8688),
        (104.28, 57.0),  # north of the box (Bratsk region)
        (69.28, 41.31),  # west of the box (Tashkent)
        (106.8, 0.5),  # south of the box
    ],
    ids=["paris", "tokyo", "new_york", "sydney", "north", "west", "south"],
)
def test_no_offset_outside_china(point: tuple[float, float]) -> None:
    for func in (
        geo.wgs84_to_gcj02,
        geo.gcj02_to_wgs84,
        geo.gcj02_to_bd09,
        geo.bd09_to_gcj02,
        geo.wgs84_to_bd09,
        geo.bd09_to_wgs84,
    ):
        lon, lat = func(*point)
        assert (float(lon), float(lat)) == point, func.__name__
    assert np.allclose(geo.to_storage(*point, geo.GCJ02), geo.to_storage(*point, geo.WGS84))


def test_nan_propagates_without_disturbing_neighbours() -> None:
    lon = np.array([113.22, np.nan, 113.3])
    lat = np.array([23.40, 23.40, np.nan])
    wlon, wlat = geo.gcj02_to_wgs84(lon, lat)
    assert np.isnan(wlon[1]) and np.isnan(wlat[2])
    assert np.allclose((wlon[0], wlat[0]), [float(v) for v in geo.gcj02_to_wgs84(113.22, 23.40)])


# --- EPSG transforms --------------------------------------------------------------------------


@pytest.mark.parametrize("epsg", [4326, 4547, 3857])
def test_epsg_round_trips_match_pyproj(epsg: int) -> None:
    lon, lat = huadu_grid(40)
    source = geo.parse_crs(epsg)
    expected = pyproj.Transformer.from_crs(4490, epsg, always_xy=True).transform(lon, lat)
    x, y = geo.from_storage(lon, lat, source)
    assert np.allclose(x, expected[0], rtol=0, atol=1e-9) and np.allclose(y, expected[1], atol=1e-9)
    back = geo.to_storage(x, y, source)
    assert np.abs(np.asarray(back) - [lon, lat]).max() < 1e-9
    # through another system and back: 4326 -> 4547 -> 3857 -> 4490
    via = geo.transform_xy(lon, lat, geo.CGCS2000, geo.WGS84)
    via = geo.transform_xy(*via, geo.WGS84, geo.parse_crs(4547))
    via = geo.transform_xy(*via, geo.parse_crs(4547), geo.parse_crs(3857))
    assert (
        np.abs(np.asarray(geo.to_storage(via[0], via[1], geo.parse_crs(3857))) - [lon, lat]).max()
        < 1e-9
    )


def test_epsg4547_coordinates_of_huadu() -> None:
    # CGCS2000 / 3-degree Gauss-Kruger CM 114E: no zone prefix, false easting 500 km.
    x, y = geo.from_storage(*HUADU_CENTRE, geo.parse_crs("EPSG:4547"))
    px, py = pyproj.Transformer.from_crs(4490, 4547, always_xy=True).transform(*HUADU_CENTRE)
    assert (float(x), float(y)) == pytest.approx((px, py), abs=1e-6)
    assert 415_000 < x < 425_000 and 2_585_000 < y < 2_595_000  # pyproj: (420268, 2589052)
    lon, lat = huadu_grid(20)
    gx, gy = geo.from_storage(lon, lat, geo.parse_crs(4547))
    assert gx.min() > 390_000 and gx.max() < 455_000  # west of CM 114E: below 500 km
    assert gy.min() > 2_560_000 and gy.max() < 2_620_000


def test_to_storage_from_offsets_removes_offset_then_changes_datum() -> None:
    lon, lat = huadu_grid(30)
    wgs = geo.gcj02_to_wgs84(lon, lat)
    expected = pyproj.Transformer.from_crs(4326, 4490, always_xy=True).transform(*wgs)
    assert np.allclose(geo.to_storage(lon, lat, geo.GCJ02), expected, rtol=0, atol=1e-12)
    stored = geo.to_storage(lon, lat, geo.BD09)
    assert np.abs(np.asarray(geo.from_storage(*stored, geo.BD09)) - [lon, lat]).max() < 1e-9
    # the same point declared in the wrong datum lands hundreds of metres away
    assert metres_apart(geo.to_storage(lon, lat, geo.WGS84), stored).min() > 500
    assert np.allclose(geo.to_storage(lon, lat, geo.CRS84), geo.to_storage(lon, lat, geo.WGS84))


def test_transform_geometry_both_directions() -> None:
    ring = [(113.20, 23.38), (113.24, 23.38), (113.24, 23.42), (113.20, 23.42)]
    polygon = Polygon(ring)
    stored = geo.transform_geometry(polygon, geo.GCJ02, geo.CGCS2000)
    assert isinstance(stored, Polygon)
    ring_lon, ring_lat = np.array(ring).T
    expected = np.column_stack(geo.to_storage(ring_lon, ring_lat, geo.GCJ02))
    assert np.allclose(np.asarray(stored.exterior.coords)[:4], expected, atol=1e-12)
    back = geo.transform_geometry(stored, geo.CGCS2000, geo.GCJ02)
    assert shapely.equals_exact(back, polygon, tolerance=1e-9)
    assert shapely.hausdorff_distance(stored, polygon) > 0.002  # it did move
    projected = geo.transform_geometry(LineString(ring), geo.CGCS2000, geo.parse_crs(4547))
    assert 400_000 < projected.bounds[0] < projected.bounds[2] < 450_000


def test_transform_geometry_keeps_z_empty_and_identity() -> None:
    moved = geo.transform_geometry(Point(113.22, 23.40, 15.5), geo.WGS84, geo.parse_crs(3857))
    assert moved.has_z and moved.z == 15.5 and moved.x > 12_000_000
    empty = geo.transform_geometry(Polygon(), geo.GCJ02, geo.CGCS2000)
    assert empty.is_empty
    point = Point(113.22, 23.40)
    assert geo.transform_geometry(point, geo.GCJ02, geo.GCJ02) is point


# --- vectorisation ----------------------------------------------------------------------------


@pytest.mark.slow
def test_arrays_of_10k_points_match_the_scalar_path() -> None:
    rng = np.random.default_rng(20240601)
    lon = rng.uniform(HUADU[0] - MARGIN, HUADU[1] + MARGIN, 10_000)
    lat = rng.uniform(HUADU[2] - MARGIN, HUADU[3] + MARGIN, 10_000)
    for source in (geo.GCJ02, geo.BD09, geo.WGS84):
        vx, vy = geo.to_storage(lon, lat, source)
        assert vx.shape == vy.shape == (10_000,)
        scalar = np.array(
            [
                [float(v) for v in geo.to_storage(a, b, source)]
                for a, b in zip(lon, lat, strict=True)
            ]
        )
        # each point iterates on its own, so batch and scalar agree to the last bits
        assert np.abs(scalar - np.column_stack([vx, vy])).max() < 1e-12, source


def test_inputs_may_be_scalars_lists_or_broadcast_arrays() -> None:
    x, y = geo.to_storage(113.22, 23.40, geo.GCJ02)
    assert x.shape == () and y.shape == ()
    lx, ly = geo.to_storage([113.22, 113.3], [23.40, 23.45], geo.GCJ02)
    assert lx.shape == (2,) and float(lx[0]) == float(x) and float(ly[0]) == float(y)
    grid = np.full((3, 4), 113.22)
    gx, gy = geo.from_storage(grid, 23.40, geo.BD09)  # scalar latitude broadcasts
    assert gx.shape == gy.shape == (3, 4) and np.all(gx == gx[0, 0])
    original = np.array([113.22, 113.3])
    geo.wgs84_to_gcj02(original, [23.4, 23.4])
    assert original.tolist() == [113.22, 113.3]  # inputs are not modified in place


# --- distances --------------------------------------------------------------------------------


def test_geodesic_distance_m() -> None:
    # one degree of latitude at the equator on GRS80
    assert float(geo.geodesic_distance_m(0, 0, 0, 1)) == pytest.approx(110_574.389, abs=0.01)
    assert float(geo.geodesic_distance_m(*HUADU_CENTRE, *HUADU_CENTRE)) == 0.0
    lon, lat = huadu_grid(10)
    dist = geo.geodesic_distance_m(lon, lat, *HUADU_CENTRE)
    assert dist.shape == lon.shape
    assert np.allclose(
        dist, GEOD.inv(lon, lat, np.full_like(lon, 113.22), np.full_like(lat, 23.4))[2]
    )
    assert geo.geodesic_distance_m([[113.0, 113.1]], 23.4, 113.0, [[23.4], [23.5]]).shape == (2, 2)


@pytest.mark.parametrize("lat", [0.0, 23.4, -45.0, 60.0, 80.0])
@pytest.mark.parametrize("metres", [1.0, 250.0, 1_000.0, 50_000.0])
def test_metres_to_degrees_hint_over_estimates(lat: float, metres: float) -> None:
    hint = geo.metres_to_degrees_hint(metres, lat)
    azimuths = np.arange(0.0, 360.0, 15.0)
    n = len(azimuths)
    lons, lats, _ = GEOD.fwd(np.full(n, 113.0), np.full(n, lat), azimuths, np.full(n, metres))
    assert np.abs(lons - 113.0).max() <= hint and np.abs(lats - lat).max() <= hint
    if abs(lat) < 30:
        assert hint < 1.15 * max(np.abs(lons - 113.0).max(), np.abs(lats - lat).max())


def test_metres_to_degrees_hint_edges() -> None:
    assert geo.metres_to_degrees_hint(0.0, 23.4) == 0.0
    assert geo.metres_to_degrees_hint(1_000.0, 89.999) == 360.0
    for metres, lat in [(-1.0, 23.4), (float("nan"), 23.4), (float("inf"), 0.0), (1.0, 91.0)]:
        with pytest.raises(InvalidInput):
            geo.metres_to_degrees_hint(metres, lat)
