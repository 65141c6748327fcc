"""Delivered source files, read back the way ingest will meet them: pyogrio, GDAL, raw bytes.

One representative catalog layer per distinct delivery (format, CRS, encoding, .cpg, field
names...) is delivered from a small synthetic frame; every file is checked against the frame it
came from and against its manifest entry, defect by defect and row by row.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import sqlite3
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
from pydantic import ValidationError
from shapely.geometry.base import BaseGeometry

from layers.registry import load_catalog
from layers.synthetic.defects import applicable_kinds
from layers.synthetic.delivery import (
    DeliveryPlan,
    DeliveryRule,
    DeliverySpec,
    FieldNaming,
    deliver,
    load_delivery_plan,
    source_names,
)
from layers.synthetic.geography import district_outline
from layers.synthetic.manifest import (
    Defect,
    DefectKind,
    Manifest,
    ManifestEntry,
    SourceEncoding,
    SourceFormat,
    TrueCrs,
    add_to_manifest,
    manifest_text,
    read_manifest,
    sha256_file,
)
from schemas.catalog import Attribute, AttributeType, Layer
from schemas.errors import ConfigurationError, InvalidInput
from schemas.geodesy import GCJ02, WGS84, SourceCrs, geodesic_distance_m, transform_geometry

CATALOG = load_catalog()
PLAN = load_delivery_plan()
DISTRICT = district_outline()
INNER = DISTRICT.buffer(-3000)
METRIC = SourceCrs.from_epsg(4547)
TRUTH = {
    TrueCrs.cgcs2000: SourceCrs.from_epsg(4490),
    TrueCrs.wgs84: WGS84,
    TrueCrs.gauss_kruger_114: METRIC,
    TrueCrs.gcj02: GCJ02,
}
CHUNKS = (90, 0, 150, 60)  # the first three make the opening batch (>= 200 rows)
ROWS = sum(CHUNKS)
SEED = 20240601
GUANGDONG_BOX = (109.6, 20.1, 117.4, 25.6)
UNENCODABLE_ROW = 7  # 0-based


# --- synthetic input ------------------------------------------------------------------------


def _values(layer: Layer, attr: Attribute, n: int, rng: np.random.Generator) -> Any:
    """Return plausible values of one attribute for n rows (keys unique, some optional nulls)."""
    k = np.arange(n)
    key = attr.name in layer.natural_key
    if attr.enum:
        values: Any = [attr.enum[i % len(attr.enum)].value for i in k]
    elif attr.type is AttributeType.string:
        if key:
            values = [f"K{i:07d}" for i in k]
        elif attr.pattern:
            values = [f"P{i:07d}" for i in k]
        else:
            values = [f"花都{attr.zh}{i}"[: attr.max_length or 60] for i in k]
            if n > UNENCODABLE_ROW:
                values[UNENCODABLE_ROW] = "大㘵村"  # a real Huadu village name GBK cannot hold
    elif attr.type is AttributeType.integer:
        low = int(attr.min or 0)
        high = int(min(attr.max if attr.max is not None else 10_000, low + 1_000_000))
        values = k + low if key else rng.integers(low, high + 1, n)
    elif attr.type is AttributeType.float:
        values = np.round(rng.uniform(attr.min or 0.0, attr.max or 500.0, n), 2)
    elif attr.type is AttributeType.boolean:
        values = k % 3 == 0
    elif attr.type is AttributeType.date:
        values = pd.Timestamp("2019-03-01") + pd.to_timedelta(k, "D")
    else:
        values = pd.Timestamp("2019-03-01 08:00") + pd.to_timedelta(k, "h")
    series = pd.Series(values, dtype=object)
    if not attr.required:
        series[k % 11 == 5] = None
    return series


def make_frame(layer: Layer, n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """Return n rows of a layer inside the district, in EPSG:4547, canonical columns."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = INNER.bounds
    x = rng.uniform(x0, x1, n * 3)
    y = rng.uniform(y0, y1, n * 3)
    inside = shapely.contains_xy(INNER, x, y)
    x, y = x[inside][:n], y[inside][:n]
    kind = layer.geometry.single.value
    if kind == "Polygon":
        geoms = shapely.box(x - 15, y - 10, x + 15, y + 10)
    elif kind == "LineString":
        geoms = shapely.linestrings(np.stack([np.c_[x, y], np.c_[x + 40, y + 25]], axis=1))
    else:
        geoms = shapely.points(x, y)
    if layer.geometry.is_multi:
        geoms = (
            shapely.multipolygons(geoms, indices=np.arange(n))
            if kind == "Polygon"
            else (
                shapely.multilinestrings(geoms, indices=np.arange(n))
                if kind == "LineString"
                else shapely.multipoints(geoms, indices=np.arange(n))
            )
        )
    data = {a.name: _values(layer, a, n, rng) for a in layer.attributes}
    return gpd.GeoDataFrame(data, geometry=geoms, crs=4547)


