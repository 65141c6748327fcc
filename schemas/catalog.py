"""Pydantic models of the layer catalog (the 104 base layers of 四标四实).

The catalog itself is data: YAML files in ``layers/catalog/`` (one per group),
loaded and validated by :mod:`layers.catalog`. These models are the contract
those files must satisfy; nothing here knows where the files live.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CODE_RE = r"^[a-z][a-z0-9_]{1,46}[a-z0-9]$"
FIELD_RE = r"^[a-z][a-z0-9_]{0,40}$"

#: Column names every layer table carries; attributes may not reuse them.
RESERVED_COLUMNS = frozenset(
    {
        "fid",
        "geom",
        "district_code",
        "division_code",
        "grid_code",
        "batch_id",
        "layer_version",
        "loaded_at",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class GroupFamily(StrEnum):
    """Which programme a group belongs to."""

    four_standards = "four_standards"  # 四标
    four_realities = "four_realities"  # 四实
    components = "components"  # 数字城管部件大类
    water_and_safety = "water_and_safety"  # 水系、排水、三防、应急


class GeometryType(StrEnum):
    """Geometry of a layer; ``raster`` layers are COGs, not tables."""

    point = "Point"
    multipoint = "MultiPoint"
    linestring = "LineString"
    multilinestring = "MultiLineString"
    polygon = "Polygon"
    multipolygon = "MultiPolygon"
    raster = "raster"

    @property
    def is_multi(self) -> bool:
        """Return whether this is a Multi* type."""
        return self.value.startswith("Multi")

    @property
    def single(self) -> GeometryType:
        """Return the single-part type of this geometry type."""
        return GeometryType(self.value.removeprefix("Multi")) if self.is_multi else self


class Sensitivity(StrEnum):
    """Who may see a layer: anyone, staff, or only roles allowed personal data."""

    public = "public"
    internal = "internal"
    restricted = "restricted"


class Cadence(StrEnum):
    """How often the owning department refreshes a layer."""

    realtime = "realtime"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"
    yearly = "yearly"
    on_change = "on_change"


class LayerRole(StrEnum):
    """Roles the platform looks layers up by, so no code path names a layer code."""

    district = "district"
    town = "town"
    village = "village"
    grid_cell = "grid_cell"
    road = "road"
    house_number = "house_number"
    building = "building"
    river = "river"
    water_body = "water_body"
    population = "population"
    dem = "dem"
    flood_risk = "flood_risk"


class AttributeType(StrEnum):
    """Attribute value types; each maps to one PostgreSQL column type."""

    string = "string"
    integer = "integer"
    float = "float"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"


class EnumValue(_Strict):
    """One allowed value of an enumerated attribute, with its labels."""

    value: str = Field(min_length=1, max_length=64)
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Attribute(_Strict):
    """One attribute (column) of a layer."""

    name: Annotated[str, Field(pattern=FIELD_RE)]
    type: AttributeType
    zh: str = Field(min_length=1, description="Chinese title")
    en: str = Field(min_length=1, description="English title")
    required: bool = False
    max_length: int | None = Field(default=None, ge=1, le=4000)
    pattern: str | None = Field(default=None, description="regular expression for strings")
    enum: tuple[EnumValue, ...] | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    aliases: tuple[str, ...] = Field(
        default=(), description="field names as departments deliver them (Chinese, pinyin...)"
    )
    personal: bool = Field(default=False, description="identifies a person: masked for most roles")
    description: str | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> Self:
        numeric = self.type in (AttributeType.integer, AttributeType.float)
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"min/max only apply to numbers, not to {self.type.value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.type is not AttributeType.string and (
            self.max_length is not None or self.pattern is not None or self.enum is not None
        ):
            raise ValueError("max_length, pattern and enum only apply to strings")
        if self.enum is not None:
            values = [e.value for e in self.enum]
            if len(values) != len(set(values)):
                raise ValueError("enum values repeat")
            if not values:
                raise ValueError("enum is empty")
        return self

    @property
    def enum_values(self) -> tuple[str, ...]:
        """Return the allowed values, or an empty tuple when any value goes."""
        return tuple(e.value for e in self.enum) if self.enum else ()


class RasterSpec(_Strict):
    """What a raster layer holds."""

    dtype: str = Field(pattern=r"^(u?int(8|16|32)|float(32|64))$")
    unit: str
    nodata: float
    resolution_m: float = Field(gt=0)
    bands: tuple[str, ...] = ("value",)


class Style(_Strict):
    """How a layer is drawn on the maps (Leaflet path/marker options)."""

    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    fill_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    weight: float = Field(default=1.5, ge=0, le=20)
    opacity: float = Field(default=0.9, ge=0, le=1)
    fill_opacity: float = Field(default=0.3, ge=0, le=1)
    radius: float = Field(default=4, ge=0, le=40)
    min_zoom: int = Field(default=0, ge=0, le=22)
    label_field: str | None = None
    colormap: str | None = Field(default=None, description="matplotlib colormap name for rasters")


class Layer(_Strict):
    """One base layer of the catalog."""

    code: Annotated[str, Field(pattern=CODE_RE)]
    zh: str = Field(min_length=1, description="Chinese name")
    en: str = Field(min_length=1, description="English name")
    geometry: GeometryType
    description: str | None = None
    department: str = Field(min_length=1, description="owning department (Chinese name)")
    sensitivity: Sensitivity
    cadence: Cadence
    natural_key: tuple[str, ...] = ()
    time_field: str | None = Field(default=None, description="attribute for datetime filters")
    attributes: tuple[Attribute, ...] = ()
    raster: RasterSpec | None = None
    style: Style
    role: LayerRole | None = Field(
        default=None, description="what the platform relies on this layer for (unique)"
    )
    group: str = Field(default="", description="filled from the group file")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [a.name for a in self.attributes]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"attribute {name!r} is declared twice")
            if name in RESERVED_COLUMNS:
                raise ValueError(f"attribute {name!r} is a reserved column name")
            seen.add(name)
        if self.geometry is GeometryType.raster:
            if self.raster is None:
                raise ValueError("a raster layer needs a 'raster' section")
            if self.attributes or self.natural_key:
                raise ValueError("a raster layer has no attributes or natural key")
            return self
        if self.raster is not None:
            raise ValueError("only raster layers have a 'raster' section")
        if not self.natural_key:
            raise ValueError("a vector layer needs a natural_key")
        by_name = {a.name: a for a in self.attributes}
        for key in self.natural_key:
            if key not in by_name:
                raise ValueError(f"natural_key field {key!r} is not an attribute")
            if not by_name[key].required:
                raise ValueError(f"natural_key field {key!r} must be required")
        if self.time_field is not None:
            attr = by_name.get(self.time_field)
            if attr is None or attr.type not in (AttributeType.date, AttributeType.datetime):
                raise ValueError(f"time_field {self.time_field!r} is not a date/datetime attribute")
        if self.style.label_field is not None and self.style.label_field not in by_name:
            raise ValueError(f"style.label_field {self.style.label_field!r} is not an attribute")
        all_aliases: dict[str, str] = {}
        for attr in self.attributes:
            for alias in (attr.name, *attr.aliases):
                key = alias.casefold()
                if key in all_aliases and all_aliases[key] != attr.name:
                    raise ValueError(
                        f"alias {alias!r} names both {all_aliases[key]!r} and {attr.name!r}"
                    )
                all_aliases[key] = attr.name
        return self

    @property
    def is_raster(self) -> bool:
        """Return whether the layer is a raster (a COG, no table)."""
        return self.geometry is GeometryType.raster

    @property
    def table_name(self) -> str:
        """Return the layer's table name (in the layers schema)."""
        return self.code

    def attribute(self, name: str) -> Attribute:
        """Return the attribute called ``name``."""
        for attr in self.attributes:
            if attr.name == name:
                return attr
        raise KeyError(name)

    @property
    def personal_fields(self) -> tuple[str, ...]:
        """Return the attributes that identify a person."""
        return tuple(a.name for a in self.attributes if a.personal)


