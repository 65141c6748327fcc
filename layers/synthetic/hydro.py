"""Rivers, water bodies and flood risk of the synthetic district, and the COGs of its rasters.

* :func:`rivers`: the mapped courses of :attr:`Terrain.rivers` clipped to the district (one
  MultiLineString per river, digitised downstream), attributes per the catalog's ``river`` role.
* :func:`water_bodies`: reservoirs flooding the valleys behind the terrain's dams, lakes in low
  spots of the plain and clusters of rectangular fishponds (鱼塘) in the southern delta plain.
* :func:`flood_risk`: classes 0 (none) … 5 (extreme) from height above the nearest river
  (HAND-like), distance to it, local depressions, flatness and nearby water; 255 outside.
* :func:`write_cogs`: ``dem.tif`` and ``flood_risk.tif`` as byte-reproducible COGs (EPSG:4547).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from rasterio import features
from rasterio.transform import Affine, rowcol
from shapely.geometry import MultiLineString, MultiPolygon, Polygon, shape

from layers.registry import default_catalog
from layers.synthetic.admin import AdminGeometry
from layers.synthetic.conform import conform
from layers.synthetic.geography import FloatArray, urban_density
from layers.synthetic.terrain import Dam, Terrain, directed_parts
from schemas.catalog import Layer, RasterSpec

RIVER_CODE: Final = "HL440114{:04d}"
WATER_CODE: Final = {
    "reservoir": "SK440114{:04d}",
    "lake": "HP440114{:04d}",
    "pond": "ST440114{:05d}",
}
CITY_RIVERS: Final = ("白坭河", "流溪河")
LAKE_NAMES: Final = ("花都湖", "九龙湖", "秀全湖", "马溪湖", "芙蓉湖", "凤凰湖", "云山湖", "百合湖")
#: Counts at scale 1 (at least the minimum at any scale); reservoirs follow the terrain's dams.
LAKES_AT_SCALE_1: Final = 6
PONDS_AT_SCALE_1: Final = 1500
MIN_LAKES: Final = 2
MIN_PONDS: Final = 12
#: Clearance (m) of water bodies from river centrelines, from each other and inside the edge.
RIVER_CLEARANCE: Final = 25.0
BODY_CLEARANCE: Final = 6.0
EDGE_CLEARANCE: Final = 15.0
#: Score thresholds between flood-risk classes 0|1|2|3|4|5.
RISK_BREAKS: Final = (0.1, 0.3, 0.45, 0.6, 0.75)
Body = dict[str, Any]
Overviews = Literal["average", "mode"]


def _layer(role: str) -> Layer:
    """Return the catalog layer playing ``role``."""
    return default_catalog().by_role(role)


def _raster_spec(role: str) -> RasterSpec:
    """Return the raster section of the catalog layer playing ``role``."""
    spec = _layer(role).raster
    assert spec is not None, role
    return spec


def rivers(terrain: Terrain) -> gpd.GeoDataFrame:
    """Return one row per river inside the district (EPSG:4547), with the catalog's attributes."""
    records: list[dict[str, Any]] = []
    geoms: list[MultiLineString] = []
    for river in terrain.rivers:
        parts = [p for p in directed_parts(river.course, terrain.district) if p.length >= 30.0]
        if not parts:
            continue
        root = river
        while root.parent is not None:
            root = terrain.rivers[root.parent]
        if river.kind == "main":
            level = "city" if river.name in CITY_RIVERS else "district"
        else:
            level = "town" if river.line.length > 6000.0 else "village"
        geom = MultiLineString(parts)
        records.append(
            {
                "code": RIVER_CODE.format(river.index + 1),
                "name": river.name,
                "kind": "creek" if river.name[-1] in "涌坑" else "river",
                "basin": f"{root.name}流域",
                "management_level": level,
                "length_km": round(geom.length / 1000.0, 3),
                "avg_width_m": round(river.width_m, 1),
            }
        )
        geoms.append(geom)
    rows = conform(_layer("river"), records, np.random.default_rng([terrain.seed, 11]))
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=f"EPSG:{terrain.epsg}")


