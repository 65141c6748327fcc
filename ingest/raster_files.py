"""Raster files: open and check a GeoTIFF, write it as a COG, compute its statistics.

No database here; :mod:`ingest.rasters` registers what these functions produce (its module
docstring states the decisions: CRS kept, casts, nodata, statistics). Every error about the
file is an InvalidInput that names it; rasterio is imported where used (slow start-up).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from shapely.geometry.polygon import orient

from schemas.catalog import RasterSpec
from schemas.errors import InvalidInput
from schemas.geodesy import STORAGE_EPSG, parse_crs
from schemas.settings import Settings

if TYPE_CHECKING:
    from rasterio.crs import CRS
    from rasterio.io import DatasetReader
    from rasterio.windows import Window

TILE: Final = 512
CHUNK_PIXELS = 2**22  # pixels per strip read for checks and statistics (tests lower it)
SAMPLE_PIXELS = 2**22  # most pixels read for the percentiles (tests lower it)
IN_MEMORY_BYTES: Final = 64 * 2**20  # larger rasters are converted through a temporary file
EDGE_POINTS: Final = 32  # points per footprint edge before transforming
PERCENTILES: Final = (5, 50, 95)
GDAL_CONFIG: Final = {"GDAL_CACHEMAX": 128 * 2**20, "GDAL_TIFF_OVR_BLOCKSIZE": str(TILE)}
_TIFF_MAGIC: Final = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass
class Checked:
    """What the checks found out about a source file."""

    crs: CRS
    crs_text: str
    overridden: bool
    width: int
    height: int
    count: int
    source_dtype: str
    nodata: float
    resolution: float
    footprint: shapely.Polygon
    notes: list[str]


def crs_text(crs: CRS) -> str:
    """Return ``EPSG:n`` when the CRS has a code, else its WKT."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else str(crs.to_wkt())


def open_geotiff(path: Path, name: str) -> DatasetReader:
    """Open a file as a GeoTIFF, or raise InvalidInput naming it."""
    import rasterio
    from rasterio.errors import RasterioError

    if not path.is_file():
        raise InvalidInput(f"{name}: no such file")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head not in _TIFF_MAGIC:
        raise InvalidInput(f"{name}: not a GeoTIFF (the file does not start with a TIFF header)")
    try:
        src = rasterio.open(path)
    except RasterioError as exc:
        raise InvalidInput(f"{name}: a truncated or corrupt TIFF that cannot be opened") from exc
    if src.driver != "GTiff":
        src.close()
        raise InvalidInput(f"{name}: read as {src.driver}, not as a GeoTIFF")
    return src


