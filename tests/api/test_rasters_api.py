"""Raster values at a point and statistics in a polygon, against whole-raster reads."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
import shapely
from rasterio.features import geometry_mask
from shapely.geometry import mapping

# rasterio's affine arithmetic warns on every window (affine 3): not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

POLYGON = shapely.Polygon(
    [(113.20, 23.37), (113.26, 23.36), (113.27, 23.41), (113.21, 23.42), (113.20, 23.37)]
)


def _raster(district, code: str) -> str:
    path = district.scalar(
        "SELECT path FROM raster_versions WHERE layer_code = :c AND is_current", c=code
    )
    return str(district.settings.data_dir / str(path))


@pytest.mark.parametrize("code", ["dem", "flood_risk"])
def test_point_value_equals_the_pixel(api, district, code):
    with rasterio.open(_raster(district, code)) as src:
        data = src.read(1)
        to_raster = pyproj.Transformer.from_crs(4490, src.crs.to_wkt(), always_xy=True)
        to_lonlat = pyproj.Transformer.from_crs(src.crs.to_wkt(), 4490, always_xy=True)
        valid = np.argwhere(data != src.nodata)
        row, col = (int(v) for v in valid[len(valid) // 3])
        x, y = src.xy(row, col)  # pixel centre
        lon, lat = to_lonlat.transform(x, y)
        assert src.index(*to_raster.transform(lon, lat)) == (row, col)
        expected = float(data[row, col])
        nodata_cells = np.argwhere(data == src.nodata)
    resp = api.get(f"/rasters/{code}/point", params={"lon": lon, "lat": lat})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["value"] == pytest.approx(expected) and body["inside"]
    assert body["unit"] == district.catalog.layer(code).raster.unit
    assert body["pixel"] == {"row": row, "col": col}
    if len(nodata_cells):
        nrow, ncol = (int(v) for v in nodata_cells[0])
        with rasterio.open(_raster(district, code)) as src:
            nlon, nlat = to_lonlat.transform(*src.xy(nrow, ncol))
        nodata = api.get(f"/rasters/{code}/point", params={"lon": nlon, "lat": nlat}).json()
        assert nodata["value"] is None and nodata["inside"]


def test_point_outside_and_bad_input(api):
    outside = api.get("/rasters/dem/point", params={"lon": 100.0, "lat": 40.0}).json()
    assert outside["inside"] is False and outside["value"] is None
    assert api.get("/rasters/dem/point", params={"lon": "x", "lat": 23}).status_code == 400
    assert api.get("/rasters/dem/point", params={"lon": 113.2}).status_code == 400
    assert api.get("/rasters/dem/point", params={"lon": 113, "lat": 95}).status_code == 400
    assert api.get("/rasters/nope/point", params={"lon": 113, "lat": 23}).status_code == 404
    assert api.get("/rasters/building/point", params={"lon": 113, "lat": 23}).status_code == 404


def _masked_values(district, code: str, polygon: shapely.Polygon) -> np.ndarray:
    with rasterio.open(_raster(district, code)) as src:
        data = src.read(1).astype(float)
        to_raster = pyproj.Transformer.from_crs(4490, src.crs.to_wkt(), always_xy=True)
        dense = shapely.segmentize(polygon, 0.0005)
        shape = shapely.transform(dense, lambda x, y: to_raster.transform(x, y), interleaved=False)
        inside = ~geometry_mask([mapping(shape)], src.shape, src.transform)
        return data[inside & (data != src.nodata)]


@pytest.mark.parametrize("code", ["dem", "flood_risk"])
def test_polygon_stats_equal_a_whole_raster_read(api, district, code):
    values = _masked_values(district, code, POLYGON)
    resp = api.post(f"/rasters/{code}/stats", json=mapping(POLYGON))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    stats = body["bands"]["value"]
    assert stats["valid_count"] == pytest.approx(values.size, rel=0.005) and values.size > 100
    assert stats["min"] == pytest.approx(values.min())
    assert stats["max"] == pytest.approx(values.max())
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-3)
    assert stats["percentiles"]["p50"] == pytest.approx(np.percentile(values, 50), rel=1e-2)
    with rasterio.open(_raster(district, code)) as src:
        assert body["pixels_read"] < src.width * src.height / 4  # a window, not the raster
    feature = {"type": "Feature", "properties": {}, "geometry": mapping(POLYGON)}
    assert api.post(f"/rasters/{code}/stats", json=feature).json()["bands"] == body["bands"]


def test_stats_in_another_crs_and_outside(api, district):
    to_4547 = pyproj.Transformer.from_crs(4490, 4547, always_xy=True)
    projected = shapely.transform(
        shapely.segmentize(POLYGON, 0.0005),
        lambda x, y: to_4547.transform(x, y),
        interleaved=False,
    )
    lonlat = api.post("/rasters/dem/stats", json=mapping(POLYGON)).json()["bands"]["value"]
    metres = api.post("/rasters/dem/stats?crs=EPSG:4547", json=mapping(projected)).json()
    assert metres["bands"]["value"]["valid_count"] == pytest.approx(
        lonlat["valid_count"], rel=0.005
    )
    far = mapping(shapely.box(100, 40, 100.1, 40.1))
    empty = api.post("/rasters/dem/stats", json=far).json()["bands"]["value"]
    assert empty["valid_count"] == 0 and empty["mean"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"type": "Point", "coordinates": [113.2, 23.4]},
        {"type": "Polygon", "coordinates": [[[113.2, 23.4], [113.3, 23.5]]]},
        {"type": "Polygon", "coordinates": "nope"},
        {"nothing": 1},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
    ],
)
def test_stats_bad_polygons_are_400(api, body):
    assert api.post("/rasters/dem/stats", json=body).status_code == 400


def test_stats_window_is_clipped_and_bounded(api, district, monkeypatch):
    with rasterio.open(_raster(district, "dem")) as src:
        data = src.read(1)
        valid = int((data != src.nodata).sum())
    huge = mapping(shapely.box(100, 10, 130, 40))  # beyond the raster on every side
    whole = api.post("/rasters/dem/stats", json=huge).json()
    assert whole["bands"]["value"]["valid_count"] == valid
    import layers.rasters_read

    monkeypatch.setattr(layers.rasters_read, "MAX_PIXELS", 1000)
    resp = api.post("/rasters/dem/stats", json=huge)
    assert resp.status_code == 400 and "pixels" in resp.json()["detail"]
