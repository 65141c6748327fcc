"""``sibiao db``: the embedded cluster and the schema."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import console, err_console, print_json, settings
from cases.routing import seed_rules
from layers.bootstrap import prepare_database
from layers.registry import default_catalog
from layers.status import database_status
from schemas import backup, migrate
from schemas.database import check_server, cluster_for, database_url, make_engine

app = typer.Typer(help="Run the embedded PostGIS and migrate the schema.", no_args_is_help=True)


@app.command()
def start() -> None:
    """Start the embedded PostgreSQL+PostGIS (installing and initialising it if needed)."""
    cfg = settings()
    url = database_url(cfg)
    engine = make_engine(url)
    try:
        postgis = check_server(engine)
    finally:
        engine.dispose()
    where = "embedded cluster" if cfg.embedded else "SIBIAO_DATABASE_URL"
    console.print(
        f"database ready ({where}, PostGIS {postgis}): {url.render_as_string(hide_password=True)}"
    )


@app.command()
def stop() -> None:
    """Stop the embedded cluster."""
    cfg = settings()
    if not cfg.embedded:
        console.print("SIBIAO_DATABASE_URL is set: that server is not ours to stop")
        return
    status = cluster_for(cfg).stop()
    console.print(f"embedded cluster {status.state.value} ({status.root})")


@app.command()
def status(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Say whether the database runs, its schema revision and its layer tables."""
    cfg = settings()
    info: dict[str, object] = {"embedded": cfg.embedded}
    running = True
    if cfg.embedded:
        cluster = cluster_for(cfg).status()
        info.update(
            state=cluster.state.value,
            folder=str(cluster.root),
            port=cluster.port,
            postgresql=cluster.version,
        )
        running = cluster.state.value == "running"
    if running:
        engine = make_engine(database_url(cfg, start=False))
        try:
            check_server(engine)
            with engine.connect() as conn:
                db = database_status(conn)
        finally:
            engine.dispose()
        info.update(
            revision=db.revision,
            head=migrate.head(),
            postgis=db.postgis,
            layer_tables=db.layer_tables,
        )
    if json_out:
        print_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/bold]: {value}")


@app.command()
def url(
    sqlalchemy: bool = typer.Option(False, "--sqlalchemy", help="the SQLAlchemy form"),
) -> None:
    """Print the connection URL (for psql, QGIS, ogr2ogr...)."""
    cfg = settings()
    parsed = database_url(cfg, start=False)
    if not sqlalchemy:
        parsed = parsed.set(drivername="postgresql")
    print(parsed.render_as_string(hide_password=False))


@app.command()
def upgrade() -> None:
    """Migrate to the newest schema and create/extend one table per catalog layer."""
    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        check_server(engine)
        report = prepare_database(engine, cfg)
        with engine.begin() as conn:
            seed_rules(conn)  # the packaged routing.yaml is rules version 1
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    console.print(
        f"schema at {revision}; {len(default_catalog(cfg.catalog_dir).vector_layers)} layer tables"
    )
    if report.created:
        console.print(f"created tables: {', '.join(report.created)}")
    if report.added_columns:
        console.print(f"added columns: {', '.join(report.added_columns)}")
    if report.extra_columns:
        console.print(
            f"[yellow]columns no longer in the catalog (kept): "
            f"{', '.join(report.extra_columns)}[/yellow]"
        )


@app.command()
def downgrade(
    to: str = typer.Option("base", "--to", help="revision to go down to ('base' = empty)"),
    yes: bool = typer.Option(False, "--yes", help="confirm: this drops tables and their data"),
) -> None:
    """Migrate down (dropping tables); needs --yes."""
    if not yes:
        raise typer.BadParameter("downgrading drops tables and their data: add --yes")
    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        migrate.downgrade(
            engine, default_catalog(cfg.catalog_dir), srid=cfg.storage_epsg, revision=to
        )
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"schema at {revision or 'base (empty)'}")


@app.command("dump")
def dump_cmd(
    file: Path = typer.Argument(..., help="backup file to write (a tar)"),
) -> None:
    """Back up the database (pg_dump custom format) and the raster files into FILE."""
    cfg = settings()
    manifest = backup.dump(database_url(cfg), cfg.data_dir, file, pg_bin=cfg.pg_bin)
    rows = sum(t.rows for t in manifest.tables.values())
    console.print(
        f"wrote {file}: {len(manifest.tables)} tables, {rows:,} rows, "
        f"{len(manifest.rasters)} raster files",
        highlight=False,
    )


@app.command("restore")
def restore_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a `sibiao db dump` file"),
    force: bool = typer.Option(
        False,
        "--force",
        help="replace the database even when it holds data (drops it: running API and worker"
        " sessions are disconnected; stop them first)",
    ),
) -> None:
    """Restore FILE into the (empty) database and the data folder; check every count."""
    cfg = settings()
    target = database_url(cfg)
    restored = backup.restore(
        file,
        target.set(database="postgres"),
        str(target.database),
        cfg.data_dir,
        force=force,
        pg_bin=cfg.pg_bin,
    )
    console.print(
        f"restored {file} into {restored.database}: {restored.tables} tables, "
        f"{restored.rows:,} rows, {restored.rasters} raster files",
        highlight=False,
    )
    if restored.mismatches:
        for line in restored.mismatches:
            err_console.print(f"[red]mismatch:[/red] {line}", highlight=False)
        raise typer.Exit(1)
    console.print("every table's rows and checksum match the backup's manifest")