class Group(_Strict):
    """A group of layers: one of the four standards, four realities, component classes..."""

    code: Annotated[str, Field(pattern=CODE_RE)]
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    family: GroupFamily
    order: int = Field(ge=0)
    description: str | None = None


class GroupFile(_Strict):
    """The content of one catalog file: a group and its layers."""

    group: Group
    layers: tuple[Layer, ...] = Field(min_length=1)


class Catalog(BaseModel):
    """All groups and layers, validated as a whole."""

    model_config = ConfigDict(frozen=True)

    groups: tuple[Group, ...]
    layers: tuple[Layer, ...]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for kind, codes in (
            ("group", [g.code for g in self.groups]),
            ("layer", [lyr.code for lyr in self.layers]),
        ):
            dupes = sorted({c for c in codes if codes.count(c) > 1})
            if dupes:
                raise ValueError(f"{kind} codes repeat: {', '.join(dupes)}")
        roles = [lyr.role for lyr in self.layers if lyr.role is not None]
        dupes = sorted({r.value for r in roles if roles.count(r) > 1})
        if dupes:
            raise ValueError(f"layer roles repeat: {', '.join(dupes)}")
        return self

    def by_role(self, role: LayerRole | str) -> Layer:
        """Return the layer playing ``role``; raise ``KeyError`` when none does."""
        for lyr in self.layers:
            if lyr.role is not None and lyr.role == role:
                return lyr
        raise KeyError(f"no layer has role {role}")

    @property
    def vector_layers(self) -> tuple[Layer, ...]:
        """Return the layers stored as tables."""
        return tuple(lyr for lyr in self.layers if not lyr.is_raster)

    @property
    def raster_layers(self) -> tuple[Layer, ...]:
        """Return the layers stored as COGs."""
        return tuple(lyr for lyr in self.layers if lyr.is_raster)

    def layer(self, code: str) -> Layer:
        """Return the layer with ``code``; raise ``KeyError`` when unknown."""
        for lyr in self.layers:
            if lyr.code == code:
                return lyr
        raise KeyError(code)

    def has_layer(self, code: str) -> bool:
        """Return whether ``code`` names a layer of the catalog."""
        return any(lyr.code == code for lyr in self.layers)

    def group(self, code: str) -> Group:
        """Return the group with ``code``."""
        for grp in self.groups:
            if grp.code == code:
                return grp
        raise KeyError(code)

    def in_group(self, code: str) -> tuple[Layer, ...]:
        """Return the layers of a group."""
        return tuple(lyr for lyr in self.layers if lyr.group == code)

    def declaration(self, code: str) -> dict[str, Any]:
        """Return a layer's full declaration as JSON-ready data."""
        return self.layer(code).model_dump(mode="json", exclude_none=True)
