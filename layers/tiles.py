"""Mapbox vector tiles of served layers, built by PostGIS, cached per layer version.

One statement renders a tile of one or more layers. A tile holds exactly the lines and
polygons that intersect it, and the points that fall in it grown by the MVT buffer (64 of
4096 units, so point symbols at tile edges are drawn whole); lines and polygons are
clipped to the tile plus that buffer (no seams). Features are found through the GiST index
(``geom && ST_Transform(envelope, storage)``), moved to Web Mercator and tested there,
simplified below zoom ``SIMPLIFY_BELOW`` (half a tile unit, keeping collapsed features),
clipped by ``ST_AsMVTGeom`` and encoded by ``ST_AsMVT``; at most ``limit`` features per
layer. Polygons smaller than a tile unit at low zoom vanish: MVT cannot hold them.

The layers' current versions are read in the same statement, so a tile is cached under
the versions it was made from; the ETag names them, and a reload (a new version) changes
both. Tiles are answered without parallel workers: starting them costs more than they
save on one tile (measured 140 ms against 60 ms for 9,700 buildings at z14); below z16 a
``SET LOCAL`` says so (the planner does start workers for busy z15 tiles), from z16 on (a
few hundred features: it never does, checked on the full-scale district) the tile's one
statement runs outside a transaction (:func:`layers.reads.one_statement`), three round
trips fewer.

Tiles are kept gzip-compressed (level 1: 2.1 MB of buildings at z12 become 0.74 MB in a
tenth of the time level 5 takes), compressed once when rendered: a cached tile is sent as
it is to every client that accepts gzip, and the cache holds three times as many.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import morecantile
from sqlalchemy import Connection, text

from layers.access import DEFAULT_READER, Reader, served_layer
from layers.live import LiveLayers
from layers.masking import without_personal
from layers.reads import one_statement
from schemas.catalog import Catalog, Layer
from schemas.errors import InvalidInput, NotFound
from schemas.tables import LAYER_SCHEMA

TMS_ID: Final = "WebMercatorQuad"
TMS: Final = morecantile.tms.get(TMS_ID)
EXTENT: Final = 4096
BUFFER: Final = 64
MAX_FEATURES: Final = 20_000
SIMPLIFY_BELOW: Final = 13
MIN_ZOOM: Final = 0
MAX_ZOOM: Final = 22
GZIP_LEVEL: Final = 1
#: From this zoom a tile's features never make the planner start workers: no SET LOCAL.
SERIAL_BY_PLAN_FROM: Final = 16
WORLD_M: Final = 40_075_016.685578488


@dataclass(frozen=True)
class Tile:
    """An encoded tile, gzip-compressed (empty bytes when no feature falls in it), its ETag."""

    gzipped: bytes
    etag: str
    versions: tuple[int, ...]

    @property
    def empty(self) -> bool:
        """Return whether no feature falls in the tile."""
        return not self.gzipped

    @property
    def data(self) -> bytes:
        """Return the MVT bytes (uncompressed)."""
        return gzip.decompress(self.gzipped) if self.gzipped else b""


def check_tile(tms: str, z: int, y: int, x: int) -> None:
    """Refuse tile matrix sets other than WebMercatorQuad and tiles outside its matrices."""
    if tms != TMS_ID:
        raise NotFound(f"tile matrix set {tms[:40]!r} is not offered; use {TMS_ID}")
    if not MIN_ZOOM <= z <= MAX_ZOOM:
        raise NotFound(f"tile matrix {z} is outside {MIN_ZOOM}..{MAX_ZOOM}")
    matrix = TMS.matrix(z)
    if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
        raise NotFound(f"tile {z}/{y}/{x} is outside the tile matrix ({matrix.matrixWidth} wide)")


def _quote(name: str) -> str:
    """Quote an identifier that the catalog has already validated."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise InvalidInput(f"{name!r} is not an identifier")
    return '"' + name.replace('"', '""') + '"'


