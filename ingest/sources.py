"""Open a delivered file: what it is, how its text is encoded, its CRS, its rows in batches.

Vector files are read through pyogrio/GDAL as Arrow batches; CSV through Arrow's own
streaming reader (coordinates in recognised lon/lat or x/y columns). Zips are checked
before anything is read (no absolute or ``..`` paths, bounded expansion), shapefiles for
their parts, text for its encoding (``.cpg`` honoured; UTF-8 or GB18030/GBK detected).
"""

from __future__ import annotations

import codecs
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from schemas.errors import InvalidInput

BATCH_ROWS = 50_000
MAX_ZIP_EXPANSION = 100  # uncompressed / compressed
MAX_ZIP_BYTES = 8 * 2**30
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度", "东经", "x坐标", "横坐标", "jd")
LAT_NAMES = ("lat", "latitude", "y", "纬度", "北纬", "y坐标", "纵坐标", "wd")
TEXT_ENCODINGS = ("utf-8", "gb18030")


class SourceFormat(StrEnum):
    """Formats we read."""

    gpkg = "GPKG"
    shapefile = "ESRI Shapefile"
    geojson = "GeoJSON"
    geojsonseq = "GeoJSONSeq"
    csv = "CSV"
    kml = "KML"


@dataclass(frozen=True)
class SourceBatch:
    """A batch of rows: 1-based row number of the first, attributes, WKB geometry."""

    first_row: int
    attributes: pa.Table
    wkb: pa.Array | None = None
    lon: pa.Array | None = None
    lat: pa.Array | None = None

    @property
    def rows(self) -> int:
        """Return the number of rows."""
        return self.attributes.num_rows


@dataclass
class Source:
    """An opened file, ready to stream."""

    path: Path
    format: SourceFormat
    gdal_path: str
    layer_name: str | None
    fields: list[str]
    crs: str | None
    encoding: str | None
    rows: int | None
    coordinate_columns: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    scratch: Path | None = None  # a repaired copy of the file, removed by close()

    def close(self) -> None:
        """Remove the repaired copy of the file, if one was made."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def batches(self) -> Iterator[SourceBatch]:
        """Yield the rows in order, in batches of at most ``BATCH_ROWS``."""
        if self.format is SourceFormat.csv:
            yield from _csv_batches(self)
            return
        yield from _gdal_batches(self)


def _fail(path: Path, message: str) -> InvalidInput:
    return InvalidInput(f"{path.name}: {message}")


def _check_zip(path: Path, archive: zipfile.ZipFile) -> None:
    total = 0
    for info in archive.infolist():
        name = PurePosixPath(info.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts:
            raise _fail(path, f"refused: the zip holds an unsafe path {info.filename!r}")
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_ZIP_EXPANSION * 10:
            raise _fail(
                path,
                f"refused: {info.filename} expands {info.file_size} bytes from "
                f"{info.compress_size} (a zip bomb?)",
            )
    size = max(path.stat().st_size, 1)
    if total > MAX_ZIP_BYTES or total / size > MAX_ZIP_EXPANSION:
        raise _fail(
            path,
            f"refused: the zip expands to {total} bytes from {size} "
            f"(limit {MAX_ZIP_EXPANSION}x, {MAX_ZIP_BYTES} bytes)",
        )


def _shapefile_in_zip(path: Path, archive: zipfile.ZipFile) -> tuple[str, dict[str, str]]:
    """Return the .shp member and its sibling parts by extension; refuse incomplete sets."""
    names = [n for n in archive.namelist() if not n.endswith("/")]
    shps = [n for n in names if n.lower().endswith(".shp")]
    others = [n for n in names if n.lower().endswith((".gpkg", ".geojson", ".json", ".kml"))]
    if not shps:
        if any(n.lower().endswith((".dbf", ".shx")) for n in names):
            raise _fail(
                path,
                "the shapefile has no .shp part (geometry); the zip holds: " + ", ".join(names),
            )
        if others:
            return others[0], {}
        raise _fail(path, "the zip holds no .shp, .gpkg, .geojson or .kml file")
    if len(shps) > 1:
        raise _fail(path, f"the zip holds several shapefiles ({', '.join(shps)}): send one")
    stem = shps[0][:-4]
    parts = {
        n[len(stem) :].lower(): n
        for n in names
        if n.startswith(stem) and n[len(stem) :].startswith(".")
    }
    for needed, what in ((".dbf", "attributes"), (".shx", "index")):
        if needed not in parts:
            raise _fail(path, f"the shapefile {shps[0]} has no {needed} part ({what})")
    return shps[0], parts


def _dbf_text_sample(data: bytes) -> bytes:
    """Return the character bytes of a DBF's records (enough to guess their encoding)."""
    if len(data) < 32:
        return b""
    header_len, record_len = struct.unpack("<HH", data[8:12])
    fields: list[tuple[int, int]] = []
    offset = 1
    for pos in range(32, header_len - 1, 32):
        if data[pos] == 0x0D:
            break
        length = data[pos + 16]
        if data[pos + 11 : pos + 12] == b"C":
            fields.append((offset, length))
        offset += length
    out = bytearray()
    for start in range(header_len, min(len(data), header_len + record_len * 5000), record_len):
        record = data[start : start + record_len]
        for off, length in fields:
            out += record[off : off + length].rstrip(b" \x00")
    return bytes(out)


