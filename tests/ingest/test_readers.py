"""Loading delivered files: every reader, coordinate systems, row checks, load modes, rollback.

Each file is written here, small, with geopandas/pyogrio or with GDAL's own ``ogr2ogr``, from
rows valid for their catalog layer; what lands in the layer table is read back with SQL and
compared with the input (text exactly, coordinates against pyproj within 1e-7 degrees).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely

from ingest.versions import rollback_layer
from schemas.errors import Conflict, InvalidInput, NotFound
from schemas.geodesy import geodesic_distance_m, wgs84_to_bd09, wgs84_to_gcj02

if TYPE_CHECKING:
    from conftest import Ingest, Maker

TOL_DEG = 1e-7
URN_4547 = "urn:ogc:def:crs:EPSG::4547"
#: Field names as departments deliver them: Chinese aliases and pinyin initials.
LAMP_ZH = {
    "code": "部件编码",
    "pole_no": "灯杆编号",
    "kind": "灯具类型",
    "light_source": "光源类型",
    "power_w": "功率",
    "road_name": "所在道路",
    "state": "部件状态",
    "maintenance_unit": "养护单位",
    "installed_on": "安装日期",
}
LAMP_PINYIN = {
    "code": "BJBM",
    "pole_no": "DGBH",
    "kind": "LX",
    "light_source": "GYLX",
    "power_w": "GL",
    "road_name": "SZDL",
    "state": "ZT",
    "maintenance_unit": "YHDW",
    "installed_on": "AZRQ",
}
STATE_ZH = {"intact": "完好", "damaged": "破损", "missing": "丢失", "occupied": "占用"}


def _to_4490(epsg: int, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    t = pyproj.Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4490", always_xy=True)
    lon, lat = t.transform(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(lon), np.asarray(lat)


def _from_4490(epsg: int, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    t = pyproj.Transformer.from_crs("EPSG:4490", f"EPSG:{epsg}", always_xy=True)
    x, y = t.transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.round(np.asarray(x), 3), np.round(np.asarray(y), 3)


def _delivered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return rows as departments send them: the state as its Chinese label."""
    return [{**r, "state": STATE_ZH[r["state"]]} for r in rows]


def _points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "Point", "coordinates": [r["lon"], r["lat"]]} for r in rows]


def _assert_lamps(
    ingest: Ingest,
    result: Any,
    rows: list[dict[str, Any]],
    lon: np.ndarray,
    lat: np.ndarray,
) -> None:
    """Check that every row landed in street_lamp, its text exact and its point in place."""
    assert (result.read, result.loaded, result.rejected) == (len(rows), len(rows), 0)
    table = ingest.rows("street_lamp")
    assert set(table) == {r["code"] for r in rows}
    for row, x, y in zip(rows, lon, lat, strict=True):
        got = table[row["code"]]
        for name in ("pole_no", "road_name", "maintenance_unit", "kind", "light_source"):
            assert got[name] == row[name], (row["code"], name)
        assert got["state"] == row["state"]
        assert got["power_w"] == pytest.approx(row["power_w"])
        assert got["installed_on"] == date.fromisoformat(row["installed_on"])
        assert got["batch_id"] == result.batch_id
        assert got["geom"].geom_type == "Point"
        assert abs(got["geom"].x - x) < TOL_DEG and abs(got["geom"].y - y) < TOL_DEG, row["code"]


def _xy(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r["lon"] for r in rows]), np.array([r["lat"] for r in rows])


# --- 1. each reader -----------------------------------------------------------------------------


def test_gpkg_written_by_geopandas(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(60, seed=11)
    frame = make.frame(_delivered(rows), LAMP_ZH)
    frame["备注"] = "2024年普查"
    frame.to_file(tmp_path / "花都路灯.gpkg", driver="GPKG", layer="路灯")
    result = ingest.load(tmp_path / "花都路灯.gpkg", "street_lamp")
    assert result.format == "GPKG" and result.source_crs == "EPSG:4490"
    assert result.ignored_fields == ("备注",)
    _assert_lamps(ingest, result, rows, *_xy(rows))


def test_gpkg_written_by_ogr2ogr(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(45, seed=12)
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), _points(rows), LAMP_ZH)
    gpkg = make.ogr2ogr(tmp_path / "lamps.gpkg", src, "-f", "GPKG", "-nln", "路灯")
    result = ingest.load(gpkg, "street_lamp")
    assert result.source_crs == "EPSG:4326"
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


