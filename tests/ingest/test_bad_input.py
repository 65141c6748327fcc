"""Files the loader must refuse: the error names the file and what is wrong, the layer unchanged.

Every test first gives ``street_lamp`` a version with rows, then feeds one broken file: a
domain error (``InvalidInput`` or ``NotFound``) must come out, never a library exception,
and the layer's version, rows and tables must be exactly as before.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from schemas.errors import InvalidInput, NotFound, SibiaoError

if TYPE_CHECKING:
    from conftest import Ingest, Maker

LAYER = "street_lamp"
NAMES = {
    "code": "部件编码",
    "state": "部件状态",
    "maintenance_unit": "养护单位",
    "road_name": "所在道路",
}


def _rows(make: Maker, n: int = 30, seed: int = 100) -> list[dict[str, Any]]:
    keep = ("code", "state", "maintenance_unit", "road_name", "lon", "lat")
    return [{k: r[k] for k in keep} for r in make.lamps(n, seed=seed)]


@pytest.fixture(scope="module")
def baseline(ingest: Ingest, make: Maker, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Give the layer a current version with rows."""
    folder = tmp_path_factory.mktemp("baseline")
    make.frame(_rows(make, 25, seed=99), NAMES).to_file(folder / "base.gpkg", driver="GPKG")
    ingest.load(folder / "base.gpkg", LAYER)


pytestmark = pytest.mark.usefixtures("baseline")


def _tables(ingest: Ingest) -> list[str]:
    with ingest.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema IN ('layers', 'staging') "
                    "AND (table_name LIKE :p OR table_schema = 'staging') ORDER BY 1"
                ),
                {"p": f"{LAYER}%"},
            ).scalars()
        )


def refused(
    ingest: Ingest,
    path: Path,
    *words: str,
    error: type[SibiaoError] = InvalidInput,
    layer: str = LAYER,
    name_file: bool = True,
    **request: Any,
) -> str:
    """Load ``path``; expect ``error`` naming the file and ``words``; the layer unchanged."""
    before, tables = ingest.snapshot(LAYER), _tables(ingest)
    with pytest.raises(SibiaoError) as caught:
        ingest.load(path, layer, **request)
    message = str(caught.value)
    assert isinstance(caught.value, error), f"{type(caught.value).__name__}: {message}"
    if name_file:
        assert path.name in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert ingest.snapshot(LAYER) == before
    assert _tables(ingest) == tables
    return message


