"""The cell lookup: the label raster answers exactly what the geometry tests answer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import shapely

from ingest.locate import RASTER_MIN_POINTS, Areas


def _areas() -> Areas:
    """Jagged cells sharing edges (a perturbed 12 x 9 lattice), one with a hole, one overlap."""
    rng = np.random.default_rng(7)
    xs = np.linspace(113.0, 113.3, 13)
    ys = np.linspace(23.3, 23.5, 10)
    nodes = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    nodes[1:-1, 1:-1] += rng.uniform(-0.008, 0.008, nodes[1:-1, 1:-1].shape)
    cells = []
    for i in range(12):
        for j in range(9):
            ring = [nodes[i, j], nodes[i + 1, j], nodes[i + 1, j + 1], nodes[i, j + 1]]
            cells.append(shapely.Polygon(ring))
    centre = shapely.centroid(cells[40])
    cells[40] = cells[40].difference(centre.buffer(0.004))  # a hole: points in it are outside
    cells.append(shapely.box(113.1, 23.38, 113.14, 23.42))  # overlaps others: they win
    polygons = np.array(cells, dtype=object)
    shapely.prepare(polygons)
    return Areas(
        codes=pa.array([f"{i:04d}" for i in range(len(cells))]),
        polygons=polygons,
        bounds=shapely.bounds(polygons),
    )


def _points(areas: Areas, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points over and around the cells, plus points on edges and vertices."""
    rng = np.random.default_rng(11)
    x = rng.uniform(112.98, 113.32, n)
    y = rng.uniform(23.28, 23.52, n)
    vertices = shapely.get_coordinates(shapely.boundary(areas.polygons))
    midpoints = (vertices[:-1] + vertices[1:]) / 2
    on_edges = np.concatenate([vertices, midpoints])
    return np.concatenate([x, on_edges[:, 0]]), np.concatenate([y, on_edges[:, 1]])


def _independent(areas: Areas, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The smallest index of a polygon covering each point, by plain shapely predicates."""
    out = np.full(x.shape[0], -1)
    for i in range(len(areas.polygons) - 1, -1, -1):
        out[shapely.intersects_xy(areas.polygons[i], x, y)] = i
    return out


def test_raster_lookup_matches_the_geometry_tests():
    areas = _areas()
    x, y = _points(areas, RASTER_MIN_POINTS * 3)
    found = areas.lookup(x, y)
    assert areas.raster is not None  # the batch was big enough to use it
    assert np.array_equal(found, _independent(areas, x, y))
    assert (found == -1).any() and (found >= 0).sum() > len(x) // 2


def test_most_points_are_answered_without_a_geometry_test():
    areas = _areas()
    rng = np.random.default_rng(3)
    n = RASTER_MIN_POINTS * 3
    x, y = rng.uniform(113.0, 113.3, n), rng.uniform(23.3, 23.5, n)  # over the cells
    areas.lookup(x, y)
    assert areas.raster is not None
    near_edges = (areas.raster.label(x, y) == areas.raster.EDGE).mean()
    assert near_edges < 0.2


def test_small_batches_use_the_geometry_tests_only():
    areas = _areas()
    x, y = _points(areas, 100)
    assert np.array_equal(areas.lookup(x, y), _independent(areas, x, y))
    assert areas.raster is None


def test_a_raster_built_ahead_answers_the_first_big_batch():
    areas = _areas()
    areas.warm()
    built = areas.raster
    assert built is not None
    x, y = _points(areas, RASTER_MIN_POINTS)
    assert np.array_equal(areas.lookup(x, y), _independent(areas, x, y))
    assert areas.raster is built  # not built again
