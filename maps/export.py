"""Self-contained pages that open from a USB stick: data embedded, every asset inlined.

:func:`inline` replaces each ``/maps/static`` script and stylesheet of a page by its text
(images and fonts a stylesheet uses become ``data:`` URIs), so the page needs no server.
:func:`layer_page` reads what the layer page would read from the API by calling the same
lower-floor functions the API calls (features, extent, versions, loads, rejects), embeds it,
and draws the layer and the platform base layers from that data.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine

from cases.queries import CaseFilter, case_points
from ingest.jobs import batch_status, layer_loads
from ingest.rejects import rejects_geojson, report_csv
from ingest.versions import layer_history
from layers.access import served_layer
from layers.collections import collection_info
from layers.features import ItemsQuery, extents, items
from layers.live import LiveLayers
from layers.nearby import coverage, nearest
from maps import operations, pages
from maps.assets import STATIC_PREFIX, assets, media_type, resolve
from maps.basemap import platform_layers
from schemas.catalog import Catalog
from schemas.errors import InvalidInput
from schemas.geodesy import CRS84, parse_crs, to_storage
from schemas.settings import Settings

_SCRIPT: Final = re.compile(
    r"<script\b[^>]*\bsrc=[\"'](" + STATIC_PREFIX + r"/[^\"']+)[\"'][^>]*>\s*</script>", re.I
)
_LINK: Final = re.compile(
    r"<link\b[^>]*\bhref=[\"'](" + STATIC_PREFIX + r"/[^\"']+)[\"'][^>]*>", re.I
)
_CSS_URL: Final = re.compile(r"url\(\s*([\"']?)([^\"')]+)\1\s*\)")
_ANY: Final = re.compile(re.escape(STATIC_PREFIX) + r"/[^\"'()\s<>]+")
#: Rejects CSV embedded in an exported page up to this many rows (larger: the server's CSV).
CSV_ROWS: Final = 10_000
MAX_FEATURES: Final = 10_000
BASE_FEATURES: Final = 5_000


def _path(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0].removeprefix(STATIC_PREFIX + "/")


def _data_uri(url: str) -> str:
    file = resolve(_path(url))
    kind = media_type(file).split(";", 1)[0]
    return f"data:{kind};base64,{base64.b64encode(file.read_bytes()).decode('ascii')}"


def _css(url: str) -> str:
    """Return a stylesheet's text with the files it refers to embedded as data: URIs."""
    path = _path(url)
    folder = posixpath.dirname(path)

    def embed(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        if target.startswith(("data:", "#", "http:", "https:", "//", "/")):
            return match.group(0)
        joined = posixpath.normpath(posixpath.join(folder, target.split("?")[0].split("#")[0]))
        return f'url("{_data_uri(STATIC_PREFIX + "/" + joined)}")'

    return _CSS_URL.sub(embed, resolve(path).read_text(encoding="utf-8"))


def _leaflet_icons() -> str:
    """Return a script giving L.Icon.Default its images as data: URIs (no path to detect)."""
    names = {"iconUrl": "marker-icon.png", "iconRetinaUrl": "marker-icon-2x.png"}
    names["shadowUrl"] = "marker-shadow.png"
    options = {k: _data_uri(f"{STATIC_PREFIX}/leaflet/images/{v}") for k, v in names.items()}
    return (
        '<script>L.Icon.Default.imagePath="";'
        f"L.Icon.Default.mergeOptions({json.dumps(options)});</script>"
    )


def inline(html: str) -> str:
    """Return the page with every ``/maps/static`` script, stylesheet and file embedded."""
    leaflet = assets().leaflet_js

    def script(match: re.Match[str]) -> str:
        code = resolve(_path(match.group(1))).read_text(encoding="utf-8")
        code = re.sub(r"</(script)", r"<\\/\1", code, flags=re.I)
        extra = _leaflet_icons() if match.group(1) == leaflet else ""
        return f"<script>{code}</script>{extra}"

    def link(match: re.Match[str]) -> str:
        if not re.search(r"\brel=[\"']?stylesheet", match.group(0), re.I):
            return match.group(0)
        return f"<style>{_css(match.group(1))}</style>"

    out = _SCRIPT.sub(script, html)
    out = _LINK.sub(link, out)
    out = _ANY.sub(lambda m: _data_uri(m.group(0)), out)
    if STATIC_PREFIX + "/" in out:
        raise RuntimeError("a /maps/static reference could not be inlined")
    return out


def _collection(
    conn: Connection,
    *,
    catalog: Catalog,
    live: LiveLayers,
    code: str,
    query: ItemsQuery,
    storage_epsg: int,
) -> dict[str, Any]:
    page = items(
        conn, catalog=catalog, live=live, code=code, query=query, storage_epsg=storage_epsg
    )
    return {
        "type": "FeatureCollection",
        "features": json.loads(f"[{page.features}]"),
        "numberMatched": page.matched,
        "numberReturned": page.returned,
    }


def _labelled(
    conn: Connection,
    *,
    catalog: Catalog,
    live: LiveLayers,
    code: str,
    around: tuple[float, ...],
    limit: int,
    storage_epsg: int,
) -> dict[str, Any]:
    """Return a layer's features inside ``around`` with only its label field."""
    label = catalog.layer(code).style.label_field
    query = ItemsQuery(limit=limit, bbox=around, properties=(label,) if label else None)
    return _collection(
        conn, catalog=catalog, live=live, code=code, query=query, storage_epsg=storage_epsg
    )


def _base_map(
    conn: Connection,
    *,
    catalog: Catalog,
    live: LiveLayers,
    around: tuple[float, ...],
    limit: int,
    storage_epsg: int,
    exclude: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Return the platform's base-map layers inside ``around`` (labels only), by code."""
    return {
        lyr.code: _labelled(
            conn,
            catalog=catalog,
            live=live,
            code=lyr.code,
            around=around,
            limit=limit,
            storage_epsg=storage_epsg,
        )
        for lyr in platform_layers(catalog, exclude=exclude)
    }


def _grown(box: tuple[float, float, float, float], fraction: float) -> tuple[float, ...]:
    west, south, east, north = box
    dx, dy = (east - west) * fraction + 0.002, (north - south) * fraction + 0.002
    return (west - dx, south - dy, east + dx, north + dy)


def layer_page(
    code: str,
    *,
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    load_id: int | None = None,
    max_features: int = MAX_FEATURES,
    base_features: int = BASE_FEATURES,
) -> str:
    """Return a self-contained layer page: the layer, its load's rejects, base layers, history.

    Parameters
    ----------
    code
        A served vector layer.
    engine, settings, catalog
        The platform's database, settings and catalog.
    load_id
        Report this load (of this layer) instead of the layer's latest load.
    max_features
        Features of the layer embedded at most (the page says when it shows fewer).
    base_features
        Features embedded at most per base layer, around the layer's extent.

    Returns
    -------
    str
        One HTML file: no request leaves it (no server, no CDN).
    """
    layer = served_layer(catalog, code)
    if not 1 <= max_features <= 10_000 or not 1 <= base_features <= 10_000:
        raise InvalidInput("max_features and base_features must be within 1..10000")
    live = LiveLayers(engine)
    epsg = settings.storage_epsg
    with engine.connect() as conn:
        extent = extents(conn, catalog=catalog, live=live, codes=[code], storage_epsg=epsg)[code]
        collection = collection_info(
            layer, extent, storage_epsg=epsg, district_extent=settings.district_extent
        )
        versions = layer_history(conn, catalog, code)
        features = _collection(
            conn,
            catalog=catalog,
            live=live,
            code=code,
            query=ItemsQuery(limit=max_features),
            storage_epsg=epsg,
        )
        around = _grown(extent.bbox or settings.district_extent, 0.25)
        base = _base_map(
            conn,
            catalog=catalog,
            live=live,
            around=around,
            limit=base_features,
            storage_epsg=epsg,
            exclude=code,
        )
        if load_id is not None:
            load: dict[str, Any] | None = batch_status(engine, load_id)
            if load is not None and load["layer"] != code:
                raise InvalidInput(f"load {load_id} is a load of {load['layer']}, not of {code}")
        else:
            recent = layer_loads(engine, catalog, code, limit=1)
            load = recent[0] if recent else None
        rejects: dict[str, Any] = {}
        if load is not None:
            batch = int(load["id"])
            rejects = {
                "rejectsLocated": rejects_geojson(
                    conn, batch, limit=pages.REJECTS_ON_MAP, located=True
                ),
                "rejectsFirst": rejects_geojson(conn, batch, limit=pages.REJECTS_IN_TABLE),
            }
            if 0 < int(load["rejected"]) <= CSV_ROWS:
                rejects["rejectsCsv"] = report_csv(conn, batch)
    shown, matched = features["numberReturned"], features["numberMatched"]
    note = f"要素 features {shown}"
    if matched > shown:
        note += f" / {matched}（仅前 first {shown}）"
    embedded = {
        "collection": collection,
        "versions": versions,
        "load": load,
        "features": features,
        "base": base,
        "exportedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": note,
        **rejects,
    }
    page = pages.layer_page(catalog, settings, code, load_id=load_id, embedded=embedded)
    return inline(page)


def dispatch_page(
    *,
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    filters: CaseFilter | None = None,
    now: datetime | None = None,
    max_cases: int = MAX_FEATURES,
    base_features: int = BASE_FEATURES,
) -> str:
    """Return a self-contained dispatcher's map: the cases (as at ``now``), grid, base layers.

    The page filters its embedded cases itself; "overdue" is as at the export, and a case card
    shows the case's list fields (no timeline).
    """
    if not 1 <= max_cases <= 10_000 or not 1 <= base_features <= 10_000:
        raise InvalidInput("max_cases and base_features must be within 1..10000")
    moment = now or datetime.now(UTC)
    live = LiveLayers(engine)
    epsg = settings.storage_epsg
    around = _grown(settings.district_extent, 0.05)
    with engine.connect() as conn:
        found = case_points(conn, filters, now=moment, limit=max_cases, srid=epsg)
        base = _base_map(
            conn, catalog=catalog, live=live, around=around, limit=base_features, storage_epsg=epsg
        )
        overlays = {}
        for code in operations.role_codes(catalog, operations.DISPATCH_OVERLAYS):
            if catalog.has_layer(code) and code not in base:
                overlays[code] = _labelled(
                    conn,
                    catalog=catalog,
                    live=live,
                    code=code,
                    around=around,
                    limit=base_features,
                    storage_epsg=epsg,
                )
            elif code in base:
                overlays[code] = base[code]
    points = {
        "type": "FeatureCollection",
        "numberMatched": found.total,
        "features": [
            {
                "type": "Feature",
                "id": p.id,
                "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
                "properties": {
                    "status": p.status,
                    "item_code": p.item_code,
                    "category": p.category,
                    "overdue": p.overdue,
                    "duplicate_of": p.duplicate_of,
                    "town_code": p.town_code,
                    "received_at": p.received_at.isoformat(),
                },
            }
            for p in found.items
        ],
    }
    embedded = {
        "points": points,
        "overlays": overlays,
        "base": base,
        "exportedAt": moment.isoformat(timespec="seconds"),
    }
    return inline(operations.dispatch_page(catalog, settings, embedded=embedded))


def planner_page(
    *,
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    lon: float,
    lat: float,
    crs: str | None = None,
    layers: str | None = None,
    coverage_layer: str | None = None,
    max_distance_m: float = 1000.0,
    base_features: int = BASE_FEATURES,
) -> str:
    """Return a self-contained planner's map of one incident: nearest features, coverage gaps.

    Raster values are not embedded (the page says so); the point cannot be moved.
    """
    if not 1 <= base_features <= 10_000:
        raise InvalidInput("base_features must be within 1..10000")
    epsg = settings.storage_epsg
    sx, sy = to_storage(lon, lat, CRS84 if crs is None else parse_crs(crs), epsg)
    slon, slat = float(sx), float(sy)
    specs = operations.planner_layers(catalog, layers)
    config_k = 3
    live = LiveLayers(engine)
    around = (slon - 0.03, slat - 0.03, slon + 0.03, slat + 0.03)
    with engine.connect() as conn:
        found = nearest(
            conn,
            catalog=catalog,
            lon=slon,
            lat=slat,
            layers=[s["code"] for s in specs],
            k=config_k,
            storage_epsg=epsg,
        )
        gaps = None
        if coverage_layer:
            result = coverage(
                conn,
                catalog=catalog,
                layer_code=coverage_layer,
                max_distance_m=max_distance_m,
                storage_epsg=epsg,
            )
            gaps = {
                "type": "FeatureCollection",
                "layer": result.layer,
                "max_distance_m": result.max_distance_m,
                "totals": {
                    "cells": result.total_cells,
                    "population": result.total_population,
                    "uncovered_cells": len(result.cells),
                    "uncovered_population": result.uncovered_population,
                },
                "features": result.cells,
            }
        base = _base_map(
            conn, catalog=catalog, live=live, around=around, limit=base_features, storage_epsg=epsg
        )
    nearby = {
        "point": {"lon": slon, "lat": slat, "crs": CRS84.uri},
        "k": config_k,
        "layers": {
            code: {"type": "FeatureCollection", "features": [f.feature() for f in items]}
            for code, items in found.items()
        },
    }
    embedded = {
        "nearby": nearby,
        "coverage": gaps,
        "base": base,
        "exportedAt": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    page = operations.planner_page(
        catalog, settings, lon=slon, lat=slat, crs=None, layers=layers, embedded=embedded
    )
    return inline(page)