def _window(terrain: Terrain, x: float, y: float, half_m: float) -> tuple[slice, slice]:
    """Return the row and column slices of a square window around a point."""
    r, c = rowcol(terrain.transform, x, y)
    k = int(half_m / terrain.resolution)
    rows, cols = terrain.shape
    return slice(max(r - k, 0), min(r + k, rows)), slice(max(c - k, 0), min(c + k, cols))


def _reservoir(terrain: Terrain, dam: Dam, max_area: float) -> Body | None:
    """Flood the valley behind a dam up to the highest level keeping the lake under max_area."""
    river = terrain.rivers[dam.river]
    win = _window(terrain, dam.x, dam.y, 5000.0)
    z = terrain.array[win]
    transform = terrain.transform @ Affine.translation(win[1].start, win[0].start)
    behind = (terrain.river_index[win] == dam.river) & (terrain.river_arc[win] < dam.arc_m - 60)
    start = river.line.interpolate(max(dam.arc_m - 150.0, 0.0))
    bed = float(river.z_at(dam.arc_m))
    for height in (30.0, 25.0, 20.0, 16.0, 12.0, 9.0, 6.0, 4.0):
        flooded = behind & (z < bed + height)
        lake = next(
            (
                shape(g)
                for g, v in features.shapes(
                    flooded.astype(np.uint8), mask=flooded, transform=transform
                )
                if v == 1 and shape(g).contains(start)
            ),
            None,
        )
        if lake is not None and lake.area <= max_area:
            break
    else:
        return None
    inside = features.rasterize([lake], out_shape=z.shape, transform=transform).astype(bool)
    level = bed + height
    storage = float(np.sum(level - z[inside])) * terrain.resolution**2 / 1e4
    scale = "medium" if storage >= 1000 else "small_1" if storage >= 100 else "small_2"
    stem = river.name[:-1] if river.name[-1] in "河水涌坑" else river.name
    polygon = shapely.simplify(lake, terrain.resolution / 2)
    return {
        "kind": "reservoir",
        "geometry": polygon,
        "name": f"{stem}水库",
        "reservoir_scale": scale,
        "storage_10k_m3": round(storage, 1),
        "normal_level_m": round(level - 1.0, 2),
        "management_unit": f"花都区{stem}水库管理所",
    }


def _blob(rng: np.random.Generator, x: float, y: float, area: float) -> Polygon:
    """Return a smooth star-shaped polygon of the given area around a point."""
    theta = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    radius = np.ones_like(theta)
    for k in (2, 3, 4):
        radius += rng.uniform(0.0, 0.18) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    unit = Polygon(np.column_stack([radius * np.cos(theta), radius * np.sin(theta)]))
    factor = np.sqrt(area / unit.area)
    return Polygon(
        np.column_stack([x + factor * radius * np.cos(theta), y + factor * radius * np.sin(theta)])
    )


def _candidates(
    terrain: Terrain,
    ok: NDArray[np.bool_],
    weight: FloatArray,
    rng: np.random.Generator,
    step: int = 3,
) -> FloatArray:
    """Return centres of every ``step``-th cell where ``ok``, heavy ``weight`` first on average."""
    ok, weight = ok[::step, ::step], weight[::step, ::step]
    rows, cols = np.nonzero(ok)
    w = weight[rows, cols]
    xs, ys = (c[::step] for c in terrain.centres())
    keep = w > 0
    order = np.argsort(rng.exponential(size=int(keep.sum())) / w[keep], kind="stable")
    return np.column_stack([xs[cols[keep]], ys[rows[keep]]])[order]


