"""Numpy-only helpers over north-up grids: fractal noise, box filters, nearest seeds, sampling.

No scipy: the nearest-seed transform is a jump flood (JFA) run on a coarse grid and refined at
full resolution, which is exact in practice for seeds as dense as sampled river lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.transform import Affine

FloatArray = NDArray[np.float64]
Float32Array = NDArray[np.float32]
IntArray = NDArray[np.int32]


def cell_centres(transform: Affine, shape: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    """Return the x of every column centre and the y of every row centre."""
    rows, cols = shape
    xs = transform.c + (np.arange(cols) + 0.5) * transform.a
    ys = transform.f + (np.arange(rows) + 0.5) * transform.e
    return xs, ys


def _catmull_rom(g: FloatArray) -> tuple[NDArray[np.intp], FloatArray]:
    """Return the 4 lattice indices and Catmull-Rom weights for fractional positions ``g``."""
    base = np.floor(g).astype(np.intp)
    t = (g - base)[:, None]
    weights = np.hstack(
        [
            (-(t**3) + 2 * t**2 - t) / 2,
            (3 * t**3 - 5 * t**2 + 2) / 2,
            (-3 * t**3 + 4 * t**2 + t) / 2,
            (t**3 - t**2) / 2,
        ]
    )
    index = base[:, None] + np.arange(-1, 3)[None, :]
    return index, weights


def value_noise(
    rng: np.random.Generator, xs: FloatArray, ys: FloatArray, wavelength: float
) -> FloatArray:
    """Return smooth noise (about unit variance) on the grid ``ys × xs`` with this wavelength."""
    gx = (xs - xs.min()) / wavelength + 1.0 + rng.uniform(0.0, 1.0)
    gy = (ys - ys.min()) / wavelength + 1.0 + rng.uniform(0.0, 1.0)
    lattice = rng.standard_normal((int(gy.max()) + 4, int(gx.max()) + 4))
    ix, wx = _catmull_rom(gx)
    iy, wy = _catmull_rom(gy)
    along_x = np.zeros((lattice.shape[0], xs.size))
    for k in range(4):
        along_x += lattice[:, ix[:, k]] * wx[None, :, k]
    result = np.zeros((ys.size, xs.size))
    for k in range(4):
        result += along_x[iy[:, k]] * wy[:, k, None]
    return result / 0.75


def fractal_noise(
    rng: np.random.Generator,
    xs: FloatArray,
    ys: FloatArray,
    octaves: Sequence[tuple[float, float]],
) -> FloatArray:
    """Return the sum of value-noise octaves given as (wavelength m, amplitude)."""
    total = np.zeros((ys.size, xs.size))
    for wavelength, amplitude in octaves:
        total += amplitude * value_noise(rng, xs, ys, wavelength)
    return total


def box_mean(array: FloatArray | Float32Array, radius: int) -> FloatArray:
    """Return the mean over a (2r+1)² window at each cell (edges padded with edge values)."""
    k = 2 * radius + 1
    padded = np.pad(np.asarray(array, dtype=np.float64), radius + 1, mode="edge")
    s = padded.cumsum(axis=0).cumsum(axis=1)
    total = s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]
    result: FloatArray = total[: array.shape[0], : array.shape[1]] / (k * k)
    return result


def _shift(array: NDArray[Any], dr: int, dc: int, fill: float) -> NDArray[Any]:
    """Return ``out[r, c] = array[r + dr, c + dc]`` with ``fill`` where that falls outside."""
    out = np.full_like(array, fill)
    rows, cols = array.shape
    if abs(dr) >= rows or abs(dc) >= cols:
        return out
    src_r = slice(max(dr, 0), rows + min(dr, 0))
    dst_r = slice(max(-dr, 0), rows + min(-dr, 0))
    src_c = slice(max(dc, 0), cols + min(dc, 0))
    dst_c = slice(max(-dc, 0), cols + min(-dc, 0))
    out[dst_r, dst_c] = array[src_r, src_c]
    return out


def _jump_flood(
    index: IntArray,
    sx: Float32Array,
    sy: Float32Array,
    xs: Float32Array,
    ys: Float32Array,
    steps: Sequence[int],
) -> tuple[IntArray, Float32Array]:
    """Propagate nearest-seed indices (-1: none) over the grid; return them, squared distances."""
    px = np.where(index >= 0, sx[index], np.float32(np.inf))
    py = np.where(index >= 0, sy[index], np.float32(np.inf))
    best = (xs[None, :] - px) ** 2 + (ys[:, None] - py) ** 2
    for step in steps:
        for dr in (-step, 0, step):
            for dc in (-step, 0, step):
                if dr == 0 and dc == 0:
                    continue
                cx: Float32Array = _shift(px, dr, dc, np.inf)
                cy: Float32Array = _shift(py, dr, dc, np.inf)
                d = (xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2
                better = d < best
                if not better.any():
                    continue
                best = np.where(better, d, best)
                px = np.where(better, cx, px)
                py = np.where(better, cy, py)
                index = np.where(better, _shift(index, dr, dc, -1), index)
    return index, best


def nearest_seed(
    transform: Affine, shape: tuple[int, int], seed_x: FloatArray, seed_y: FloatArray
) -> tuple[IntArray, Float32Array]:
    """Return, for every cell, the index of the nearest seed point and the distance to it (m)."""
    res = transform.a
    xs, ys = cell_centres(transform, shape)
    x0, y0 = xs[0], ys[0]
    sx = (seed_x - x0).astype(np.float32)
    sy = (seed_y - y0).astype(np.float32)
    cols = np.clip(np.round(sx / res).astype(np.intp), 0, shape[1] - 1)
    rows = np.clip(np.round(-sy / res).astype(np.intp), 0, shape[0] - 1)
    factor = 3
    coarse_shape = (-(-shape[0] // factor), -(-shape[1] // factor))
    coarse_xs = ((np.arange(coarse_shape[1]) * factor + (factor - 1) / 2) * res).astype(np.float32)
    coarse_ys = (-(np.arange(coarse_shape[0]) * factor + (factor - 1) / 2) * res).astype(np.float32)
    seeds = np.arange(sx.size, dtype=np.int32)
    coarse = _place(
        coarse_shape, rows // factor, cols // factor, seeds, sx, sy, coarse_xs, coarse_ys
    )
    span = 1 << int(np.ceil(np.log2(max(coarse_shape))))
    steps = [span >> k for k in range(1, int(np.log2(span)) + 1)] + [1]
    coarse, _ = _jump_flood(coarse, sx, sy, coarse_xs, coarse_ys, steps)
    fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]
    fx = (np.arange(shape[1]) * res).astype(np.float32)
    fy = (-np.arange(shape[0]) * res).astype(np.float32)
    own = _place(shape, rows, cols, seeds, sx, sy, fx, fy)
    fine = np.where(own >= 0, own, fine).astype(np.int32)
    fine, best = _jump_flood(fine, sx, sy, fx, fy, [4, 2, 1, 1])
    return fine, np.sqrt(best)


def _place(
    shape: tuple[int, int],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    seeds: IntArray,
    sx: Float32Array,
    sy: Float32Array,
    xs: Float32Array,
    ys: Float32Array,
) -> IntArray:
    """Return a grid holding, in each cell with seeds, the seed nearest to the cell centre."""
    d = (sx - xs[cols]) ** 2 + (sy - ys[rows]) ** 2
    flat = rows * shape[1] + cols
    order = np.lexsort((d, flat))
    first = np.ones(order.size, dtype=bool)
    first[1:] = flat[order][1:] != flat[order][:-1]
    grid = np.full(shape[0] * shape[1], -1, dtype=np.int32)
    grid[flat[order][first]] = seeds[order][first]
    return grid.reshape(shape)


def bilinear(
    array: FloatArray | Float32Array, transform: Affine, x: FloatArray, y: FloatArray
) -> FloatArray:
    """Sample a grid bilinearly between cell centres at points (NaN outside the grid)."""
    rows, cols = array.shape
    fc = (x - transform.c) / transform.a - 0.5
    fr = (y - transform.f) / transform.e - 0.5
    outside = (fc < -0.5) | (fc > cols - 0.5) | (fr < -0.5) | (fr > rows - 0.5)
    fc = np.clip(fc, 0.0, cols - 1.0)
    fr = np.clip(fr, 0.0, rows - 1.0)
    c0 = np.minimum(np.floor(fc).astype(np.intp), cols - 2)
    r0 = np.minimum(np.floor(fr).astype(np.intp), rows - 2)
    tc, tr = fc - c0, fr - r0
    top = array[r0, c0] * (1 - tc) + array[r0, c0 + 1] * tc
    bottom = array[r0 + 1, c0] * (1 - tc) + array[r0 + 1, c0 + 1] * tc
    result: FloatArray = np.where(outside, np.nan, top * (1 - tr) + bottom * tr)
    return result


def smoothstep(t: FloatArray) -> FloatArray:
    """Return the cubic smoothstep of ``t`` clipped to 0..1."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def grid_bounds(transform: Affine, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Return (minx, miny, maxx, maxy) of a north-up grid."""
    rows, cols = shape[0], shape[1]
    return (
        transform.c,
        transform.f + rows * transform.e,
        transform.c + cols * transform.a,
        transform.f,
    )
