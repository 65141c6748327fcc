"""``sibiao map``: self-contained map pages for reports (open from a USB stick)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from sqlalchemy import Engine

from api.cli.common import console, settings
from layers.registry import default_catalog
from schemas.database import database_url, make_engine
from schemas.settings import Settings

app = typer.Typer(help="Export self-contained map pages.", no_args_is_help=True)


@app.command()
def layer(
    code: str = typer.Argument(..., help="layer code"),
    out: Path = typer.Option(..., "--out", help="HTML file to write"),
    load_id: int = typer.Option(None, "--load", help="show this load's rejected rows"),
) -> None:
    """Write one layer's map (features, rejected rows, history) with every asset inlined."""
    from maps.export import layer_page

    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        html = layer_page(
            code,
            engine=engine,
            settings=cfg,
            catalog=default_catalog(cfg.catalog_dir),
            load_id=load_id,
        )
    finally:
        engine.dispose()
    out.write_text(html, encoding="utf-8")
    console.print(f"{out} ({len(html.encode()) / 2**20:.1f} MB, no outside references)")


@app.command()
def dispatch(
    out: Path = typer.Option(..., "--out", help="HTML file to write"),
) -> None:
    """Write the dispatcher's map of all cases (filters work inside the page)."""
    from maps.export import dispatch_page

    _write(
        out,
        lambda engine, cfg: dispatch_page(
            engine=engine, settings=cfg, catalog=default_catalog(cfg.catalog_dir)
        ),
    )


@app.command()
def planner(
    lon: float = typer.Option(..., "--lon", help="incident longitude"),
    lat: float = typer.Option(..., "--lat", help="incident latitude"),
    crs: str = typer.Option(None, "--crs", help="wgs84 (default), gcj02, bd09 or EPSG:nnnn"),
    layers: str = typer.Option(None, "--layers", help="comma-separated layer codes"),
    coverage: str = typer.Option(None, "--coverage", help="layer whose coverage gaps to show"),
    out: Path = typer.Option(..., "--out", help="HTML file to write"),
) -> None:
    """Write the planner's map around an incident (nearest assets, rings, coverage gaps)."""
    from maps.export import planner_page

    _write(
        out,
        lambda engine, cfg: planner_page(
            engine=engine,
            settings=cfg,
            catalog=default_catalog(cfg.catalog_dir),
            lon=lon,
            lat=lat,
            crs=crs,
            layers=layers,
            coverage_layer=coverage,
        ),
    )


def _write(out: Path, build: Callable[[Engine, Settings], str]) -> None:
    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        html = build(engine, cfg)
    finally:
        engine.dispose()
    out.write_text(html, encoding="utf-8")
    console.print(f"{out} ({len(html.encode()) / 2**20:.1f} MB, no outside references)")
