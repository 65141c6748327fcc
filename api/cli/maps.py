"""``sibiao map``: self-contained map pages for reports (open from a USB stick)."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import console, settings
from layers.registry import default_catalog
from schemas.database import database_url, make_engine

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
