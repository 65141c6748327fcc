"""Nearest asset: the feature of some asset layers closest to a point, within a radius.

FixMyStreet's lesson: a report about a street lamp or a manhole cover belongs to the asset, and
the asset's maintenance unit says who fixes it. The search is :func:`layers.nearby.nearest_rows`
(the one nearest-feature query, also behind ``GET /nearby``): KNN on the GiST index, then exact
geodesic metres (0 inside a polygon asset). Layer codes and attribute names come from the
catalog (checked, then quoted); every value is a bound parameter. This is the platform's own
question (intake routing a case), not a caller's read: any vector layer may be named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection

from layers.nearby import Probe, check_point, nearest_rows, quote
from schemas.catalog import Catalog, Layer
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG

#: Attributes naming who looks after an asset, most specific first.
UNIT_FIELDS: Final = (
    "maintenance_unit",
    "management_unit",
    "responsible_unit",
    "monitoring_unit",
    "owner_unit",
)


@dataclass(frozen=True, slots=True)
class AssetHit:
    """The nearest asset: its layer, natural key, maintenance unit (if known) and distance."""

    layer: str
    code: str
    maintenance_unit: str | None
    distance_m: float


def _vector_layer(catalog: Catalog, code: str) -> Layer:
    if not catalog.has_layer(code) or catalog.layer(code).is_raster:
        raise InvalidInput(f"{code!r} is not a vector layer of the catalog")
    return catalog.layer(code)


def _unit_field(layer: Layer) -> str | None:
    names = {a.name for a in layer.attributes}
    return next((name for name in UNIT_FIELDS if name in names), None)


def _probe(layer: Layer, k: int, filters: Mapping[str, Sequence[str]]) -> Probe:
    """Return one layer's probe: its natural key and unit, its filters as bound arrays."""
    key = " || '/' || ".join(f"t.{quote(name)}::text" for name in layer.natural_key)
    unit = _unit_field(layer)
    unit_sql = f"t.{quote(unit)}::text" if unit else "NULL::text"
    where: list[str] = []
    binds: dict[str, list[str]] = {}
    for j, name in enumerate(sorted(filters)):
        try:
            layer.attribute(name)
        except KeyError:
            raise InvalidInput(
                f"layer {layer.code} has no attribute {name!r} to filter on"
            ) from None
        param = f"f{k}_{j}"
        where.append(f"t.{quote(name)}::text = ANY(:{param})")
        binds[param] = [str(v) for v in filters[name]]
    return Probe(layer, f"{key} AS code, {unit_sql} AS unit", tuple(where), binds)


def nearest_asset(
    conn: Connection,
    catalog: Catalog,
    lon: float,
    lat: float,
    layers: Sequence[str],
    *,
    radius_m: float,
    filters: Mapping[str, Sequence[str]] | None = None,
    srid: int = STORAGE_EPSG,
) -> AssetHit | None:
    """Return the nearest feature of ``layers`` within ``radius_m`` of lon/lat, or None.

    ``filters`` (attribute -> allowed values) applies to every layer, as a routing item's
    ``asset_filter`` does. Ties in distance go to the layer listed first, then the smaller key.
    """
    if not layers:
        return None
    if not (math.isfinite(radius_m) and radius_m >= 0):
        raise InvalidInput(f"radius must be a non-negative number of metres, not {radius_m}")
    check_point(lon, lat)
    filters = filters or {}
    probes = [_probe(_vector_layer(catalog, code), k, filters) for k, code in enumerate(layers)]
    found = nearest_rows(
        conn,
        probes=probes,
        lon=float(lon),
        lat=float(lat),
        k=1,
        radius_m=float(radius_m),
        storage_epsg=srid,
    )
    hits = [
        (round(float(row.distance_m), 6), k, str(row.code), probes[k].layer.code, row.unit)
        for k, rows in enumerate(found)
        for row in rows
    ]
    if not hits:
        return None
    dist, _, code, layer, unit = min(hits, key=lambda h: (h[0], h[1], h[2]))
    return AssetHit(layer=layer, code=code, maintenance_unit=unit, distance_m=round(dist, 3))
