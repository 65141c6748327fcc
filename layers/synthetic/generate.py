"""``sibiao generate``: a whole synthetic district, delivered as departments deliver it.

Every catalog layer is made by the strategy its plan names, streamed town by town
into the source file its department would send (``layers.synthetic.delivery``), and
listed in ``manifest.json``; rasters are written as COGs. ``report.json`` compares
what was made with the Huadu-sized targets of ``plan.yaml``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import pyarrow as pa

from layers.registry import default_catalog
from layers.synthetic.delivery import deliver, load_delivery_plan
from layers.synthetic.geography import LONLAT_EPSG
from layers.synthetic.manifest import ManifestEntry, write_manifest
from layers.synthetic.plan import LayerPlan, default_plan
from layers.synthetic.rasters import raster_entries
from layers.synthetic.strategies import STRATEGIES
from layers.synthetic.world import World
from schemas.catalog import Catalog, Layer, LayerRole
from schemas.errors import InvalidInput

REPORT_FILE = "report.json"
TRUTH_DIR = "truth"
RASTER_STRATEGY = "raster"
#: Largest slice of a chunk passed on to the truth files and the delivery: the copies made
#: while typing, converting to Arrow and writing stay this size at any scale.
SLICE_ROWS = 50_000


@dataclass
class LayerReport:
    """What was made of one layer, against its target."""

    layer: str
    rows: int
    expected: float
    file: str
    length_km: float | None = None
    target_length_km: float | None = None
    totals: dict[str, float] = field(default_factory=dict)
    target_totals: dict[str, float] = field(default_factory=dict)
    defects: int = 0
    seconds: float = 0.0


@dataclass
class GenerationReport:
    """The whole run: parameters, per-layer reports and timing."""

    out_dir: str
    scale: float
    seed: int
    layers: list[LayerReport]
    seconds: float

    def to_json(self) -> str:
        """Return the report as stable, readable JSON (timings excluded for determinism)."""
        data = asdict(self)
        data.pop("seconds")
        data.pop("out_dir")
        for row in data["layers"]:
            row.pop("seconds")
        return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


class _Tally:
    """Pass chunks through while counting rows, line length and attribute sums.

    For layers in ``truth``, also keep the clean features in lon/lat (before the delivery
    adds its defects and changes of CRS), for the case stream and the tests: a folder
    ``truth/<code>.parquet`` of part files that GeoPandas/Arrow read as one table.
    """

    def __init__(
        self,
        chunks: Iterable[gpd.GeoDataFrame],
        plan: LayerPlan,
        lines: bool,
        truth: Path | None = None,
    ):
        self._chunks = chunks
        self._plan = plan
        self._lines = lines
        self._truth = truth
        self.rows = 0
        self.length_m = 0.0
        self.totals = dict.fromkeys(plan.target_totals, 0.0)

    def __iter__(self) -> Iterator[gpd.GeoDataFrame]:
        part = 0
        for chunk in _sliced(self._chunks, SLICE_ROWS):
            self.rows += len(chunk)
            if self._lines and len(chunk):
                self.length_m += float(chunk.geometry.length.sum())
            for name in self.totals:
                if name in chunk.columns:
                    self.totals[name] += float(chunk[name].fillna(0).sum())
            if self._truth is not None and len(chunk):
                # one part file per chunk: memory stays that of one chunk at any scale
                self._truth.mkdir(parents=True, exist_ok=True)
                chunk.to_crs(f"EPSG:{LONLAT_EPSG}").to_parquet(
                    self._truth / f"part-{part:05d}.parquet", index=False
                )
                part += 1
            yield chunk


def _sliced(chunks: Iterable[gpd.GeoDataFrame], rows: int) -> Iterator[gpd.GeoDataFrame]:
    """Yield the chunks cut into slices of at most ``rows`` rows (an empty chunk as it is)."""
    for chunk in chunks:
        if len(chunk) <= rows:
            yield chunk
            continue
        for start in range(0, len(chunk), rows):
            yield chunk.iloc[start : start + rows]


def _libc_trim() -> Callable[[int], int] | None:
    """Return glibc's ``malloc_trim`` (None elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim if name else None  # type: ignore[assignment]
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _libc_trim()


