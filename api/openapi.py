"""The OpenAPI 3.0 document at the landing page's ``service-desc`` link (``/api``).

FastAPI writes OpenAPI 3.1; QGIS, GDAL and OWSLib read 3.0. The app's document is
converted (``type: [x, "null"]`` and ``anyOf [.., null]`` to ``nullable``, ``const`` to
``enum``, ``examples`` to ``example``, numeric ``exclusiveMinimum``, ``$ref`` siblings
under ``allOf``, binary uploads), the OGC parameters are declared properly (``limit``:
integer, default 100, maximum 10000, form style, explode false), and a path per collection
is generated from the catalog for the layers the caller may read (``layers.access``), so a
layer hidden from a role is not named in its document. Built once per app and set of
readable sensitivities, on first request.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import Response

from api.links import OPENAPI_30
from api.params import ITEMS_PARAMS
from api.readers import ReaderDep
from layers.access import DEFAULT_READER, Reader, readable_layers
from layers.collections import offered_crs
from layers.features import DEFAULT_LIMIT, MAX_LIMIT
from schemas.catalog import Catalog

OPENAPI_VERSION: Final = "3.0.3"
_DROP: Final = frozenset(
    {"$schema", "$id", "$defs", "unevaluatedProperties", "dependentSchemas", "if", "then", "else"}
)
_NESTED_ONE: Final = ("items", "additionalProperties", "not")
_NESTED_MANY: Final = ("allOf", "anyOf", "oneOf")


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def convert_schema(schema: Any) -> Any:
    """Return a JSON Schema (OpenAPI 3.1) as an OpenAPI 3.0 schema object."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: convert_schema(sub) for name, sub in value.items()}
        elif key in _NESTED_ONE:
            out[key] = convert_schema(value)
        elif key == "prefixItems":
            out["items"] = convert_schema(value[0]) if len(value) == 1 else {}
        elif key in _NESTED_MANY and isinstance(value, list):
            kept = [convert_schema(v) for v in value if not _is_null(v)]
            nullable = nullable or len(kept) < len(value)
            if len(kept) == 1 and key != "allOf":
                only = kept[0]
                if "$ref" in only:
                    out.setdefault("allOf", []).append(only)
                else:
                    out.update({k: v for k, v in only.items() if k not in out})
            elif kept:
                out[key] = kept
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            nullable = nullable or len(types) < len(value)
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "type" and value == "null":
            nullable = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in ("contentMediaType", "contentEncoding"):
            out["type"] = "string"
            out["format"] = "binary"
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}, *out.get("allOf", [])]
    if nullable:
        out["nullable"] = True
    return out