def chunked(frame: gpd.GeoDataFrame, sizes: tuple[int, ...] = CHUNKS) -> list[gpd.GeoDataFrame]:
    """Return the frame cut into chunks of the given sizes (0 gives an empty chunk)."""
    bounds = np.cumsum((0, *sizes))
    return [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


# --- which layers -----------------------------------------------------------------------------


def _variant(spec: DeliverySpec, layer: Layer) -> tuple[Any, ...]:
    """Return what makes two deliveries different to a reader (lines kept apart)."""
    return (
        layer.geometry.single.value == "LineString",
        spec.format,
        spec.crs,
        spec.encoding,
        spec.cpg,
        spec.crs_member,
        spec.field_names,
        spec.coordinate_columns,
    )


@cache
def representatives() -> tuple[str, ...]:
    """Return one layer per distinct delivery, the one with most defect kinds."""
    best: dict[tuple[Any, ...], Layer] = {}
    for layer in CATALOG.vector_layers:
        spec = PLAN.resolve(layer)
        kinds = len(applicable_kinds(layer, geographic=spec.crs.is_geographic))
        current = best.get(_variant(spec, layer))
        if current is None:
            best[_variant(spec, layer)] = layer
            continue
        current_kinds = len(
            applicable_kinds(current, geographic=PLAN.resolve(current).crs.is_geographic)
        )
        if kinds > current_kinds:
            best[_variant(spec, layer)] = layer
    return tuple(sorted(layer.code for layer in best.values()))


@pytest.fixture(scope="module")
def delivered(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, tuple[Layer, gpd.GeoDataFrame, ManifestEntry]]]:
    """Deliver every representative layer once into one output folder."""
    out = tmp_path_factory.mktemp("delivery")
    result = {}
    for i, code in enumerate(representatives()):
        layer = CATALOG.layer(code)
        frame = make_frame(layer, ROWS, seed=i)
        entry = deliver(layer, chunked(frame), out, plan=PLAN, seed=SEED)
        result[code] = (layer, frame, entry)
    return out, result


# --- reading back -----------------------------------------------------------------------------


def dataset_path(out: Path, entry: ManifestEntry) -> str:
    """Return the GDAL path of the dataset in a delivered file."""
    path = (out / entry.file).resolve()
    return f"/vsizip/{path}/{entry.member}" if entry.member else str(path)


def read_encoding(entry: ManifestEntry) -> str | None:
    """Return the encoding a reader who knows the truth passes to pyogrio."""
    hidden_gbk = entry.format in (SourceFormat.shapefile, SourceFormat.csv) and not entry.has_cpg
    return "gbk" if hidden_gbk and entry.encoding is SourceEncoding.gbk else None


def read_source(out: Path, entry: ManifestEntry) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a delivered file with pyogrio: canonical columns and raw geometries (file CRS)."""
    frame = pyogrio.read_dataframe(dataset_path(out, entry), encoding=read_encoding(entry))
    if entry.coordinate_columns is not None:
        x, y = (pd.to_numeric(frame[c]).to_numpy() for c in entry.coordinate_columns)
        geoms = shapely.points(x, y)
    else:
        geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    attrs = frame[list(entry.field_mapping)].rename(columns=entry.field_mapping)
    return attrs.reset_index(drop=True), geoms


def norm(value: Any, attr: Attribute) -> Any:
    """Return a value in a form every format agrees on; None for blank."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value.strip() == "":
        return None
    kind = attr.type
    if kind is AttributeType.string:
        return str(value)
    if kind is AttributeType.integer:
        return int(float(value))
    if kind is AttributeType.float:
        return round(float(value), 6)
    if kind is AttributeType.boolean:
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "t", "yes")
        return bool(value)
    stamp = pd.Timestamp(value)
    return str(stamp.date()) if kind is AttributeType.date else stamp.strftime("%Y-%m-%d %H:%M")


