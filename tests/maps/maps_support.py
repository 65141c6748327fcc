"""Helpers of the map tests: test files, the loaded database's shape, browser visits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from ingest.pipeline import LoadResult
from schemas.catalog import Catalog
from schemas.settings import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
BUILDINGS = 40
BAD_FLOORS = 3  # buildings with floors 0 (below the minimum): rejected, with a location


@dataclass(frozen=True)
class MapsDb:
    """The loaded database: settings (own database and data folder), engine, catalog, loads."""

    settings: Settings
    engine: Engine
    catalog: Catalog
    folder: Path
    loads: dict[str, LoadResult]


def _feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _square(lon: float, lat: float, size: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


def _line(*points: tuple[float, float]) -> dict[str, Any]:
    return {"type": "MultiLineString", "coordinates": [[list(p) for p in points]]}


def write_geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    """Write a FeatureCollection (CRS84) and return its path."""
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def buildings(*, bad: int) -> list[dict[str, Any]]:
    """Return BUILDINGS footprints on a grid near 新华街; the last ``bad`` have floors 0."""
    rows = []
    for i in range(BUILDINGS):
        lon, lat = 113.205 + (i % 8) * 0.0016, 23.395 + (i // 8) * 0.0016
        floors = 0 if i >= BUILDINGS - bad else 2 + i % 7
        rows.append(
            _feature(
                _square(lon, lat, 0.0006),
                code=f"440114{i + 1:013d}",
                name=f"测试楼 {i + 1}",
                floors=floors,
                structure="reinforced_concrete",
                use="residential",
            )
        )
    return rows


def base_files(folder: Path) -> dict[str, Path]:
    """Write towns, roads and a river for the base map; return their paths by layer."""
    towns = [
        _feature(
            _square(113.15 + 0.1 * i, 23.35, 0.1),
            code=f"44011400{i + 1}",
            name=name,
            kind="subdistrict",
            parent_code="440114",
        )
        for i, name in enumerate(("新华街道", "秀全街道"))
    ]
    roads = [
        _feature(_line((113.20, 23.394), (113.22, 23.394)), code="44011400000001",
                 name="迎宾大道", grade="arterial"),
        _feature(_line((113.204, 23.39), (113.204, 23.405)), code="44011400000002",
                 name="新华路", grade="secondary_arterial"),
    ]  # fmt: skip
    rivers = [
        _feature(_line((113.19, 23.41), (113.21, 23.404), (113.23, 23.409)), code="HDRIVER01",
                 name="天马河", kind="river"),
    ]  # fmt: skip
    return {
        "town_boundary": write_geojson(folder / "towns.geojson", towns),
        "road_centerline": write_geojson(folder / "roads.geojson", roads),
        "river": write_geojson(folder / "rivers.geojson", rivers),
    }


@dataclass
class Visit:
    """A browser page and what went wrong while it loaded."""

    page: Any
    failed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)

    def close(self) -> None:
        self.page.context.close()


def open_page(browser: Any, *, width: int = 1280, height: int = 800) -> Visit:
    """Return a fresh page whose requests outside 127.0.0.1 are aborted and recorded."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    page = context.new_page()
    visit = Visit(page)

    def guard(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob", "file") or parts.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            visit.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} {r.failure}"))
    page.on("response", lambda r: visit.responses.append((r.status, r.url)))
    page.on("pageerror", lambda e: visit.errors.append(str(e)))
    page.on("console", lambda m: visit.errors.append(m.text) if m.type == "error" else None)
    return visit