class _Placer:
    """Keep water bodies inside the district, off the rivers and apart from each other."""

    def __init__(self, terrain: Terrain) -> None:
        self.core = terrain.district.buffer(-EDGE_CLEARANCE)
        shapely.prepare(self.core)
        courses = np.array([r.course for r in terrain.rivers], dtype=object)
        self.rivers = shapely.STRtree(courses)
        self.taken: list[Polygon | MultiPolygon] = []

    def fits(self, polys: NDArray[np.object_]) -> NDArray[np.bool_]:
        """Return which polygons fit, among the bodies taken and each other (first wins)."""
        ok = np.asarray(shapely.contains(self.core, polys), dtype=bool)
        near, _ = self.rivers.query(polys, predicate="dwithin", distance=RIVER_CLEARANCE)
        ok[near] = False
        if self.taken:
            tree = shapely.STRtree(np.array(self.taken, dtype=object))
            hit, _ = tree.query(polys, predicate="dwithin", distance=BODY_CLEARANCE)
            ok[hit] = False
        left, right = shapely.STRtree(polys).query(
            polys, predicate="dwithin", distance=BODY_CLEARANCE
        )
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if a > b and ok[b]:
                ok[a] = False
        return ok

    def take(self, polys: list[Polygon | MultiPolygon]) -> None:
        """Mark polygons as taken."""
        self.taken.extend(polys)


def _lakes(terrain: Terrain, placer: _Placer, n: int, rng: np.random.Generator) -> list[Body]:
    """Return ``n`` lakes in low spots of the plain, preferring the towns."""
    ok = terrain.inside & (terrain.array < 25.0) & (terrain.slope < 0.02)
    ok &= (terrain.river_distance > 200.0) & (terrain.river_distance < 2000.0)
    weight = np.clip(terrain.depression + 0.5, 0.0, None).astype(np.float64)
    points = _candidates(terrain, ok, weight, rng)
    bodies: list[Body] = []
    for x, y in points[:400]:
        if len(bodies) >= n:
            break
        area = float(np.exp(rng.uniform(np.log(4e4), np.log(5e5))))
        lake = _blob(rng, x, y, area)
        if not placer.fits(np.array([lake], dtype=object))[0]:
            continue
        placer.take([lake])
        density = float(urban_density(x, y))
        name = LAKE_NAMES[len(bodies) % len(LAKE_NAMES)]
        if len(bodies) >= len(LAKE_NAMES):
            name = name.replace("湖", f"{len(bodies) // len(LAKE_NAMES) + 1}号湖")
        level = float(terrain.elevation(x, y)) - 0.5
        bodies.append(
            {
                "kind": "lake",
                "geometry": lake,
                "name": name,
                "storage_10k_m3": round(area * rng.uniform(2.0, 4.0) / 1e4, 1),
                "normal_level_m": round(level, 2),
                "management_unit": "花都区水务局" if density > 0.4 else "花都区林业和园林局",
            }
        )
    return bodies


def _pond_block(rng: np.random.Generator, x: float, y: float) -> NDArray[np.object_]:
    """Return a rotated block of rectangular fishponds separated by dikes, centred on a point."""
    m, k = rng.integers(1, 5, 2)
    width, height, dike = rng.uniform(50, 120), rng.uniform(35, 80), rng.uniform(8, 14)
    i, j = np.meshgrid(np.arange(m) - (m - 1) / 2, np.arange(k) - (k - 1) / 2)
    cu, cv = (i * (width + dike)).ravel(), (j * (height + dike)).ravel()
    du = np.array([-1, 1, 1, -1]) * width / 2 * rng.uniform(0.9, 1.1, (cu.size, 1))
    dv = np.array([-1, -1, 1, 1]) * height / 2 * rng.uniform(0.9, 1.1, (cu.size, 1))
    u, v = cu[:, None] + du, cv[:, None] + dv
    angle = rng.uniform(0.0, np.pi)
    px = x + u * np.cos(angle) - v * np.sin(angle)
    py = y + u * np.sin(angle) + v * np.cos(angle)
    return np.asarray(shapely.polygons(np.stack([px, py], axis=2)), dtype=object)


def _ponds(terrain: Terrain, placer: _Placer, n: int, rng: np.random.Generator) -> list[Body]:
    """Return ``n`` fishponds in blocks on the low, flat, rural parts of the plain."""
    ok = terrain.inside & (terrain.array < 16.0) & (terrain.slope < 0.015)
    ok &= (terrain.river_distance > 60.0) & (terrain.river_distance < 2500.0)
    xs, ys = terrain.centres()
    density = np.zeros(terrain.shape)
    density[::3, ::3] = urban_density(xs[::3][None, :], ys[::3][:, None])
    weight = np.clip(0.6 - density, 0.0, None) ** 2 * np.exp(-np.maximum(terrain.hand, 0) / 2.0)
    points = _candidates(terrain, ok, weight, rng)
    bodies: list[Body] = []
    for x, y in points:
        if len(bodies) >= n:
            break
        block = _pond_block(rng, x, y)[: n - len(bodies)]
        keep = list(block[placer.fits(block)])
        placer.take(keep)
        bodies.extend({"kind": "pond", "geometry": pond} for pond in keep)
    return bodies


