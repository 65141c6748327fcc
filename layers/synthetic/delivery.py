"""Deliver each synthetic layer as its department would: one source file, with its mess.

The delivery plan is data (``delivery.yaml``, validated by :class:`DeliveryPlan`): a default
rule, one rule per owning department and per-layer overrides decide format, CRS, encoding, field
names and defect rate. :func:`deliver` streams a layer's chunks (EPSG:4547, canonical columns) to
``OUT_DIR/sources/`` through :mod:`layers.synthetic.defects` and :mod:`layers.synthetic.writers`,
and records the file, its truth and its defects in ``OUT_DIR/manifest.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Literal, Self

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from layers.synthetic.defects import DefectInjector, applicable_kinds
from layers.synthetic.manifest import (
    SOURCES_DIR,
    Defect,
    DefectKind,
    Manifest,
    ManifestEntry,
    SourceEncoding,
    SourceFormat,
    TrueCrs,
    Unencodable,
    add_to_manifest,
    read_manifest,
    sha256_file,
    write_manifest,
)
from layers.synthetic.writers import (
    DRIVERS,
    EXTENSIONS,
    Batch,
    GeometryArray,
    Target,
    write_batches,
)
from layers.synthetic.yamlfile import read_yaml
from schemas.catalog import Attribute, AttributeType, GeometryType, Layer
from schemas.errors import ConfigurationError, InvalidInput
from schemas.geodesy import CGCS2000, GCJ02, WGS84, SourceCrs, transform_xy

__all__ = [
    "Defect",
    "DefectKind",
    "DeliveryPlan",
    "DeliveryRule",
    "DeliverySpec",
    "FieldNaming",
    "Manifest",
    "ManifestEntry",
    "add_to_manifest",
    "deliver",
    "load_delivery_plan",
    "read_manifest",
    "source_names",
    "Unencodable",
    "write_manifest",
]

PLAN_FILE: Final = Path(__file__).with_name("delivery.yaml")
INPUT_EPSG: Final = 4547
DBF_NAME_BYTES: Final = 10
CpgText = Literal["936", "GBK", "CP936", "UTF-8"]
_CJK: Final = re.compile(r"[\u3400-\u9fff]")
_ENCODINGS: Final[Mapping[SourceFormat, frozenset[SourceEncoding]]] = {
    SourceFormat.csv: frozenset(SourceEncoding),
    SourceFormat.shapefile: frozenset({SourceEncoding.utf8, SourceEncoding.gbk}),
}
_STRING: Final = pd.StringDtype("python")
_WGS84_ONLY: Final = frozenset({TrueCrs.wgs84, TrueCrs.gcj02})
_GEODESY: Final[Mapping[TrueCrs, SourceCrs]] = {
    TrueCrs.cgcs2000: CGCS2000,
    TrueCrs.wgs84: WGS84,
    TrueCrs.gauss_kruger_114: SourceCrs.from_epsg(INPUT_EPSG),
    TrueCrs.gcj02: GCJ02,
}

#: Single-part type id and the function that wraps single parts into the Multi* type.
_PROMOTE: Final = {
    GeometryType.multipoint: (shapely.GeometryType.POINT, shapely.multipoints),
    GeometryType.multilinestring: (shapely.GeometryType.LINESTRING, shapely.multilinestrings),
    GeometryType.multipolygon: (shapely.GeometryType.POLYGON, shapely.multipolygons),
}


class FieldNaming(StrEnum):
    """How a department names fields: canonical English or the first Chinese alias."""

    canonical = "canonical"
    chinese = "chinese"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliveryRule(_Strict):
    """Part of a delivery: unset fields are inherited from the rule before it."""

    format: SourceFormat | None = None
    crs: TrueCrs | None = None
    encoding: SourceEncoding | None = None
    cpg: CpgText | Literal["omit"] | None = Field(
        default=None, description="shapefile .cpg content; 'omit' writes none"
    )
    field_names: FieldNaming | None = None
    coordinate_columns: tuple[str, str] | None = Field(default=None, description="CSV x, y")
    crs_member: bool | None = Field(default=None, description="GeoJSON with a 'crs' member")
    defect_rate: Annotated[float, Field(ge=0.0, le=0.1)] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _fits_format(self) -> Self:
        fmt = self.format
        if fmt is SourceFormat.cog:
            raise ValueError("rasters are delivered by the raster module, not by a rule")
        if fmt is None:
            return self
        allowed = _ENCODINGS.get(fmt, frozenset({SourceEncoding.utf8}))
        if self.encoding is not None and self.encoding not in allowed:
            raise ValueError(f"{fmt.value} files cannot be {self.encoding.value}")
        for name, only in (
            ("cpg", SourceFormat.shapefile),
            ("coordinate_columns", SourceFormat.csv),
            ("crs_member", SourceFormat.geojson),
        ):
            if getattr(self, name) is not None and fmt is not only:
                raise ValueError(f"{name} only applies to {only.value} files")
        return self


class DeliverySpec(_Strict):
    """The complete, checked delivery of one layer."""

    format: SourceFormat
    crs: TrueCrs
    encoding: SourceEncoding
    cpg: CpgText | None
    field_names: FieldNaming
    coordinate_columns: tuple[str, str] | None
    crs_member: bool
    defect_rate: float

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        allowed = _ENCODINGS.get(self.format, frozenset({SourceEncoding.utf8}))
        if self.encoding not in allowed:
            raise ValueError(f"{self.format.value} files cannot be {self.encoding.value}")
        if (self.format is SourceFormat.csv) != (self.coordinate_columns is not None):
            raise ValueError("CSV files, and only they, need coordinate_columns")
        if self.cpg is not None and self.format is not SourceFormat.shapefile:
            raise ValueError("only shapefiles have a .cpg")
        lonlat_only = self.format is SourceFormat.geojsonseq or (
            self.format is SourceFormat.geojson and not self.crs_member
        )
        if lonlat_only and self.crs not in _WGS84_ONLY:
            raise ValueError(f"RFC 7946 GeoJSON is WGS84 lon/lat, not {self.crs.value}")
        return self

    @property
    def declared_epsg(self) -> int | None:
        """Return the EPSG code the file states (GCJ-02 poses as WGS84); None for CSV."""
        if self.format is SourceFormat.csv:
            return None
        return 4326 if self.crs is TrueCrs.gcj02 else int(self.crs.value.removeprefix("EPSG:"))


class DeliveryPlan(_Strict):
    """How every layer of the catalog is delivered, most of it by owning department."""

    version: Literal[1]
    defect_rate: Annotated[float, Field(ge=0.0, le=0.1)] = 0.003
    all_kinds_from: Annotated[int, Field(ge=1)] = 200
    default: DeliveryRule
    departments: dict[str, DeliveryRule] = Field(default_factory=dict)
    layers: dict[str, DeliveryRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete_default(self) -> Self:
        for name in ("format", "crs", "field_names"):
            if getattr(self.default, name) is None:
                raise ValueError(f"the default rule must set {name}")
        return self

    def rules_for(self, layer: Layer) -> tuple[DeliveryRule, ...]:
        """Return the rules that apply to a layer, weakest first."""
        chain = [self.default, self.departments.get(layer.department), self.layers.get(layer.code)]
        return tuple(rule for rule in chain if rule is not None)

    def resolve(self, layer: Layer) -> DeliverySpec:
        """Return the complete delivery of a vector layer; raise ConfigurationError if unfit."""
        if layer.is_raster:
            raise ConfigurationError(f"{layer.code}: rasters are not delivered by this plan")
        merged: dict[str, object] = {}
        for rule in self.rules_for(layer):
            merged |= rule.model_dump(exclude_none=True, exclude={"note"})
        fmt = SourceFormat(str(merged["format"]))
        if fmt not in (SourceFormat.csv, SourceFormat.shapefile):
            merged["encoding"] = SourceEncoding.utf8
        encoding = SourceEncoding(str(merged.get("encoding", SourceEncoding.utf8)))
        cpg = merged.get("cpg", "CP936" if encoding is SourceEncoding.gbk else "UTF-8")
        merged["cpg"] = None if cpg == "omit" or fmt is not SourceFormat.shapefile else cpg
        if fmt is not SourceFormat.csv:
            merged.pop("coordinate_columns", None)
        elif layer.geometry is not GeometryType.point:
            raise ConfigurationError(f"{layer.code}: CSV needs a Point layer, not {layer.geometry}")
        merged["crs_member"] = bool(merged.get("crs_member")) and fmt is SourceFormat.geojson
        merged.setdefault("defect_rate", self.defect_rate)
        merged.setdefault("coordinate_columns", None)
        try:
            return DeliverySpec.model_validate(merged)
        except ValidationError as exc:
            raise ConfigurationError(f"{layer.code}: {exc.errors()[0]['msg']}") from None


@lru_cache(maxsize=4)
def load_delivery_plan(path: Path = PLAN_FILE) -> DeliveryPlan:
    """Read and validate the delivery plan."""
    try:
        data = read_yaml(path)
        return DeliveryPlan.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def _chinese_name(attr: Attribute) -> str:
    """Return an attribute's first Chinese alias, or its Chinese title."""
    return next((a for a in attr.aliases if _CJK.search(a)), attr.zh)


