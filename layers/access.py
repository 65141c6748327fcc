"""Which layers are served over HTTP and to whom, their tables as SQLAlchemy objects, output CRSs.

The one rule of who reads a layer lives here (:class:`Reader`): a caller reads the layers
whose sensitivity its role may read (``api/policy.yaml``, section ``sensitivity``, turned
into a :class:`Reader` by the API), and reads restricted layers' personal fields masked
unless its role sees them as stored (:mod:`layers.masking`). A layer the caller may not read
is not listed, and naming it answers as the policy does (401 anonymous, 403 others); with
authentication off (no roles: :data:`DEFAULT_READER`) public and internal layers are served
and restricted ones are unknown (404). Raster layers are not feature collections. Tables
are declared from the catalog with :func:`schemas.tables.layer_table` in a private
``MetaData``, so identifiers in SQL come from the catalog and are quoted by SQLAlchemy,
never from the request.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Final

from sqlalchemy import MetaData, Table

from schemas.catalog import Catalog, Layer, Sensitivity
from schemas.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from schemas.geodesy import CRS84_URI, EPSG_URI_PREFIX, OUTPUT_CRS_URIS, SourceCrs, parse_crs
from schemas.tables import layer_table

SERVED: Final = frozenset({Sensitivity.public, Sensitivity.internal})
_TABLES: dict[tuple[int, int], tuple[Catalog, MetaData, dict[str, Table]]] = {}
_TABLES_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads layers: the sensitivities its role may read, and personal fields masked or not.

    ``role`` is None when authentication is off (no roles: nothing is refused, restricted
    layers are simply not served); ``"anonymous"`` for a caller without credentials.
    """

    levels: frozenset[Sensitivity]
    mask: bool = False
    role: str | None = None

    def may_read(self, layer: Layer) -> bool:
        """Return whether this reader may read ``layer``."""
        return layer.sensitivity in self.levels

    def masks(self, layer: Layer) -> bool:
        """Return whether this reader gets ``layer``'s personal fields masked."""
        return self.mask and bool(layer.personal_fields)

    def refuse(self, layer: Layer) -> Exception:
        """Return the error for a layer this reader may not read (as the policy answers)."""
        if self.role is None:
            return _unknown(layer.code)
        what = f"{layer.sensitivity.value} layer {layer.code}"
        if self.role == "anonymous":
            return Unauthenticated(f"sign in to read the {what}")
        return Forbidden(f"the role {self.role} may not read the {what}")


#: Authentication off, or a caller inside the platform: public and internal layers.
DEFAULT_READER: Final = Reader(levels=SERVED)


def is_served(layer: Layer) -> bool:
    """Return whether a layer is served without roles (authentication off: not restricted)."""
    return DEFAULT_READER.may_read(layer)


def readable_layers(catalog: Catalog, reader: Reader = DEFAULT_READER) -> tuple[Layer, ...]:
    """Return the vector layers ``reader`` may read, in catalog order."""
    return tuple(lyr for lyr in catalog.vector_layers if reader.may_read(lyr))


def served_layers(catalog: Catalog) -> tuple[Layer, ...]:
    """Return the vector layers served without roles (authentication off), in catalog order."""
    return readable_layers(catalog, DEFAULT_READER)


def _unknown(code: str) -> NotFound:
    shown = code if len(code) <= 64 else code[:61] + "..."
    return NotFound(f"no collection {shown!r}; GET /collections lists them")


def served_layer(catalog: Catalog, code: str, *, reader: Reader = DEFAULT_READER) -> Layer:
    """Return a vector layer ``reader`` may read.

    Raise NotFound for unknown and raster codes (and restricted ones without roles),
    Unauthenticated/Forbidden for a layer the reader's role may not read.
    """
    if not catalog.has_layer(code):
        raise _unknown(code)
    layer = catalog.layer(code)
    if layer.is_raster:
        raise _unknown(code)
    if not reader.may_read(layer):
        raise reader.refuse(layer)
    return layer


def served_raster(catalog: Catalog, code: str) -> Layer:
    """Return a served raster layer; raise NotFound otherwise."""
    if catalog.has_layer(code):
        layer = catalog.layer(code)
        if layer.is_raster and is_served(layer):
            return layer
    shown = code if len(code) <= 64 else code[:61] + "..."
    raise NotFound(f"no raster layer {shown!r}")


def layer_codes(
    catalog: Catalog, codes: list[str], *, reader: Reader = DEFAULT_READER
) -> list[Layer]:
    """Return the layers of a list of codes that ``reader`` may read (each once, in order)."""
    seen: dict[str, Layer] = {}
    for code in codes:
        if code not in seen:
            seen[code] = served_layer(catalog, code, reader=reader)
    if not seen:
        raise InvalidInput("name at least one layer")
    return list(seen.values())


def table_for(catalog: Catalog, code: str, *, srid: int, reader: Reader = DEFAULT_READER) -> Table:
    """Return the SQLAlchemy table of a readable layer (declared once per catalog and SRID)."""
    layer = served_layer(catalog, code, reader=reader)
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