def tile_properties(layer: Layer, names: Sequence[str] | None) -> tuple[str, ...]:
    """Return the attributes a tile carries for ``layer`` (all when None); check the names."""
    known = [a.name for a in layer.attributes]
    if names is None:
        return tuple(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput(f"{unknown[0][:60]!r} is not a property of {layer.code}: {known}")
    return tuple(dict.fromkeys(names))


def _layer_sql(layer: Layer, index: int, props: Sequence[str], z: int, storage_epsg: int) -> str:
    table = f"{LAYER_SCHEMA}.{_quote(layer.code)}"
    cols = "".join(f", t.{_quote(n)}" for n in props)
    outer = "".join(f", c.{_quote(n)}" for n in props)
    geom = "c.g"
    points = layer.geometry.single.value == "Point"
    margin = ":m" if points else "0.0"
    if z < SIMPLIFY_BELOW and not points:
        tolerance = WORLD_M / (2**z * EXTENT) / 2
        geom = f"ST_Simplify(c.g, {tolerance!r}, true)"
    return f"""(
        SELECT coalesce(ST_AsMVT(q, '{layer.code}', {EXTENT}, 'geom', 'fid'), ''::bytea)
        FROM (
            SELECT c.fid{outer},
                   ST_AsMVTGeom({geom}, ST_TileEnvelope(:z, :x, :y), {EXTENT}, {BUFFER}, true)
                   AS geom
            FROM (SELECT t.fid{cols}, ST_Transform(t.geom, 3857) AS g
                  FROM {table} t
                  WHERE t.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {margin}),
                                               {int(storage_epsg)})) c
            WHERE ST_Intersects(c.g, ST_TileEnvelope(:z, :x, :y, margin => {margin}))
            LIMIT :limit
        ) q WHERE q.geom IS NOT NULL) AS l{index},
        (SELECT current_version FROM catalog_layers WHERE code = :code{index}) AS v{index}"""


def render(
    conn: Connection,
    *,
    layers: Sequence[Layer],
    properties: Sequence[Sequence[str]],
    z: int,
    x: int,
    y: int,
    limit: int,
    storage_epsg: int,
) -> tuple[bytes, tuple[int, ...]]:
    """Return the MVT bytes of the layers at z/x/y and the versions they were read at."""
    parts = [
        _layer_sql(layer, i, props, z, storage_epsg)
        for i, (layer, props) in enumerate(zip(layers, properties, strict=True))
    ]
    params: dict[str, object] = {"z": z, "x": x, "y": y, "m": BUFFER / EXTENT, "limit": limit}
    params |= {f"code{i}": layer.code for i, layer in enumerate(layers)}
    statement = text("SELECT " + ",\n".join(parts))
    if z < SERIAL_BY_PLAN_FROM:
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        row = conn.execute(statement, params).one()
    else:
        with one_statement(conn):
            row = conn.execute(statement, params).one()
    data = b"".join(bytes(row[2 * i]) for i in range(len(layers)))
    versions = tuple(int(row[2 * i + 1] or 0) for i in range(len(layers)))
    return data, versions


def _etag(key: tuple[object, ...]) -> str:
    return '"' + hashlib.sha1(repr(key).encode(), usedforsecurity=False).hexdigest()[:20] + '"'


@dataclass(frozen=True)
class TileQuery:
    """A checked tile request: layers, their properties, position and feature limit."""

    layers: tuple[Layer, ...]
    properties: tuple[tuple[str, ...], ...]
    z: int
    x: int
    y: int
    limit: int

    def key(self, versions: Sequence[int]) -> tuple[object, ...]:
        """Return the cache key of this tile at the given layer versions."""
        codes = tuple(layer.code for layer in self.layers)
        return (codes, tuple(versions), self.properties, self.z, self.x, self.y, self.limit)


def tile_query(
    catalog: Catalog,
    *,
    codes: Sequence[str],
    tms: str,
    z: int,
    y: int,
    x: int,
    properties: Sequence[str] | None = None,
    limit: int = MAX_FEATURES,
    reader: Reader = DEFAULT_READER,
) -> TileQuery:
    """Check a tile request against the catalog, the tile matrix set and what ``reader`` reads.

    Personal fields a reader gets masked are left out of its tiles (and cannot be asked for).
    """
    check_tile(tms, z, y, x)
    if not codes:
        raise InvalidInput("name at least one collection")
    if len(codes) > 50:
        raise InvalidInput("at most 50 collections in one tile")
    layers = tuple(tile_layer(catalog, code, reader=reader) for code in dict.fromkeys(codes))
    if not 1 <= limit <= MAX_FEATURES:
        raise InvalidInput(f"limit must be within 1..{MAX_FEATURES}")
    if properties is not None and len(layers) > 1:
        props = tuple(
            tuple(n for n in properties if n in {a.name for a in lyr.attributes}) for lyr in layers
        )
    else:
        props = tuple(tile_properties(lyr, properties) for lyr in layers)
    return TileQuery(layers=layers, properties=props, z=z, x=x, y=y, limit=limit)


def tile_layer(catalog: Catalog, code: str, *, reader: Reader = DEFAULT_READER) -> Layer:
    """Return the layer as ``reader``'s tiles carry it: without the fields it gets masked."""
    layer = served_layer(catalog, code, reader=reader)
    return without_personal(layer) if reader.masks(layer) else layer


def current_etag(live: LiveLayers, query: TileQuery) -> str:
    """Return the ETag the tile has at the versions the clock knows (no tile is made)."""
    return _etag(query.key([live.clock.get(lyr.code) for lyr in query.layers]))


def get_tile(conn: Connection, *, live: LiveLayers, query: TileQuery, storage_epsg: int) -> Tile:
    """Return the tile from the cache, or render and cache it."""
    versions = [live.clock.get(lyr.code) for lyr in query.layers]
    key = query.key(versions)
    cached = live.tiles.get(key)
    if cached is not None:
        return Tile(cached, _etag(key), tuple(versions))
    data, read = render(
        conn,
        layers=query.layers,
        properties=query.properties,
        z=query.z,
        x=query.x,
        y=query.y,
        limit=query.limit,
        storage_epsg=storage_epsg,
    )
    for layer, version in zip(query.layers, read, strict=True):
        live.clock.note(layer.code, version)
    key = query.key(read)
    packed = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0) if data else b""
    live.tiles.put(key, packed)
    return Tile(packed, _etag(key), read)