def _fit_bytes(name: str, limit: int, encoding: str) -> str:
    """Cut ``name`` to at most ``limit`` bytes in ``encoding``, never inside a character."""
    while len(name.encode(encoding, errors="replace")) > limit:
        name = name[:-1]
    return name


def source_names(layer: Layer, spec: DeliverySpec) -> dict[str, str]:
    """Return attribute -> field name in the file: dBASE names are cut to 10 bytes, made unique."""
    wanted = [
        a.name if spec.field_names is FieldNaming.canonical else _chinese_name(a)
        for a in layer.attributes
    ]
    dbf = spec.format is SourceFormat.shapefile
    codec = spec.encoding.value
    taken = {c.casefold() for c in spec.coordinate_columns or ()}
    names: dict[str, str] = {}
    for attr, name in zip(layer.attributes, wanted, strict=True):
        candidate = _fit_bytes(name, DBF_NAME_BYTES, codec) if dbf else name
        serial = 0
        while candidate.casefold() in taken:
            serial += 1
            suffix = f"_{serial}"
            base = _fit_bytes(name, DBF_NAME_BYTES - len(suffix), codec) if dbf else name
            candidate = base + suffix
        taken.add(candidate.casefold())
        names[attr.name] = candidate
    return names


def _coerce(series: pd.Series, attr: Attribute) -> pd.Series:
    """Return a column with the pandas dtype of its attribute type."""
    if attr.type is AttributeType.string:
        return series.astype(_STRING)  # python storage: cheap to alter a row in place
    if attr.type is AttributeType.integer:
        return series.astype("Int64")
    if attr.type is AttributeType.float:
        return pd.to_numeric(series).astype("float64")
    if attr.type is AttributeType.boolean:
        return series.astype("boolean")
    stamps = pd.to_datetime(series)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
    stamps = stamps.astype("datetime64[ms]")
    return stamps.dt.normalize() if attr.type is AttributeType.date else stamps