def expected_in_file_crs(frame: gpd.GeoDataFrame, entry: ManifestEntry) -> list[BaseGeometry]:
    """Return the input geometries moved to the file's true CRS, one by one."""
    return [transform_geometry(g, METRIC, TRUTH[entry.crs]) for g in frame.geometry]


def to_metric(geom: BaseGeometry, entry: ManifestEntry) -> BaseGeometry:
    """Return a file geometry back in EPSG:4547, knowing the truth."""
    return transform_geometry(geom, TRUTH[entry.crs], METRIC)


def tolerance(entry: ManifestEntry) -> float:
    """Return how far a written coordinate may be from the truth, in file units."""
    return 2e-7 if entry.crs.is_geographic else 2e-3


def key_of(attrs: pd.DataFrame, layer: Layer, i: int) -> tuple[Any, ...]:
    """Return the natural key of a row (0-based) in normalized form."""
    return tuple(norm(attrs[k].iat[i], layer.attribute(k)) for k in layer.natural_key)


# --- plan -------------------------------------------------------------------------------------


def test_plan_resolves_every_vector_layer_and_names_only_real_things() -> None:
    departments = {layer.department for layer in CATALOG.layers}
    assert set(PLAN.departments) <= departments
    assert all(CATALOG.has_layer(code) for code in PLAN.layers)
    specs = {layer.code: PLAN.resolve(layer) for layer in CATALOG.vector_layers}
    assert len(specs) == len(CATALOG.vector_layers)
    for code, spec in specs.items():
        if spec.format is SourceFormat.csv:
            assert CATALOG.layer(code).geometry.value == "Point"
    with pytest.raises(ConfigurationError):
        PLAN.resolve(CATALOG.raster_layers[0])


def test_plan_covers_every_kind_of_delivery() -> None:
    specs = [PLAN.resolve(layer) for layer in CATALOG.vector_layers]
    formats = {s.format for s in specs}
    assert formats >= set(SourceFormat) - {SourceFormat.cog}
    assert {s.crs for s in specs} == set(TrueCrs)
    shp = [s for s in specs if s.format is SourceFormat.shapefile]
    assert any(s.encoding is SourceEncoding.gbk and s.cpg for s in shp)
    assert any(s.encoding is SourceEncoding.gbk and s.cpg is None for s in shp)
    csv = [s for s in specs if s.format is SourceFormat.csv]
    assert {s.encoding for s in csv} == set(SourceEncoding)
    assert any(s.coordinate_columns == ("经度", "纬度") for s in csv)
    assert any(s.coordinate_columns in (("lon", "lat"), ("x", "y")) for s in csv)
    assert any(s.format is SourceFormat.geojson and s.crs_member for s in specs)
    assert any(s.format is SourceFormat.geojson and not s.crs_member for s in specs)
    assert {s.field_names for s in specs} == set(FieldNaming)
    gcj = [s for s in specs if s.crs is TrueCrs.gcj02]
    assert 1 <= len(gcj) <= 8 and {s.declared_epsg for s in gcj} <= {4326, None}


