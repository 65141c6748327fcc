"""Fixtures of the ingest tests: a loader on the run's database, and Huadu rows and files.

Rows are built from the catalog's declarations (codes that match their pattern, enum values,
required fields filled) at points drawn inside the district outline, so a valid row loads
wherever the district extent comes from (the box in the settings or a loaded boundary).
Files are written with geopandas/pyogrio and with GDAL's own ``ogr2ogr``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, text

from ingest.pipeline import LoadRequest, LoadResult, run_load
from ingest.rejects import report_csv
from layers.registry import default_catalog
from layers.synthetic.geography import district_outline, geometry_to_lonlat
from schemas.catalog import Catalog
from schemas.settings import Settings

OGR2OGR = shutil.which("ogr2ogr")
ROADS = ("新华路", "迎宾大道", "凤凰北路", "公益大道", "龙珠路", "三东大道", "田美路", "秀全大道")
UNITS = (
    "花都区市政园林管理所",
    "花都区路灯管理所",
    "新华街道城市管理办公室",
    "狮岭镇综合行政执法办",
    "炭步镇公共服务办（芙蓉）",
)


@dataclass(frozen=True)
class Snapshot:
    """A layer as readers see it: its current version and every row."""

    version: int
    rows: tuple[tuple[Any, ...], ...]


class Ingest:
    """Load files into the run's database and read layers, rejects and versions back."""

    def __init__(self, engine: Engine, settings: Settings, catalog: Catalog) -> None:
        self.engine = engine
        self.settings = settings
        self.catalog = catalog

    def load(
        self,
        path: Path,
        layer: str,
        mode: str = "replace",
        *,
        source_crs: str | None = None,
        field_map: dict[str, str] | None = None,
    ) -> LoadResult:
        result = run_load(
            self.engine,
            self.settings,
            self.catalog,
            LoadRequest(
                path=path,
                layer=layer,
                mode=mode,
                source_crs=source_crs,
                field_map=field_map or {},
            ),
        )
        assert result.loaded + result.rejected == result.read
        with self.engine.connect() as conn:
            batch = conn.execute(
                text(
                    "SELECT state, read_count, loaded_count, rejected_count, version, "
                    "(SELECT count(*) FROM load_rejects r WHERE r.batch_id = b.id) "
                    "FROM load_batches b WHERE id = :id"
                ),
                {"id": result.batch_id},
            ).one()
        assert tuple(batch) == (
            "committed",
            result.read,
            result.loaded,
            result.rejected,
            result.version,
            result.rejected,
        )
        return result

    def rows(self, layer: str) -> dict[str, dict[str, Any]]:
        """Return the live rows keyed by their (first) natural key, geometry as shapely."""
        decl = self.catalog.layer(layer)
        names = ", ".join(f'"{a.name}"' for a in decl.attributes)
        key = decl.natural_key[0]
        with self.engine.connect() as conn:
            result = conn.execute(
                text(
                    f"SELECT fid, {names}, ST_AsBinary(geom) AS wkb, ST_SRID(geom) AS srid, "
                    f'batch_id, layer_version FROM layers."{layer}"'
                )
            )
            out = {}
            for row in result.mappings():
                record = dict(row)
                record["geom"] = shapely.from_wkb(bytes(record.pop("wkb")))
                out[record[key]] = record
        return out

    def rejects(self, batch_id: int) -> dict[int, dict[str, str]]:
        """Return the batch's reject report (``report_csv``) keyed by row number."""
        with self.engine.connect() as conn:
            report = report_csv(conn, batch_id)
        lines = list(csv.DictReader(io.StringIO(report)))
        by_row = {int(line["row"]): line for line in lines}
        assert len(by_row) == len(lines), f"a row is reported twice: {report}"
        return by_row

    def version(self, layer: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT current_version FROM catalog_layers WHERE code = :c"), {"c": layer}
                ).scalar_one()
            )

    def snapshot(self, layer: str) -> Snapshot:
        """Return the layer's version and all of its rows, columns in table order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT to_jsonb(t) - 'geom' AS r, ST_AsEWKB(geom) FROM layers.\"{layer}\" t "
                    "ORDER BY fid"
                )
            ).all()
        return Snapshot(
            self.version(layer),
            tuple((json.dumps(r, sort_keys=True, default=str), bytes(g)) for r, g in rows),
        )


@pytest.fixture(scope="session")
def catalog(settings: Settings) -> Catalog:
    """Return the catalog the run's database was built from."""
    return default_catalog(settings.catalog_dir)