def _village_names(admin: AdminGeometry, bodies: list[Body]) -> None:
    """Name the ponds after their village, whose committee manages them."""
    villages = list(admin.villages)
    tree = shapely.STRtree(np.array([v.geometry for v in villages], dtype=object))
    counts: dict[str, int] = {}
    for body in bodies:
        point = body["geometry"].representative_point()
        hits = tree.query(point, predicate="intersects")
        if hits.size == 0:
            continue
        village = villages[int(hits[0])]
        if body["kind"] == "pond":
            short = village.name
            for suffix in ("村民委员会", "居民委员会", "居委会", "村委会"):
                short = short.removesuffix(suffix)
            counts[village.code] = counts.get(village.code, 0) + 1
            body["name"] = f"{short}{counts[village.code]}号鱼塘"
            body["management_unit"] = village.name


def water_bodies(
    terrain: Terrain, admin: AdminGeometry, scale: float, seed: int
) -> gpd.GeoDataFrame:
    """Return reservoirs, lakes and ponds (EPSG:4547 MultiPolygons) with the catalog attributes.

    Reservoirs: one per terrain dam (a few km² at most). Lakes: ``LAKES_AT_SCALE_1 × scale``
    (at least 2); ponds: ``PONDS_AT_SCALE_1 × scale`` (at least 12). All lie inside the district,
    clear of river centrelines and of each other.
    """
    rng = np.random.default_rng([seed, 12])
    placer = _Placer(terrain)
    bodies: list[Body] = []
    for dam in terrain.dams:
        body = _reservoir(terrain, dam, float(rng.uniform(0.4e6, 2.5e6)))
        if body is None:
            continue
        fits = placer.fits(np.array([body["geometry"]], dtype=object))[0]
        if fits and body["geometry"].area >= 2e4:
            placer.take([body["geometry"]])
            bodies.append(body)
    bodies += _lakes(terrain, placer, max(MIN_LAKES, round(LAKES_AT_SCALE_1 * scale)), rng)
    ponds = _ponds(terrain, placer, max(MIN_PONDS, round(PONDS_AT_SCALE_1 * scale)), rng)
    if ponds:
        centres = np.array([p["geometry"].centroid.coords[0] for p in ponds])
        for pond, level in zip(ponds, terrain.elevation(centres[:, 0], centres[:, 1]), strict=True):
            pond["normal_level_m"] = round(float(level) - 0.3, 2)
            pond["storage_10k_m3"] = round(pond["geometry"].area * 2.0 / 1e4, 2)
    bodies += ponds
    _village_names(admin, bodies)
    serial: dict[str, int] = {}
    for body in bodies:
        serial[body["kind"]] = serial.get(body["kind"], 0) + 1
        body["code"] = WATER_CODE[body["kind"]].format(serial[body["kind"]])
        body["area_m2"] = round(body["geometry"].area, 1)
    geoms = [MultiPolygon([b.pop("geometry")]) for b in bodies]
    rows = conform(_layer("water_body"), bodies, rng)
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=f"EPSG:{terrain.epsg}")


