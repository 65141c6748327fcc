"""OGC API - Features Parts 1-3: conformance, collections, items, queryables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.deps import CatalogDep, ConnectionDep, SettingsDep
from api.links import GEOJSON, JSON, SCHEMA_JSON, LiveDep, json_response, link, url
from api.params import (
    ITEMS_PARAMS,
    check_format,
    parse_bbox,
    parse_datetime,
    parse_limit,
    parse_list,
    parse_offset,
    parse_sortby,
)
from api.readers import ReaderDep
from layers.access import readable_layers, served_layer
from layers.collections import collection_info, queryables
from layers.features import ItemsPage, ItemsQuery, extents, item, items
from layers.masking import without_personal
from schemas.errors import InvalidInput

router = APIRouter(tags=["OGC API - Features"])

_F = "http://www.opengis.net/spec/ogcapi-features-"
_CQL = "http://www.opengis.net/spec/cql2/1.0/conf/"
_T = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
CONFORMANCE: Final = [
    f"{_F}1/1.0/conf/core",
    f"{_F}1/1.0/conf/geojson",
    f"{_F}1/1.0/conf/oas30",
    f"{_F}2/1.0/conf/crs",
    f"{_F}3/1.0/conf/filter",
    f"{_F}3/1.0/conf/features-filter",
    f"{_F}3/1.0/conf/queryables",
    f"{_CQL}cql2-text",
    f"{_CQL}cql2-json",
    f"{_CQL}basic-cql2",
    f"{_CQL}advanced-comparison-operators",
    f"{_CQL}case-insensitive-comparison",
    f"{_CQL}basic-spatial-functions",
    f"{_CQL}spatial-functions",
    f"{_CQL}property-property",
    f"{_T}core",
    f"{_T}tileset",
    f"{_T}tilesets-list",
    f"{_T}geodata-tilesets",
    f"{_T}oas30",
    f"{_T}mvt",
]
Text = str | None
Fmt = Annotated[Text, Query(description="output format: json (the only one)")]


@router.get("/conformance", summary="Conformance classes")
def conformance(f: Fmt = None) -> Response:
    """Return the conformance classes this API implements."""
    check_format(f)
    return json_response({"conformsTo": CONFORMANCE})


def _collection(request: Request, info: dict[str, Any]) -> dict[str, Any]:
    code = info["id"]
    base = f"/collections/{code}"
    info["links"] = [
        link(url(request, base), "self", JSON, "this collection"),
        link(url(request, f"{base}/items"), "items", GEOJSON, "features"),
        link(url(request, f"{base}/queryables"), "http://www.opengis.net/def/rel/ogc/1.0/queryables",
             SCHEMA_JSON, "queryables"),
        link(url(request, f"{base}/tiles"), "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
             JSON, "vector tiles"),
        link(url(request, f"/catalog/layers/{code}"), "describedby", JSON, "catalog declaration"),
    ]  # fmt: skip
    return info


@router.get("/collections", summary="Feature collections (the vector layers the caller may read)")
def collections(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    live: LiveDep,
    reader: ReaderDep,
    f: Fmt = None,
) -> Response:
    """Return every layer the caller may read with its extent, CRSs and links."""
    check_format(f)
    layers = readable_layers(catalog, reader)
    known = extents(
        conn,
        catalog=catalog,
        live=live,
        codes=[lyr.code for lyr in layers],
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    body = {
        "links": [link(url(request, "/collections"), "self", JSON, "collections")],
        "collections": [
            _collection(
                request,
                collection_info(
                    lyr,
                    known.get(lyr.code),
                    storage_epsg=settings.storage_epsg,
                    district_extent=settings.district_extent,
                ),
            )
            for lyr in layers
        ],
    }
    return json_response(body)


@router.get("/collections/{collectionId}", summary="One feature collection")
def collection(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    live: LiveDep,
    reader: ReaderDep,
    collection_id: Annotated[str, Path(alias="collectionId")],
    f: Fmt = None,
) -> Response:
    """Return one collection: titles, extent, CRSs, links."""
    check_format(f)
    layer = served_layer(catalog, collection_id, reader=reader)
    known = extents(
        conn,
        catalog=catalog,
        live=live,
        codes=[layer.code],
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    info = collection_info(
        layer,
        known.get(layer.code),
        storage_epsg=settings.storage_epsg,
        district_extent=settings.district_extent,
    )
    return json_response(_collection(request, info))


@router.get("/collections/{collectionId}/queryables", summary="Queryable properties")
def collection_queryables(
    request: Request,
    catalog: CatalogDep,
    reader: ReaderDep,
    collection_id: Annotated[str, Path(alias="collectionId")],
    f: Fmt = None,
) -> Response:
    """Return the properties a filter may name, as JSON Schema (masked fields are not)."""
    check_format(f)
    layer = served_layer(catalog, collection_id, reader=reader)
    if reader.masks(layer):
        layer = without_personal(layer)
    self_url = url(request, f"/collections/{layer.code}/queryables")
    return json_response(queryables(layer, self_url=self_url), media_type=SCHEMA_JSON)


def _page_links(request: Request, page: ItemsPage, code: str) -> list[dict[str, Any]]:
    params = dict(request.query_params)
    path = f"/collections/{code}/items"
    links = [
        link(url(request, path, params), "self", GEOJSON, "this page"),
        link(url(request, path, params | {"f": "json"}), "alternate", JSON, "this page as JSON"),
        link(url(request, f"/collections/{code}"), "collection", JSON, "the collection"),
    ]
    query = page.query
    if query.offset + page.returned < page.matched and page.returned > 0:
        nxt = params | {"offset": str(query.offset + page.returned), "limit": str(query.limit)}
        links.append(link(url(request, path, nxt), "next", GEOJSON, "next page"))
    if query.offset > 0:
        prev = params | {
            "offset": str(max(0, query.offset - query.limit)),
            "limit": str(query.limit),
        }
        links.append(link(url(request, path, prev), "prev", GEOJSON, "previous page"))
    return links


ITEMS_DOC: Final = (
    "A page of features as GeoJSON (`application/geo+json`), sorted by `sortby` then feature "
    "id. `numberMatched` is **exact**: the feature count recorded for the layer's current "
    "version when there is no bbox, datetime or filter, else a `count(*)` with the same "
    "conditions (kept per layer version while paging), so it equals what following the "
    "`next` links yields. `limit` defaults to 100; values above 10000 are clamped to 10000. "
    "Coordinates are CRS84 unless `crs` names another offered CRS; EPSG CRSs are written in "
    "the axis order of their EPSG definition (4326/4490 lat, lon; 4547 northing, easting; "
    "3857 x, y) and named in the `Content-Crs` header."
)


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    description=ITEMS_DOC,
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}},
)
def collection_items(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    live: LiveDep,
    reader: ReaderDep,
    collection_id: Annotated[str, Path(alias="collectionId")],
    limit: Annotated[Text, Query(description="page size, 1..10000 (default 100)")] = None,
    offset: Annotated[Text, Query(description="features to skip")] = None,
    bbox: Annotated[Text, Query(description="minx,miny,maxx,maxy in bbox-crs")] = None,
    bbox_crs: Annotated[Text, Query(alias="bbox-crs", description="CRS of bbox")] = None,
    datetime_: Annotated[Text, Query(alias="datetime", description="instant or interval")] = None,
    properties: Annotated[Text, Query(description="properties to return")] = None,
    sortby: Annotated[Text, Query(description="+name,-name,...")] = None,
    filter_: Annotated[Text, Query(alias="filter", description="CQL2 filter")] = None,
    filter_lang: Annotated[Text, Query(alias="filter-lang", description="cql2-text|json")] = None,
    filter_crs: Annotated[Text, Query(alias="filter-crs", description="CRS of filter")] = None,
    crs: Annotated[Text, Query(description="output CRS URI (default CRS84)")] = None,
    f: Fmt = None,
) -> Response:
    """Return a page of features as a GeoJSON FeatureCollection with paging links."""
    check_format(f)
    unknown = sorted(set(request.query_params).difference(ITEMS_PARAMS))
    if unknown:
        raise InvalidInput(f"unknown query parameter {unknown[0][:40]!r}")
    query = ItemsQuery(
        limit=parse_limit(limit),
        offset=parse_offset(offset),
        bbox=parse_bbox(bbox),
        bbox_crs=bbox_crs,
        interval=parse_datetime(datetime_),
        filter=filter_,
        filter_lang=filter_lang,
        filter_crs=filter_crs,
        properties=parse_list(properties, "properties"),
        sortby=parse_sortby(sortby),
        crs=crs,
    )
    page = items(
        conn,
        catalog=catalog,
        live=live,
        code=collection_id,
        query=query,
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    head = {
        "type": "FeatureCollection",
        "numberMatched": page.matched,
        "numberReturned": page.returned,
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "links": _page_links(request, page, collection_id),
    }
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    body = f'{text[:-1]},"features":[{page.features}]}}'.encode()
    media = JSON if (f or "").strip().lower() in ("json", JSON) else GEOJSON
    return Response(body, media_type=media, headers={"Content-Crs": f"<{page.crs.uri}>"})


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}},
)
def collection_item(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    collection_id: Annotated[str, Path(alias="collectionId")],
    feature_id: Annotated[str, Path(alias="featureId")],
    properties: Annotated[Text, Query(description="properties to return")] = None,
    crs: Annotated[Text, Query(description="output CRS URI (default CRS84)")] = None,
    f: Fmt = None,
) -> Response:
    """Return one feature by its id (fid)."""
    check_format(f)
    text, out = item(
        conn,
        catalog=catalog,
        code=collection_id,
        fid=feature_id,
        crs=crs,
        properties=parse_list(properties, "properties"),
        storage_epsg=settings.storage_epsg,
        reader=reader,
    )
    links = [
        link(url(request, f"/collections/{collection_id}/items/{feature_id}"), "self", GEOJSON),
        link(url(request, f"/collections/{collection_id}"), "collection", JSON),
    ]
    extra = json.dumps(links, ensure_ascii=False, separators=(",", ":"))
    body = f'{text[:-1]},"links":{extra}}}'.encode()
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{out.uri}>"})
