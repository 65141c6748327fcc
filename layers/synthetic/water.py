"""Strategies for layers that follow the terrain: rivers, water bodies, drainage, flood, hills.

Rivers and water bodies come from :mod:`layers.synthetic.hydro`; pipes run under the urban
streets and flow downhill on the DEM; outfalls and bridges sit where roads cross rivers;
pumping stations and waterlogging points at the low spots of the plain; geohazard points
on steep hill slopes; contour lines are traced from the DEM.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features
from shapely import LineString

from layers.synthetic.admin import Division
from layers.synthetic.assets._common import finish, total_count
from layers.synthetic.geography import urban_density
from layers.synthetic.plan import LayerPlan
from layers.synthetic.strategies import frame, strategy
from layers.synthetic.world import World
from schemas.catalog import Layer


def _lines_only(geom: object) -> shapely.MultiLineString | None:
    """Return the line parts of an intersection as a MultiLineString (None when none)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "LineString" and g.length > 1]
    return shapely.MultiLineString(parts) if parts else None


def _by_town(world: World, geoms: np.ndarray) -> Iterator[tuple[Division, np.ndarray]]:
    """Yield (town, indices of the geometries whose anchor lies in it), in town order."""
    anchors = shapely.point_on_surface(geoms) if len(geoms) else np.array([], dtype=object)
    tree = shapely.STRtree([t.geometry for t in world.towns])
    found = np.full(len(geoms), -1)
    if len(geoms):
        g, t = tree.query(anchors, predicate="intersects")
        found[g[::-1]] = t[::-1]
    for i, town in enumerate(world.towns):
        yield town, np.flatnonzero(found == i)


def _chunks(
    layer: Layer,
    plan: LayerPlan,
    world: World,
    geoms: np.ndarray,
    fixed: dict[str, np.ndarray] | None = None,
) -> Iterator[gpd.GeoDataFrame]:
    for town, idx in _by_town(world, geoms):
        rng = world.rng(layer.code, town.code)
        picked = {k: np.asarray(v, dtype=object)[idx] for k, v in (fixed or {}).items()}
        yield finish(layer, plan, world, town, geoms[idx], rng, picked)


