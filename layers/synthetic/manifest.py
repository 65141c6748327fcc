"""The manifest of delivered source files: what each file is, and what is wrong in it on purpose.

``OUT_DIR/manifest.json`` lists one entry per layer, sorted by layer code, written with sorted
keys so the same generation gives the same bytes. Entries are added one layer at a time
(:func:`add_to_manifest`), under a file lock, so layers may be delivered by several processes.
Ingest tests read it with :func:`read_manifest` to know the truth a file hides: its real CRS
(``gcj02`` where the file claims WGS84), its encoding, its field names and its defects, row by row.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_NAME: Final = "manifest.json"
SOURCES_DIR: Final = "sources"
MANIFEST_VERSION: Final = 1


class SourceFormat(StrEnum):
    """File formats departments deliver; ``cog`` is written by the raster module."""

    gpkg = "gpkg"
    shapefile = "shapefile"  # zipped: .shp .shx .dbf .prj [.cpg]
    geojson = "geojson"
    geojsonseq = "geojsonseq"
    csv = "csv"
    cog = "cog"


class TrueCrs(StrEnum):
    """The coordinate system the numbers of a file are really in."""

    cgcs2000 = "EPSG:4490"
    wgs84 = "EPSG:4326"
    gauss_kruger_114 = "EPSG:4547"
    gcj02 = "gcj02"

    @property
    def is_geographic(self) -> bool:
        """Return whether coordinates are lon/lat degrees."""
        return self is not TrueCrs.gauss_kruger_114


class SourceEncoding(StrEnum):
    """Text encodings of delivered files (Python codec names)."""

    utf8 = "utf-8"
    utf8_bom = "utf-8-sig"  # Excel's "CSV UTF-8"
    gbk = "gbk"


class DefectKind(StrEnum):
    """Kinds of defects injected into delivered files."""

    self_intersection = "self_intersection"
    duplicate_key = "duplicate_key"
    missing_required = "missing_required"
    bad_enum = "bad_enum"
    outside_district = "outside_district"
    swapped_latlon = "swapped_latlon"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defect(_Strict):
    """One defect put in a file on purpose.

    ``row`` is the 1-based position of the data row as a reader iterates the file (CSV: not
    counting the header). ``field`` is the canonical attribute name (``missing_required``,
    ``bad_enum``), else null. ``detail``: the earlier row whose natural key was copied
    (``duplicate_key``), the invalid value (``bad_enum``), the distance moved in metres
    (``outside_district``), else null.
    """

    row: int = Field(ge=1)
    kind: DefectKind
    field: str | None = None
    detail: int | str | None = None

    @model_validator(mode="after")
    def _detail_fits_kind(self) -> Self:
        needs_field = self.kind in (DefectKind.missing_required, DefectKind.bad_enum)
        if needs_field != (self.field is not None):
            raise ValueError(f"{self.kind.value} {'needs' if needs_field else 'has no'} field")
        wanted: dict[DefectKind, type] = {
            DefectKind.duplicate_key: int,
            DefectKind.bad_enum: str,
            DefectKind.outside_district: int,
        }
        kind_type = wanted.get(self.kind)
        if kind_type is None and self.detail is not None:
            raise ValueError(f"{self.kind.value} has no detail")
        if kind_type is not None and not isinstance(self.detail, kind_type):
            raise ValueError(f"{self.kind.value} needs a {kind_type.__name__} detail")
        if self.kind is DefectKind.duplicate_key and not 1 <= int(self.detail or 0) < self.row:
            raise ValueError("duplicate_key must copy an earlier row")
        return self


class Unencodable(_Strict):
    """A true value the file's encoding cannot hold (e.g. 㘵 in GBK): the file has '?' instead.

    Not a defect that was put in on purpose, but what real GBK deliveries do to such names.
    """

    row: int = Field(ge=1)
    field: str
    value: str


class ManifestEntry(_Strict):
    """One delivered source file and the truth about it."""

    layer: str = Field(min_length=1)
    file: str = Field(min_length=1, description="path relative to the output folder, with '/'")
    member: str | None = Field(default=None, description="the dataset inside a zip archive")
    format: SourceFormat
    driver: str = Field(description="GDAL driver that reads the file")
    geometry_type: str | None = None
    crs: TrueCrs = Field(description="the truth")
    declared_crs: str | None = Field(
        description="what a reader is told: EPSG code of the .prj/GPKG/GeoJSON crs, or null"
    )
    encoding: SourceEncoding | None = None
    has_cpg: bool = False
    field_mapping: dict[str, str] = Field(default_factory=dict, description="source -> attribute")
    coordinate_columns: tuple[str, str] | None = Field(
        default=None, description="CSV columns holding x (lon) and y (lat)"
    )
    rows: int | None = Field(default=None, ge=0)
    defect_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    defects: tuple[Defect, ...] = ()
    unencodable: tuple[Unencodable, ...] = ()
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.format is SourceFormat.csv) != (self.coordinate_columns is not None):
            raise ValueError("coordinate_columns are given exactly for CSV files")
        if self.has_cpg and self.format is not SourceFormat.shapefile:
            raise ValueError("only shapefiles have a .cpg")
        rows = [d.row for d in self.defects]
        if rows != sorted(set(rows)):
            raise ValueError("defects must be sorted by row, at most one per row")
        if rows and (self.rows is None or rows[-1] > self.rows):
            raise ValueError("a defect row is beyond the last row")
        lost = [(u.row, u.field) for u in self.unencodable]
        if lost != sorted(set(lost)) or (lost and lost[-1][0] > (self.rows or 0)):
            raise ValueError("unencodable values must be sorted, unique and within the rows")
        if self.format is not SourceFormat.cog and self.rows is None:
            raise ValueError("vector files need a row count")
        return self

    def defects_of(self, kind: DefectKind) -> tuple[Defect, ...]:
        """Return the defects of one kind."""
        return tuple(d for d in self.defects if d.kind is kind)

    def source_field(self, attribute: str) -> str:
        """Return the file's name for a canonical attribute."""
        for source, name in self.field_mapping.items():
            if name == attribute:
                return source
        raise KeyError(attribute)