def test_plan_rejects_deliveries_no_department_could_make() -> None:
    with pytest.raises(ValidationError):
        DeliveryRule(format=SourceFormat.geojson, encoding=SourceEncoding.gbk)
    with pytest.raises(ValidationError):
        DeliveryRule(format=SourceFormat.gpkg, cpg="936")
    base = PLAN.model_dump()
    polygon = next(lyr for lyr in CATALOG.vector_layers if "Polygon" in lyr.geometry.value)
    as_csv = {"format": "csv", "coordinate_columns": ["x", "y"]}
    plan = DeliveryPlan.model_validate(base | {"layers": {polygon.code: as_csv}})
    with pytest.raises(ConfigurationError, match="CSV needs a Point layer"):
        plan.resolve(polygon)
    rfc_in_metres = {"format": "geojson", "crs": "EPSG:4547", "crs_member": False}
    plan = DeliveryPlan.model_validate(base | {"layers": {polygon.code: rfc_in_metres}})
    with pytest.raises(ConfigurationError, match="RFC 7946"):
        plan.resolve(polygon)


def test_shapefile_field_names_fit_ten_bytes_and_stay_unique() -> None:
    for layer in CATALOG.vector_layers:
        spec = PLAN.resolve(layer)
        names = source_names(layer, spec)
        assert len({n.casefold() for n in names.values()}) == len(names)
        if spec.format is SourceFormat.shapefile:
            assert all(len(n.encode(spec.encoding.value)) <= 10 for n in names.values())
        if spec.field_names is FieldNaming.chinese:
            assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names.values())


# --- every delivered file ---------------------------------------------------------------------