def _shapefile(make: Maker, tmp_path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    rows = rows or _rows(make)
    src = tmp_path / "src.geojson"
    points = [{"type": "Point", "coordinates": [r["lon"], r["lat"]]} for r in rows]
    make.geojson(src, rows, points, NAMES)
    folder = tmp_path / "shp"
    folder.mkdir()
    return make.ogr2ogr(folder / "lamps.shp", src, "-f", "ESRI Shapefile", "-lco", "ENCODING=GBK")


def _member_offset(path: Path, suffix: str) -> int:
    """Return where a zip member's compressed data starts."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    raw = path.read_bytes()
    start = info.header_offset
    name_len, extra_len = np.frombuffer(raw[start + 26 : start + 30], dtype="<u2")
    return start + 30 + int(name_len) + int(extra_len)


# --- broken containers -------------------------------------------------------------------------


def test_truncated_gpkg(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    whole = tmp_path / "whole.gpkg"
    make.frame(_rows(make, 400), NAMES).to_file(whole, driver="GPKG")
    data = whole.read_bytes()
    path = tmp_path / "路灯_截断.gpkg"
    path.write_bytes(data[: len(data) * 6 // 10])
    refused(ingest, path, "truncated or corrupt")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_zip(ingest: Ingest, make: Maker, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "lamps.zip"
    if damage == "garbage":
        rng = np.random.default_rng(5)
        path.write_bytes(b"PK\x03\x04" + rng.bytes(4000))
    else:
        whole = make.zip_parts(tmp_path / "whole.zip", _shapefile(make, tmp_path))
        path.write_bytes(whole.read_bytes()[:-200])
    refused(ingest, path, "not a valid zip archive")


@pytest.mark.parametrize("cpg", [True, False], ids=["with_cpg", "without_cpg"])
def test_zip_with_a_corrupt_member(ingest: Ingest, make: Maker, tmp_path: Path, cpg: bool) -> None:
    """The central directory is intact but the .dbf's compressed bytes are damaged."""
    path = make.zip_parts(
        tmp_path / "lamps.zip", _shapefile(make, tmp_path), skip=() if cpg else (".cpg",)
    )
    data = bytearray(path.read_bytes())
    at = _member_offset(path, ".dbf") + 12
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    path.write_bytes(bytes(data))
    message = refused(ingest, path)
    assert "corrupt" in message.lower() or "crc" in message.lower(), message


@pytest.mark.parametrize(
    "member", ["../evil.shp", "..\\evil.shp", "/etc/evil.shp", "lamps/../../evil.shp"]
)
def test_zip_with_an_unsafe_path(ingest: Ingest, make: Maker, tmp_path: Path, member: str) -> None:
    shp = _shapefile(make, tmp_path)
    path = tmp_path / "lamps.zip"
    stem = member[:-4]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in shp.parent.iterdir():
            archive.writestr(zipfile.ZipInfo(stem + part.suffix), part.read_bytes())
    assert member in zipfile.ZipFile(path).namelist()
    refused(ingest, path, "unsafe path", "evil")


def test_zip_bomb(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    path = make.zip_parts(
        tmp_path / "lamps.zip",
        _shapefile(make, tmp_path),
        extra={"说明.txt": bytes(16 * 2**20)},
    )
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("说明.txt")
    assert info.file_size / info.compress_size > 100
    refused(ingest, path, "refused", "zip bomb")


@pytest.mark.parametrize(
    ("missing", "words"), [(".shp", "no .shp"), (".dbf", "no .dbf"), (".shx", "no .shx")]
)
def test_shapefile_zip_missing_a_part(
    ingest: Ingest, make: Maker, tmp_path: Path, missing: str, words: str
) -> None:
    path = make.zip_parts(tmp_path / "lamps.zip", _shapefile(make, tmp_path), skip=(missing,))
    refused(ingest, path, words)


def test_shapefile_without_prj_needs_a_source_crs(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    path = make.zip_parts(tmp_path / "lamps.zip", _shapefile(make, tmp_path), skip=(".prj",))
    refused(ingest, path, "declares no coordinate system", "--source-crs")
    result = ingest.load(path, LAYER, source_crs="EPSG:4326")
    assert (result.loaded, result.rejected) == (30, 0)


@pytest.mark.parametrize("suffix", [".csv", ".gpkg", ".geojson", ".zip", ".kml"])
def test_empty_file(ingest: Ingest, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"lamps{suffix}"
    path.write_bytes(b"")
    refused(ingest, path, "empty")


def test_missing_file(ingest: Ingest, tmp_path: Path) -> None:
    refused(ingest, tmp_path / "nowhere.gpkg", "no such file")


def test_unknown_file_type(ingest: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "路灯台账.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    refused(ingest, path, "unknown file type", ".xlsx")


# --- contents that cannot be taken ------------------------------------------------------------


def test_unknown_layer_code(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    path = tmp_path / "lamps.gpkg"
    make.frame(_rows(make), NAMES).to_file(path, driver="GPKG")
    refused(ingest, path, "street_lamps", error=NotFound, layer="street_lamps", name_file=False)


def test_geometry_type_that_does_not_fit(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    rows = _rows(make)
    lines = [shapely.LineString([(r["lon"], r["lat"]), (r["lon"] + 1e-3, r["lat"])]) for r in rows]
    path = tmp_path / "lamps.gpkg"
    make.frame(rows, NAMES, lines).to_file(path, driver="GPKG")
    message = refused(
        ingest,
        path,
        "none of its 30 rows could be loaded",
        "geometry is a LineString where street_lamp takes Point",
        "keeps its current version",
    )
    with ingest.engine.connect() as conn:
        state, stored = conn.execute(
            text(
                "SELECT state, message FROM load_batches WHERE file_name = :f "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"f": path.name},
        ).one()
    assert (state, stored) == ("failed", message)


@pytest.mark.parametrize("fmt", ["csv", "shapefile"])
def test_text_neither_utf8_nor_gbk(ingest: Ingest, make: Maker, tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(7)
    noise = b"\xff" + bytes(rng.integers(0x80, 0x100, 10, dtype=np.uint8)) + b"\xff"
    for codec in ("utf-8", "gb18030"):
        with pytest.raises(UnicodeDecodeError):
            noise.decode(codec)
    rows = _rows(make)
    if fmt == "csv":
        path = make.csv(tmp_path / "lamps.csv", rows, NAMES)
        data = path.read_bytes()
        assert "管理".encode() in data
        path.write_bytes(data.replace("管理".encode(), noise))
    else:
        for r in rows:
            r["road_name"] = "PLACEHOLDER_"
        shp = _shapefile(make, tmp_path, rows)
        dbf = shp.with_suffix(".dbf")
        dbf.write_bytes(dbf.read_bytes().replace(b"PLACEHOLDER_", noise))
        path = make.zip_parts(tmp_path / "lamps.zip", shp, skip=(".cpg",))
    refused(ingest, path, "neither UTF-8 nor GB18030")


def test_csv_with_a_header_only(ingest: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "lamps.csv"
    path.write_text("部件编码,部件状态,养护单位,经度,纬度\r\n", encoding="utf-8")
    refused(ingest, path, "0 rows", source_crs="4490")


def test_csv_without_coordinate_columns(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    path = make.csv(tmp_path / "lamps.csv", _rows(make), NAMES, x="东坐标", y="北坐标")
    refused(ingest, path, "no coordinate columns", "东坐标", source_crs="4490")


def test_geojson_without_features(ingest: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "lamps.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    refused(ingest, path, "holds no features")


@pytest.mark.parametrize(
    ("field_map", "words"),
    [
        ({"养护单位": "maintainer"}, ("--map", "maintainer", "no attribute")),
        ({"维护单位": "maintenance_unit"}, ("--map", "维护单位", "no field")),
        ({"部件编码": "pole_no"}, ("required attribute 'code'",)),
    ],
    ids=["unknown_target", "unknown_source", "required_left_unmapped"],
)
def test_field_map_problems(
    ingest: Ingest,
    make: Maker,
    tmp_path: Path,
    field_map: dict[str, str],
    words: tuple[str, ...],
) -> None:
    path = tmp_path / "lamps.gpkg"
    make.frame(_rows(make), NAMES).to_file(path, driver="GPKG")
    refused(ingest, path, *words, field_map=field_map)


# --- several layers in one file ---------------------------------------------------------------


def test_gpkg_with_several_layers(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    path = tmp_path / "lamps.gpkg"
    rows = _rows(make)
    make.frame(rows[:20], NAMES).to_file(path, layer="新华街道", driver="GPKG")
    make.frame(rows[20:], NAMES).to_file(path, layer="狮岭镇", driver="GPKG")
    refused(ingest, path, "several layers", "新华街道", "狮岭镇")


def test_zip_with_several_shapefiles(ingest: Ingest, make: Maker, tmp_path: Path) -> None:
    shp = _shapefile(make, tmp_path)
    path = make.zip_parts(tmp_path / "lamps.zip", shp)
    with zipfile.ZipFile(path, "a") as archive:
        for part in shp.parent.iterdir():
            archive.write(part, "狮岭镇/lamps" + part.suffix)
    refused(ingest, path, "several shapefiles")


def test_kml_with_several_folders_is_not_half_loaded(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    """A KML with two folders is two layers: load both, or refuse; never only the first."""
    rows = _rows(make)
    gpkg = tmp_path / "two.gpkg"
    make.frame(rows[:20], NAMES).to_file(gpkg, layer="新华街道", driver="GPKG")
    make.frame(rows[20:], NAMES).to_file(gpkg, layer="狮岭镇", driver="GPKG")
    path = make.ogr2ogr(tmp_path / "lamps.kml", gpkg, "-f", "KML")
    assert path.read_text(encoding="utf-8").count("<Folder>") == 2
    before = ingest.snapshot(LAYER)
    try:
        result = ingest.load(path, LAYER)
    except InvalidInput as exc:
        assert path.name in str(exc) and ("layers" in str(exc) or "folders" in str(exc))
        assert ingest.snapshot(LAYER) == before
    else:
        assert result.read == 30 and len(ingest.rows(LAYER)) == 30


def test_append_of_keys_all_present_changes_nothing(
    ingest: Ingest, make: Maker, tmp_path: Path
) -> None:
    """Every row rejected (here by the key check) means nothing loaded: no new version."""
    path = tmp_path / "lamps.gpkg"
    make.frame(_rows(make, 12, seed=101), NAMES).to_file(path, driver="GPKG")
    ingest.load(path, LAYER, "replace")
    refused(
        ingest, path, "none of its 12 rows could be loaded", "already in the layer", mode="append"
    )
