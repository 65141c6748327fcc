"""Components along the streets: street lamps every 30–40 m, manhole covers of every kind.

Per town (the generator's chunk), in EPSG:4547. Component codes follow the digital
city management form: 6-digit county + 2-digit major class + 2-digit minor class +
6-digit serial; serials run on across towns through a shared counter.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import geopandas as gpd
import numpy as np
import shapely

from layers.synthetic.geography import METRIC_EPSG
from layers.synthetic.naming import dates_between, zero_pad
from layers.synthetic.roads import Road

LAMP_SPACING_M = (30.0, 40.0)
#: Covers per km of road at scale 1 (all kinds together); tuned to ~300 k in the district.
COVERS_PER_KM = 78.0
COVER_KINDS = {  # kind: (minor class, share, maintenance unit, lateral offset m)
    "rainwater": ("03", 0.33, "花都区排水有限公司", 3.0),
    "sewage": ("02", 0.27, "花都区排水有限公司", 1.5),
    "water_supply": ("01", 0.16, "花都区自来水公司", -2.0),
    "power": ("04", 0.10, "供电局花都供电分局", -4.0),
    "telecom": ("05", 0.09, "中国电信花都分公司", 4.5),
    "gas": ("06", 0.04, "花都燃气公司", -3.0),
    "heat": ("07", 0.01, "花都区热力公司", 5.0),
}
STATES = ("intact", "damaged", "missing", "occupied")
STATE_SHARES = (0.95, 0.03, 0.01, 0.01)


@dataclass
class Serials:
    """Running serial numbers per code prefix, shared across the towns of one run."""

    next: dict[str, int] = field(default_factory=dict)

    def take(self, prefix: str, count: int) -> np.ndarray:
        """Return ``count`` codes ``prefix + serial`` (6 digits), continuing the run.

        A component code has room for 999,999 serials per minor class; past that (only at
        scales far above the real district's) the minor class rolls over by 10 (01 → 11 …),
        so codes stay unique and well-formed at any scale.
        """
        start = self.next.get(prefix, 1)
        room = max(0, 1_000_000 - start)
        if count <= room:
            self.next[prefix] = start + count
            return np.char.add(prefix, zero_pad(np.arange(start, start + count), 6))
        minor = int(prefix[-2:]) + 10
        if minor > 99:
            raise ValueError(f"no more component codes under {prefix[:-2]}")
        self.next[prefix] = 1_000_000
        head = (
            np.char.add(prefix, zero_pad(np.arange(start, 1_000_000), 6))
            if room
            else np.array([], dtype="<U16")
        )
        tail = self.take(f"{prefix[:-2]}{minor:02d}", count - room)
        return np.concatenate([head.astype(tail.dtype), tail])


def _along(
    roads: list[Road], spacing: np.ndarray, offset: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return points every ``spacing[i]`` m along road i, ``offset[i]`` m to its side."""
    lines, dists, owner = [], [], []
    for i, road in enumerate(roads):
        for part in road.geometry.geoms:
            n = int(part.length // spacing[i])
            if n:
                start = rng.uniform(0, spacing[i])
                lines.append(np.full(n, part, dtype=object))
                dists.append(np.minimum(start + spacing[i] * np.arange(n), part.length))
                owner.append(np.full(n, i))
    if not lines:
        return np.array([], dtype=object), np.array([], dtype=int)
    line, dist, road_i = np.concatenate(lines), np.concatenate(dists), np.concatenate(owner)
    here = shapely.line_interpolate_point(line, dist)
    ahead = shapely.line_interpolate_point(line, dist + 1.0)
    hx, hy = shapely.get_x(here), shapely.get_y(here)
    tx, ty = shapely.get_x(ahead) - hx, shapely.get_y(ahead) - hy
    norm = np.hypot(tx, ty)
    norm[norm == 0] = 1.0
    side = offset[road_i]
    return shapely.points(hx - ty / norm * side, hy + tx / norm * side), road_i


def _frame(columns: dict[str, object], geometry: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=geometry, crs=f"EPSG:{METRIC_EPSG}")


def street_lamps(
    roads: list[Road], *, scale: float, serials: Serials, rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """Return the lamps of one town's lit roads, every 30–40 m (scaled)."""
    lit = [r for r in roads if r.lit]
    spacing = rng.uniform(*LAMP_SPACING_M, len(lit)) / math.sqrt(scale)
    side = np.array([r.width_m / 2 + 1.0 for r in lit]) * rng.choice([-1, 1], len(lit))
    points, road_i = _along(lit, spacing, side, rng)
    n = points.size
    grades = np.array([lit[i].grade for i in road_i]) if n else np.array([], dtype=str)
    return _frame(
        {
            "code": serials.take("4401140108", n),
            "pole_no": np.char.add("LD", zero_pad(np.arange(1, n + 1), 6)),
            "kind": np.where(grades == "village", "courtyard", "road"),
            "light_source": rng.choice(["led", "sodium", "metal_halide"], n, p=[0.7, 0.25, 0.05]),
            "power_w": rng.choice([60.0, 100.0, 150.0, 250.0], n),
            "road_name": np.array([lit[i].name for i in road_i], dtype=object),
            "state": rng.choice(STATES, n, p=STATE_SHARES),
            "maintenance_unit": np.full(n, "花都区路灯管理所"),
            "installed_on": dates_between(rng, n, date(2005, 1, 1), date(2025, 6, 30)),
        },
        points,
    )


def manhole_covers(
    roads: list[Road], *, scale: float, serials: Serials, rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """Return the manhole covers of one town's roads, each kind on its own line under the road."""
    frames = list(manhole_cover_kinds(roads, scale=scale, serials=serials, rng=rng))
    return gpd.GeoDataFrame(
        {
            col: np.concatenate([f[col].to_numpy() for f in frames])
            for col in frames[0].columns
            if col != "geometry"
        },
        geometry=np.concatenate([f.geometry.to_numpy() for f in frames]),
        crs=f"EPSG:{METRIC_EPSG}",
    )


def manhole_cover_kinds(
    roads: list[Road], *, scale: float, serials: Serials, rng: np.random.Generator
) -> Iterator[gpd.GeoDataFrame]:
    """Yield the manhole covers of one town's roads one kind at a time (a chunk each)."""
    for kind, (minor, share, unit, offset) in COVER_KINDS.items():
        spacing = np.full(len(roads), 1000.0 / (COVERS_PER_KM * share * math.sqrt(scale)))
        spacing *= rng.uniform(0.8, 1.25, len(roads))
        side = np.full(len(roads), offset)
        points, road_i = _along(roads, spacing, side, rng)
        n = points.size
        yield _frame(
            {
                "code": serials.take(f"440114{'01'}{minor}", n),
                "kind": np.full(n, kind),
                "material": rng.choice(
                    ["ductile_iron", "composite", "concrete", "cast_iron"],
                    n,
                    p=[0.6, 0.2, 0.1, 0.1],
                ),
                "size_mm": rng.choice([600, 700, 800, 1000], n, p=[0.2, 0.5, 0.2, 0.1]),
                "anti_fall_net": rng.random(n) < 0.7,
                "owner_unit": np.full(n, unit),
                "state": rng.choice(STATES, n, p=STATE_SHARES),
                "maintenance_unit": np.full(n, unit),
                "inspected_on": dates_between(rng, n, date(2024, 1, 1), date(2025, 12, 31)),
            },
            points,
        )