def release_memory() -> None:
    """Give freed memory back to the system between layers, so it does not pile up.

    No ``gc.collect()``: chunks are freed by reference counting, and a full collection over
    the catalog's and the world's objects after every layer cost more than it gave back.
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _clear(out_dir: Path) -> None:
    """Remove what an earlier run wrote (and only that)."""
    for name in ("sources", "rasters", TRUTH_DIR):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in ("manifest.json", REPORT_FILE):
        (out_dir / name).unlink(missing_ok=True)


def generate(
    out_dir: Path,
    *,
    scale: float = 1.0,
    seed: int = 0,
    catalog: Catalog | None = None,
    on_layer: Callable[[Layer, int, int], None] | None = None,
    truth_layers: Iterable[str] = (),
) -> GenerationReport:
    """Write the synthetic district to ``out_dir``; return the actual-vs-target report.

    The clean features of ``truth_layers`` (plus house numbers and villages) are also kept,
    in lon/lat, as ``truth/<code>.parquet``.
    """
    if not 0 < scale <= 100:
        raise InvalidInput(f"--scale must be in (0, 100], not {scale}")
    started = time.perf_counter()
    catalog = catalog or default_catalog()
    plan = default_plan()
    plan.check(catalog, set(STRATEGIES) | {RASTER_STRATEGY})
    delivery = load_delivery_plan()
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    reports: list[LayerReport] = []
    entries: list[ManifestEntry] = []
    with tempfile.TemporaryDirectory(prefix=".spill-", dir=out_dir) as spill:
        world = World(catalog=catalog, scale=scale, seed=seed, spill_dir=Path(spill))
        rasters = [lyr for lyr in catalog.layers if lyr.is_raster]
        keep = set(truth_layers) | {
            lyr.code
            for lyr in catalog.layers
            if lyr.role in (LayerRole.house_number, LayerRole.village)
        }
        for index, layer in enumerate(catalog.vector_layers, start=1):
            layer_plan = plan.layers[layer.code]
            t0 = time.perf_counter()
            lines = layer.geometry.single.value == "LineString"
            truth = out_dir / TRUTH_DIR / f"{layer.code}.parquet" if layer.code in keep else None
            chunks = STRATEGIES[layer_plan.strategy](layer, layer_plan, world)
            tally = _Tally(chunks, layer_plan, lines, truth)
            entry = deliver(layer, tally, out_dir, plan=delivery, seed=seed, record=False)
            entries.append(entry)
            reports.append(
                LayerReport(
                    layer=layer.code,
                    rows=tally.rows,
                    expected=round(layer_plan.expected(scale), 1),
                    file=entry.file,
                    length_km=round(tally.length_m / 1000, 1) if lines else None,
                    target_length_km=layer_plan.target_length_km,
                    totals={k: round(v) for k, v in tally.totals.items()},
                    target_totals=dict(layer_plan.target_totals),
                    defects=len(entry.defects),
                    seconds=round(time.perf_counter() - t0, 2),
                )
            )
            del chunks, tally
            release_memory()
            if on_layer is not None:
                on_layer(layer, index, len(catalog.layers))
        for entry, layer in raster_entries(world, rasters, out_dir):
            entries.append(entry)
            reports.append(LayerReport(layer=layer.code, rows=0, expected=0, file=entry.file))
            if on_layer is not None:
                on_layer(layer, len(reports), len(catalog.layers))
    write_manifest(out_dir, sorted(entries, key=lambda e: e.layer))
    report = GenerationReport(
        out_dir=str(out_dir),
        scale=scale,
        seed=seed,
        layers=reports,
        seconds=round(time.perf_counter() - started, 1),
    )
    (out_dir / REPORT_FILE).write_text(report.to_json(), encoding="utf-8")
    return report
