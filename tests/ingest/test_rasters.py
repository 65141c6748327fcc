"""Raster loads: GeoTIFF -> COG -> raster_versions; versions, rollback, and refusals.

``catalog`` comes from tests/ingest/conftest.py.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rio_cogeo.cogeo import cog_validate
from sqlalchemy import Engine, text

from ingest import batches, raster_files
from ingest.pipeline import LoadRequest
from ingest.rasters import current_raster, load_raster, raster_history, rollback_raster
from schemas.catalog import Catalog
from schemas.errors import Conflict, InvalidInput, NotFound
from schemas.settings import Settings

SIZE = 200
PIXEL_M = 30.0
# upper-left corner of the test grids: central Huadu
LON0, LAT0 = 113.20, 23.46
X0, Y0 = pyproj.Transformer.from_crs(4490, 4547, always_xy=True).transform(LON0, LAT0)


@pytest.fixture(scope="module")
def cfg(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # one data folder for the module: later versions and rollbacks need the earlier files
    return settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("sibiao_data")})


def from_origin(x: float, y: float, xsize: float, ysize: float) -> Affine:
    return Affine(xsize, 0.0, x, 0.0, -ysize, y)


def dem_array(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    z = 20 + 0.8 * xx + 0.3 * yy + 5 * np.sin(xx / 9.0) + rng.normal(0, 2, (SIZE, SIZE))
    z = z.astype(np.float32)
    z[:15, :40] = -9999  # a nodata corner
    return z


def write_tif(path: Path, array: np.ndarray, *, crs: Any, transform: Any, **extra: Any) -> Path:
    bands = array[None] if array.ndim == 2 else array
    profile = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "count": bands.shape[0],
        "dtype": bands.dtype.name,
        "crs": crs,
        "transform": transform,
    }
    with rasterio.open(path, "w", **(profile | extra)) as dst:
        dst.write(bands)
    return path


def write_4547(path: Path, array: np.ndarray, **extra: Any) -> Path:
    transform = from_origin(X0, Y0, PIXEL_M, PIXEL_M)
    return write_tif(path, array, crs="EPSG:4547", transform=transform, **extra)


def load(engine: Engine, cfg: Settings, catalog: Catalog, path: Path, layer: str, **kw: Any):
    return load_raster(engine, cfg, catalog, LoadRequest(path=path, layer=layer, **kw))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def batch_row(engine: Engine, file_name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM load_batches WHERE file_name = :f ORDER BY id DESC LIMIT 1"),
            {"f": file_name},
        ).mappings()
        return dict(row.one())


def test_dem_in_4547_loads_as_a_cog_with_exact_statistics(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raster_files, "CHUNK_PIXELS", SIZE * 7)  # 29 strips: merging is tested
    array = dem_array()
    src = write_4547(tmp_path / "dem_4547.tif", array, nodata=-9999)
    result = load(engine, cfg, catalog, src, "dem", user="analyst")

    assert result.path == cfg.data_dir / "rasters" / "dem" / f"v{result.version}.tif"
    assert cog_validate(result.path, quiet=True)[0]
    with rasterio.open(result.path) as cog:
        assert cog.crs.to_epsg() == 4547  # kept, not reprojected
        assert (cog.nodata, cog.dtypes[0], cog.block_shapes[0]) == (-9999, "float32", (512, 512))
        assert cog.profile["compress"] == "deflate"
        assert np.array_equal(cog.read(1), array)
    valid = array[array != -9999].astype(np.float64)
    stats = result.statistics
    assert stats["valid_count"] == valid.size == SIZE * SIZE - 15 * 40
    assert (stats["min"], stats["max"]) == (valid.min(), valid.max())
    assert stats["mean"] == pytest.approx(valid.mean(), abs=1e-6)
    assert stats["std"] == pytest.approx(valid.std(), abs=1e-6)
    p5, p50, p95 = np.percentile(valid, [5, 50, 95])
    assert (stats["p5"], stats["p50"], stats["p95"]) == pytest.approx((p5, p50, p95), abs=1e-9)
    assert stats["percentiles_from"] == "full resolution"

    with engine.connect() as conn:
        info = current_raster(conn, "dem")
    assert info is not None and info.version == result.version and info.is_current
    assert info.path.as_posix() == f"rasters/dem/v{result.version}.tif"
    assert (info.crs, info.width, info.height, info.dtype) == ("EPSG:4547", SIZE, SIZE, "float32")
    assert (info.resolution, info.nodata) == (PIXEL_M, -9999)
    assert info.sha256 == sha256(result.path) == result.sha256
    assert info.statistics == stats
    with rasterio.open(src) as ds:
        outline = shapely.segmentize(shapely.box(*ds.bounds), PIXEL_M)  # a point every pixel
    to_4490 = pyproj.Transformer.from_crs(4547, 4490, always_xy=True)
    expected = shapely.transform(outline, lambda xy: np.column_stack(to_4490.transform(*xy.T)))
    assert info.footprint.bounds == pytest.approx(expected.bounds, abs=1e-7)
    assert info.footprint.symmetric_difference(expected).area < 1e-6 * expected.area
    batch = batch_row(engine, "dem_4547.tif")
    assert (batch["state"], batch["mode"], batch["version"]) == (
        "committed",
        "raster",
        info.version,
    )
    assert (batch["sha256"], batch["source_crs"]) == (sha256(src), "EPSG:4547")


def test_int16_in_4326_without_nodata_gets_the_catalogs_and_is_widened(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raster_files, "SAMPLE_PIXELS", 2_000)
    array = np.round(dem_array(1)).astype(np.int16)
    transform = from_origin(LON0, LAT0, 0.0003, 0.0003)
    src = write_tif(tmp_path / "dem_4326.tif", array, crs="EPSG:4326", transform=transform)
    result = load(engine, cfg, catalog, src, "dem")

    assert result.crs == "EPSG:4326" and result.nodata == -9999
    assert any("no nodata" in n and "-9999" in n for n in result.notes)
    assert any("int16 to float32 (lossless)" in n for n in result.notes)
    with rasterio.open(result.path) as cog:
        assert cog.crs.to_epsg() == 4326 and cog.dtypes[0] == "float32" and cog.nodata == -9999
        assert np.array_equal(cog.read(1), array.astype(np.float32))
    valid = array[array != -9999]
    assert result.statistics["valid_count"] == valid.size
    assert result.statistics["percentiles_from"] == "a 1:5 decimated read"
    assert valid.min() <= result.statistics["p5"] < result.statistics["p95"] <= valid.max()
    assert result.statistics["p50"] == pytest.approx(np.median(valid), rel=0.05)
    assert batch_row(engine, "dem_4326.tif")["options"]["notes"] == list(result.notes)


def test_a_file_gdal_translate_wrote_loads_as_classes(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    gdal_translate = shutil.which("gdal_translate")
    assert gdal_translate is not None, "install Debian's gdal-bin"
    classes = np.random.default_rng(2).integers(0, 6, (SIZE, SIZE))
    classes[-10:, -10:] = 255
    grid = tmp_path / "flood.asc"
    header = (
        f"ncols {SIZE}\nnrows {SIZE}\nxllcorner {X0}\nyllcorner {Y0 - SIZE * PIXEL_M}\n"
        f"cellsize {PIXEL_M}\nNODATA_value 255\n"
    )
    grid.write_text(header + "\n".join(" ".join(map(str, row)) for row in classes) + "\n")
    src = tmp_path / "flood_gdal.tif"
    subprocess.run(
        [gdal_translate, "-q", "-of", "GTiff", "-a_srs", "EPSG:4547", "-co", "COMPRESS=LZW",
         "-co", "TILED=YES", str(grid), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    with rasterio.open(src) as ds:
        assert ds.dtypes[0] == "int32"  # GDAL reads the text grid as Int32: a narrowing cast
    result = load(engine, cfg, catalog, src, "flood_risk")

    assert any("int32 to uint8 (no value changed)" in n for n in result.notes)
    with rasterio.open(result.path) as cog:
        assert (cog.dtypes[0], cog.nodata, cog.crs.to_epsg()) == ("uint8", 255, 4547)
        assert np.array_equal(cog.read(1), classes.astype(np.uint8))
    valid = classes[classes != 255]
    assert result.statistics["valid_count"] == valid.size
    assert (result.statistics["min"], result.statistics["max"]) == (0, 5)
    assert result.statistics["mean"] == pytest.approx(valid.mean(), abs=1e-6)


def test_versions_increment_one_is_current_old_ones_are_pruned_and_rollback(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    keep1 = cfg.model_copy(update={"keep_versions": 1})
    loads = []
    for i in range(3):
        classes = np.full((SIZE, SIZE), i, dtype=np.uint8)
        path = write_4547(tmp_path / f"flood_v{i}.tif", classes, nodata=255)
        loads.append(load(engine, keep1, catalog, path, "flood_risk"))
    a, b, c = (r.version for r in loads)
    assert (b, c) == (a + 1, a + 2)
    assert a in loads[2].pruned and not loads[0].path.exists()  # keep = current + 1 older
    with engine.connect() as conn:
        kept = [row["info"].version for row in raster_history(conn, "flood_risk")]
        currents = conn.execute(
            text(
                "SELECT count(*) FROM raster_versions"
                " WHERE layer_code = 'flood_risk' AND is_current"
            )
        ).scalar_one()
    assert kept == [c, b] and currents == 1

    info = rollback_raster(engine, keep1, "flood_risk", b, user="analyst")
    with engine.connect() as conn:
        current = current_raster(conn, "flood_risk")
        level = conn.execute(
            text("SELECT current_version FROM catalog_layers WHERE code = 'flood_risk'")
        ).scalar_one()
    assert info.version == current.version == level == b  # type: ignore[union-attr]
    with rasterio.open(current.file(keep1.data_dir)) as cog:  # type: ignore[union-attr]
        assert int(cog.read(1)[0, 0]) == 1
    with pytest.raises(NotFound, match=rf"kept: {b}, {c}"):
        rollback_raster(engine, keep1, "flood_risk", a)
    with pytest.raises(Conflict, match="already"):
        rollback_raster(engine, keep1, "flood_risk", b)
    with pytest.raises(InvalidInput, match="vector layer"):
        rollback_raster(engine, keep1, "road_centerline", 1)

    again = load(engine, keep1, catalog, tmp_path / "flood_v0.tif", "flood_risk")
    assert again.version == c + 1 and b in again.pruned  # current was b, the newest other is c
    with engine.connect() as conn:
        assert [r["info"].version for r in raster_history(conn, "flood_risk")] == [c + 1, c]


def _no_crs(tmp: Path) -> Path:
    return write_tif(tmp / "bad_nocrs.tif", dem_array(), crs=None,
                     transform=from_origin(X0, Y0, PIXEL_M, PIXEL_M))  # fmt: skip


def _truncated(tmp: Path) -> Path:
    noise = np.random.default_rng(3).random((600, 600)).astype(np.float32)
    full = write_4547(tmp / "full.tif", noise)
    data = full.read_bytes()
    path = tmp / "bad_truncated.tif"
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_tiff(tmp: Path) -> Path:
    path = tmp / "bad_text.tif"
    path.write_text("x,y,elevation\n113.2,23.4,12.5\n")
    return path


def _png(tmp: Path) -> Path:
    path = tmp / "bad_png.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG has no geotransform
        with rasterio.open(path, "w", driver="PNG", width=9, height=9, count=1, dtype="uint8") as d:
            d.write(np.zeros((1, 9, 9), dtype=np.uint8))
    return path


def _far_away(tmp: Path) -> Path:  # Beijing
    return write_tif(tmp / "bad_far.tif", dem_array(), crs="EPSG:4326", nodata=-9999,
                     transform=from_origin(116.3, 39.95, 0.0003, 0.0003))  # fmt: skip


def _two_bands(tmp: Path) -> Path:
    return write_4547(tmp / "bad_bands.tif", np.stack([dem_array(), dem_array()]), nodata=-9999)


def _fractional_classes(tmp: Path) -> Path:
    return write_4547(tmp / "bad_fraction.tif", np.full((SIZE, SIZE), 2.5, np.float32))


BAD = [
    (_no_crs, "dem", "declares no coordinate system; give --source-crs"),
    (_truncated, "dem", "truncated or corrupt"),
    (_not_tiff, "dem", "not a GeoTIFF"),
    (_png, "dem", "not a GeoTIFF"),
    (_far_away, "dem", "outside the district"),
    (_two_bands, "dem", "2 bands; the layer holds 1"),
    (_fractional_classes, "flood_risk", r"fractional values \(e.g. 2.5\)"),
]


@pytest.mark.parametrize(("make", "layer", "reason"), BAD, ids=[b[0].__name__[1:] for b in BAD])
def test_bad_files_are_refused_naming_the_file(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path, make: Any, layer: str,
    reason: str,
) -> None:  # fmt: skip
    path = make(tmp_path)
    with engine.connect() as conn:
        before = current_raster(conn, layer)
    with pytest.raises(InvalidInput, match=reason) as caught:
        load(engine, cfg, catalog, path, layer)
    assert caught.value.message.startswith(f"{path.name}: ")
    batch = batch_row(engine, path.name)
    assert (batch["state"], batch["message"]) == ("failed", caught.value.message)
    with engine.connect() as conn:
        after = current_raster(conn, layer)
    assert (after and after.version) == (before and before.version)
    folder = cfg.data_dir / "rasters" / layer
    assert not list(folder.glob(".*")) if folder.exists() else True  # no temporary left


def test_source_crs_labels_a_grid_without_one(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    result = load(engine, cfg, catalog, _no_crs(tmp_path), "dem", source_crs="EPSG:4547")
    with rasterio.open(result.path) as cog:
        assert cog.crs.to_epsg() == 4547
    assert result.crs == "EPSG:4547"
    with pytest.raises(InvalidInput, match="gcj02 is an offset"):
        load(engine, cfg, catalog, _no_crs(tmp_path), "dem", source_crs="gcj02")


def test_layer_codes_are_checked_before_any_batch(
    engine: Engine, cfg: Settings, catalog: Catalog, tmp_path: Path
) -> None:
    path = write_4547(tmp_path / f"dem_{secrets.token_hex(3)}.tif", dem_array(), nodata=-9999)
    with pytest.raises(NotFound, match="no layer 'no_such_layer'"):
        load(engine, cfg, catalog, path, "no_such_layer")
    with pytest.raises(InvalidInput, match="road_centerline is a vector layer"):
        load(engine, cfg, catalog, path, "road_centerline")
    with pytest.raises(InvalidInput, match="replaced as a whole"):
        load(engine, cfg, catalog, path, "dem", mode="append")
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM load_batches WHERE file_name = :f"), {"f": path.name}
        ).scalar_one()
    assert n == 0
    queued = batches.create(
        engine, layer="dem", mode="raster", file_name=path.name, user=None, district="440114"
    )
    with pytest.raises(InvalidInput, match="replaced as a whole"):
        load_raster(engine, cfg, catalog, LoadRequest(path, "dem", mode="upsert"), batch_id=queued)
    assert batch_row(engine, path.name)["state"] == "failed"  # a queued batch never hangs