def _chunks(width: int, height: int) -> Iterator[Window]:
    """Yield full-width strips of about CHUNK_PIXELS pixels (whole tiles when possible)."""
    from rasterio.windows import Window

    rows = max(1, CHUNK_PIXELS // width)
    if rows >= TILE:
        rows -= rows % TILE
    for top in range(0, height, rows):
        yield Window(0, top, width, min(rows, height - top))


def _valid(data: NDArray[Any], nodata: float | None) -> NDArray[np.bool_]:
    """Return where pixels hold values (not nodata, not NaN/inf)."""
    ok = np.ones(data.shape, dtype=bool)
    if data.dtype.kind == "f":
        ok &= np.isfinite(data)
    if nodata is not None and not math.isnan(nodata):
        ok &= data != nodata
    return ok


def _fits(value: float, dtype: np.dtype[Any]) -> bool:
    """Return whether a nodata value is exactly representable in a dtype."""
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return math.isnan(value) or float(np.array(value).astype(dtype)) == value
    info = np.iinfo(dtype)
    return float(value).is_integer() and info.min <= value <= info.max


def _footprint(crs: CRS, bounds: tuple[float, ...]) -> shapely.Polygon:
    """Return the raster's outline, edges densified, in EPSG:4490 lon/lat."""
    left, bottom, right, top = bounds
    t = np.linspace(0.0, 1.0, EDGE_POINTS, endpoint=False)
    xs = np.concatenate([left + (right - left) * t, np.full(t.size, right)])
    xs = np.concatenate([xs, right - (right - left) * t, np.full(t.size, left)])
    ys = np.concatenate([np.full(t.size, bottom), bottom + (top - bottom) * t])
    ys = np.concatenate([ys, np.full(t.size, top), top - (top - bottom) * t])
    transformer = pyproj.Transformer.from_crs(
        pyproj.CRS.from_wkt(crs.to_wkt()), pyproj.CRS.from_epsg(STORAGE_EPSG), always_xy=True
    )
    lon, lat = transformer.transform(xs, ys, errcheck=False)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise ValueError("corners outside the CRS's area")
    polygon = shapely.Polygon(np.column_stack([lon, lat]))
    return orient(polygon if polygon.is_valid else polygon.convex_hull)


def inspect(
    src: DatasetReader, name: str, spec: RasterSpec, override: str | None, settings: Settings
) -> Checked:
    """Check bands, georeferencing, CRS, nodata and extent; return what was found."""
    from rasterio.crs import CRS
    from rasterio.enums import MaskFlags

    notes: list[str] = []
    if src.count != len(spec.bands):
        raise InvalidInput(
            f"{name}: {src.count} bands; the layer holds {len(spec.bands)} "
            f"({', '.join(spec.bands)}): pick them with gdal_translate -b"
        )
    if any(np.dtype(d).kind == "c" for d in src.dtypes):
        raise InvalidInput(f"{name}: complex pixel values ({src.dtypes[0]}) cannot be a layer")
    transform = src.transform
    if src.gcps[0] and transform.is_identity:
        raise InvalidInput(
            f"{name}: georeferenced by ground control points; warp it first (gdalwarp)"
        )
    if transform.is_identity:
        raise InvalidInput(f"{name}: the raster has no georeferencing (no geotransform)")
    if transform.b or transform.d:
        raise InvalidInput(f"{name}: its grid is rotated; warp it north-up first (gdalwarp)")
    if override:
        given = parse_crs(override)
        if given.crs is None:
            raise InvalidInput(
                f"{name}: {given.canonical} is an offset, not a CRS a raster grid can be in; "
                "warp the raster to WGS84 or CGCS2000 first"
            )
        crs = CRS.from_wkt(given.crs.to_wkt())
        if src.crs is not None and src.crs != crs:
            notes.append(f"the file declares {crs_text(src.crs)}; --source-crs {override} used")
    elif src.crs is None:
        raise InvalidInput(f"{name}: the raster declares no coordinate system; give --source-crs")
    else:
        crs = src.crs
    try:
        footprint = _footprint(crs, src.bounds)
    except (ValueError, pyproj.exceptions.ProjError) as exc:
        raise InvalidInput(
            f"{name}: its extent cannot be placed on the earth in {crs_text(crs)}; "
            "check its coordinate system (--source-crs)"
        ) from exc
    minx, miny, maxx, maxy = settings.district_extent
    margin = settings.extent_margin_deg
    district = shapely.box(minx - margin, miny - margin, maxx + margin, maxy + margin)
    if not footprint.intersects(district):
        where = ", ".join(f"{v:.4f}" for v in footprint.bounds)
        raise InvalidInput(
            f"{name}: it lies at lon/lat {where}, outside the district "
            f"({minx}, {miny}, {maxx}, {maxy}); check its coordinate system (--source-crs)"
        )
    target = np.dtype(spec.dtype)
    if src.nodata is None:
        nodata = spec.nodata
        notes.append(f"the file declares no nodata value; the catalog's {spec.nodata:g} is used")
        if MaskFlags.per_dataset in src.mask_flag_enums[0]:
            notes.append("its internal mask is not carried over: only nodata marks gaps")
    else:
        nodata = float(src.nodata)
        if not (nodata == spec.nodata or (math.isnan(nodata) and math.isnan(spec.nodata))):
            notes.append(f"the file's nodata {nodata:g} is kept (the catalog says {spec.nodata:g})")
        if not _fits(nodata, target):
            raise InvalidInput(
                f"{name}: its nodata value {nodata:g} cannot be stored as {target}; "
                f"set {spec.nodata:g} (gdal_translate -a_nodata) or convert the values"
            )
    rx, ry = abs(transform.a), abs(transform.e)
    if not math.isclose(rx, ry, rel_tol=1e-6):
        notes.append(f"pixels are not square ({rx:g} x {ry:g}); resolution records x")
    metres = rx * crs.linear_units_factor[1] if crs.is_projected else ry * 110_574.0
    if not 0.5 <= metres / spec.resolution_m <= 2:
        notes.append(f"pixels are about {metres:.3g} m; the catalog says {spec.resolution_m:g} m")
    return Checked(
        crs=crs,
        crs_text=crs_text(crs),
        overridden=bool(override),
        width=src.width,
        height=src.height,
        count=src.count,
        source_dtype=str(np.result_type(*src.dtypes)),
        nodata=nodata,
        resolution=rx,
        footprint=footprint,
        notes=notes,
    )


def _check_cast(src: DatasetReader, name: str, checked: Checked, target: np.dtype[Any]) -> None:
    """Cast to the catalog dtype only when it keeps the meaning; refuse or note otherwise."""
    source = np.dtype(checked.source_dtype)
    if source == target:
        return
    if np.can_cast(source, target, "safe"):
        checked.notes.append(f"values converted from {source} to {target} (lossless)")
        return
    rounded = False
    for window in _chunks(src.width, src.height):
        data = src.read(window=window)
        values = data[_valid(data, checked.nodata)]
        if values.size == 0:
            continue
        low, high = values.min(), values.max()
        if target.kind in "iu":
            info = np.iinfo(target)
            if low < info.min or high > info.max:
                raise InvalidInput(
                    f"{name}: values run from {low:g} to {high:g}; "
                    f"{target} holds {info.min} to {info.max}"
                )
            if source.kind == "f" and not np.all(values == np.round(values)):
                sample = values[values != np.round(values)][0]
                raise InvalidInput(
                    f"{name}: fractional values (e.g. {sample:g}) in a layer of whole {target} "
                    "values"
                )
        else:
            if max(abs(float(low)), abs(float(high))) > np.finfo(target).max:
                raise InvalidInput(f"{name}: values up to {high:g} overflow {target}")
            rounded = rounded or bool(np.any(values.astype(target) != values))
    how = "rounded to its precision" if rounded else "no value changed"
    checked.notes.append(f"values converted from {source} to {target} ({how})")


def _convert(
    src: DatasetReader, target: Path, checked: Checked, spec: RasterSpec, layer: str
) -> None:
    """Write the source as a COG in the catalog dtype, keeping its grid and CRS."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    floating = np.dtype(spec.dtype).kind == "f"
    profile = dict(cog_profiles.get("deflate"), blockxsize=TILE, blockysize=TILE)
    profile["predictor"] = 3 if floating else 2
    if checked.overridden:
        profile["crs"] = checked.crs
    size = checked.width * checked.height * checked.count * np.dtype(spec.dtype).itemsize
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nodata-over-mask and similar, noted by the checks
        cog_translate(
            src,
            target,
            profile,
            nodata=checked.nodata,
            dtype=spec.dtype,
            overview_resampling="average" if floating else "mode",
            forward_band_tags=True,
            in_memory=size <= IN_MEMORY_BYTES,
            quiet=True,
            additional_cog_metadata={"SIBIAO_LAYER": layer, "UNITS": spec.unit},
            config=GDAL_CONFIG | {"GDAL_NUM_THREADS": "ALL_CPUS"},
        )


def write_cog(
    src: DatasetReader, target: Path, name: str, checked: Checked, spec: RasterSpec, layer: str
) -> None:
    """Check the cast to the catalog dtype, write the COG and validate it."""
    _read_all(lambda: _check_cast(src, name, checked, np.dtype(spec.dtype)), name)
    _read_all(lambda: _convert(src, target, checked, spec, layer), name)
    _validate_cog(target, name)


def _read_all(step: Callable[[], None], name: str) -> None:
    """Run a step that reads every pixel; a read error means a damaged file."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    try:
        step()
    except (RasterioError, CPLE_BaseError) as exc:
        raise InvalidInput(
            f"{name}: its pixels cannot be read to the end; the file is truncated or corrupt"
        ) from exc


def _validate_cog(path: Path, name: str) -> None:
    from rio_cogeo.cogeo import cog_validate

    valid, errors, _ = cog_validate(path, quiet=True)
    if not valid:
        raise RuntimeError(f"the COG written from {name} does not validate: {'; '.join(errors)}")


def _moments(values: NDArray[Any]) -> tuple[int, float, float, float, float]:
    """Return count, min, max, mean and sum of squared deviations of some values."""
    x = values.astype(np.float64)
    mean = float(x.mean())
    return x.size, float(x.min()), float(x.max()), mean, float(((x - mean) ** 2).sum())


def statistics(path: Path, nodata: float | None) -> dict[str, Any]:
    """Return per-band statistics of a raster, read strip by strip.

    Parameters
    ----------
    path
        A raster file (a COG: the percentile sample is read from its overviews).
    nodata
        The value that marks missing pixels (NaN and infinities are missing too).

    Returns
    -------
    dict
        ``min``, ``max``, ``mean``, ``std`` (population), ``valid_count``, ``p5``, ``p50``,
        ``p95`` and ``percentiles_from`` of band 1, plus ``bands`` (one such dict each) when
        there are several.
    """
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.Env(**GDAL_CONFIG), rasterio.open(path) as src:
        count = [0] * src.count
        low, high = [math.inf] * src.count, [-math.inf] * src.count
        mean, m2 = [0.0] * src.count, [0.0] * src.count
        for window in _chunks(src.width, src.height):
            data = src.read(window=window)
            for b in range(src.count):
                values = data[b][_valid(data[b], nodata)]
                if values.size == 0:
                    continue
                n, lo, hi, mu, sq = _moments(values)
                total = count[b] + n
                delta = mu - mean[b]
                mean[b] += delta * n / total
                m2[b] += sq + delta * delta * count[b] * n / total
                count[b], low[b], high[b] = total, min(low[b], lo), max(high[b], hi)
        step = max(1, math.ceil(math.sqrt(src.width * src.height / SAMPLE_PIXELS)))
        shape = (src.count, max(1, src.height // step), max(1, src.width // step))
        sample = src.read(out_shape=shape, resampling=Resampling.nearest)
        origin = "full resolution" if step == 1 else f"a 1:{step} decimated read"
    bands: list[dict[str, Any]] = []
    for b in range(len(count)):
        values = sample[b][_valid(sample[b], nodata)].astype(np.float64)
        cuts = np.percentile(values, PERCENTILES) if values.size else [None] * len(PERCENTILES)
        stats: dict[str, Any] = {
            "valid_count": count[b],
            "min": low[b] if count[b] else None,
            "max": high[b] if count[b] else None,
            "mean": mean[b] if count[b] else None,
            "std": math.sqrt(m2[b] / count[b]) if count[b] else None,
        }
        stats |= {
            f"p{p}": None if c is None else float(c) for p, c in zip(PERCENTILES, cuts, strict=True)
        }
        bands.append(stats | {"percentiles_from": origin})
    return bands[0] | ({"bands": bands} if len(bands) > 1 else {})
