"""OGC API collection descriptions and queryables of served layers, from the catalog.

Links are the API's business; this module says what a collection is: titles (zh + en),
extent (from the table, cached per version, else the district extent), time range of the
layer's time field, storage CRS and the CRSs offered for output.
"""

from __future__ import annotations

from typing import Any, Final

from layers.access import storage_crs_uri
from layers.features import Extent
from schemas.catalog import Attribute, AttributeType, Layer
from schemas.geodesy import CRS84_URI, OUTPUT_CRS_URIS

GREGORIAN: Final = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
JSON_SCHEMA: Final = "https://json-schema.org/draft/2020-12/schema"
GEOMETRY_QUERYABLE: Final = "geometry"
_JSON_TYPES: Final = {
    AttributeType.string: {"type": "string"},
    AttributeType.integer: {"type": "integer"},
    AttributeType.float: {"type": "number"},
    AttributeType.boolean: {"type": "boolean"},
    AttributeType.date: {"type": "string", "format": "date"},
    AttributeType.datetime: {"type": "string", "format": "date-time"},
}


def offered_crs() -> list[str]:
    """Return the output CRS URIs, CRS84 first."""
    return [CRS84_URI, *(uri for uri in OUTPUT_CRS_URIS.values() if uri != CRS84_URI)]


def _moment(value: str | None, *, end: bool) -> str | None:
    if value is None:
        return None
    if "T" in value:
        return value
    return f"{value}T23:59:59Z" if end else f"{value}T00:00:00Z"


def collection_info(
    layer: Layer,
    extent: Extent | None,
    *,
    storage_epsg: int,
    district_extent: tuple[float, float, float, float],
) -> dict[str, Any]:
    """Return a collection's description (without links)."""
    bbox = extent.bbox if extent is not None and extent.bbox is not None else district_extent
    spatial: dict[str, Any] = {"bbox": [list(bbox)], "crs": CRS84_URI}
    info: dict[str, Any] = {
        "id": layer.code,
        "title": f"{layer.zh} {layer.en}",
        "description": layer.description or f"{layer.zh} / {layer.en} ({layer.department})",
        "title_zh": layer.zh,
        "title_en": layer.en,
        "keywords": [layer.group, layer.geometry.value, layer.department],
        "itemType": "feature",
        "extent": {"spatial": spatial},
        "storageCrs": storage_crs_uri(storage_epsg),
        "crs": offered_crs(),
    }
    if layer.time_field is not None:
        start = _moment(extent.start if extent else None, end=False)
        finish = _moment(extent.end if extent else None, end=True)
        info["extent"]["temporal"] = {"interval": [[start, finish]], "trs": GREGORIAN}
    return info


def _attribute_schema(attr: Attribute) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": f"{attr.zh} / {attr.en}", **_JSON_TYPES[attr.type]}
    if attr.description:
        schema["description"] = attr.description
    if attr.enum:
        schema["enum"] = list(attr.enum_values)
    if attr.min is not None:
        schema["minimum"] = int(attr.min) if attr.type is AttributeType.integer else attr.min
    if attr.max is not None:
        schema["maximum"] = int(attr.max) if attr.type is AttributeType.integer else attr.max
    if attr.max_length is not None:
        schema["maxLength"] = attr.max_length
    if attr.unit:
        schema["x-ogc-unit"] = attr.unit
    return schema


def queryables(layer: Layer, *, self_url: str) -> dict[str, Any]:
    """Return the layer's queryables as a JSON Schema (CQL2 property names and types)."""
    props: dict[str, Any] = {
        GEOMETRY_QUERYABLE: {
            "title": "Geometry",
            "x-ogc-role": "primary-geometry",
            "format": f"geometry-{layer.geometry.value.lower()}",
        }
    }
    for attr in layer.attributes:
        props[attr.name] = _attribute_schema(attr)
    return {
        "$schema": JSON_SCHEMA,
        "$id": self_url,
        "type": "object",
        "title": f"{layer.zh} {layer.en}",
        "properties": props,
        "additionalProperties": False,
    }
