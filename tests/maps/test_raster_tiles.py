"""Raster tiles: PNG tiles of the DEM and flood risk coloured by their ramps; planner overlays.

A small DEM and flood-risk raster (EPSG:4490) are loaded into the maps database: the DEM is
0 m west of 113.22 and 600 m east of it, flood risk is class 4 west and class 1 east, and
the northern rows are nodata in both.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from affine import Affine
from maps_support import open_page
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from ingest.pipeline import LoadRequest
from ingest.rasters import load_raster
from layers.raster_tiles import colour_index, colour_map, load_ramps
from schemas.errors import CatalogError

WEST, NORTH, PIXEL = 113.19, 23.43, 0.0005
SIZE = 100  # 113.19..113.24, 23.38..23.43
SPLIT = 60  # column of 113.22
NODATA_ROWS = 10  # 23.425..23.43
TMS = morecantile.tms.get("WebMercatorQuad")


def _write(path: Path, array: np.ndarray, nodata: float) -> Path:
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": "EPSG:4490",
        "transform": Affine(PIXEL, 0, WEST, 0, -PIXEL, NORTH),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array[np.newaxis])
    return path


@pytest.fixture(scope="module")
def rasters(maps_db) -> Iterator[dict[str, Any]]:
    dem = np.zeros((SIZE, SIZE), dtype=np.float32)
    dem[:, SPLIT:] = 600
    dem[:NODATA_ROWS] = -9999
    risk = np.full((SIZE, SIZE), 4, dtype=np.uint8)
    risk[:, SPLIT:] = 1
    risk[:NODATA_ROWS] = 255
    folder = maps_db.folder
    loaded = {}
    for code, array, nodata in (("dem", dem, -9999), ("flood_risk", risk, 255)):
        path = _write(folder / f"{code}.tif", array, nodata)
        result = load_raster(
            maps_db.engine, maps_db.settings, maps_db.catalog, LoadRequest(path=path, layer=code)
        )
        loaded[code] = result
    yield loaded


def _tile(lon: float, lat: float, zoom: int) -> str:
    t = TMS.tile(lon, lat, zoom)
    return f"{t.z}/{t.y}/{t.x}"


def _decode(body: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG has no geotransform
        return _read_png(body)


def _read_png(body: bytes) -> np.ndarray:
    with MemoryFile(body) as mem, mem.open() as png:
        assert png.driver == "PNG" and (png.width, png.height, png.count) == (256, 256, 4)
        return png.read()


def _rgba(colour: str) -> tuple[int, ...]:
    text = colour[1:] + ("ff" if len(colour) == 7 else "")
    return tuple(int(text[i : i + 2], 16) for i in range(0, 8, 2))


def _ramp_colour(code: str, value: float) -> tuple[int, ...]:
    stop = next(s for s in load_ramps().ramps[code].stops if s.value == value)
    return _rgba(stop.color)


def test_tiles_follow_the_ramps_at_known_points(maps_server, rasters):
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        west = _tile(113.20, 23.39, 16)  # a tile wholly in the west half
        dem = http.get(f"/rasters/dem/tiles/WebMercatorQuad/{west}.png")
        assert dem.status_code == 200 and dem.headers["content-type"] == "image/png"
        assert "max-age" in dem.headers["cache-control"] and dem.headers["etag"]
        pixels = _decode(dem.content)
        centre = tuple(int(v) for v in pixels[:, 128, 128])
        assert centre == _ramp_colour("dem", 0)  # 0 m: the first stop's colour, opaque
        assert (pixels[3] == 255).all()
        east = _tile(113.235, 23.39, 16)
        top = _decode(http.get(f"/rasters/dem/tiles/WebMercatorQuad/{east}.png").content)
        assert tuple(int(v) for v in top[:, 128, 128]) == _ramp_colour("dem", 600)

        risk = _decode(http.get(f"/rasters/flood_risk/tiles/WebMercatorQuad/{west}.png").content)
        assert tuple(int(v) for v in risk[:, 128, 128]) == _ramp_colour("flood_risk", 4)
        # Nodata rows (north of 23.425) are transparent.
        north = _tile(113.20, 23.428, 17)
        empty = _decode(http.get(f"/rasters/flood_risk/tiles/WebMercatorQuad/{north}.png").content)
        assert empty[3, 128, 128] == 0
        # A tile outside the raster is transparent, not an error.
        far = _decode(
            http.get(f"/rasters/dem/tiles/WebMercatorQuad/{_tile(100, 30, 12)}.png").content
        )
        assert (far[3] == 0).all()
        # The ETag answers 304 when it still holds.
        again = http.get(
            f"/rasters/dem/tiles/WebMercatorQuad/{west}.png",
            headers={"If-None-Match": dem.headers["etag"]},
        )
        assert again.status_code == 304 and again.content == b""


def test_bad_tiles_and_unknown_rasters_are_refused(maps_server, rasters):
    with httpx.Client(base_url=maps_server, timeout=30) as http:
        for path in (
            "/rasters/dem/tiles/WebMercatorQuad/30/0/0.png",  # zoom too deep
            "/rasters/dem/tiles/WebMercatorQuad/3/8/0.png",  # row outside the matrix
            "/rasters/dem/tiles/WebMercatorQuad/3/0/-1.png",
            "/rasters/dem/tiles/WebMercatorQuad/a/0/0.png",
            "/rasters/dem/tiles/WorldCRS84Quad/3/0/0.png",
        ):
            answer = http.get(path)
            assert answer.status_code == 400, (path, answer.text)
        assert http.get("/rasters/nope/tiles/WebMercatorQuad/3/0/0.png").status_code == 404
        # A vector layer is no raster.
        assert http.get("/rasters/building/tiles/WebMercatorQuad/3/0/0.png").status_code == 404


def test_planner_map_offers_the_rasters_as_overlays_with_a_legend(
    maps_server, rasters, browser, artifacts
):
    visit = open_page(browser)
    page = visit.page
    try:
        page.goto(f"{maps_server}/maps/planner?lon=113.205&lat=23.40", wait_until="load")
        page.wait_for_function("() => window.sibiaoPage && window.sibiaoPage.ready", timeout=20_000)
        assert page.evaluate("() => Object.keys(window.sibiaoPage.rasterLayers).sort()") == [
            "dem",
            "flood_risk",
        ]
        assert page.locator(".sibiao-raster-legend").count() == 0  # optional: off at first
        page.locator(".leaflet-control-layers").hover()
        page.get_by_text("栅格 洪涝风险等级", exact=False).click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.leaflet-tile-loaded')]"
            ".some(i => i.src.includes('/rasters/flood_risk/tiles/'))",
            timeout=20_000,
        )
        legend = page.locator('.sibiao-raster-legend[data-raster="flood_risk"]')
        assert legend.count() == 1 and "extreme" in legend.inner_text()
        values = page.evaluate("() => window.sibiaoPage.rasterValues")
        assert values == {"dem": 0, "flood_risk": 4}
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "planner-rasters.png"))
        assert visit.outside == []
        assert visit.errors == [] and visit.failed == []
    finally:
        visit.close()


def test_ramps_file_is_checked_and_linear_ramps_span_their_stops(tmp_path):
    ramps = load_ramps()
    assert {"dem", "flood_risk"} <= set(ramps.ramps)
    dem = ramps.ramps["dem"]
    table = colour_map(dem)
    assert table[0] == dem.stops[0].rgba and table[255] == dem.stops[-1].rgba
    assert colour_index(np.array([-50.0, 0.0, 600.0, 9000.0]), dem).tolist() == [0, 0, 255, 255]
    bad = tmp_path / "ramps.yaml"
    for text in (
        "version: 1\nramps: {dem: {kind: linear, stops: [{value: 0, color: red}, "
        "{value: 1, color: '#000000'}]}}",
        "version: 1\nramps: {dem: {kind: linear, stops: [{value: 5, color: '#ffffff'}, "
        "{value: 1, color: '#000000'}]}}",
        "version: 1\nramps: {dem: {kind: spline, stops: []}}",
    ):
        bad.write_text(text, encoding="utf-8")
        load_ramps.cache_clear()
        with pytest.raises(CatalogError, match="ramps.yaml"):
            load_ramps(bad)
    load_ramps.cache_clear()