def flood_risk(
    terrain: Terrain, rivers: gpd.GeoDataFrame, water_bodies: gpd.GeoDataFrame
) -> NDArray[np.uint8]:
    """Return flood-risk classes on the terrain grid (0 none … 5 extreme; nodata outside).

    ``score = plain × (0.3·low + 0.3·near + 0.3·hollow + 0.1·flat + 0.1·wet)``, classes cut at
    :data:`RISK_BREAKS`, where ``low = 1 − HAND / (5 m·reach)``, ``near = exp(−d / (500 m·reach))``
    (HAND and d to the nearest river; ``reach = √(width / 20 m)``, widths from ``rivers`` where
    mapped: wide rivers flood further), ``hollow`` = depth below the ~500 m neighbourhood / 0.6 m
    (waterlogging), ``flat = 1 − slope / 2 %``, ``wet`` = within 60 m of a water body and
    ``plain = (45 m − z) / 25 m``, all clipped to 0..1: the hills are class 0.
    """
    spec = _raster_spec("flood_risk")
    width = np.array([r.width_m for r in terrain.rivers])
    mapped = dict(zip(rivers["name"], rivers["avg_width_m"], strict=True))
    width = np.array(
        [mapped.get(r.name, w) or w for r, w in zip(terrain.rivers, width, strict=True)]
    )
    reach = np.clip(np.sqrt(width / 20.0), 0.7, 2.5)[terrain.river_index.astype(np.intp)]
    low = np.clip(1.0 - np.maximum(terrain.hand, 0.0) / (5.0 * reach), 0.0, 1.0)
    near = np.exp(-terrain.river_distance / (500.0 * reach))
    hollow = np.clip(terrain.depression / 0.6, 0.0, 1.0)
    flat = np.clip(1.0 - terrain.slope / 0.02, 0.0, 1.0)
    plain = np.clip((45.0 - terrain.array) / 25.0, 0.0, 1.0)
    wet = np.zeros(terrain.shape, dtype=bool)
    if len(water_bodies):
        zones = shapely.buffer(np.asarray(water_bodies.geometry.values, dtype=object), 60.0)
        wet = features.rasterize(
            list(zones), out_shape=terrain.shape, transform=terrain.transform
        ).astype(bool)
    score = plain * (0.3 * low + 0.3 * near + 0.3 * hollow + 0.1 * flat + 0.1 * wet)
    classes = np.digitize(score, RISK_BREAKS).astype(np.uint8)
    classes[~terrain.inside] = np.uint8(spec.nodata)
    return classes


def write_cogs(terrain: Terrain, flood: NDArray[np.uint8], out_dir: Path) -> dict[str, Path]:
    """Write ``dem.tif`` and ``flood_risk.tif`` as COGs in EPSG:4547; return paths by layer role.

    Deflate (predictor 3 for the float DEM, 2 for the classes), 512² tiles, overviews (average
    for the DEM, mode for the classes), band description and a ``units`` band tag; GDAL
    writes no timestamp, so the same seed gives byte-identical files.
    """
    from rasterio.crs import CRS
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    out_dir.mkdir(parents=True, exist_ok=True)
    dem_spec, flood_spec = _raster_spec("dem"), _raster_spec("flood_risk")
    outputs: dict[str, tuple[NDArray[Any], RasterSpec, str, int, Overviews]] = {
        "dem": (terrain.array.astype(dem_spec.dtype), dem_spec, "elevation", 3, "average"),
        "flood_risk": (flood.astype(flood_spec.dtype), flood_spec, "flood risk class", 2, "mode"),
    }
    paths: dict[str, Path] = {}
    for role, (array, spec, description, predictor, resampling) in outputs.items():
        rows, cols = array.shape
        profile = {
            "driver": "GTiff",
            "width": cols,
            "height": rows,
            "count": 1,
            "dtype": spec.dtype,
            "crs": CRS.from_epsg(terrain.epsg),
            "transform": terrain.transform,
            "nodata": spec.nodata,
        }
        target = out_dir / f"{role}.tif"
        with MemoryFile() as memory:
            with memory.open(**profile) as src:
                src.write(array, 1)
                src.set_band_description(1, description)
                src.update_tags(1, units=spec.unit)
                src.update_tags(LAYER_ROLE=role, GENERATOR="sibiao synthetic", SEED=terrain.seed)
            with memory.open() as src:
                dst = dict(
                    cog_profiles.get("deflate"), blockxsize=512, blockysize=512, predictor=predictor
                )
                cog_translate(
                    src,
                    target,
                    dst,
                    nodata=spec.nodata,
                    forward_band_tags=True,
                    overview_resampling=resampling,
                    in_memory=True,
                    quiet=True,
                )
        paths[role] = target
    return paths
