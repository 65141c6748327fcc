"""Stream batches of a layer to one source file, byte for byte the same on every run.

GeoPackage and Shapefile go through GDAL (``pyogrio.write_arrow`` fed by one Arrow stream, so
the dataset is opened once and batches never pile up in memory). GDAL stamps dates into both:
``OGR_CURRENT_DATE`` fixes GeoPackage's ``gpkg_contents.last_change``, ``DBF_DATE_LAST_UPDATE``
the .dbf header; the shapefile's parts are zipped in a fixed order with fixed member times.
GeoJSON and GeoJSON text sequences go through GDAL as well; CSV through Arrow's CSV writer,
re-encoded to GBK where the plan says so.
"""

from __future__ import annotations

import codecs
import re
import re._parser as re_parser
import shutil
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio
import pyproj
import shapely
from numpy.typing import NDArray

from layers.synthetic.manifest import SourceEncoding, SourceFormat, TrueCrs
from schemas.catalog import Attribute, AttributeType, Layer

#: The date GDAL is told it is (zip members get zipfile's own fixed 1980-01-01).
FIXED_DATE: Final = "2025-01-01"
ZIP64_FROM: Final = 0x7FFF0000
GEOMETRY_COLUMN: Final = "__geometry__"
DBF_MAX_WIDTH: Final = 254
#: Deflate level of zipped shapefiles: 1 is three times faster than 6 on .dbf padding.
ZIP_LEVEL: Final = 1
#: Narrowest string field in characters, so injected bad values (待核实, #N/A) fit.
DBF_MIN_CHARS: Final = 8
SHAPEFILE_PARTS: Final = (".shp", ".shx", ".dbf", ".prj", ".cpg")
DRIVERS: Final[Mapping[SourceFormat, str]] = {
    SourceFormat.gpkg: "GPKG",
    SourceFormat.shapefile: "ESRI Shapefile",
    SourceFormat.geojson: "GeoJSON",
    SourceFormat.geojsonseq: "GeoJSONSeq",
    SourceFormat.csv: "CSV",
}
EXTENSIONS: Final[Mapping[SourceFormat, str]] = {
    SourceFormat.gpkg: ".gpkg",
    SourceFormat.shapefile: ".zip",
    SourceFormat.geojson: ".geojson",
    SourceFormat.geojsonseq: ".geojsonl",
    SourceFormat.csv: ".csv",
}
#: Decimals of CSV coordinates (geographic or not): 1e-7 degree is about 1 cm; 1e-3 m is 1 mm.
CSV_DECIMALS: Final = {True: 7, False: 3}
_GDAL_ENCODINGS: Final = {SourceEncoding.gbk: "CP936", SourceEncoding.utf8: "UTF-8"}

GeometryArray = NDArray[np.object_]


@dataclass(frozen=True)
class Batch:
    """Rows ready to write: canonical typed attributes and geometries in the file's CRS."""

    attributes: pd.DataFrame
    geometry: GeometryArray


@dataclass(frozen=True)
class Target:
    """Everything a writer needs to know about the file it writes."""

    layer: Layer
    path: Path
    format: SourceFormat
    crs: TrueCrs
    declared_epsg: int | None
    encoding: SourceEncoding
    names: Mapping[str, str]  # attribute -> source field name
    cpg: str | None = None
    crs_member: bool = False
    coordinate_columns: tuple[str, str] | None = None

    @property
    def member(self) -> str | None:
        """Return the dataset's name inside the archive, for zipped formats."""
        return f"{self.layer.code}.shp" if self.format is SourceFormat.shapefile else None


def write_batches(target: Target, batches: Iterable[Batch]) -> None:
    """Write all batches to the target file, replacing any earlier one; leave none on error."""
    target.path.parent.mkdir(parents=True, exist_ok=True)
    target.path.unlink(missing_ok=True)
    try:
        _write(target, batches)
    except BaseException:
        target.path.unlink(missing_ok=True)
        raise


def _write(target: Target, batches: Iterable[Batch]) -> None:
    """Dispatch to the writer of the target's format."""
    if target.format is SourceFormat.gpkg:
        _write_gpkg(target, batches)
    elif target.format is SourceFormat.shapefile:
        _write_zipped_shapefile(target, batches)
    elif target.format is SourceFormat.geojson:
        # With a CRS, GDAL writes a 2008-style "crs" member; without, the file is plain RFC 7946
        # lon/lat (GDAL's RFC7946=YES would refuse the swapped_latlon defects).
        _gdal_write(
            target,
            target.path,
            batches,
            with_crs=target.crs_member,
            layer_options={"RFC7946": "NO"},
        )
    elif target.format is SourceFormat.geojsonseq:
        _gdal_write(target, target.path, batches)
    elif target.format is SourceFormat.csv:
        _write_csv(target, batches)
    else:
        raise ValueError(f"cannot write {target.format.value} files here")