@strategy("rivers")
def rivers(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield the rivers (one chunk: a river crosses towns)."""
    yield world.rivers


@strategy("water_bodies")
def water_bodies(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield reservoirs, lakes and fishponds."""
    yield world.water_bodies


def _river_lines(world: World, main_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    frame_ = world.rivers
    if main_only:
        frame_ = frame_[frame_["management_level"].isin(["city", "district"])]
    return frame_.geometry.to_numpy(), frame_["name"].to_numpy()


def _along_rivers(world: World, spacing: float, main_only: bool) -> tuple[np.ndarray, np.ndarray]:
    lines, names = _river_lines(world, main_only)
    points, labels = [], []
    for line, name in zip(lines, names, strict=True):
        n = max(int(line.length // spacing), 1)
        d = (np.arange(n) + 0.5) * line.length / n
        points.append(shapely.line_interpolate_point(np.full(n, line, dtype=object), d))
        labels.append(np.full(n, name, dtype=object))
    if not points:
        return np.array([], dtype=object), np.array([], dtype=object)
    return np.concatenate(points), np.concatenate(labels)


@strategy("river_points")
def river_points(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield stations along rivers (gauges, water-quality stations, sluice gates)."""
    lines, _ = _river_lines(world, plan.params.get("main_only", False))
    total_km = sum(line.length for line in lines) / 1000
    wanted = total_count(plan, world.scale)
    spacing = max(total_km * 1000 / max(wanted, 1), 200.0)
    points, names = _along_rivers(world, spacing, plan.params.get("main_only", False))
    yield from _chunks(layer, plan, world, points, {"river_name": names})


@strategy("river_segments")
def river_segments(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield each river cut by town: the stretches river chiefs (河长) answer for."""
    lines, names = _river_lines(world)
    for town in world.towns:
        pieces = [_lines_only(p) for p in shapely.intersection(lines, town.geometry)]
        keep = np.array([p is not None and p.length > 100 for p in pieces], dtype=bool)
        geoms = np.array([p for p, k in zip(pieces, keep, strict=True) if k], dtype=object)
        fixed = {
            "river_name": names[keep],
            "name": np.char.add(names[keep].astype(str), f"{town.name}段"),
            "length_km": np.round(shapely.length(geoms) / 1000, 3),
        }
        yield finish(layer, plan, world, town, geoms, world.rng(layer.code, town.code), fixed)


@strategy("dikes")
def dikes(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield dikes on both banks of the main rivers where they cross the plain."""
    lines, names = _river_lines(world, main_only=True)
    geoms, labels = [], []
    for line, name in zip(lines, names, strict=True):
        for side in (-1, 1):
            bank = shapely.offset_curve(line, side * 60.0)
            if bank.is_empty:
                continue
            for part in shapely.get_parts(shapely.segmentize(bank, 200.0)):
                coords = shapely.get_coordinates(part)
                low = world.terrain.elevation(coords[:, 0], coords[:, 1]) < 25
                if low.mean() > 0.5 and part.length > 500:
                    clipped = _lines_only(part.intersection(world.admin.district.geometry))
                    if clipped is not None and clipped.length > 500:
                        geoms.append(clipped)
                        labels.append(name)
    geoms_arr = np.array(geoms, dtype=object)
    yield from _chunks(
        layer,
        plan,
        world,
        geoms_arr,
        {
            "river_name": np.array(labels, dtype=object),
            "length_km": np.round(shapely.length(geoms_arr) / 1000, 3),
        },
    )


def _crossings(world: World) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return points where roads cross rivers, the road and the river name at each."""
    lines, names = _river_lines(world)
    roads = np.array([r.geometry for r in world.roads], dtype=object)
    tree = shapely.STRtree(roads)
    points, road_idx, river_names = [], [], []
    for line, name in zip(lines, names, strict=True):
        for j in tree.query(line, predicate="intersects"):
            for p in shapely.get_parts(shapely.intersection(line, roads[j])):
                if p.geom_type == "Point":
                    points.append(p)
                    road_idx.append(j)
                    river_names.append(name)
    return (
        np.array(points, dtype=object),
        np.array(road_idx, dtype=int),
        np.array(river_names, dtype=object),
    )


@strategy("bridges")
def bridges(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield a deck polygon wherever a road crosses a river."""
    points, road_idx, rivers_at = _crossings(world)
    decks, lengths, widths = [], [], []
    for point, j in zip(points, road_idx, strict=True):
        road = world.roads[j]
        d = road.geometry.project(point)
        span = 40.0
        piece = (
            shapely.ops.substring(road.geometry.geoms[0], max(d - span / 2, 0), d + span / 2)
            if len(road.geometry.geoms) == 1
            else road.geometry.intersection(point.buffer(span / 2))
        )
        decks.append(piece.buffer(road.width_m / 2, cap_style="flat"))
        lengths.append(round(piece.length, 1))
        widths.append(road.width_m)
    geoms = np.array(decks, dtype=object)
    ok = (
        ~shapely.is_empty(geoms) & (shapely.get_type_id(geoms) == 3)
        if len(geoms)
        else np.array([], dtype=bool)
    )
    yield from _chunks(
        layer,
        plan,
        world,
        geoms[ok],
        {
            "length_m": np.array(lengths, dtype=object)[ok],
            "width_m": np.array(widths, dtype=object)[ok],
            "name": np.char.add(rivers_at[ok].astype(str), "桥")
            if ok.any()
            else np.array([], dtype=object),
        },
    )


@strategy("outfalls")
def outfalls(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield outfalls where the street drainage meets the rivers (road crossings)."""
    points, _, rivers_at = _crossings(world)
    ground = (
        world.terrain.elevation(shapely.get_x(points), shapely.get_y(points))
        if len(points)
        else np.array([])
    )
    yield from _chunks(
        layer,
        plan,
        world,
        points,
        {"receiving_water": rivers_at, "invert_m": np.round(ground - 2.0, 2)},
    )


@strategy("low_spots")
def low_spots(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield features at low, flat spots of the urban plain (pumps, waterlogging points)."""
    n = total_count(plan, world.scale)
    xy = world.terrain.low_spots(n, world.rng(layer.code), plan.params.get("spacing_m", 300.0))
    points = np.asarray(shapely.points(xy[:, 0], xy[:, 1]) if len(xy) else [], dtype=object)
    fixed = {}
    if any(a.name == "receiving_water" for a in layer.attributes):
        lines, names = _river_lines(world)
        tree = shapely.STRtree(lines)
        fixed["receiving_water"] = names[tree.nearest(points)] if len(points) else names[:0]
    yield from _chunks(layer, plan, world, points, fixed)


@strategy("hill_points")
def hill_points(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield points on steep hill slopes (landslides, collapses, debris flows)."""
    terrain = world.terrain
    rows, cols = np.nonzero(terrain.inside & (terrain.slope > 0.25) & (terrain.array > 60))
    n = min(total_count(plan, world.scale), rows.size)
    rng = world.rng(layer.code)
    pick = rng.choice(rows.size, size=n, replace=False) if n else np.array([], dtype=int)
    xs, ys = terrain.centres()
    points = shapely.points(xs[cols[pick]], ys[rows[pick]]) if n else np.array([], dtype=object)
    yield from _chunks(layer, plan, world, np.asarray(points, dtype=object))


@strategy("spread_points")
def spread_points(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield points spread evenly over the district (rain gauges), with their elevation."""
    n = total_count(plan, world.scale)
    district = world.admin.district.geometry
    minx, miny, maxx, maxy = district.bounds
    side = math.sqrt(district.area / max(n, 1))
    rng = world.rng(layer.code)
    gx, gy = np.meshgrid(
        np.arange(minx + side / 2, maxx, side), np.arange(miny + side / 2, maxy, side)
    )
    x = gx.ravel() + rng.uniform(-side / 4, side / 4, gx.size)
    y = gy.ravel() + rng.uniform(-side / 4, side / 4, gy.size)
    inside = shapely.contains_xy(district, x, y)
    points = shapely.points(x[inside], y[inside])
    elevation = np.round(world.terrain.elevation(x[inside], y[inside]), 1)
    yield from _chunks(
        layer, plan, world, np.asarray(points, dtype=object), {"elevation_m": elevation}
    )


@strategy("treatment_plants")
def treatment_plants(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield a sewage plant beside a main river, downstream of each town's seat."""
    lines, names = _river_lines(world, main_only=True)
    geoms, receiving = [], []
    for town in world.towns:
        centre = town.geometry.representative_point()
        near = int(np.argmin(shapely.distance(lines, centre)))
        on_river = shapely.line_interpolate_point(lines[near], lines[near].project(centre) + 800)
        site = shapely.box(on_river.x + 90, on_river.y - 120, on_river.x + 340, on_river.y + 120)
        if town.geometry.contains(site):
            geoms.append(site)
            receiving.append(names[near])
    yield from _chunks(
        layer,
        plan,
        world,
        np.array(geoms, dtype=object),
        {"receiving_water": np.array(receiving, dtype=object)},
    )


@strategy("channels")
def channels(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield open drainage channels from low farmland to the nearest river."""
    lines, names = _river_lines(world)
    network = shapely.union_all(lines)
    n = total_count(plan, world.scale)
    terrain = world.terrain
    rows, cols = np.nonzero(
        terrain.inside
        & (terrain.array < 25)
        & (terrain.river_distance > 400)
        & (terrain.river_distance < 2500)
    )
    rng = world.rng(layer.code)
    pick = rng.choice(rows.size, size=min(n, rows.size), replace=False)
    xs, ys = terrain.centres()
    geoms, receiving = [], []
    for r, c in zip(rows[pick], cols[pick], strict=True):
        start = shapely.Point(xs[c], ys[r])
        end = shapely.shortest_line(start, network).coords[-1]
        line = LineString([start.coords[0], end])
        geoms.append(line)
        receiving.append(names[int(np.argmin(shapely.distance(lines, shapely.Point(end))))])
    yield from _chunks(
        layer,
        plan,
        world,
        np.array(geoms, dtype=object),
        {"receiving_water": np.array(receiving, dtype=object)},
    )


@strategy("contours")
def contours(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield contour lines traced from the DEM every ``interval`` metres above the plain."""
    terrain = world.terrain
    interval = float(plan.params.get("interval_m", 50))
    geoms, levels = [], []
    district = world.admin.district.geometry
    coarse = terrain.array[::2, ::2]
    transform = terrain.transform * terrain.transform.scale(2, 2)
    for level in np.arange(interval, float(np.nanmax(coarse)), interval):
        mask = (coarse >= level).astype(np.uint8)
        for shape, _ in features.shapes(mask, mask=mask.astype(bool), transform=transform):
            ring = shapely.geometry.shape(shape).exterior.simplify(2 * terrain.resolution)
            lines = _lines_only(ring.intersection(district))
            if lines is not None and lines.length > 300:
                geoms.append(lines)
                levels.append(float(level))
    yield from _chunks(
        layer,
        plan,
        world,
        np.array(geoms, dtype=object),
        {
            "elevation_m": np.array(levels, dtype=object),
            "interval_m": np.full(len(levels), interval, dtype=object),
        },
    )


@strategy("drainage_pipes")
def drainage_pipes(layer: Layer, plan: LayerPlan, world: World) -> Iterator[gpd.GeoDataFrame]:
    """Yield rain and sewage pipes under urban streets, each segment flowing downhill."""
    step = float(plan.params.get("segment_m", 60.0)) / math.sqrt(world.scale)
    for town in world.towns:
        rng = world.rng(layer.code, town.code)
        lines = [r.geometry for r in world.roads_of(town.code) if r.grade != "village"]
        parts = shapely.get_parts(np.array(lines, dtype=object)) if lines else np.array([])
        segs = _segments(shapely.segmentize(parts, step)) if len(parts) else np.empty((0, 4))
        mid_x, mid_y = (segs[:, 0] + segs[:, 2]) / 2, (segs[:, 1] + segs[:, 3]) / 2
        urban = urban_density(mid_x, mid_y) > 0.3
        segs = segs[urban & (np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1]) > 5)]
        z0 = world.terrain.elevation(segs[:, 0], segs[:, 1])
        z1 = world.terrain.elevation(segs[:, 2], segs[:, 3])
        flip = z1 > z0
        segs[flip] = segs[flip][:, [2, 3, 0, 1]]
        top, bottom = np.maximum(z0, z1), np.minimum(z0, z1)
        kinds = np.repeat(np.array(["rainwater", "sewage"], dtype=object), len(segs))
        segs = np.concatenate([segs, segs])
        depth = rng.uniform(1.5, 3.5, len(segs))
        up = np.round(np.concatenate([top, top]) - depth, 2)
        down = np.round(np.minimum(np.concatenate([bottom, bottom]) - depth, up - 0.02), 2)
        geoms = shapely.linestrings(segs.reshape(-1, 2, 2))
        node = (
            np.char.add(f"{town.code[6:]}", np.char.zfill(np.arange(2 * len(segs)).astype(str), 7))
            if len(segs)
            else np.array([])
        )
        fixed = {
            "kind": kinds,
            "upstream_invert_m": up,
            "downstream_invert_m": down,
            "upstream_node": np.char.add("YSJ", node[0::2]) if len(segs) else node,
            "downstream_node": np.char.add("YSJ", node[1::2]) if len(segs) else node,
        }
        yield finish(layer, plan, world, town, geoms, rng, fixed)


def _segments(lines: np.ndarray) -> np.ndarray:
    """Return every consecutive vertex pair of the lines as rows (x0, y0, x1, y1)."""
    coords, owner = shapely.get_coordinates(lines, return_index=True)
    same = owner[1:] == owner[:-1]
    return np.column_stack([coords[:-1][same], coords[1:][same]])


def empty_chunk(layer: Layer) -> gpd.GeoDataFrame:
    """Return a chunk with no rows (for layers a world has nothing of)."""
    return frame({a.name: [] for a in layer.attributes}, np.array([], dtype=object))
