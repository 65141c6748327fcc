"""Layers that tile the ground: land-use patches, cadastral parcels, the map-sheet index.

* ``land_patches``: each village cut into Voronoi patches (count ∝ area), classed by urban
  density from ``params.classes`` (GB/T 21010 code, name, weights urban/suburban/rural).
* ``parcels``: a parcel around each chosen building (its footprint grown 1–4 m), coded by
  GB/T 13923 (town, cadastral sub-zone = village, ownership G/J + right B/C, 5-digit serial).
* ``map_sheets``: the survey sheet grids clipped to the district (``params.series``): metric
  sheets numbered by their south-west corner in km, 1:10 000 sheets by the national scheme.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely import STRtree

from layers.synthetic.assets._common import (
    ObjArray,
    allocate,
    finish,
    per_town,
    total_count,
    village_points,
)
from layers.synthetic.assets.buildings import address_columns, building_weights, pick_buildings
from layers.synthetic.geography import geometry_to_lonlat, geometry_to_metric, urban_density
from layers.synthetic.identifiers import serial_codes
from layers.synthetic.plan import LayerPlan
from layers.synthetic.sites import short_name
from layers.synthetic.strategies import strategy
from layers.synthetic.world import World
from schemas.catalog import Layer

#: Density bands of land-use classes: urban above the first, rural below the second.
BANDS = (0.55, 0.2)
LAND_USE_OF = {
    "residential": "城镇住宅用地",
    "mixed": "商服用地",
    "commercial": "商服用地",
    "office": "商务金融用地",
    "industrial": "工业用地",
    "warehouse": "仓储用地",
    "public": "公共管理与公共服务用地",
}
RIGHT_CODE = {
    "state_construction": "GB",
    "collective_construction": "JB",
    "homestead": "JC",
    "collective_ownership": "JA",
    "contracted": "JD",
}


def _polygonal(geom: Any) -> Any:
    """Return the polygon parts of a geometry as a MultiPolygon (None when there are none)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and g.area > 1.0]
    return shapely.MultiPolygon(parts) if parts else None