# --- GDAL formats ---------------------------------------------------------------------------


def _arrow_type(attr: Attribute, shapefile: bool) -> pa.DataType:
    """Return the Arrow type an attribute is written as."""
    if attr.type is AttributeType.datetime and shapefile:
        return pa.string()  # .dbf has no date-time type
    return {
        AttributeType.string: pa.string(),
        AttributeType.integer: pa.int64(),
        AttributeType.float: pa.float64(),
        AttributeType.boolean: pa.bool_(),
        AttributeType.date: pa.date32(),
        AttributeType.datetime: pa.timestamp("ms"),
    }[attr.type]


def _pattern_width(pattern: str | None) -> int:
    """Return the longest text a regular expression matches, or 0 when unbounded or unknown."""
    if pattern is None:
        return 0
    try:
        longest = int(re_parser.parse(pattern).getwidth()[1])
    except (re.error, AttributeError, TypeError):  # private module: stay safe if it changes
        return 0
    return longest if longest < DBF_MAX_WIDTH else 0


def _dbf_width(attr: Attribute, encoding: SourceEncoding) -> dict[bytes, bytes]:
    """Return the .dbf width of a string attribute in bytes (GDAL otherwise takes 254)."""
    if attr.type is not AttributeType.string:
        return {}
    chars = attr.max_length or max((len(e.value) for e in attr.enum or ()), default=0)
    per_char = 2 if encoding is SourceEncoding.gbk else 3
    if not chars and attr.pattern is not None:
        chars = _pattern_width(attr.pattern)
        per_char = 1 if attr.pattern.isascii() and "\\u" not in attr.pattern else per_char
    width = min(DBF_MAX_WIDTH, max(chars, DBF_MIN_CHARS) * per_char) if chars else DBF_MAX_WIDTH
    return {b"GDAL:OGR:width": str(width).encode()}


def _arrow_schema(target: Target) -> pa.Schema:
    """Return the Arrow schema of the target's rows, geometry last, as WKB."""
    shapefile = target.format is SourceFormat.shapefile
    fields = [
        pa.field(
            target.names[a.name],
            _arrow_type(a, shapefile),
            metadata=_dbf_width(a, target.encoding) if shapefile else None,
        )
        for a in target.layer.attributes
    ]
    wkb = {b"ARROW:extension:name": b"geoarrow.wkb"}
    return pa.schema([*fields, pa.field(GEOMETRY_COLUMN, pa.binary(), metadata=wkb)])