def _canonical(layer: Layer, chunk: gpd.GeoDataFrame) -> tuple[pd.DataFrame, GeometryArray]:
    """Check a chunk and return its typed attributes and its geometries (EPSG:4547)."""
    if chunk.crs is not None and chunk.crs.to_epsg() != INPUT_EPSG:
        raise InvalidInput(f"{layer.code}: chunks must be in EPSG:{INPUT_EPSG}, not {chunk.crs}")
    names = [a.name for a in layer.attributes]
    extra = sorted(set(chunk.columns) - {*names, chunk.geometry.name})
    missing = [a.name for a in layer.attributes if a.required and a.name not in chunk.columns]
    if extra or missing:
        raise InvalidInput(f"{layer.code}: unknown columns {extra}, missing required {missing}")
    index = pd.RangeIndex(len(chunk))
    attrs = pd.DataFrame(
        {
            a.name: _coerce(
                chunk[a.name].reset_index(drop=True)
                if a.name in chunk.columns
                else pd.Series([None] * len(chunk), index=index, dtype=object),
                a,
            )
            for a in layer.attributes
        },
        index=index,
    )
    geoms = np.array(chunk.geometry.to_numpy(), dtype=object)
    if layer.geometry.is_multi:
        single_id, promote = _PROMOTE[layer.geometry]
        single = shapely.get_type_id(geoms) == single_id
        if single.any():
            geoms[single] = promote(geoms[single], indices=np.arange(int(single.sum())))
    return attrs, geoms


def _opening(
    frames: Iterator[tuple[pd.DataFrame, GeometryArray]], rows: int
) -> Iterator[tuple[pd.DataFrame, GeometryArray, bool]]:
    """Join the first chunks until they hold ``rows`` rows; flag that opening batch."""
    head: list[tuple[pd.DataFrame, GeometryArray]] = []
    for attrs, geoms in frames:
        head.append((attrs, geoms))
        if sum(len(a) for a, _ in head) >= rows:
            break
    if head:
        attrs = pd.concat([a for a, _ in head], ignore_index=True)
        yield attrs, np.concatenate([g for _, g in head]), True
    for attrs, geoms in frames:
        if len(attrs):
            yield attrs, geoms, False


def _to_file_crs(geoms: GeometryArray, crs: TrueCrs) -> GeometryArray:
    """Move geometries from EPSG:4547 to the file's (true) coordinate system."""
    source, target = _GEODESY[TrueCrs.gauss_kruger_114], _GEODESY[crs]
    if source == target:
        return geoms
    if (shapely.get_type_id(geoms) == shapely.GeometryType.POINT).all():
        x, y = transform_xy(shapely.get_x(geoms), shapely.get_y(geoms), source, target)
        points: GeometryArray = shapely.points(x, y)
        return points

    def move(coords: np.ndarray) -> np.ndarray:
        x, y = transform_xy(coords[:, 0], coords[:, 1], source, target)
        return np.column_stack([x, y])

    moved: GeometryArray = shapely.transform(geoms, move)
    return moved