@strategy("land_patches")
def land_patches(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield every village cut into land-use patches (Voronoi cells), classed by density."""
    p = plan.params
    classes = p["classes"]
    codes = np.array([str(c[0]) for c in classes], dtype=object)
    names = np.array([str(c[1]) for c in classes], dtype=object)
    band_weights = np.array([[float(w) for w in c[2:5]] for c in classes])
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: s.town.geometry.area, n):
        rng = world.rng(layer.code, town.code)
        areas = np.array([v.geometry.area for v in sites.villages])
        counts = allocate(count, areas, minimum=1)
        x, y, owner = village_points(sites, counts, rng, urban=0.0, avoid_roads=0.0)
        geoms, village = [], []
        for v, village_div in enumerate(sites.villages):
            mine = owner == v
            if mine.sum() <= 1:
                cells = [village_div.geometry]
            else:
                diagram = shapely.voronoi_polygons(
                    shapely.multipoints(np.column_stack([x[mine], y[mine]])),
                    extend_to=village_div.geometry,
                )
                cells = shapely.intersection(shapely.get_parts(diagram), village_div.geometry)
            for cell in cells:
                shape = _polygonal(cell)
                if shape is not None:
                    geoms.append(shape)
                    village.append(v)
        arr = np.array(geoms, dtype=object)
        anchor = shapely.get_coordinates(shapely.point_on_surface(arr))
        density = urban_density(anchor[:, 0], anchor[:, 1])
        band = np.where(density > BANDS[0], 0, np.where(density > BANDS[1], 1, 2))
        pick = np.array(
            [
                rng.choice(len(classes), p=band_weights[:, b] / band_weights[:, b].sum())
                for b in band
            ],
            dtype=np.int64,
        )
        v_idx = np.array(village, dtype=np.int64)
        state = (band == 0) & (town.kind == "subdistrict")
        village_names = np.array([short_name(v.name) for v in sites.villages], dtype=object)
        serial = np.zeros(v_idx.size, dtype=np.int64)
        for v in np.unique(v_idx):
            serial[v_idx == v] = np.arange(1, (v_idx == v).sum() + 1)
        fixed = {
            "class_code": codes[pick],
            "class_name": names[pick],
            "ownership": np.where(state, "state", "collective").astype(object),
            "owner_unit": np.where(
                state, "国家", np.char.add(village_names[v_idx].astype(str), "经济联合社")
            ).astype(object),
            "patch_no": np.array(
                [
                    f"{sites.villages[v].code[9:]}{s:04d}"
                    for v, s in zip(v_idx, serial, strict=True)
                ],
                dtype=object,
            ),
        }
        yield finish(layer, plan, world, town, arr, rng, fixed)


@strategy("parcels")
def parcels(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield a land parcel around each chosen building, none overlapping another."""
    p = plan.params
    n = total_count(plan, world.scale)
    for town, sites, count in per_town(world, lambda s: float(building_weights(s, p).sum()), n):
        rng = world.rng(layer.code, town.code)
        rows = pick_buildings(building_weights(sites, p), int(count * 1.3) + 4, rng, unique=True)
        if rows.size == 0:
            continue
        rows = rng.permutation(rows)
        shapes = sites.fetch("buildings", rows, ["geometry"])["geometry"]
        grown = shapely.buffer(shapes, rng.uniform(1.0, 4.0, rows.size), join_style="mitre")
        ok = np.asarray(shapely.contains(sites.town.geometry, grown), dtype=bool)
        left, right = STRtree(grown).query(grown, predicate="intersects")
        ok[np.unique(np.maximum(left, right)[left != right])] = False
        keep = np.flatnonzero(ok)[:count]
        rows, grown = rows[keep], grown[keep]
        b = sites.buildings
        village = b["village"][rows]
        rural = b["village_kind"][rows] == "village"
        housing = np.isin(b["use"][rows], ["residential", "mixed"])
        right = np.where(
            rural & housing,
            "homestead",
            np.where(rural, "collective_construction", "state_construction"),
        )
        fields = {
            "town3": town.code[6:9],
            "village3": np.array([sites.villages[v].code[9:12] for v in village]),
            "right": np.array([RIGHT_CODE[r] for r in right]),
        }
        use = np.where(
            right == "homestead",
            "农村宅基地",
            [LAND_USE_OF.get(u, "其他土地") for u in b["use"][rows]],
        )
        granted = rng.random(rows.size) < 0.8
        fixed: dict[str, Any] = {
            "parcel_code": serial_codes(
                "440114{town3}{village3}{right}{serial:5}",
                fields,
                rows.size,
                world.serials,
                namespace=layer.code,
            ),
            "right_type": right.astype(object),
            "land_use": use.astype(object),
            "right_nature": np.where(
                right == "state_construction",
                np.where(granted, "granted", "allocated"),
                "collective",
            ).astype(object),
            "address": address_columns(sites, rows)["address"],
        }
        yield finish(
            layer,
            plan,
            world,
            town,
            shapely.multipolygons(grown[:, None].tolist()) if grown.size else grown,
            rng,
            fixed,
        )


def _sheet_no_national(lon: float, lat: float) -> str:
    """Return the national 1:10 000 sheet number of the sheet whose SW corner is (lon, lat)."""
    lon, lat = lon + 1e-7, lat + 1e-7
    d_lon, d_lat = 3.75 / 60, 2.5 / 60
    row = chr(ord("A") + int(lat // 4))
    col = int(lon // 6) + 31
    r = int(round(4 / d_lat)) - int((lat % 4) // d_lat)
    c = int((lon % 6) // d_lon) + 1
    return f"{row}{col:02d}G{r:03d}{c:03d}"


def _sheets(series: Mapping[str, Any], district: Any) -> tuple[list[Any], list[str]]:
    """Return the sheets of one series clipped to the district, and their numbers."""
    geoms, numbers = [], []
    if series.get("grid") == "national":
        lon0, lat0, lon1, lat1 = geometry_to_lonlat(district).bounds
        d_lon, d_lat = 3.75 / 60, 2.5 / 60
        for x0 in np.arange(np.floor(lon0 / d_lon) * d_lon, lon1, d_lon):
            for y0 in np.arange(np.floor(lat0 / d_lat) * d_lat, lat1, d_lat):
                box = shapely.segmentize(shapely.box(x0, y0, x0 + d_lon, y0 + d_lat), d_lat / 8)
                geoms.append(geometry_to_metric(box))
                numbers.append(_sheet_no_national(x0, y0))
    else:
        size = float(series["size_m"])
        x0, y0, x1, y1 = district.bounds
        decimals = 1 if size % 1000 == 0 else 2
        for x in np.arange(np.floor(x0 / size) * size, x1, size):
            for y in np.arange(np.floor(y0 / size) * size, y1, size):
                geoms.append(shapely.box(x, y, x + size, y + size))
                numbers.append(f"{y / 1000:.{decimals}f}-{x / 1000:.{decimals}f}")
    boxes = np.array(geoms, dtype=object)
    names = np.array(numbers, dtype=object)
    centre = shapely.get_coordinates(shapely.centroid(boxes))
    keep = urban_density(centre[:, 0], centre[:, 1]) >= float(series.get("min_density", 0.0))
    shapely.prepare(district)
    keep &= np.asarray(shapely.intersects(district, boxes), dtype=bool)
    boxes, names = boxes[keep], names[keep]
    edge = ~np.asarray(shapely.contains(district, boxes), dtype=bool)
    boxes[edge] = shapely.intersection(boxes[edge], district)
    clipped, kept = [], []
    for geom, number in zip(boxes, names, strict=True):
        parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]
        largest = max(parts, key=lambda g: g.area) if parts else None
        if largest is not None and largest.area >= 100:
            clipped.append(largest)
            kept.append(str(number))
    return clipped, kept


@strategy("map_sheets")
def map_sheets(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the survey sheet index (every series of ``params.series``) in one chunk."""
    district = world.admin.district.geometry
    geoms: list[Any] = []
    fixed: dict[str, list[Any]] = {"sheet_no": [], "product": [], "scale": [], "resolution_m": []}
    for series in plan.params["series"]:
        sheets, numbers = _sheets(series, district)
        geoms += sheets
        fixed["sheet_no"] += numbers
        fixed["product"] += [series["product"]] * len(sheets)
        fixed["scale"] += [str(series["scale"])] * len(sheets)
        fixed["resolution_m"] += [series.get("resolution_m")] * len(sheets)
    columns: dict[str, Any] = {k: np.array(v, dtype=object) for k, v in fixed.items()}
    columns["resolution_m"] = np.array(
        [np.nan if v is None else float(v) for v in fixed["resolution_m"]]
    )
    arr: ObjArray = np.array(geoms, dtype=object)
    rng = world.rng(layer.code)
    yield finish(layer, plan, world, world.towns[0], arr, rng, columns, in_town=False)