@pytest.fixture(scope="session")
def ingest(engine: Engine, settings: Settings, catalog: Catalog) -> Ingest:
    """Return the loader on the run's migrated database."""
    return Ingest(engine, settings, catalog)


class Maker:
    """Build valid Huadu rows of a few layers and write them in the formats delivered."""

    def __init__(self) -> None:
        inner = geometry_to_lonlat(district_outline().buffer(-3000))
        shapely.prepare(inner)
        self.inner = inner

    # --- places ------------------------------------------------------------------------------
    def points(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``n`` lon/lat (EPSG:4490, 7 decimals) inside the district, reproducibly."""
        rng = np.random.default_rng(seed)
        minx, miny, maxx, maxy = self.inner.bounds
        lon: list[float] = []
        lat: list[float] = []
        while len(lon) < n:
            x = np.round(rng.uniform(minx, maxx, 4 * n), 7)
            y = np.round(rng.uniform(miny, maxy, 4 * n), 7)
            ok = shapely.contains_xy(self.inner, x, y)
            lon += x[ok].tolist()
            lat += y[ok].tolist()
        return np.array(lon[:n]), np.array(lat[:n])

    def footprint(self, lon: float, lat: float, seed: int) -> shapely.Polygon:
        """Return a building-sized rectangle (15-40 m a side) at a point, in lon/lat."""
        rng = np.random.default_rng(seed)
        w, h = rng.uniform(15, 40, 2) / np.array([102_000.0, 111_000.0])
        return shapely.box(lon, lat, round(lon + w, 7), round(lat + h, 7))

    @staticmethod
    def bowtie(lon: float, lat: float) -> shapely.Polygon:
        """Return a self-intersecting (figure-of-eight) polygon of about 30 m."""
        d = 0.0003
        return shapely.Polygon([(lon, lat), (lon + d, lat + d), (lon + d, lat), (lon, lat + d)])

    # --- rows --------------------------------------------------------------------------------
    def lamps(self, n: int, seed: int = 1, first: int = 1) -> list[dict[str, Any]]:
        """Return valid street_lamp rows (canonical names, Chinese text), with lon/lat."""
        lon, lat = self.points(n, seed)
        rng = np.random.default_rng(seed)
        kinds = ("road", "courtyard", "high_mast", "landscape", "ground")
        sources = ("led", "sodium", "metal_halide", "other")
        states = ("intact", "damaged", "missing", "occupied")
        rows = []
        for i in range(n):
            serial = first + i
            road = ROADS[int(rng.integers(len(ROADS)))]
            rows.append(
                {
                    "code": f"44011401{serial:08d}",
                    "pole_no": f"{road[:2]}-{serial:04d}号杆",
                    "kind": kinds[i % len(kinds)],
                    "light_source": sources[i % len(sources)],
                    "power_w": float(rng.choice([60, 100, 150, 250, 400])),
                    "road_name": road,
                    "state": states[i % len(states)],
                    "maintenance_unit": UNITS[i % len(UNITS)],
                    "installed_on": date(2015 + i % 9, 1 + i % 12, 1 + i % 28).isoformat(),
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                }
            )
        return rows

    def manholes(self, n: int, seed: int = 2) -> list[dict[str, Any]]:
        """Return valid manhole_cover rows (canonical names), with lon/lat."""
        lon, lat = self.points(n, seed)
        kinds = ("water_supply", "sewage", "rainwater", "power", "telecom", "gas")
        materials = ("ductile_iron", "cast_iron", "composite", "concrete", "steel")
        return [
            {
                "code": f"44011401{5000 + i:08d}",
                "kind": kinds[i % len(kinds)],
                "material": materials[i % len(materials)],
                "size_mm": 600 + 100 * (i % 5),
                "anti_fall_net": "是" if i % 2 else "否",
                "owner_unit": "广州市花都区水务局",
                "state": "intact",
                "maintenance_unit": UNITS[i % len(UNITS)],
                "inspected_on": "2024-03-15",
                "lon": float(lon[i]),
                "lat": float(lat[i]),
            }
            for i in range(n)
        ]

    # --- files -------------------------------------------------------------------------------
    @staticmethod
    def frame(
        rows: Sequence[dict[str, Any]],
        names: dict[str, str] | None = None,
        geometry: Sequence[BaseGeometry | None] | None = None,
        crs: int | str = 4490,
    ) -> gpd.GeoDataFrame:
        """Return the rows as a GeoDataFrame (points from lon/lat unless geometries given)."""
        names = names or {}
        attrs = [
            {names.get(k, k): v for k, v in row.items() if k not in ("lon", "lat")} for row in rows
        ]
        geoms = (
            list(geometry)
            if geometry is not None
            else [shapely.Point(r["lon"], r["lat"]) for r in rows]
        )
        return gpd.GeoDataFrame(attrs, geometry=geoms, crs=crs)

    @staticmethod
    def geojson(
        path: Path,
        rows: Sequence[dict[str, Any]],
        geometries: Sequence[dict[str, Any] | None],
        names: dict[str, str] | None = None,
        crs: str | None = None,
    ) -> Path:
        """Write a GeoJSON by hand (geometries as GeoJSON dicts, optional ``crs`` member)."""
        names = names or {}
        doc: dict[str, Any] = {"type": "FeatureCollection"}
        if crs is not None:
            doc["crs"] = {"type": "name", "properties": {"name": crs}}
        doc["features"] = [
            {
                "type": "Feature",
                "properties": {
                    names.get(k, k): v for k, v in row.items() if k not in ("lon", "lat")
                },
                "geometry": geom,
            }
            for row, geom in zip(rows, geometries, strict=True)
        ]
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        return path

    @staticmethod
    def csv(
        path: Path,
        rows: Sequence[dict[str, Any]],
        names: dict[str, str] | None = None,
        *,
        x: str = "lon",
        y: str = "lat",
        coords: tuple[Iterable[float], Iterable[float]] | None = None,
        encoding: str = "utf-8",
    ) -> Path:
        """Write rows as CSV with the coordinates in columns ``x``/``y``."""
        names = names or {}
        xs, ys = (
            coords if coords is not None else ([r["lon"] for r in rows], [r["lat"] for r in rows])
        )
        out = io.StringIO()
        fields = [names.get(k, k) for k in rows[0] if k not in ("lon", "lat")]
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([*fields, x, y])
        for row, xv, yv in zip(rows, xs, ys, strict=True):
            values = [row[k] for k in rows[0] if k not in ("lon", "lat")]
            cells = ["" if v is None else v for v in values]
            writer.writerow([*cells, repr(float(xv)), repr(float(yv))])
        path.write_bytes(out.getvalue().encode(encoding))
        return path

    @staticmethod
    def ogr2ogr(dst: Path, src: Path, *args: str) -> Path:
        """Convert a file with GDAL's own ogr2ogr (the Debian gdal-bin tool)."""
        assert OGR2OGR is not None, "ogr2ogr (gdal-bin) is not installed"
        done = subprocess.run(
            [OGR2OGR, *args, str(dst), str(src)], capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
        return dst

    @staticmethod
    def zip_parts(
        path: Path,
        shp: Path,
        *,
        skip: Sequence[str] = (),
        member_stem: str | None = None,
        extra: dict[str, bytes] | None = None,
    ) -> Path:
        """Zip a shapefile's parts (minus the extensions in ``skip``), optionally renamed."""
        stem = member_stem or shp.stem
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(shp.parent.glob(shp.stem + ".*")):
                if part.suffix.lower() in skip:
                    continue
                archive.write(part, stem + part.suffix.lower())
            for name, data in (extra or {}).items():
                archive.writestr(name, data)
        return path


@pytest.fixture(scope="session")
def make() -> Maker:
    """Return the builder of Huadu rows and files."""
    return Maker()