def _walk(node: Any) -> Any:
    """Convert every schema found in a part of the document."""
    if isinstance(node, list):
        return [_walk(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "schema":
            out[key] = convert_schema(value)
        elif key == "schemas" and isinstance(value, dict):
            out[key] = {name: convert_schema(s) for name, s in value.items()}
        else:
            out[key] = _walk(value)
    return out


def to_openapi_30(doc: dict[str, Any]) -> dict[str, Any]:
    """Return an OpenAPI 3.1 document converted to 3.0."""
    out = _walk(copy.deepcopy(doc))
    out["openapi"] = OPENAPI_VERSION
    for key in ("webhooks", "jsonSchemaDialect"):
        out.pop(key, None)
    info = out.setdefault("info", {})
    info.pop("summary", None)
    if isinstance(info.get("license"), dict):
        info["license"].pop("identifier", None)
    out.get("components", {}).pop("pathItems", None)
    return out


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": False,
        **extra,
    }


def ogc_parameters() -> dict[str, dict[str, Any]]:
    """Return the OGC API query parameters as reusable components."""
    crs_enum = {"type": "string", "format": "uri", "enum": offered_crs()}
    return {
        "limit": _param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            f"page size; values above {MAX_LIMIT} are clamped to it",
        ),
        "offset": _param(
            "offset", {"type": "integer", "minimum": 0, "default": 0}, "features to skip"
        ),
        "bbox": _param(
            "bbox",
            {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
            "features intersecting this box, in bbox-crs (default CRS84 lon/lat)",
        ),
        "bbox-crs": _param("bbox-crs", crs_enum, "CRS of bbox"),
        "datetime": _param(
            "datetime",
            {"type": "string"},
            "instant or interval (start/end, '..' open) on the layer's time field",
        ),
        "properties": _param(
            "properties",
            {"type": "array", "items": {"type": "string"}},
            "properties to return (default all)",
        ),
        "sortby": _param(
            "sortby",
            {"type": "array", "items": {"type": "string", "pattern": "^[+-]?[a-z][a-z0-9_]*$"}},
            "sort keys: property names, '-' prefix for descending",
        ),
        "filter": _param("filter", {"type": "string"}, "CQL2 filter (see queryables)"),
        "filter-lang": _param(
            "filter-lang",
            {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
            "language of filter",
        ),
        "filter-crs": _param("filter-crs", crs_enum, "CRS of geometries in filter"),
        "crs": _param("crs", crs_enum, "output CRS (default CRS84)"),
        "f": _param("f", {"type": "string", "enum": ["json"]}, "output format"),
    }


ITEMS_DESCRIPTION: Final = (
    "Features as GeoJSON. numberMatched is exact (the stored count of the current version, "
    "or a count(*) with the same conditions); limit above 10000 is clamped."
)
_GEOJSON_RESPONSE: Final = {
    "200": {
        "description": "GeoJSON FeatureCollection; numberMatched is exact",
        "content": {"application/geo+json": {"schema": {"type": "object"}}},
    },
    "400": {"description": "malformed parameter"},
    "404": {"description": "unknown collection"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def collection_paths(catalog: Catalog, reader: Reader = DEFAULT_READER) -> dict[str, Any]:
    """Return a path item per collection ``reader`` may read (items, item, queryables)."""
    paths: dict[str, Any] = {}
    feature_id = {
        "name": "featureId",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
        "description": "feature id",
    }
    for layer in readable_layers(catalog, reader):
        base = f"/collections/{layer.code}"
        title = f"{layer.zh} {layer.en}"
        tag = ["Collections"]
        paths[base] = {
            "get": {
                "summary": f"{title}: description",
                "tags": tag,
                "operationId": f"describe_{layer.code}",
                "responses": {"200": {"description": "the collection"}},
            }
        }
        paths[f"{base}/items"] = {
            "get": {
                "summary": f"{title}: features",
                "tags": tag,
                "operationId": f"items_{layer.code}",
                "description": ITEMS_DESCRIPTION,
                "parameters": [_ref(p) for p in ITEMS_PARAMS],
                "responses": _GEOJSON_RESPONSE,
            }
        }
        paths[f"{base}/items/{{featureId}}"] = {
            "get": {
                "summary": f"{title}: one feature",
                "tags": tag,
                "operationId": f"item_{layer.code}",
                "parameters": [feature_id, _ref("crs"), _ref("properties"), _ref("f")],
                "responses": _GEOJSON_RESPONSE,
            }
        }
        paths[f"{base}/queryables"] = {
            "get": {
                "summary": f"{title}: queryables",
                "tags": tag,
                "operationId": f"queryables_{layer.code}",
                "responses": {
                    "200": {
                        "description": "JSON Schema of the queryable properties",
                        "content": {"application/schema+json": {}},
                    }
                },
            }
        }
    return paths  # fmt: skip


def build_document(
    app: FastAPI, catalog: Catalog, reader: Reader = DEFAULT_READER
) -> dict[str, Any]:
    """Return the app's OpenAPI 3.0 document with the collections ``reader`` may read."""
    doc = to_openapi_30(app.openapi())
    components = doc.setdefault("components", {})
    components.setdefault("parameters", {}).update(ogc_parameters())
    generic = doc.get("paths", {}).get("/collections/{collectionId}/items", {}).get("get")
    if generic is not None:
        path_params = [p for p in generic.get("parameters", []) if p.get("in") == "path"]
        generic["parameters"] = path_params + [_ref(p) for p in ITEMS_PARAMS]
    doc.setdefault("paths", {}).update(collection_paths(catalog, reader))
    return doc


def install_openapi_30(app: FastAPI, catalog: Catalog) -> None:
    """Serve the 3.0 document at ``/api`` (built once per readable set, on first request)."""
    lock = threading.Lock()
    cache: dict[frozenset[Any], bytes] = {}

    @app.get("/api", include_in_schema=False)
    def api_document(reader: ReaderDep) -> Response:
        key = reader.levels
        with lock:
            if key not in cache:
                import json

                document = build_document(app, catalog, reader)
                cache[key] = json.dumps(document, ensure_ascii=False).encode()
        return Response(cache[key], media_type=OPENAPI_30)
