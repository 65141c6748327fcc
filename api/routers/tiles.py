"""OGC API - Tiles: vector tiles per collection and for several at once, TileJSON, metadata."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from api.compression import accepts_gzip
from api.deps import CatalogDep, ConnectionDep, SettingsDep
from api.links import JSON, MVT, LiveDep, json_response, link, url
from api.params import check_format, parse_int, parse_list
from api.readers import ReaderDep
from layers.access import Reader
from layers.live import LiveLayers
from layers.tiles import (
    MAX_FEATURES,
    MAX_ZOOM,
    MIN_ZOOM,
    TMS,
    TMS_ID,
    current_etag,
    get_tile,
    tile_layer,
    tile_query,
)
from schemas.catalog import Catalog, Layer
from schemas.errors import InvalidInput, NotFound

router = APIRouter(tags=["OGC API - Tiles"])
CACHE_CONTROL: Final = "public, max-age=60"
TMS_URI: Final = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
WEB_MERCATOR: Final = "http://www.opengis.net/def/crs/EPSG/0/3857"
CollectionId = Annotated[str, Path(alias="collectionId")]
TmsId = Annotated[str, Path(alias="tileMatrixSetId")]
Text = str | None


def _int(value: str, name: str) -> int:
    return parse_int(value, name, default=0, low=0, high=2**31 - 1)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _tile_answer(
    conn: Connection,
    *,
    catalog: Catalog,
    live: LiveLayers,
    reader: Reader,
    storage_epsg: int,
    codes: list[str],
    position: tuple[str, str, str, str],
    properties: str | None,
    limit: str | None,
    if_none_match: str | None,
    accept_encoding: str | None = None,
) -> Response:
    """Check a tile request and answer it: 304 on a matching ETag, 204 when empty, else MVT.

    The MVT goes gzip-compressed (as cached) to a client that accepts gzip.
    """
    tms, z, y, x = position
    query = tile_query(
        catalog,
        codes=codes,
        tms=tms,
        z=_int(z, "tileMatrix"),
        y=_int(y, "tileRow"),
        x=_int(x, "tileCol"),
        properties=parse_list(properties, "properties"),
        limit=parse_int(limit, "limit", default=MAX_FEATURES, low=1, high=MAX_FEATURES),
        reader=reader,
    )
    headers = {"Cache-Control": CACHE_CONTROL}
    etag = current_etag(live, query)
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers | {"ETag": etag})
    tile = get_tile(conn, live=live, query=query, storage_epsg=storage_epsg)
    headers["ETag"] = tile.etag
    if tile.empty:
        return Response(status_code=204, headers=headers)
    if accepts_gzip(accept_encoding or ""):
        # Sent as cached (tiles are outside the app's gzip paths: api/compression.py).
        headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(tile.gzipped, media_type=MVT, headers=headers)
    return Response(tile.data, media_type=MVT, headers=headers)


TileMatrix = Annotated[str, Path(alias="tileMatrix")]
TileRow = Annotated[str, Path(alias="tileRow")]
TileCol = Annotated[str, Path(alias="tileCol")]
Properties = Annotated[Text, Query(description="attributes to include (default all)")]
IfNoneMatch = Annotated[str | None, Header()]
AcceptEncoding = Annotated[str | None, Header(include_in_schema=False)]
TILE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {MVT: {}}},
    204: {"description": "no feature in this tile"},
}


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A vector tile of one collection",
    response_class=Response,
    responses=TILE_RESPONSES,
)
def collection_tile(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    live: LiveDep,
    reader: ReaderDep,
    collection_id: CollectionId,
    tms: TmsId,
    z: TileMatrix,
    y: TileRow,
    x: TileCol,
    properties: Properties = None,
    limit: Annotated[Text, Query(description=f"features per tile, at most {MAX_FEATURES}")] = None,
    if_none_match: IfNoneMatch = None,
    accept_encoding: AcceptEncoding = None,
) -> Response:
    """Return the MVT tile z/y/x (204 when empty); ETag from the layer version."""
    return _tile_answer(
        conn,
        catalog=catalog,
        live=live,
        reader=reader,
        storage_epsg=settings.storage_epsg,
        codes=[collection_id],
        position=(tms, z, y, x),
        properties=properties,
        limit=limit,
        if_none_match=if_none_match,
        accept_encoding=accept_encoding,
    )


def _codes(collections: str | None) -> list[str]:
    codes = list(parse_list(collections, "collections") or ())
    if not codes:
        raise InvalidInput("collections names no layer: ?collections=road_centerline,building")
    return codes


@router.get(
    "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A vector tile of several collections (one MVT layer each)",
    response_class=Response,
    responses=TILE_RESPONSES,
)
def multi_tile(
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    live: LiveDep,
    reader: ReaderDep,
    tms: TmsId,
    z: TileMatrix,
    y: TileRow,
    x: TileCol,
    collections: Annotated[Text, Query(description="layer codes, comma-separated")] = None,
    properties: Properties = None,
    limit: Annotated[Text, Query(description=f"features per layer, at most {MAX_FEATURES}")] = None,
    if_none_match: IfNoneMatch = None,
    accept_encoding: AcceptEncoding = None,
) -> Response:
    """Return one MVT tile holding a layer per collection (204 when all are empty)."""
    return _tile_answer(
        conn,
        catalog=catalog,
        live=live,
        reader=reader,
        storage_epsg=settings.storage_epsg,
        codes=_codes(collections),
        position=(tms, z, y, x),
        properties=properties,
        limit=limit,
        if_none_match=if_none_match,
        accept_encoding=accept_encoding,
    )


def _fields(layer: Layer) -> dict[str, str]:
    kinds = {"integer": "Number", "float": "Number", "boolean": "Boolean"}
    return {a.name: kinds.get(a.type.value, "String") for a in layer.attributes}


def _tilejson(
    request: Request, catalog: Catalog, layers: list[Layer], template: str, bounds: Any
) -> dict[str, Any]:
    minzoom = min(lyr.style.min_zoom for lyr in layers)
    west, south, east, north = bounds
    return {
        "tilejson": "3.0.0",
        "name": ",".join(lyr.code for lyr in layers),
        "description": "; ".join(f"{lyr.zh} {lyr.en}" for lyr in layers),
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [template],
        "minzoom": max(MIN_ZOOM, minzoom),
        "maxzoom": MAX_ZOOM,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, max(minzoom, 12)],
        "vector_layers": [
            {
                "id": lyr.code,
                "description": f"{lyr.zh} {lyr.en}",
                "fields": _fields(lyr),
                "minzoom": lyr.style.min_zoom,
                "maxzoom": MAX_ZOOM,
            }
            for lyr in layers
        ],
    }


@router.get(
    "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json",
    summary="TileJSON of a collection's vector tiles",
)
def collection_tilejson(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    collection_id: CollectionId,
    tms: TmsId,
) -> Response:
    """Return TileJSON 3.0 for the collection's tiles (for MapLibre, Leaflet plug-ins)."""
    layer = tile_layer(catalog, collection_id, reader=reader)
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms[:40]!r} is not offered; use {TMS_ID}")
    template = url(request, f"/collections/{layer.code}/tiles/{TMS_ID}") + "/{z}/{y}/{x}"
    body = _tilejson(request, catalog, [layer], template, settings.district_extent)
    return json_response(body)