@pytest.mark.parametrize("code", representatives())
def test_file_matches_manifest_entry(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    assert entry.rows == ROWS == len(read_source(out, entry)[0])
    assert entry.sha256 == sha256_file(out / entry.file)
    assert sorted(entry.field_mapping.values()) == sorted(a.name for a in layer.attributes)
    info = pyogrio.read_info(dataset_path(out, entry), encoding=read_encoding(entry))
    columns = set(entry.field_mapping) | set(entry.coordinate_columns or ())
    assert set(info["fields"]) == columns
    declared = pyproj.CRS(info["crs"]).to_epsg() if info["crs"] else None
    assert (None if declared is None else f"EPSG:{declared}") == entry.declared_crs
    kinds = set(applicable_kinds(layer, geographic=entry.crs.is_geographic))
    assert {d.kind for d in entry.defects} == kinds  # >= 200 rows: every applicable kind
    assert len(entry.defects) < 0.1 * ROWS


@pytest.mark.parametrize("code", representatives())
def test_each_recorded_defect_is_in_the_file(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    attrs, raw = read_source(out, entry)
    truth = expected_in_file_crs(frame, entry)
    for defect in entry.defects:
        i = defect.row - 1
        if defect.kind is DefectKind.self_intersection:
            assert not shapely.is_valid(raw[i])
            assert "Self-intersection" in shapely.is_valid_reason(raw[i])
            here = shapely.box(*to_metric(raw[i], entry).bounds).centroid
            assert here.distance(shapely.box(*frame.geometry.iat[i].bounds).centroid) < 0.5
        elif defect.kind is DefectKind.duplicate_key:
            assert isinstance(defect.detail, int) and defect.detail < defect.row
            assert defect.detail not in {d.row for d in entry.defects}  # copied from a clean row
            assert key_of(attrs, layer, i) == key_of(attrs, layer, defect.detail - 1)
            assert key_of(attrs, layer, i) != key_of(frame, layer, i)
        elif defect.kind is DefectKind.missing_required:
            assert defect.field is not None and layer.attribute(defect.field).required
            assert norm(attrs[defect.field].iat[i], layer.attribute(defect.field)) is None
        elif defect.kind is DefectKind.bad_enum:
            assert defect.field is not None
            assert attrs[defect.field].iat[i] == defect.detail
            assert defect.detail not in layer.attribute(defect.field).enum_values
        elif defect.kind is DefectKind.outside_district:
            moved = to_metric(raw[i], entry)
            assert not moved.intersects(DISTRICT)
            shift = moved.centroid.distance(frame.geometry.iat[i].centroid)
            assert isinstance(defect.detail, int) and abs(shift - defect.detail) < 1.0
            assert 20_000 <= defect.detail <= 50_000  # test geometries are small
            lon, lat = transform_geometry(moved.centroid, METRIC, WGS84).coords[0]
            lon0, lat0, lon1, lat1 = GUANGDONG_BOX
            assert lon0 < lon < lon1 and lat0 < lat < lat1
        elif defect.kind is DefectKind.swapped_latlon:
            assert entry.crs.is_geographic
            x, y = truth[i].coords[0]
            assert raw[i].coords[0] == pytest.approx((y, x), abs=tolerance(entry))


@pytest.mark.parametrize("code", representatives())
def test_rows_are_exactly_the_input_except_recorded_defects(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    attrs, raw = read_source(out, entry)
    truth = expected_in_file_crs(frame, entry)
    defects = {d.row - 1: d for d in entry.defects}
    lost = {(u.row, u.field) for u in entry.unencodable}
    geometry_kinds = {
        DefectKind.self_intersection,
        DefectKind.outside_district,
        DefectKind.swapped_latlon,
    }
    keys: set[tuple[Any, ...]] = set()
    for i in range(ROWS):
        defect = defects.get(i)
        touched = set()
        if defect is not None and defect.field is not None:
            touched.add(defect.field)
        if defect is not None and defect.kind is DefectKind.duplicate_key:
            touched.update(layer.natural_key)
        for attr in layer.attributes:
            if attr.name not in touched:
                got, want = attrs[attr.name].iat[i], frame[attr.name].iat[i]
                if (i + 1, attr.name) in lost:
                    want = want.encode("gbk", errors="replace").decode("gbk")  # '?' instead
                assert norm(got, attr) == norm(want, attr), (i + 1, attr.name, got, want)
        if defect is None or defect.kind not in geometry_kinds:
            assert shapely.is_valid(raw[i])
            assert shapely.hausdorff_distance(raw[i], truth[i]) < tolerance(entry), i + 1
        if defect is None:
            for attr in layer.attributes:
                value = norm(attrs[attr.name].iat[i], attr)
                assert value is not None or not attr.required
                assert value is None or not attr.enum or value in attr.enum_values
            assert to_metric(raw[i], entry).intersects(DISTRICT)
            key = key_of(attrs, layer, i)
            assert key not in keys
            keys.add(key)


def gdal_source_args(out: Path, entry: ManifestEntry) -> list[bytes]:
    """Return ogr2ogr/ogrinfo source arguments (bytes: CSV open options in the file's bytes)."""
    args = [dataset_path(out, entry).encode()]
    if entry.coordinate_columns is not None:
        codec = "gbk" if entry.encoding is SourceEncoding.gbk else "utf-8"
        x, y = entry.coordinate_columns
        args += [b"-oo", b"X_POSSIBLE_NAMES=" + x.encode(codec)]
        args += [b"-oo", b"Y_POSSIBLE_NAMES=" + y.encode(codec)]
    if entry.format is SourceFormat.shapefile and read_encoding(entry) == "gbk":
        args += [b"--config", b"SHAPE_ENCODING", b"CP936"]
    return args


def layer_srs_epsg(ogrinfo_text: str) -> int | None:
    """Return the EPSG code of the WKT that ``ogrinfo -so`` prints, or None."""
    match = re.search(
        r"Layer SRS WKT:\n(.*?)\n(?:Data axis|FID Column|Geometry Column|\w+:)", ogrinfo_text, re.S
    )
    if match is None or match.group(1).strip() == "(unknown)":
        return None
    return pyproj.CRS.from_wkt(match.group(1)).to_epsg()


@pytest.mark.parametrize("code", representatives())
def test_gdal_command_line_reads_the_file(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    source = gdal_source_args(out, entry)
    run = subprocess.run(
        [b"ogr2ogr", b"-f", b"GeoJSON", b"/vsistdout/", *source], capture_output=True, check=True
    )
    text_codec = (
        "gbk" if entry.format is SourceFormat.csv and entry.encoding.value == "gbk" else "utf-8"
    )
    collection = json.loads(run.stdout.decode(text_codec))
    features = collection["features"]
    assert len(features) == ROWS
    _, raw = read_source(out, entry)
    for i in (0, ROWS // 2, ROWS - 1):
        got = shapely.geometry.shape(features[i]["geometry"])
        assert shapely.hausdorff_distance(got, raw[i]) < tolerance(entry)
    clean = next(i for i in range(ROWS) if i + 1 not in {d.row for d in entry.defects})
    chinese = [
        a
        for a in layer.attributes
        if isinstance(frame[a.name].iat[clean], str)
        and re.search("[\u4e00-\u9fff]", frame[a.name].iat[clean])
    ]
    for attr in chinese:
        assert (
            features[clean]["properties"][entry.source_field(attr.name)]
            == frame[attr.name].iat[clean]
        )
    info = subprocess.run(
        [b"ogrinfo", b"-so", b"-al", b"-ro", *source], capture_output=True, check=True
    )
    declared = layer_srs_epsg(info.stdout.decode(text_codec, errors="replace"))
    assert (None if declared is None else f"EPSG:{declared}") == entry.declared_crs


# --- encodings, GCJ-02 ------------------------------------------------------------------------


def _codes(predicate: Any) -> list[str]:
    """Return the representative layers whose delivery satisfies a predicate."""
    return [c for c in representatives() if predicate(PLAN.resolve(CATALOG.layer(c)))]


def _first_chinese(layer: Layer, frame: gpd.GeoDataFrame) -> tuple[Attribute, str]:
    """Return a string attribute and its Chinese value in the first row."""
    for attr in layer.attributes:
        value = frame[attr.name].iat[0]
        if isinstance(value, str) and re.search("[\u4e00-\u9fff]", value):
            return attr, value
    raise AssertionError(f"{layer.code} has no Chinese value in row 1")


@pytest.mark.parametrize(
    "code", _codes(lambda s: s.format is SourceFormat.shapefile and s.encoding.value == "gbk")
)
def test_gbk_shapefile_bytes_and_cpg(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    with zipfile.ZipFile(out / entry.file) as zf:
        names = zf.namelist()
        dbf = zf.read(f"{layer.code}.dbf")
        cpg = zf.read(f"{layer.code}.cpg") if f"{layer.code}.cpg" in names else None
    assert (cpg is not None) == entry.has_cpg
    attr, value = _first_chinese(layer, frame)
    assert value.encode("gbk") in dbf and value.encode("utf-8") not in dbf
    assert entry.source_field(attr.name).encode("gbk") in dbf[:4096]  # field descriptors
    row_1 = pyogrio.read_dataframe(dataset_path(out, entry), max_features=1)
    source = entry.source_field(attr.name)
    if cpg is not None:
        assert cpg.decode("ascii") in ("936", "GBK", "CP936")
        assert row_1[source].iat[0] == value  # GDAL honours the .cpg
    else:
        assert dbf[29] == 0  # no language driver id either: nothing says GBK
        assert source not in row_1.columns or row_1[source].iat[0] != value  # read as Latin-1
        fixed = pyogrio.read_dataframe(dataset_path(out, entry), max_features=1, encoding="gbk")
        assert fixed[source].iat[0] == value


@pytest.mark.parametrize("code", representatives())
def test_values_gbk_cannot_hold_are_listed(delivered: Any, code: str) -> None:
    _, result = delivered
    layer, frame, entry = result[code]
    lost = {(u.row, u.field, u.value) for u in entry.unencodable}
    if entry.encoding is not SourceEncoding.gbk:
        assert not lost
        return
    blanked = {(d.row, d.field) for d in entry.defects}
    expected = {
        (UNENCODABLE_ROW + 1, a.name, "大㘵村")
        for a in layer.attributes
        if frame[a.name].iat[UNENCODABLE_ROW] == "大㘵村"
        and (UNENCODABLE_ROW + 1, a.name) not in blanked
    }
    assert expected and lost == expected


@pytest.mark.parametrize("code", _codes(lambda s: s.format is SourceFormat.csv))
def test_csv_bytes_header_and_bom(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    data = (out / entry.file).read_bytes()
    assert data.startswith(codecs.BOM_UTF8) == (entry.encoding is SourceEncoding.utf8_bom)
    codec = entry.encoding.value
    text = data.decode(codec)
    header = text.splitlines()[0].split(",")
    assert header == [*entry.field_mapping, *(entry.coordinate_columns or ())]
    assert len(text.splitlines()) == ROWS + 1
    attr, value = _first_chinese(layer, frame)
    assert value.encode(codec.replace("-sig", "")) in data
    if entry.encoding is SourceEncoding.gbk:
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")


@pytest.mark.parametrize("code", _codes(lambda s: s.crs is TrueCrs.gcj02))
def test_gcj02_files_sit_hundreds_of_metres_off(delivered: Any, code: str) -> None:
    out, result = delivered
    layer, frame, entry = result[code]
    assert entry.declared_crs in ("EPSG:4326", None)
    _, raw = read_source(out, entry)
    skip = {d.row - 1 for d in entry.defects}
    rows = [i for i in range(ROWS) if i not in skip]
    lon, lat = (np.array([raw[i].centroid.coords[0][j] for i in rows]) for j in (0, 1))
    truth = [transform_geometry(frame.geometry.iat[i].centroid, METRIC, WGS84) for i in rows]
    offset = geodesic_distance_m(lon, lat, [p.x for p in truth], [p.y for p in truth])
    assert offset.min() > 300 and offset.max() < 700


# --- determinism, chunks, manifest -----------------------------------------------------------


def test_same_input_and_seed_give_identical_bytes(delivered: Any, tmp_path: Path) -> None:
    out, result = delivered
    one_per_format: dict[SourceFormat, str] = {}
    for code, (_, _, entry) in result.items():
        one_per_format.setdefault(entry.format, code)
    assert len(one_per_format) == 5
    for code in one_per_format.values():
        layer, frame, entry = result[code]
        again = deliver(layer, chunked(frame), tmp_path, plan=PLAN, seed=SEED, record=False)
        assert again == entry
        assert sha256_file(tmp_path / again.file) == entry.sha256
        other = deliver(layer, chunked(frame), tmp_path / "other", plan=PLAN, seed=SEED + 1)
        assert other.defects != entry.defects and other.sha256 != entry.sha256
        _assert_no_clock_in(out / entry.file, entry)


def _assert_no_clock_in(path: Path, entry: ManifestEntry) -> None:
    """Check the dates GDAL and zip would stamp from the clock are the fixed ones."""
    if entry.format is SourceFormat.gpkg:
        with closing(sqlite3.connect(path)) as db:
            (stamp,) = db.execute("SELECT last_change FROM gpkg_contents").fetchone()
        assert stamp == "2025-01-01T00:00:00.000Z"
    if entry.format is SourceFormat.shapefile:
        with zipfile.ZipFile(path) as zf:
            assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
            dbf = zf.read(entry.layer + ".dbf")
        assert dbf[1:4] == bytes([2025 - 1900, 1, 1])


def test_chunks_keep_their_order_and_may_be_empty(tmp_path: Path) -> None:
    layer = CATALOG.layer(_codes(lambda s: s.format is SourceFormat.gpkg)[0])
    frame = make_frame(layer, 120, seed=7)
    entry = deliver(layer, chunked(frame, (0, 40, 0, 0, 80, 0)), tmp_path, plan=PLAN, seed=1)
    attrs, _ = read_source(tmp_path, entry)
    first = layer.natural_key[0]
    dup_rows = {d.row - 1 for d in entry.defects_of(DefectKind.duplicate_key)}
    for i in range(120):
        if i not in dup_rows:
            assert norm(attrs[first].iat[i], layer.attribute(first)) == norm(
                frame[first].iat[i], layer.attribute(first)
            )
    for kind in (SourceFormat.gpkg, SourceFormat.shapefile, SourceFormat.csv):
        code = _codes(lambda s, kind=kind: s.format is kind)[0]
        nothing = CATALOG.layer(code)
        for chunks in ([], [make_frame(nothing, 5).iloc[:0]]):
            empty = deliver(nothing, chunks, tmp_path / "empty", plan=PLAN, seed=1)
            assert empty.rows == 0 and empty.defects == ()
            path = dataset_path(tmp_path / "empty", empty)
            back = pyogrio.read_dataframe(path, encoding=read_encoding(empty))
            assert len(back) == 0
            assert set(empty.field_mapping) <= set(back.columns)


def test_chunks_must_be_metric_with_known_columns(tmp_path: Path) -> None:
    layer = CATALOG.layer(representatives()[0])
    frame = make_frame(layer, 10)
    with pytest.raises(InvalidInput, match="EPSG:4547"):
        deliver(layer, [frame.to_crs(4490)], tmp_path, plan=PLAN, seed=1)
    with pytest.raises(InvalidInput, match="unknown columns"):
        deliver(layer, [frame.assign(surprise=1)], tmp_path, plan=PLAN, seed=1)
    assert not any((tmp_path / "sources").iterdir())  # no half-written file is left
    assert not (tmp_path / "manifest.json").exists()


def test_manifest_is_canonical_and_round_trips(delivered: Any, tmp_path: Path) -> None:
    out, result = delivered
    manifest = read_manifest(out)
    assert [e.layer for e in manifest.entries] == sorted(result)
    assert all(manifest.entry(code) == result[code][2] for code in result)
    assert (out / "manifest.json").read_text(encoding="utf-8") == manifest_text(manifest)
    assert Manifest.model_validate_json(manifest_text(manifest)) == manifest
    first = manifest.entries[0]
    add_to_manifest(tmp_path, first)
    add_to_manifest(tmp_path, first.model_copy(update={"rows": 999}))
    again = read_manifest(tmp_path / "manifest.json")
    assert len(again.entries) == 1 and again.entries[0].rows == 999
    cog = ManifestEntry(
        layer="dem",
        file="sources/dem.tif",
        format=SourceFormat.cog,
        driver="GTiff",
        crs=TrueCrs.gauss_kruger_114,
        declared_crs="EPSG:4547",
        sha256="0" * 64,
    )
    assert read_manifest(add_to_manifest(tmp_path, cog) and tmp_path).entry("dem") == cog


def test_manifest_models_refuse_inconsistent_records() -> None:
    with pytest.raises(ValidationError):
        Defect(row=3, kind=DefectKind.missing_required)  # which field?
    with pytest.raises(ValidationError):
        Defect(row=3, kind=DefectKind.duplicate_key, detail=3)  # not an earlier row
    with pytest.raises(ValidationError):
        Defect(row=3, kind=DefectKind.bad_enum, field="kind", detail=7)
    good = Defect(row=5, kind=DefectKind.swapped_latlon)
    entry = {
        "layer": "x",
        "file": "sources/x.csv",
        "format": SourceFormat.csv,
        "driver": "CSV",
        "crs": TrueCrs.gcj02,
        "declared_crs": None,
        "coordinate_columns": ("lon", "lat"),
        "rows": 4,
        "sha256": "a" * 64,
    }
    with pytest.raises(ValidationError):
        ManifestEntry.model_validate(entry | {"defects": (good,)})  # row 5 of 4
    with pytest.raises(ValidationError):
        ManifestEntry.model_validate(entry | {"coordinate_columns": None})
    assert ManifestEntry.model_validate(entry | {"rows": 5, "defects": (good,)}).rows == 5


# --- volume (timings belong in bench/generate.py, not in tests) -------------------------------


@pytest.mark.slow
def test_three_hundred_thousand_points_stream_through(tmp_path: Path) -> None:
    layer = CATALOG.layer(
        _codes(lambda s: s.format is SourceFormat.gpkg and s.crs is TrueCrs.gcj02)[0]
    )
    n = 300_000
    small = make_frame(layer, 1000)
    frame = small.iloc[np.arange(n) % 1000].reset_index(drop=True)
    key = layer.natural_key[0]
    frame[key] = pd.Series(np.char.add("K", np.arange(n).astype(str)), dtype=object)
    taken: list[int] = []

    def chunks() -> Iterator[gpd.GeoDataFrame]:
        for i in range(0, n, 30_000):
            taken.append(i)
            yield frame.iloc[i : i + 30_000]

    entry = deliver(layer, chunks(), tmp_path, plan=PLAN, seed=1, record=False)
    assert entry.rows == n and len(entry.defects) > 300
    assert len(taken) == 10
    assert pyogrio.read_info(dataset_path(tmp_path, entry))["features"] == n
