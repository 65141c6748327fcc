"""Nearest asset: the feature of some asset layers closest to a point, within a radius.

FixMyStreet's lesson: a report about a street lamp or a manhole cover belongs to the asset, and
the asset's maintenance unit says who fixes it. Layer codes and attribute names come from the
catalog (checked, then quoted); every value is a bound parameter. Distances are geodesic metres
(0 inside a polygon asset).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT

from schemas.catalog import Catalog, Layer
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG, metres_to_degrees_hint
from schemas.tables import LAYER_SCHEMA

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


def _branch(layer: Layer, k: int, filters: Mapping[str, Sequence[str]]) -> tuple[str, list[str]]:
    """Return one layer's sub-select and the names of its filter parameters."""
    key = " || '/' || ".join(f'a."{name}"::text' for name in layer.natural_key)
    unit = _unit_field(layer)
    unit_sql = f'a."{unit}"::text' if unit else "NULL::text"
    where = ["ST_DWithin(a.geom, p.g, :deg)"]
    params: list[str] = []
    for j, name in enumerate(sorted(filters)):
        try:
            layer.attribute(name)
        except KeyError:
            raise InvalidInput(
                f"layer {layer.code} has no attribute {name!r} to filter on"
            ) from None
        param = f"f{k}_{j}"
        where.append(f'a."{name}"::text = ANY(:{param})')
        params.append(param)
    sql = f"""
        (SELECT :layer{k} AS layer, {key} AS code, {unit_sql} AS unit,
                CASE WHEN ST_Intersects(a.geom, p.g) THEN 0.0
                     ELSE ST_Distance(a.geom::geography, p.g::geography) END AS dist
         FROM {LAYER_SCHEMA}."{layer.table_name}" a, p
         WHERE {" AND ".join(where)}
         ORDER BY dist LIMIT 1)"""
    return sql, params


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
    filters = filters or {}
    branches: list[str] = []
    values: dict[str, object] = {
        "x": float(lon),
        "y": float(lat),
        "srid": srid,
        "deg": metres_to_degrees_hint(radius_m, lat),
        "radius": float(radius_m),
    }
    array_params: list[str] = []
    order = {code: k for k, code in enumerate(layers)}
    for k, code in enumerate(layers):
        sql, params = _branch(_vector_layer(catalog, code), k, filters)
        branches.append(sql)
        values[f"layer{k}"] = code
        for param, name in zip(params, sorted(filters), strict=True):
            values[param] = [str(v) for v in filters[name]]
            array_params.append(param)
    union = " UNION ALL ".join(branches)
    stmt = text(f"""
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), :srid) AS g)
        SELECT layer, code, unit, dist FROM ({union}) hits
        WHERE dist <= :radius
    """).bindparams(*(bindparam(p, type_=ARRAY(TEXT)) for p in array_params))
    rows = conn.execute(stmt, values).all()
    if not rows:
        return None
    best = min(rows, key=lambda r: (round(float(r.dist), 6), order[r.layer], str(r.code)))
    return AssetHit(
        layer=str(best.layer),
        code=str(best.code),
        maintenance_unit=best.unit,
        distance_m=round(float(best.dist), 3),
    )
