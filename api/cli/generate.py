"""``sibiao generate`` and ``sibiao generate-cases``: a synthetic district and its case stream."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.common import console, err_console, settings
from cases.district_inputs import asset_layer_codes, case_inputs
from cases.synthetic import generate_cases as stream_cases
from cases.synthetic import write_case_stream
from layers.registry import default_catalog
from layers.synthetic.generate import generate as generate_district


def generate(
    out_dir: Path = typer.Argument(..., help="folder to write the district into"),
    scale: float = typer.Option(1.0, "--scale", help="1 = Huadu-sized; 0.05 for tests"),
    seed: int = typer.Option(0, "--seed", help="same seed, same bytes"),
) -> None:
    """Write a synthetic Huadu: all catalog layers as departments deliver them, and rasters."""
    catalog = default_catalog(settings().catalog_dir)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as bar:
        task = bar.add_task("layers", total=len(catalog.layers))

        def on_layer(layer: object, index: int, total: int) -> None:
            bar.update(task, completed=index, description=getattr(layer, "code", ""))

        report = generate_district(
            out_dir,
            scale=scale,
            seed=seed,
            catalog=catalog,
            on_layer=on_layer,
            truth_layers=asset_layer_codes(),
        )
    table = Table(
        "layer",
        "features",
        "expected",
        "ratio",
        "extra",
        "defects",
        title=f"synthetic district at scale {scale}, seed {seed} ({report.seconds} s)",
    )
    for row in report.layers:
        ratio = f"{row.rows / row.expected:.2f}" if row.expected else ""
        extra = []
        if row.length_km is not None and row.target_length_km:
            extra.append(f"{row.length_km:,.0f} km of {row.target_length_km * scale:,.0f}")
        for key, value in row.totals.items():
            target = row.target_totals.get(key, 0) * scale
            extra.append(f"{key} {value:,.0f} of {target:,.0f}")
        table.add_row(
            row.layer,
            f"{row.rows:,}",
            f"{row.expected:,.0f}",
            ratio,
            "; ".join(extra),
            str(row.defects),
        )
    console.print(table)
    console.print(f"manifest: {out_dir / 'manifest.json'}; report: {out_dir / 'report.json'}")


def generate_cases(
    out: Path = typer.Argument(..., help="JSON Lines file to write (truth beside it)"),
    district: Path = typer.Option(..., "--district", help="a folder written by sibiao generate"),
    days: int = typer.Option(182, "--days", help="length of the period"),
    per_day: float = typer.Option(None, "--per-day", help="cases a day (default ~66)"),
    seed: int = typer.Option(0, "--seed"),
    start: str = typer.Option("2026-01-01", "--start", help="first day (YYYY-MM-DD)"),
) -> None:
    """Write cases as the five legacy systems and the mini-program send them."""
    catalog = default_catalog(settings().catalog_dir)
    addresses, assets, villages = case_inputs(district, catalog)
    cases = stream_cases(
        addresses=addresses,
        assets=assets,
        villages=villages,
        days=days,
        per_day=per_day,
        seed=seed,
        start=date.fromisoformat(start),
    )
    count = write_case_stream(cases, out)
    console.print(
        f"{count:,} cases written to {out}" if isinstance(count, int) else f"cases written to {out}"
    )