def detect_encoding(sample: bytes, where: Path) -> str:
    """Return the first of UTF-8 / GB18030 that decodes ``sample``; refuse when none does."""
    for encoding in TEXT_ENCODINGS:
        try:
            sample.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise _fail(
        where,
        "its text is neither UTF-8 nor GB18030/GBK; save it as UTF-8 "
        "or give the shapefile a .cpg naming its code page",
    )


def _cpg_encoding(text: str) -> str:
    value = text.strip().upper()
    mapping = {
        "936": "GBK",
        "CP936": "GBK",
        "GBK": "GBK",
        "GB2312": "GBK",
        "GB18030": "GB18030",
        "UTF-8": "UTF-8",
        "UTF8": "UTF-8",
        "65001": "UTF-8",
    }
    return mapping.get(value, value)


def open_source(path: Path) -> Source:
    """Open a delivered vector file and describe it; raise InvalidInput with the reason."""
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _open_zip(path)
    if suffix in (".csv", ".txt"):
        return _open_csv(path)
    formats = {
        ".gpkg": SourceFormat.gpkg,
        ".geojson": SourceFormat.geojson,
        ".json": SourceFormat.geojson,
        ".geojsonl": SourceFormat.geojsonseq,
        ".geojsons": SourceFormat.geojsonseq,
        ".geojsonseq": SourceFormat.geojsonseq,
        ".kml": SourceFormat.kml,
        ".kmz": SourceFormat.kml,
        ".shp": SourceFormat.shapefile,
    }
    if suffix not in formats:
        raise _fail(
            path,
            f"unknown file type {suffix!r}: send GeoPackage, zipped Shapefile, "
            "GeoJSON, GeoJSON-Seq, CSV or KML",
        )
    return _open_gdal(path, str(path), formats[suffix], encoding=None)


def _open_zip(path: Path) -> Source:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise _fail(path, "not a valid zip archive (truncated or corrupt)") from None
    with archive:
        _check_zip(path, archive)
        try:
            broken = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
            broken = "?"
        if broken is not None:
            raise _fail(path, f"the zip member {broken} is corrupt (truncated or damaged)")
        member, parts = _shapefile_in_zip(path, archive)
        encoding = None
        notes = []
        if parts:
            if ".cpg" in parts:
                cpg = archive.read(parts[".cpg"]).decode("ascii", "replace")
                encoding = _cpg_encoding(cpg)
                notes.append(f".cpg says {cpg.strip()}")
            else:
                sample = _dbf_text_sample(archive.read(parts[".dbf"])[: 8 * 2**20])
                encoding = "GBK" if detect_encoding(sample, path) == "gb18030" else "UTF-8"
                notes.append(f"no .cpg: text detected as {encoding}")
            if ".prj" not in parts:
                notes.append("no .prj: the CRS must be given")
    fmt = SourceFormat.shapefile if parts else _member_format(member)
    gdal_path = f"/vsizip/{path}/{member}"
    fixed = None
    if parts:
        with zipfile.ZipFile(path) as archive:
            fixed = _whole_field_names(archive, parts, encoding or "UTF-8")
        if fixed is not None:
            gdal_path = str(fixed)
            notes.append("field names cut inside a character were trimmed")
    try:
        source = _open_gdal(path, gdal_path, fmt, encoding=encoding, notes=notes)
    except BaseException:
        if fixed is not None:
            shutil.rmtree(fixed.parent, ignore_errors=True)
        raise
    source.scratch = fixed.parent if fixed is not None else None
    return source


def _whole_field_names(
    archive: zipfile.ZipFile, parts: dict[str, str], encoding: str
) -> Path | None:
    """Return a copy of the shapefile whose DBF field names end on whole characters.

    GDAL cuts DBF field names at 10 bytes, which can split a Chinese character in two; such
    a name cannot be decoded. Returns None when every name is whole (the usual case).
    """
    codec = "gbk" if encoding.upper() in ("GBK", "GB18030", "CP936") else "utf-8"
    dbf = bytearray(archive.read(parts[".dbf"]))
    changed = False
    for pos in range(32, len(dbf) - 32, 32):
        if dbf[pos] == 0x0D:
            break
        raw = bytes(dbf[pos : pos + 11]).split(b"\x00", 1)[0]
        whole = raw
        while whole:
            try:
                whole.decode(codec)
                break
            except UnicodeDecodeError:
                whole = whole[:-1]
        if whole != raw:
            dbf[pos : pos + 11] = whole.ljust(11, b"\x00")
            changed = True
    if not changed:
        return None
    folder = Path(tempfile.mkdtemp(prefix="sibiao-shp-"))
    for suffix, member in parts.items():
        data = bytes(dbf) if suffix == ".dbf" else archive.read(member)
        (folder / f"layer{suffix}").write_bytes(data)
    return folder / "layer.shp"


