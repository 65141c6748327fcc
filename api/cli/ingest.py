"""``sibiao ingest`` and ``sibiao load``: files into layers, with progress and a report."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.cli.common import console, err_console, print_json, settings
from ingest.district import load_district
from ingest.fields import parse_overrides
from ingest.pipeline import LoadRequest, run_load
from ingest.pipeline import Progress as LoadProgress
from ingest.rejects import report_csv
from layers.registry import default_catalog
from schemas.database import database_url, make_engine

MODE_HELP = "replace the layer, append new features, or upsert by natural key"


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loaded {task.fields[loaded]:,} · rejected {task.fields[rejected]:,}"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def ingest(
    file: Path = typer.Argument(
        ..., help="GPKG, zipped Shapefile, GeoJSON(-Seq), CSV, KML, GeoTIFF"
    ),
    layer: str = typer.Option(..., "--layer", "-l", help="catalog layer code"),
    mode: str = typer.Option("replace", "--mode", help=MODE_HELP),
    source_crs: str = typer.Option(
        None, "--source-crs", help="EPSG code, gcj02 or bd09 (overrides the file's)"
    ),
    field_map: list[str] = typer.Option(None, "--map", help="SOURCE_FIELD=attribute (repeat)"),
    report: Path = typer.Option(None, "--report", help="write rejected rows to this CSV"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON summary"),
) -> None:
    """Load one file into one layer; exit 0 when committed, 1 when nothing was loaded."""
    cfg = settings()
    catalog = default_catalog(cfg.catalog_dir)
    engine = make_engine(database_url(cfg))
    request = LoadRequest(
        path=file,
        layer=layer,
        mode=mode,
        source_crs=source_crs,
        field_map=parse_overrides(field_map or []),
        user="cli",
        file_name=file.name,
    )
    try:
        if catalog.has_layer(layer) and catalog.layer(layer).is_raster:
            from ingest.rasters import load_raster

            raster = load_raster(engine, cfg, catalog, request)
            summary = {
                "layer": layer,
                "version": raster.version,
                "batch_id": raster.batch_id,
                "path": str(raster.path),
                "read": 1,
                "loaded": 1,
                "rejected": 0,
            }
            print_json(summary) if json_out else console.print(summary)
            return
        if json_out:
            result = run_load(engine, cfg, catalog, request)
        else:
            with _bar() as bar:
                task = bar.add_task(file.name, total=None, loaded=0, rejected=0, rate=0.0)

                def show(p: LoadProgress) -> None:
                    elapsed = bar.tasks[task].elapsed or 1e-9
                    bar.update(
                        task,
                        completed=p.read,
                        total=p.expected,
                        loaded=p.loaded,
                        rejected=p.rejected,
                        rate=p.read / elapsed,
                    )

                result = run_load(engine, cfg, catalog, request, on_progress=show)
        if report is not None:
            with engine.connect() as conn:
                report.write_text(report_csv(conn, result.batch_id), encoding="utf-8")
    finally:
        engine.dispose()
    summary = {
        "layer": result.layer,
        "read": result.read,
        "loaded": result.loaded,
        "rejected": result.rejected,
        "repaired": len(result.repaired),
        "version": result.version,
        "batch_id": result.batch_id,
        "seconds": result.seconds,
        "source_crs": result.source_crs,
        "format": result.format,
        "encoding": result.encoding,
        "ignored_fields": list(result.ignored_fields),
    }
    if json_out:
        print_json(summary)
        return
    console.print(
        f"[green]{result.layer} version {result.version}[/green]: read {result.read:,}, "
        f"loaded {result.loaded:,}, rejected {result.rejected:,}, repaired "
        f"{len(result.repaired):,} in {result.seconds:.1f} s "
        f"({result.format}, {result.source_crs})"
    )
    if result.rejected and report is None:
        console.print(
            f"rejected rows: sibiao loads rejects {result.batch_id} "
            "or GET /loads/{id}/rejects.csv"
        )


def load(
    path: Path = typer.Argument(..., help="a generated district folder or its manifest.json"),
) -> None:
    """Load every file of a delivered district (boundaries and grid first)."""
    cfg = settings()
    catalog = default_catalog(cfg.catalog_dir)
    engine = make_engine(database_url(cfg))
    try:
        with _bar() as bar:
            files = bar.add_task("files", total=None, loaded=0, rejected=0, rate=0.0)
            # Rows of the files done, and the latest progress of the file being loaded.
            done = {"read": 0, "loaded": 0, "rejected": 0}
            current = {"read": 0, "loaded": 0, "rejected": 0}
            started = time.monotonic()

            def on_file(entry: object, index: int, total: int) -> None:
                for key in done:
                    done[key] += current[key]
                    current[key] = 0
                bar.update(
                    files,
                    completed=index - 1,
                    total=total,
                    description=f"{getattr(entry, 'layer', '')}",
                )

            def on_progress(p: LoadProgress) -> None:
                current.update(read=p.read, loaded=p.loaded, rejected=p.rejected)
                bar.update(
                    files,
                    loaded=done["loaded"] + p.loaded,
                    rejected=done["rejected"] + p.rejected,
                    rate=(done["read"] + p.read) / max(time.monotonic() - started, 1e-3),
                )

            outcomes = load_district(
                engine, cfg, catalog, path, on_file=on_file, on_progress=on_progress
            )
            bar.update(files, completed=len(outcomes))
    finally:
        engine.dispose()
    table = Table(
        "layer",
        "read",
        "loaded",
        "rejected",
        "version",
        "seconds",
        "note",
        title=f"{len(outcomes)} files",
    )
    failed = 0
    for item in outcomes:
        r = item.result
        if r is None:
            failed += item.error is not None
            table.add_row(item.layer, "", "", "", "", "", item.error or "raster")
        else:
            table.add_row(
                item.layer,
                f"{r.read:,}",
                f"{r.loaded:,}",
                f"{r.rejected:,}",
                str(r.version),
                f"{r.seconds:.1f}",
                "",
            )
    console.print(table)
    if failed:
        raise typer.Exit(1)


def rejects(batch_id: int = typer.Argument(..., help="load id")) -> None:
    """Print a load's rejected rows as CSV (row, field, reason, value)."""
    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        with engine.connect() as conn:
            print(report_csv(conn, batch_id), end="")
    finally:
        engine.dispose()