def _arrow_column(series: pd.Series, kind: pa.DataType) -> pa.Array:
    """Convert one typed attribute column to Arrow."""
    array = _arrow_values(series, kind)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _arrow_values(series: pd.Series, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Convert a column to Arrow; pyarrow-backed pandas columns come back chunked."""
    missing = series.isna().to_numpy(dtype=bool)
    if kind == pa.date32():
        return pa.array(series.to_numpy("datetime64[D]"), type=kind, mask=missing)
    if isinstance(kind, pa.TimestampType):
        return pa.array(series.to_numpy("datetime64[ms]"), type=kind, mask=missing)
    if kind == pa.string() and pd.api.types.is_datetime64_any_dtype(series):
        return pa.array(series.dt.strftime("%Y-%m-%d %H:%M:%S"), type=kind, from_pandas=True)
    return pa.array(series, type=kind, from_pandas=True)


def _record_batches(
    target: Target, schema: pa.Schema, batches: Iterable[Batch], errors: list[BaseException]
) -> Iterator[pa.RecordBatch]:
    """Yield Arrow record batches; keep any error so it is raised as itself, not by GDAL."""
    try:
        for batch in batches:
            columns = [
                _arrow_column(batch.attributes[attr.name], field.type)
                for attr, field in zip(target.layer.attributes, schema, strict=False)
            ]
            columns.append(pa.array(shapely.to_wkb(batch.geometry), type=pa.binary()))
            yield pa.record_batch(columns, schema=schema)
    except Exception as exc:
        errors.append(exc)
        raise


def _gdal_write(
    target: Target, path: Path, batches: Iterable[Batch], *, with_crs: bool = True, **options: Any
) -> None:
    """Write the batches through GDAL with a fixed current date."""
    schema = _arrow_schema(target)
    errors: list[BaseException] = []
    stream = pa.RecordBatchReader.from_batches(
        schema, _record_batches(target, schema, batches, errors)
    )
    epsg = target.declared_epsg if with_crs else None
    crs = pyproj.CRS.from_epsg(epsg).to_wkt() if epsg else None
    before = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{FIXED_DATE}T00:00:00.000Z"})
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
            pyogrio.write_arrow(
                stream,
                str(path),
                layer=target.layer.code,
                driver=DRIVERS[target.format],
                geometry_name=GEOMETRY_COLUMN,
                geometry_type=target.layer.geometry.value,
                crs=crs,
                **options,
            )
    except Exception:
        if errors:
            raise errors[0] from None
        raise
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": before})


def _write_gpkg(target: Target, batches: Iterable[Batch]) -> None:
    """Write a GeoPackage 1.2 with one table named after the layer."""
    _gdal_write(
        target,
        target.path,
        batches,
        dataset_options={"VERSION": "1.2"},
        layer_options={"GEOMETRY_NAME": "geom", "FID": "fid"},
    )


def _write_zipped_shapefile(target: Target, batches: Iterable[Batch]) -> None:
    """Write a shapefile in a scratch folder, set its .cpg as planned, and zip it."""
    scratch = target.path.with_name(f".{target.layer.code}.shapefile")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        shp = scratch / f"{target.layer.code}.shp"
        _gdal_write(
            target,
            shp,
            batches,
            encoding=_GDAL_ENCODINGS[target.encoding],
            layer_options={"DBF_DATE_LAST_UPDATE": FIXED_DATE},
        )
        cpg = shp.with_suffix(".cpg")
        if target.cpg is None:
            cpg.unlink(missing_ok=True)  # and the .dbf language driver byte is 0: no hint left
        else:
            cpg.write_bytes(target.cpg.encode("ascii"))
        _zip_fixed(target.path, [shp.with_suffix(s) for s in SHAPEFILE_PARTS])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _zip_fixed(archive: Path, parts: Iterable[Path]) -> None:
    """Zip existing parts in the given order; members get zipfile's fixed 1980-01-01 time."""
    with zipfile.ZipFile(
        archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
    ) as zf:
        for part in parts:
            if not part.exists():
                continue
            big = part.stat().st_size > ZIP64_FROM
            with part.open("rb") as src, zf.open(part.name, "w", force_zip64=big) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


# --- CSV -----------------------------------------------------------------------------------


def _csv_table(target: Target, batch: Batch) -> pa.Table:
    """Return a batch as an Arrow table of CSV columns: attributes, then x and y."""
    assert target.coordinate_columns is not None
    decimals = CSV_DECIMALS[target.crs.is_geographic]
    columns: dict[str, pa.Array] = {}
    for attr in target.layer.attributes:
        series = batch.attributes[attr.name]
        if attr.type is AttributeType.datetime:
            columns[target.names[attr.name]] = _arrow_column(series, pa.string())
        else:
            columns[target.names[attr.name]] = _arrow_column(series, _arrow_type(attr, False))
    for name, values in zip(
        target.coordinate_columns,
        (shapely.get_x(batch.geometry), shapely.get_y(batch.geometry)),
        strict=True,
    ):
        columns[name] = pa.array(np.round(values, decimals), type=pa.float64(), from_pandas=True)
    return pa.table(columns)


def _write_csv(target: Target, batches: Iterable[Batch]) -> None:
    """Write a CSV with x/y columns last; strings quoted, as database exports do."""
    excel = target.encoding is SourceEncoding.utf8_bom
    options = {"quoting_header": "none", "eol": "\r\n" if excel else "\n"}
    first = True
    with target.path.open("wb") as fh:
        if excel:
            fh.write(codecs.BOM_UTF8)
        for batch in batches:
            if len(batch.attributes) == 0 and not first:
                continue
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(
                _csv_table(target, batch),
                buffer,
                pacsv.WriteOptions(include_header=first, **options),
            )
            data = buffer.getvalue().to_pybytes()
            if target.encoding is SourceEncoding.gbk:
                data = data.decode("utf-8").encode("gbk", errors="replace")
            fh.write(data)
            first = False
        if first:  # no chunk at all: the header alone
            header = [*(target.names[a.name] for a in target.layer.attributes)]
            header += target.coordinate_columns or ()
            codec = "gbk" if target.encoding is SourceEncoding.gbk else "utf-8"
            fh.write((",".join(header) + options["eol"]).encode(codec))