def _member_format(member: str) -> SourceFormat:
    lower = member.lower()
    if lower.endswith(".gpkg"):
        return SourceFormat.gpkg
    if lower.endswith(".kml"):
        return SourceFormat.kml
    return SourceFormat.geojson


def _open_gdal(
    path: Path,
    gdal_path: str,
    fmt: SourceFormat,
    *,
    encoding: str | None,
    notes: list[str] | None = None,
) -> Source:
    try:
        layers = pyogrio.list_layers(gdal_path)
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise _fail(
            path,
            f"cannot be read as {fmt.value} (truncated or corrupt?): {str(exc).splitlines()[0]}",
        ) from None
    if len(layers) == 0:
        raise _fail(path, "holds no layer")
    layer_name = str(layers[0][0])
    if len(layers) > 1:
        names = ", ".join(str(row[0]) for row in layers)
        raise _fail(path, f"holds several layers ({names}); send one layer per file")
    try:
        info = pyogrio.read_info(gdal_path, layer=layer_name, encoding=encoding)
    except (DataSourceError, DataLayerError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot be read: {str(exc).splitlines()[0]}") from None
    rows = int(info.get("features", -1))
    if rows == 0:
        raise _fail(path, "holds no features")
    crs = info.get("crs") or ("EPSG:4326" if fmt is SourceFormat.kml else None)
    return Source(
        path=path,
        format=fmt,
        gdal_path=gdal_path,
        layer_name=layer_name,
        fields=[str(f) for f in info["fields"]],
        crs=crs,
        encoding=encoding,
        rows=rows if rows >= 0 else None,
        notes=notes or [],
    )


def _gdal_batches(source: Source) -> Iterator[SourceBatch]:
    first = 1
    try:
        with pyogrio.open_arrow(
            source.gdal_path,
            layer=source.layer_name,
            encoding=source.encoding,
            batch_size=BATCH_ROWS,
            use_pyarrow=True,
        ) as (meta, reader):
            geometry = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                table = pa.Table.from_batches([batch])
                wkb = (
                    table.column(geometry).combine_chunks()
                    if geometry in table.column_names
                    else None
                )
                attrs = table.drop_columns([geometry]) if wkb is not None else table
                yield SourceBatch(first_row=first, attributes=attrs, wkb=wkb)
                first += table.num_rows
    except (DataSourceError, DataLayerError) as exc:
        raise _fail(
            source.path,
            f"reading stopped at row {first}: {str(exc).splitlines()[0]} (truncated or corrupt?)",
        ) from None
    except UnicodeDecodeError:
        raise _fail(
            source.path, f"text at or after row {first} is not {source.encoding or 'UTF-8'}"
        ) from None


def _csv_encoding(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4 * 2**20)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    cut = head.rfind(b"\n") if len(head) == 4 * 2**20 else len(head)
    return detect_encoding(head[: max(cut, 0)], path)


def _open_csv(path: Path) -> Source:
    encoding = _csv_encoding(path)
    with path.open(encoding=encoding, newline="") as handle:
        header = handle.readline().strip().split(",")
    fields = [name.strip().strip('"') for name in header]
    lowered = {name.lower(): name for name in fields}
    lon = next((lowered[n] for n in LON_NAMES if n in lowered), None)
    lat = next((lowered[n] for n in LAT_NAMES if n in lowered), None)
    if lon is None or lat is None:
        raise _fail(
            path,
            "no coordinate columns: name them lon/lat, x/y or 经度/纬度 "
            f"(columns are: {', '.join(fields)})",
        )
    return Source(
        path=path,
        format=SourceFormat.csv,
        gdal_path=str(path),
        layer_name=None,
        fields=[f for f in fields if f not in (lon, lat)],
        crs=None,
        encoding=encoding,
        rows=None,
        coordinate_columns=(lon, lat),
    )


def _csv_batches(source: Source) -> Iterator[SourceBatch]:
    assert source.coordinate_columns is not None
    lon, lat = source.coordinate_columns
    names = [*source.fields, lon, lat]
    read = pacsv.ReadOptions(encoding=source.encoding or "utf-8", block_size=16 * 2**20)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    first = 1
    try:
        reader = pacsv.open_csv(
            source.path, read_options=read, convert_options=convert, parse_options=parse
        )
        for batch in reader:
            table = pa.Table.from_batches([batch])
            yield SourceBatch(
                first_row=first,
                attributes=table.select(source.fields),
                lon=table.column(lon).combine_chunks(),
                lat=table.column(lat).combine_chunks(),
            )
            first += table.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _fail(
            source.path, f"CSV unreadable at or after row {first}: {str(exc).splitlines()[0]}"
        ) from None