def test_zipped_shapefile_utf8_with_cpg(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(50, seed=13)
    folder = tmp_path / "shp"
    folder.mkdir()
    make.frame(_delivered(rows), LAMP_PINYIN).to_file(folder / "lamps.shp", encoding="UTF-8")
    assert (folder / "lamps.cpg").read_text().strip() == "UTF-8"
    path = make.zip_parts(tmp_path / "lamps.zip", folder / "lamps.shp")
    result = ingest.load(path, "street_lamp")
    assert result.format == "ESRI Shapefile" and result.encoding == "UTF-8"
    _assert_lamps(ingest, result, rows, *_xy(rows))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
def test_zipped_shapefile_utf8_chinese_field_names_cut_at_ten_bytes(
    ingest: Ingest, make: Maker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL cuts UTF-8 DBF names at 10 bytes, mid-character: 养护单位 becomes 养护单 + 1 byte.

    The repaired copy of the shapefile is removed once the load is over.
    """
    rows = make.lamps(30, seed=14)
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), _points(rows), LAMP_ZH)
    folder = tmp_path / "shp"
    folder.mkdir()
    shp = make.ogr2ogr(folder / "lamps.shp", src, "-f", "ESRI Shapefile", "-lco", "ENCODING=UTF-8")
    path = make.zip_parts(tmp_path / "lamps.zip", shp)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(Path(real_mkdtemp(*args, **kwargs)))
        return str(made[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    result = ingest.load(path, "street_lamp")
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))
    assert [p.name[:11] for p in made] == ["sibiao-shp-"]  # a repaired copy was made ...
    assert not made[0].exists() and list(scratch.iterdir()) == []  # ... and removed


def _gbk_shapefile(make: Maker, tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), _points(rows), LAMP_ZH)
    folder = tmp_path / "shp"
    folder.mkdir()
    shp = make.ogr2ogr(folder / "lamps.shp", src, "-f", "ESRI Shapefile", "-lco", "ENCODING=GBK")
    assert (folder / "lamps.cpg").read_text().strip().upper() in ("GBK", "936", "CP936")
    assert "花都区".encode("gbk") in (folder / "lamps.dbf").read_bytes()
    return shp


def test_zipped_shapefile_gbk_with_cpg(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(40, seed=15)
    shp = _gbk_shapefile(make, tmp_path, rows)
    path = make.zip_parts(tmp_path / "lamps.zip", shp, member_stem="花都区/花都区路灯")
    result = ingest.load(path, "street_lamp")
    assert result.encoding == "GBK"
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


def test_zipped_shapefile_gbk_without_cpg_is_detected(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    rows = make.lamps(40, seed=16)
    shp = _gbk_shapefile(make, tmp_path, rows)
    dbf = shp.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0  # no language driver id either: only the bytes tell
    dbf.write_bytes(bytes(data))
    path = make.zip_parts(tmp_path / "lamps.zip", shp, skip=(".cpg",))
    assert not any(n.endswith(".cpg") for n in zipfile.ZipFile(path).namelist())
    result = ingest.load(path, "street_lamp")
    assert result.encoding == "GBK"
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


def test_geojson_rfc7946(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(35, seed=17)
    gpkg = tmp_path / "lamps.gpkg"
    make.frame(_delivered(rows), LAMP_ZH).to_file(gpkg, driver="GPKG")
    path = make.ogr2ogr(tmp_path / "lamps.geojson", gpkg, "-f", "GeoJSON", "-lco", "RFC7946=YES")
    assert '"crs"' not in path.read_text(encoding="utf-8")
    result = ingest.load(path, "street_lamp")
    assert result.format == "GeoJSON"
    # RFC 7946 is WGS84 with 7 decimals: through pyproj 4490 -> 4326 -> 4490
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


def test_geojson_with_crs_member_in_4547(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(30, seed=18)
    x, y = _from_4490(4547, *_xy(rows))
    geoms = [{"type": "Point", "coordinates": [a, b]} for a, b in zip(x, y, strict=True)]
    path = make.geojson(tmp_path / "lamps.geojson", _delivered(rows), geoms, LAMP_ZH, URN_4547)
    result = ingest.load(path, "street_lamp")
    assert result.source_crs == "EPSG:4547"
    _assert_lamps(ingest, result, rows, *_to_4490(4547, x, y))


def test_geojsonseq_written_by_ogr2ogr(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(25, seed=19)
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), _points(rows), LAMP_PINYIN)
    path = make.ogr2ogr(tmp_path / "lamps.geojsonl", src, "-f", "GeoJSONSeq")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 25
    result = ingest.load(path, "street_lamp")
    assert result.format == "GeoJSONSeq"
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


def test_csv_lon_lat(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(80, seed=20)
    rows[3]["road_name"] = '新华路（东段），"北侧"'
    path = make.csv(tmp_path / "lamps.csv", _delivered(rows), LAMP_ZH)
    result = ingest.load(path, "street_lamp", source_crs="EPSG:4490")
    assert result.format == "CSV" and result.encoding == "utf-8"
    _assert_lamps(ingest, result, rows, *_xy(rows))


def test_csv_jingdu_weidu_in_gbk(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(40, seed=21)
    path = make.csv(
        tmp_path / "lamps.csv", _delivered(rows), LAMP_ZH, x="经度", y="纬度", encoding="gbk"
    )
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    result = ingest.load(path, "street_lamp", source_crs="4490")
    assert result.encoding == "gb18030"
    _assert_lamps(ingest, result, rows, *_xy(rows))


def test_csv_utf8_with_bom(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(30, seed=22)
    path = make.csv(tmp_path / "lamps.csv", _delivered(rows), LAMP_ZH, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf\xe9\x83\xa8")  # BOM, then 部件编码
    result = ingest.load(path, "street_lamp", source_crs="cgcs2000")
    _assert_lamps(ingest, result, rows, *_xy(rows))


def test_csv_x_y_in_4547_with_source_crs(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(30, seed=23)
    x, y = _from_4490(4547, *_xy(rows))
    path = make.csv(tmp_path / "lamps.csv", _delivered(rows), LAMP_ZH, x="x", y="y", coords=(x, y))
    result = ingest.load(path, "street_lamp", source_crs="EPSG:4547")
    assert result.source_crs == "EPSG:4547"
    _assert_lamps(ingest, result, rows, *_to_4490(4547, x, y))


def test_kml_written_by_ogr2ogr(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(25, seed=24)
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), _points(rows), LAMP_ZH)
    path = make.ogr2ogr(tmp_path / "lamps.kml", src, "-f", "KML")
    assert "花都区" in path.read_text(encoding="utf-8")
    result = ingest.load(path, "street_lamp")
    assert result.format == "KML"
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


def test_map_names_a_field_that_is_no_alias(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(20, seed=25)
    names = {**LAMP_ZH, "maintenance_unit": "维护单位名称"}
    path = make.csv(tmp_path / "lamps.csv", _delivered(rows), names)
    with pytest.raises(InvalidInput, match="maintenance_unit"):
        ingest.load(path, "street_lamp", source_crs="4490")
    result = ingest.load(
        path, "street_lamp", source_crs="4490", field_map={"维护单位名称": "maintenance_unit"}
    )
    _assert_lamps(ingest, result, rows, *_xy(rows))


def test_map_wins_over_an_alias(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.lamps(20, seed=26)
    frame = make.frame(_delivered(rows), LAMP_ZH)
    frame["部件状态"] = "丢失"  # an alias of state, outdated
    frame["核查状态"] = [STATE_ZH[r["state"]] for r in rows]
    frame.to_file(tmp_path / "lamps.gpkg", driver="GPKG")
    result = ingest.load(tmp_path / "lamps.gpkg", "street_lamp", field_map={"核查状态": "state"})
    assert "部件状态" in result.ignored_fields
    _assert_lamps(ingest, result, rows, *_xy(rows))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
def test_zipped_shapefile_with_english_names_cut_to_ten_bytes(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    rows = make.lamps(30, seed=27)
    folder = tmp_path / "shp"
    folder.mkdir()
    make.frame(rows).to_file(folder / "lamps.shp", encoding="UTF-8")
    path = make.zip_parts(tmp_path / "lamps.zip", folder / "lamps.shp")
    result = ingest.load(path, "street_lamp")
    assert {"maintenanc", "light_sour", "installed_"} <= set(pyogrio.read_info(path)["fields"])
    _assert_lamps(ingest, result, rows, *_xy(rows))


def test_zipped_shapefile_with_upper_case_extensions(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    rows = make.lamps(20, seed=28)
    shp = _gbk_shapefile(make, tmp_path, rows)
    path = tmp_path / "LAMPS.ZIP"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in shp.parent.iterdir():
            archive.write(part, "LUDENG" + part.suffix.upper())
    result = ingest.load(path, "street_lamp")
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


@pytest.mark.parametrize("fmt", ["kml", "shapefile", "gpkg"])
def test_three_d_coordinates_load_flat(
    ingest: Ingest, make: Maker, tmp_path: Path, fmt: str
) -> None:
    """KML from map apps carries altitudes; CAD-made shapefiles are PointZ."""
    rows = make.lamps(20, seed=29)
    geoms = [{"type": "Point", "coordinates": [r["lon"], r["lat"], 12.5]} for r in rows]
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), geoms, LAMP_ZH)
    if fmt == "kml":
        path = make.ogr2ogr(tmp_path / "lamps.kml", src, "-f", "KML")
        assert ",12.5</coordinates>" in path.read_text(encoding="utf-8")
    elif fmt == "shapefile":
        folder = tmp_path / "shp"
        folder.mkdir()
        shp = make.ogr2ogr(
            folder / "l.shp",
            src,
            "-f",
            "ESRI Shapefile",
            "-a_srs",
            "EPSG:4326",
            "-lco",
            "ENCODING=GBK",
        )
        path = make.zip_parts(tmp_path / "lamps.zip", shp)
    else:
        path = tmp_path / "lamps.gpkg"
        pyogrio.write_dataframe(pyogrio.read_dataframe(src), path)
    assert pyogrio.read_info(path)["geometry_type"] in ("Point Z", "Unknown")
    result = ingest.load(path, "street_lamp")
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))
    assert not any(shapely.has_z(r["geom"]) for r in ingest.rows("street_lamp").values())


def test_shapefile_prj_with_ellipsoidal_height_reads_as_2d(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    """ogr2ogr writes a WGS_1984_3D .prj for a 3D source, even with ``-dim XY``."""
    rows = make.lamps(20, seed=32)
    geoms = [{"type": "Point", "coordinates": [r["lon"], r["lat"], 8.0]} for r in rows]
    src = make.geojson(tmp_path / "src.geojson", _delivered(rows), geoms, LAMP_ZH)
    folder = tmp_path / "shp"
    folder.mkdir()
    shp = make.ogr2ogr(
        folder / "l.shp", src, "-f", "ESRI Shapefile", "-dim", "XY", "-lco", "ENCODING=GBK"
    )
    assert "WGS_1984_3D" in shp.with_suffix(".prj").read_text()
    result = ingest.load(make.zip_parts(tmp_path / "lamps.zip", shp), "street_lamp")
    assert result.source_crs in ("EPSG:4326", "OGC:CRS84")
    _assert_lamps(ingest, result, rows, *_to_4490(4326, *_xy(rows)))


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_dates_given_as_beijing_timestamps_keep_their_day(
    ingest: Ingest, make: Maker, tmp_path: Path, fmt: str
) -> None:
    """A web system's export says 2019-05-12T00:00:00+08:00: installed on 12 May in Huadu."""
    rows = make.lamps(20, seed=31)
    if fmt == "geojson":
        stamped = [{**r, "installed_on": r["installed_on"] + "T00:00:00+08:00"} for r in rows]
        path = make.geojson(tmp_path / "l.geojson", _delivered(stamped), _points(rows), LAMP_ZH)
    else:
        frame = make.frame(_delivered(rows), LAMP_ZH)
        frame["安装日期"] = pd.to_datetime(frame["安装日期"]).dt.tz_localize("Asia/Shanghai")
        path = tmp_path / "l.gpkg"
        frame.to_file(path, driver="GPKG")
    result = ingest.load(path, "street_lamp")
    _assert_lamps(ingest, result, rows, *_to_4490(4326 if fmt == "geojson" else 4490, *_xy(rows)))


def test_codes_delivered_as_numbers_keep_their_digits(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    """Spreadsheets turn 16-digit codes into numbers; the pattern check sees the digits."""
    rows = make.lamps(20, seed=33)
    frame = make.frame(_delivered(rows), LAMP_ZH)
    frame["部件编码"] = frame["部件编码"].astype("int64")
    frame["功率"] = frame["功率"].astype("int64")
    frame.loc[3, "部件编码"] = 44011401  # too short once a number
    frame.to_file(tmp_path / "lamps.gpkg", driver="GPKG")
    assert pyogrio.read_info(tmp_path / "lamps.gpkg")["dtypes"][0] == "int64"
    result = ingest.load(tmp_path / "lamps.gpkg", "street_lamp")
    assert (result.loaded, result.rejected) == (19, 1)
    assert ingest.rejects(result.batch_id)[4]["value"] == "44011401"
    del rows[3]
    table = ingest.rows("street_lamp")
    assert set(table) == {r["code"] for r in rows}


# --- 2. coordinate systems ----------------------------------------------------------------------


@pytest.mark.parametrize("epsg", [4547, 4326, 4490])
def test_crs_round_trip_against_pyproj(
    ingest: Ingest, make: Maker, tmp_path: Path, epsg: int
) -> None:
    rows = make.lamps(40, seed=30 + epsg)
    lon, lat = _xy(rows)
    x, y = (lon, lat) if epsg == 4490 else _from_4490(epsg, lon, lat)
    if epsg == 4326:
        x, y = np.round(x, 8), np.round(y, 8)
    geoms = [shapely.Point(a, b) for a, b in zip(x, y, strict=True)]
    make.frame(_delivered(rows), LAMP_ZH, geoms, crs=epsg).to_file(tmp_path / "l.gpkg")
    result = ingest.load(tmp_path / "l.gpkg", "street_lamp")
    assert result.source_crs == f"EPSG:{epsg}"
    _assert_lamps(ingest, result, rows, *_to_4490(epsg, x, y))
    table = ingest.rows("street_lamp")
    back = pyproj.Transformer.from_crs("EPSG:4490", f"EPSG:{epsg}", always_xy=True)
    for row, a, b in zip(rows, x, y, strict=True):
        p = table[row["code"]]["geom"]
        bx, by = back.transform(p.x, p.y)
        tol = 0.01 if epsg == 4547 else TOL_DEG  # 1 cm / 1e-7 degree
        assert abs(bx - a) < tol and abs(by - b) < tol


@pytest.mark.parametrize(
    ("source_crs", "offset"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)]
)
def test_offset_coordinates_land_on_the_wgs84_truth(
    ingest: Ingest, make: Maker, tmp_path: Path, source_crs: str, offset: Any
) -> None:
    rows = make.lamps(40, seed=40)
    truth_lon, truth_lat = _xy(rows)
    shifted = offset(truth_lon, truth_lat)
    assert geodesic_distance_m(truth_lon, truth_lat, *shifted).min() > 100  # a real offset
    path = make.csv(tmp_path / "amap.csv", _delivered(rows), LAMP_ZH, coords=shifted)
    result = ingest.load(path, "street_lamp", source_crs=source_crs)
    assert (result.loaded, result.rejected) == (40, 0)
    table = ingest.rows("street_lamp")
    got = np.array([(table[r["code"]]["geom"].x, table[r["code"]]["geom"].y) for r in rows])
    wgs_lon, wgs_lat = _from_4490_wgs84(got[:, 0], got[:, 1])
    assert geodesic_distance_m(truth_lon, truth_lat, wgs_lon, wgs_lat).max() < 0.5


def _from_4490_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:4326", always_xy=True)
    x, y = t.transform(lon, lat)
    return np.asarray(x), np.asarray(y)


# --- 3. row checks ------------------------------------------------------------------------------


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def test_row_checks_report_the_exact_rows(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = make.manholes(40)
    geoms: list[dict[str, Any] | None] = [_point(r["lon"], r["lat"]) for r in rows]
    lon, lat = rows[0]["lon"], rows[0]["lat"]
    bad: dict[int, tuple[str, str]] = {}  # 1-based row -> (field, words the reason holds)

    def edit(row: int, field: str, words: str, **values: Any) -> None:
        rows[row - 1].update(values)
        bad[row] = (field, words)

    edit(3, "maintenance_unit", "maintenance_unit is required", maintenance_unit="")
    edit(4, "state", "state is required", state=None)
    edit(5, "kind", "kind is not one of: water_supply, sewage, rainwater", kind="下水道")
    rows[6 - 1]["kind"] = "雨水井盖"  # the Chinese label of rainwater
    rows[7 - 1]["kind"] = "Rainwater"  # the English label, other case
    rows[8 - 1]["material"] = "球墨铸铁"
    edit(9, "size_mm", "size_mm is above the maximum 2000", size_mm=2500)
    edit(10, "size_mm", "size_mm is below the minimum 200", size_mm=150)
    edit(11, "size_mm", "size_mm is not an integer", size_mm="约700")
    edit(12, "code", r"code does not match ^44011401\d{8}$", code="4401140X00000012")
    edit(13, "anti_fall_net", "is not yes/no", anti_fall_net="不详")
    rows[14 - 1]["inspected_on"] = "2023年5月6日"
    edit(15, "", "geometry is a LineString where manhole_cover takes Point")
    geoms[15 - 1] = {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.001, lat]]}
    edit(16, "", "geometry is empty")
    geoms[16 - 1] = {"type": "MultiPoint", "coordinates": []}
    edit(17, "", "geometry is missing")
    geoms[17 - 1] = None
    edit(18, "", "latitude and longitude are swapped")
    geoms[18 - 1] = _point(rows[17]["lat"], rows[17]["lon"])
    edit(19, "", "outside the district")
    geoms[19 - 1] = _point(112.73, 23.40)  # 30 km west of the district's edge
    rows[20 - 1]["code"] = rows[2 - 1]["code"]
    bad[20] = ("code", f"duplicate natural key {rows[1]['code']}: same as row 2")
    rows[21 - 1]["kind"] = "sewage"  # a point given as a one-part MultiPoint is accepted
    geoms[21 - 1] = {"type": "MultiPoint", "coordinates": [[rows[20]["lon"], rows[20]["lat"]]]}
    edit(22, "", "geometry is a MultiPoint where manhole_cover takes Point")
    geoms[22 - 1] = {"type": "MultiPoint", "coordinates": [[lon, lat], [lon + 1e-4, lat]]}
    edit(23, "owner_unit", "owner_unit is longer than 100 characters", owner_unit="花都区" * 34)
    rows[24 - 1]["kind"] = "  污水井盖 "

    path = make.geojson(tmp_path / "井盖.geojson", rows, geoms)
    result = ingest.load(path, "manhole_cover")
    assert (result.read, result.loaded, result.rejected) == (40, 40 - len(bad), len(bad))

    report = ingest.rejects(result.batch_id)
    assert sorted(report) == sorted(bad)
    for row, (field, words) in bad.items():
        assert report[row]["field"] == field, (row, report[row])
        assert words in report[row]["reason"], (row, report[row])
    assert report[5]["value"] == "下水道" and report[9]["value"] == "2500"

    table = ingest.rows("manhole_cover")
    kept = [r for i, r in enumerate(rows, start=1) if i not in bad]
    assert set(table) == {r["code"] for r in kept}
    assert table[rows[6 - 1]["code"]]["kind"] == "rainwater"
    assert table[rows[7 - 1]["code"]]["kind"] == "rainwater"
    assert table[rows[8 - 1]["code"]]["material"] == "ductile_iron"
    assert table[rows[2 - 1]["code"]]["kind"] == rows[2 - 1]["kind"]  # the first of the pair
    assert table[rows[14 - 1]["code"]]["inspected_on"] == date(2023, 5, 6)
    assert table[rows[24 - 1]["code"]]["kind"] == "sewage"
    assert table[rows[1 - 1]["code"]]["anti_fall_net"] is False
    assert table[rows[2 - 1]["code"]]["anti_fall_net"] is True
    one_part = table[rows[21 - 1]["code"]]["geom"]
    assert one_part.geom_type == "Point"
    assert (one_part.x, one_part.y) == pytest.approx((rows[20]["lon"], rows[20]["lat"]), abs=1e-9)


def _building(make: Maker, i: int, lon: float, lat: float) -> dict[str, Any]:
    return {
        "code": f"440114{700000 + i:013d}",
        "name": f"迎宾花园{i}栋",
        "floors": 6 + i % 20,
        "structure": "钢筋混凝土结构" if i % 2 else "masonry_concrete",
        "use": "住宅",
        "height_m": 3.0 * (6 + i % 20),
    }


def test_polygons_promoted_repaired_or_rejected_in_a_multipolygon_layer(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    lon, lat = make.points(24, seed=50)
    rows = [_building(make, i, lon[i], lat[i]) for i in range(24)]
    geoms = [make.footprint(lon[i], lat[i], seed=i) for i in range(24)]
    geoms[1] = shapely.MultiPolygon(
        [make.footprint(lon[1], lat[1], 1), make.footprint(lon[1] + 0.001, lat[1], 2)]
    )
    geoms[4] = make.bowtie(lon[4], lat[4])  # row 5: self-intersecting
    geoms[6] = shapely.Point(lon[6], lat[6])  # row 7: wrong type
    geoms[8] = shapely.Polygon()  # row 9: empty
    rows[10]["floors"] = 0  # row 11: below the minimum
    assert not geoms[4].is_valid
    frame = make.frame(rows, geometry=geoms, crs=4490)
    frame.to_file(tmp_path / "buildings.gpkg", driver="GPKG")
    result = ingest.load(tmp_path / "buildings.gpkg", "building")
    assert (result.read, result.loaded, result.rejected) == (24, 21, 3)
    assert result.repaired == (5,)
    report = ingest.rejects(result.batch_id)
    assert sorted(report) == [7, 9, 11]
    assert "geometry is a Point where building takes MultiPolygon" in report[7]["reason"]
    assert "geometry is empty" in report[9]["reason"]
    assert report[11]["field"] == "floors" and "below the minimum 1" in report[11]["reason"]

    table = ingest.rows("building")
    for i in (0, 1, 2, 4):
        got = table[rows[i]["code"]]["geom"]
        assert got.geom_type == "MultiPolygon" and got.is_valid, i
    assert len(table[rows[0]["code"]]["geom"].geoms) == 1
    assert table[rows[0]["code"]]["geom"].equals_exact(shapely.MultiPolygon([geoms[0]]), 1e-9)
    assert len(table[rows[1]["code"]]["geom"].geoms) == 2
    repaired = table[rows[4]["code"]]["geom"]
    assert len(repaired.geoms) == 2  # the figure of eight as its two triangles
    assert repaired.area == pytest.approx(0.0003**2 / 2, rel=1e-6)
    assert table[rows[2]["code"]]["structure"] == "masonry_concrete"
    assert table[rows[1]["code"]]["structure"] == "reinforced_concrete"
    assert table[rows[1]["code"]]["use"] == "residential"


def test_polygon_layer_rejects_what_repair_would_make_multi(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    lon, lat = make.points(20, seed=51)
    rows = [
        {
            "场所编码": f"HD-BN-{i:03d}",
            "场所名称": f"花都区第{i}号应急避难场所",
            "场所类别": ("Ⅰ类（长期）", "class_2", "Ⅲ类（短期/紧急）")[i % 3],
            "场所类型": ("学校", "公园绿地", "广场", "体育场馆")[i % 4],
            "可容纳人数": 500 + 100 * i,
            "lon": lon[i],
            "lat": lat[i],
        }
        for i in range(20)
    ]
    geoms: list[Any] = [make.footprint(lon[i], lat[i], seed=i) for i in range(20)]
    geoms[2] = make.bowtie(lon[2], lat[2])  # row 3
    geoms[5] = shapely.MultiPolygon([make.footprint(lon[5], lat[5], 5)])  # row 6: one part
    geoms[8] = shapely.MultiPolygon(  # row 9: two parts
        [make.footprint(lon[8], lat[8], 8), make.footprint(lon[8] + 0.002, lat[8], 9)]
    )
    frame = make.frame(rows, geometry=geoms, crs=4490)
    frame.to_file(tmp_path / "shelters.gpkg", driver="GPKG")
    result = ingest.load(tmp_path / "shelters.gpkg", "emergency_shelter")
    assert (result.read, result.loaded, result.rejected) == (20, 18, 2)
    assert result.repaired == ()
    report = ingest.rejects(result.batch_id)
    assert sorted(report) == [3, 9]
    assert "invalid" in report[3]["reason"] and "MultiPolygon" in report[3]["reason"]
    assert "Self-intersection" in report[3]["reason"]
    assert "geometry is a MultiPolygon where emergency_shelter takes Polygon" in report[9]["reason"]
    table = ingest.rows("emergency_shelter")
    assert len(table) == 18
    assert table["HD-BN-005"]["geom"].geom_type == "Polygon"
    assert table["HD-BN-005"]["geom"].equals_exact(geoms[5].geoms[0], 1e-9)
    assert table["HD-BN-000"]["shelter_class"] == "class_1"
    assert table["HD-BN-001"]["venue"] == "park"
    assert table["HD-BN-004"]["name"] == "花都区第4号应急避难场所"


# --- 4. modes and rollback ----------------------------------------------------------------------


def _hydrants(make: Maker, serials: range, seed: int, unit: str) -> list[dict[str, Any]]:
    lon, lat = make.points(len(serials), seed)
    return [
        {
            "code": f"44011401{9000 + s:08d}",
            "kind": ("above_ground", "underground", "wall")[s % 3],
            "main_diameter_mm": 100 + 50 * (s % 4),
            "pressure_mpa": 0.3,
            "road_name": "凤凰北路",
            "state": "intact",
            "maintenance_unit": unit,
            "inspected_on": "2024-06-01",
            "lon": float(lon[i]),
            "lat": float(lat[i]),
        }
        for i, s in enumerate(serials)
    ]


def _gpkg(make: Maker, path: Path, rows: list[dict[str, Any]]) -> Path:
    make.frame(rows).to_file(path, driver="GPKG")
    return path


def test_replace_append_upsert_and_rollback(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    layer = "fire_hydrant"
    first = _hydrants(make, range(1, 21), 60, "花都区水务局")
    r1 = ingest.load(_gpkg(make, tmp_path / "a.gpkg", first), layer, "replace")
    v1 = ingest.snapshot(layer)
    assert v1.version == r1.version and len(v1.rows) == 20
    fids = {code: row["fid"] for code, row in ingest.rows(layer).items()}

    # append: keys 15..20 exist (rejected, untouched), 21..30 are added
    second = _hydrants(make, range(15, 31), 61, "花都区自来水公司")
    r2 = ingest.load(_gpkg(make, tmp_path / "b.gpkg", second), layer, "append")
    assert (r2.read, r2.loaded, r2.rejected, r2.version) == (16, 10, 6, r1.version + 1)
    report = ingest.rejects(r2.batch_id)
    assert sorted(report) == list(range(1, 7))
    assert all("already in the layer" in line["reason"] for line in report.values())
    assert report[1]["value"] == second[0]["code"] and report[1]["field"] == "code"
    table = ingest.rows(layer)
    assert len(table) == 30
    for code, fid in fids.items():
        assert table[code]["fid"] == fid and table[code]["maintenance_unit"] == "花都区水务局"
    assert {table[r["code"]]["maintenance_unit"] for r in second[6:]} == {"花都区自来水公司"}
    assert len({row["fid"] for row in table.values()}) == 30
    v2 = ingest.snapshot(layer)

    # upsert: 25..30 changed (replaced, fids kept), 31..35 new, 1..24 untouched
    third = _hydrants(make, range(25, 36), 62, "新华街道城市管理办公室")
    r3 = ingest.load(_gpkg(make, tmp_path / "c.gpkg", third), layer, "upsert")
    assert (r3.read, r3.loaded, r3.rejected) == (11, 11, 0)
    after = ingest.rows(layer)
    assert len(after) == 35
    for r in third:
        got = after[r["code"]]
        assert got["maintenance_unit"] == "新华街道城市管理办公室"
        assert (got["geom"].x, got["geom"].y) == pytest.approx((r["lon"], r["lat"]), abs=1e-9)
        if r["code"] in table:
            assert got["fid"] == table[r["code"]]["fid"]
    for code, row in table.items():
        if code not in {r["code"] for r in third}:
            assert after[code]["fid"] == row["fid"]
            assert after[code]["maintenance_unit"] == row["maintenance_unit"]
            assert after[code]["geom"].equals_exact(row["geom"], 0)
    assert len({row["fid"] for row in after.values()}) == 35

    # replace: only the new file's rows
    r4 = ingest.load(_gpkg(make, tmp_path / "d.gpkg", first[:5]), layer, "replace")
    assert set(ingest.rows(layer)) == {r["code"] for r in first[:5]}

    # rollback to the appended version: its rows, exactly, as a new version
    published = rollback_layer(ingest.engine, ingest.settings, ingest.catalog, layer, r2.version)
    assert published.version == r4.version + 1 and published.features == 30
    back = ingest.snapshot(layer)
    assert back.version == published.version
    assert _without_version(back.rows) == _without_version(v2.rows)
    assert {row["layer_version"] for row in ingest.rows(layer).values()} == {published.version}


def _without_version(rows: tuple[tuple[Any, ...], ...]) -> list[tuple[Any, ...]]:
    out = []
    for record, geom in rows:
        data = json.loads(record)
        data.pop("layer_version")
        out.append((data, geom))
    return out


def test_rollback_to_the_current_or_an_unknown_version_is_refused(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    layer = "fire_hydrant"
    result = ingest.load(
        _gpkg(make, tmp_path / "a.gpkg", _hydrants(make, range(1, 6), 63, "花都区水务局")), layer
    )
    before = ingest.snapshot(layer)
    with pytest.raises(Conflict, match="version"):
        rollback_layer(ingest.engine, ingest.settings, ingest.catalog, layer, result.version)
    with pytest.raises(NotFound, match="no version 9999"):
        rollback_layer(ingest.engine, ingest.settings, ingest.catalog, layer, 9999)
    assert ingest.snapshot(layer) == before
