"""Which layers are served over HTTP, their tables as SQLAlchemy objects, and output CRSs.

Restricted layers (personal data) are neither listed nor served until roles exist: every
lookup answers for them exactly as for an unknown code. Raster layers are not feature
collections. Tables are declared from the catalog with :func:`schemas.tables.layer_table`
in a private ``MetaData``, so identifiers in SQL come from the catalog and are quoted by
SQLAlchemy, never from the request.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Final

from sqlalchemy import MetaData, Table

from schemas.catalog import Catalog, Layer, Sensitivity
from schemas.errors import InvalidInput, NotFound
from schemas.geodesy import CRS84_URI, EPSG_URI_PREFIX, OUTPUT_CRS_URIS, SourceCrs, parse_crs
from schemas.tables import layer_table

SERVED: Final = frozenset({Sensitivity.public, Sensitivity.internal})
_TABLES: dict[tuple[int, int], tuple[Catalog, MetaData, dict[str, Table]]] = {}
_TABLES_LOCK = threading.Lock()


def is_served(layer: Layer) -> bool:
    """Return whether a layer is served (not restricted)."""
    return layer.sensitivity in SERVED


def served_layers(catalog: Catalog) -> tuple[Layer, ...]:
    """Return the vector layers served as feature collections, in catalog order."""
    return tuple(lyr for lyr in catalog.vector_layers if is_served(lyr))


def _unknown(code: str) -> NotFound:
    shown = code if len(code) <= 64 else code[:61] + "..."
    return NotFound(f"no collection {shown!r}; GET /collections lists them")


def served_layer(catalog: Catalog, code: str, *, restricted: bool = False) -> Layer:
    """Return a served vector layer; raise NotFound for unknown, restricted or raster codes.

    ``restricted``: the caller was let through to a restricted layer by the policy (the
    OGC feature routes only); such a layer is served to it like the others.
    """
    if not catalog.has_layer(code):
        raise _unknown(code)
    layer = catalog.layer(code)
    if layer.is_raster or not (is_served(layer) or restricted):
        raise _unknown(code)
    return layer


def served_raster(catalog: Catalog, code: str) -> Layer:
    """Return a served raster layer; raise NotFound otherwise."""
    if catalog.has_layer(code):
        layer = catalog.layer(code)
        if layer.is_raster and is_served(layer):
            return layer
    shown = code if len(code) <= 64 else code[:61] + "..."
    raise NotFound(f"no raster layer {shown!r}")


def layer_codes(catalog: Catalog, codes: list[str]) -> list[Layer]:
    """Return served layers for a list of codes (each once, in the order given)."""
    seen: dict[str, Layer] = {}
    for code in codes:
        if code not in seen:
            seen[code] = served_layer(catalog, code)
    if not seen:
        raise InvalidInput("name at least one layer")
    return list(seen.values())


def table_for(catalog: Catalog, code: str, *, srid: int, restricted: bool = False) -> Table:
    """Return the SQLAlchemy table of a served layer (declared once per catalog and SRID)."""
    layer = served_layer(catalog, code, restricted=restricted)
    key = (id(catalog), srid)
    with _TABLES_LOCK:
        entry = _TABLES.get(key)
        if entry is None or entry[0] is not catalog:
            entry = (catalog, MetaData(), {})
            _TABLES[key] = entry
        tables = entry[2]
        table = tables.get(code)
        if table is None:
            table = layer_table(entry[1], layer, srid=srid)
            tables[code] = table
    return table


@dataclass(frozen=True, slots=True)
class OutputCrs:
    """How to write coordinates for a requested CRS: transform, axis order, precision."""

    uri: str
    epsg: int  # 4326 stands for CRS84 too
    transform: bool  # ST_Transform from storage needed
    swap: bool  # the EPSG definition puts the north axis first (4326, 4490, 4547)
    decimals: int

    @property
    def geographic(self) -> bool:
        """Return whether coordinates are degrees."""
        return not self.transform or self.epsg in (4326, 4490)


@functools.lru_cache(maxsize=32)
def _output_crs(text: str, storage_epsg: int) -> OutputCrs:
    parsed: SourceCrs = parse_crs(text)
    if parsed.canonical not in OUTPUT_CRS_URIS:
        offered = ", ".join(OUTPUT_CRS_URIS.values())
        raise InvalidInput(f"crs {text[:80]!r} is not offered; choose one of {offered}")
    uri = OUTPUT_CRS_URIS[parsed.canonical]
    crs = parsed.crs
    assert crs is not None
    epsg = parsed.epsg or 4326
    geographic = crs.is_geographic
    # CGCS2000 and WGS84 differ by centimetres and PROJ knows only a null transformation
    # between them: lon/lat output needs no ST_Transform, only the axis order.
    same = epsg == storage_epsg or (geographic and storage_epsg in (4326, 4490))
    swap = uri != CRS84_URI and crs.axis_info[0].direction.lower() == "north"
    return OutputCrs(
        uri=uri, epsg=epsg, transform=not same, swap=swap, decimals=9 if geographic else 4
    )


def output_crs(text: str | None, *, storage_epsg: int) -> OutputCrs:
    """Return how to write coordinates for ``crs`` (None = CRS84); raise InvalidInput."""
    return _output_crs(text or CRS84_URI, storage_epsg)


def north_first(crs: SourceCrs) -> bool:
    """Return whether an EPSG CRS puts its north axis first (4326, 4490, 4547; not CRS84)."""
    definition = crs.crs
    return (
        crs.epsg is not None
        and definition is not None
        and definition.axis_info[0].direction.lower() == "north"
    )


def storage_crs_uri(storage_epsg: int) -> str:
    """Return the OGC URI of the storage CRS."""
    return f"{EPSG_URI_PREFIX}{storage_epsg}"