def _replace_unencodable(
    layer: Layer, attrs: pd.DataFrame, first_row: int, codec: str
) -> list[Unencodable]:
    """Put '?' for characters ``codec`` cannot encode (as GBK exports do); return the losses."""
    lost: list[Unencodable] = []
    for attr in layer.attributes:
        if attr.type is not AttributeType.string:
            continue
        column = attrs.columns.get_loc(attr.name)
        present = attrs[attr.name].dropna()
        try:
            "".join(present.tolist()).encode(codec)  # the usual case: all fit, one call
        except UnicodeEncodeError:
            for i, value in present.items():
                try:
                    value.encode(codec)
                except UnicodeEncodeError:
                    lost.append(
                        Unencodable(row=first_row + int(i) + 1, field=attr.name, value=value)
                    )
                    attrs.iat[int(i), column] = value.encode(codec, "replace").decode(codec)
    return lost


def _batches(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    spec: DeliverySpec,
    injector: DefectInjector,
    all_kinds_from: int,
    lost: list[Unencodable],
) -> Iterator[Batch]:
    """Yield write-ready batches, defects applied, in chunk order; note unencodable values."""
    frames = (_canonical(layer, chunk) for chunk in chunks)
    for attrs, geoms, opening in _opening(frames, all_kinds_from):
        first_row = injector.rows
        swaps = injector.inject(attrs, geoms, opening=opening)
        if spec.encoding is SourceEncoding.gbk:
            lost.extend(_replace_unencodable(layer, attrs, first_row, spec.encoding.value))
        moved = _to_file_crs(geoms, spec.crs)
        if swaps.size:
            moved[swaps] = shapely.points(shapely.get_y(moved[swaps]), shapely.get_x(moved[swaps]))
        yield Batch(attributes=attrs, geometry=moved)


def deliver(
    layer: Layer,
    chunks: Iterable[gpd.GeoDataFrame],
    out_dir: Path,
    *,
    plan: DeliveryPlan,
    seed: int,
    record: bool = True,
) -> ManifestEntry:
    """Write a layer's source file as its department delivers it; return its manifest entry.

    Parameters
    ----------
    layer
        A vector layer of the catalog.
    chunks
        GeoDataFrames in EPSG:4547 with the layer's attribute names (optional ones may be
        absent) and a geometry column; written in this order, never all held at once.
    out_dir
        The generation's output folder; the file goes to ``out_dir/sources/``.
    plan
        The delivery plan (:func:`load_delivery_plan`).
    seed
        Seed of the defects; the same chunks and seed give byte-identical files.
    record
        Add the entry to ``out_dir/manifest.json`` as well.
    """
    spec = plan.resolve(layer)
    names = source_names(layer, spec)
    path = out_dir / SOURCES_DIR / f"{layer.code}{EXTENSIONS[spec.format]}"
    target = Target(
        layer=layer,
        path=path,
        format=spec.format,
        crs=spec.crs,
        declared_epsg=spec.declared_epsg,
        encoding=spec.encoding,
        names=names,
        cpg=spec.cpg,
        crs_member=spec.crs_member,
        coordinate_columns=spec.coordinate_columns,
    )
    kinds = applicable_kinds(layer, geographic=spec.crs.is_geographic)
    injector = DefectInjector(
        layer, kinds=kinds, rate=spec.defect_rate, seed=seed, all_kinds_from=plan.all_kinds_from
    )
    lost: list[Unencodable] = []
    write_batches(target, _batches(layer, chunks, spec, injector, plan.all_kinds_from, lost))
    entry = ManifestEntry(
        layer=layer.code,
        file=path.relative_to(out_dir).as_posix(),
        member=target.member,
        format=spec.format,
        driver=DRIVERS[spec.format],
        geometry_type=layer.geometry.value,
        crs=spec.crs,
        declared_crs=None if spec.declared_epsg is None else f"EPSG:{spec.declared_epsg}",
        encoding=spec.encoding,
        has_cpg=spec.cpg is not None,
        field_mapping={source: attr for attr, source in names.items()},
        coordinate_columns=spec.coordinate_columns,
        rows=injector.rows,
        defect_rate=spec.defect_rate,
        defects=tuple(injector.defects),
        unencodable=tuple(sorted(lost, key=lambda u: (u.row, u.field))),
        sha256=sha256_file(path),
    )
    if record:
        add_to_manifest(out_dir, entry)
    return entry