class Manifest(_Strict):
    """All delivered files of one generation, sorted by layer code."""

    version: Literal[1] = MANIFEST_VERSION
    entries: tuple[ManifestEntry, ...] = ()

    @model_validator(mode="after")
    def _sorted_unique(self) -> Self:
        codes = [e.layer for e in self.entries]
        if codes != sorted(set(codes)):
            raise ValueError("entries must be sorted by layer code, one per layer")
        return self

    def entry(self, layer: str) -> ManifestEntry:
        """Return the entry of a layer."""
        for item in self.entries:
            if item.layer == layer:
                return item
        raise KeyError(layer)


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in blocks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def manifest_text(manifest: Manifest) -> str:
    """Return the canonical JSON text of a manifest (sorted keys, two-space indent)."""
    data = manifest.model_dump(mode="json")
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def read_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file (or the manifest of an output folder)."""
    file = path / MANIFEST_NAME if path.is_dir() else path
    return Manifest.model_validate_json(file.read_text(encoding="utf-8"))


def _write_atomically(file: Path, text: str) -> None:
    """Replace ``file`` by ``text`` so readers never see half a manifest."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, file)


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the manifest of ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / f".{MANIFEST_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_manifest(out_dir: Path, entries: Iterable[ManifestEntry]) -> Manifest:
    """Write the manifest of ``out_dir`` with exactly these entries."""
    manifest = Manifest(entries=tuple(sorted(entries, key=lambda e: e.layer)))
    with _locked(out_dir):
        _write_atomically(out_dir / MANIFEST_NAME, manifest_text(manifest))
    return manifest


def add_to_manifest(out_dir: Path, entry: ManifestEntry) -> Manifest:
    """Add or replace one layer's entry in the manifest of ``out_dir``."""
    file = out_dir / MANIFEST_NAME
    with _locked(out_dir):
        current = read_manifest(file).entries if file.exists() else ()
        kept = [e for e in current if e.layer != entry.layer]
        manifest = Manifest(entries=tuple(sorted([*kept, entry], key=lambda e: e.layer)))
        _write_atomically(file, manifest_text(manifest))
    return manifest