@router.get("/tiles/{tileMatrixSetId}/tilejson.json", summary="TileJSON of several collections")
def multi_tilejson(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    tms: TmsId,
    collections: Annotated[Text, Query(description="layer codes, comma-separated")] = None,
) -> Response:
    """Return TileJSON 3.0 for a multi-layer tile set."""
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms[:40]!r} is not offered; use {TMS_ID}")
    layers = [
        tile_layer(catalog, code, reader=reader) for code in dict.fromkeys(_codes(collections))
    ]
    named = ",".join(lyr.code for lyr in layers)
    template = url(request, f"/tiles/{TMS_ID}") + "/{z}/{y}/{x}?collections=" + named
    return json_response(_tilejson(request, catalog, layers, template, settings.district_extent))


def _tileset(request: Request, layer: Layer, bounds: Any) -> dict[str, Any]:
    base = f"/collections/{layer.code}/tiles/{TMS_ID}"
    return {
        "title": f"{layer.zh} {layer.en}",
        "dataType": "vector",
        "crs": WEB_MERCATOR,
        "tileMatrixSetURI": TMS_URI,
        "boundingBox": {
            "lowerLeft": list(bounds[:2]),
            "upperRight": list(bounds[2:]),
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "tileMatrixSetLimits": [{"tileMatrix": str(z)} for z in range(MIN_ZOOM, MAX_ZOOM + 1)],
        "layers": [
            {
                "id": layer.code,
                "dataType": "vector",
                "geometryDimension": {"Point": 0, "LineString": 1, "Polygon": 2}[
                    layer.geometry.single.value
                ],
                "propertiesSchema": {
                    "type": "object",
                    "properties": {n: {"type": t.lower()} for n, t in _fields(layer).items()},
                },
            }
        ],
        "links": [
            link(url(request, base), "self", JSON, "this tileset"),
            link(url(request, f"/tileMatrixSets/{TMS_ID}"),
                 "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", JSON, TMS_ID),
            link(url(request, base) + "/{tileMatrix}/{tileRow}/{tileCol}", "item", MVT,
                 "tiles", templated=True),
            link(url(request, f"{base}/tilejson.json"), "alternate", JSON, "TileJSON"),
        ],
    }  # fmt: skip


@router.get("/collections/{collectionId}/tiles", summary="Vector tilesets of a collection")
def collection_tilesets(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    collection_id: CollectionId,
    f: Annotated[Text, Query()] = None,
) -> Response:
    """Return the list of the collection's tilesets (one: WebMercatorQuad)."""
    check_format(f)
    layer = tile_layer(catalog, collection_id, reader=reader)
    return json_response({"tilesets": [_tileset(request, layer, settings.district_extent)]})


@router.get("/collections/{collectionId}/tiles/{tileMatrixSetId}", summary="A collection's tileset")
def collection_tileset(
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    reader: ReaderDep,
    collection_id: CollectionId,
    tms: TmsId,
    f: Annotated[Text, Query()] = None,
) -> Response:
    """Return the metadata of the collection's WebMercatorQuad tileset."""
    check_format(f)
    layer = tile_layer(catalog, collection_id, reader=reader)
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms[:40]!r} is not offered; use {TMS_ID}")
    return json_response(_tileset(request, layer, settings.district_extent))


@router.get("/tileMatrixSets", summary="Tile matrix sets")
def tile_matrix_sets(request: Request) -> Response:
    """Return the tile matrix sets offered (WebMercatorQuad)."""
    href = url(request, f"/tileMatrixSets/{TMS_ID}")
    return json_response(
        {
            "tileMatrixSets": [
                {"id": TMS_ID, "title": TMS.title, "uri": TMS_URI, "links": [
                    link(href, "self", JSON, TMS_ID)]}
            ]
        }
    )  # fmt: skip


@router.get("/tileMatrixSets/{tileMatrixSetId}", summary="A tile matrix set definition")
def tile_matrix_set(tms: TmsId) -> Response:
    """Return the WebMercatorQuad definition."""
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms[:40]!r} is not offered; use {TMS_ID}")
    return Response(TMS.model_dump_json(exclude_none=True, by_alias=True), media_type=JSON)
