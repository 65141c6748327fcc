"""``sibiao layers``: the catalog of base layers."""

from __future__ import annotations

import typer
from rich.table import Table

from api.cli.common import console, print_json, settings
from ingest.versions import layer_history, rollback_layer
from layers.catalog_view import layer_declaration, layer_summaries
from layers.registry import default_catalog
from schemas.database import database_url, make_engine

app = typer.Typer(help="The 104 base layers of the catalog.", no_args_is_help=True)


@app.command("list")
def list_layers(
    group: str = typer.Option(None, "--group", "-g", help="only this group"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the layers (code, names, group, geometry, sensitivity)."""
    catalog = default_catalog(settings().catalog_dir)
    rows = layer_summaries(catalog, group=group)
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} layers", show_lines=False)
    for title in ("code", "名称", "name", "group", "geometry", "sensitivity"):
        table.add_column(title)
    for row in rows:
        table.add_row(
            row["code"], row["zh"], row["en"], row["group"], row["geometry"], row["sensitivity"]
        )
    console.print(table)


@app.command()
def show(
    code: str = typer.Argument(..., help="layer code"),
    json_out: bool = typer.Option(False, "--json", help="print the full declaration as JSON"),
) -> None:
    """Show one layer's declaration: attributes, types, enums, ranges, key, sensitivity."""
    decl = layer_declaration(default_catalog(settings().catalog_dir), code)
    if json_out:
        print_json(decl)
        return
    console.print(f"[bold]{decl['code']}[/bold] {decl['zh']} / {decl['en']}")
    for key in ("group", "geometry", "sensitivity", "department", "cadence", "natural_key"):
        console.print(f"  {key}: {decl.get(key)}")
    if decl.get("attributes"):
        table = Table("name", "type", "required", "constraints", "aliases", title="attributes")
        for attr in decl["attributes"]:
            constraints = []
            if "enum" in attr:
                constraints.append("enum " + "|".join(e["value"] for e in attr["enum"]))
            if "min" in attr or "max" in attr:
                constraints.append(f"[{attr.get('min', '')}, {attr.get('max', '')}]")
            if "pattern" in attr:
                constraints.append(f"/{attr['pattern']}/")
            if "unit" in attr:
                constraints.append(attr["unit"])
            table.add_row(
                attr["name"],
                attr["type"],
                "yes" if attr.get("required") else "",
                " ".join(constraints),
                ", ".join(attr.get("aliases", [])),
            )
        console.print(table)
    if decl.get("raster"):
        console.print(f"  raster: {decl['raster']}")


@app.command()
def history(
    code: str = typer.Argument(..., help="layer code"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show a layer's versions: which load made each, counts, and which are kept."""
    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        with engine.connect() as conn:
            rows = layer_history(conn, default_catalog(cfg.catalog_dir), code)
    finally:
        engine.dispose()
    if json_out:
        print_json(rows)
        return
    table = Table(
        "version",
        "features",
        "made",
        "by load",
        "file",
        "mode",
        "rejected",
        "state",
        title=f"{code}: {len(rows)} versions",
    )
    for row in rows:
        state = "current" if row["current"] else ("dropped" if row["dropped"] else "kept")
        table.add_row(
            str(row["version"]),
            f"{row['feature_count']:,}",
            str(row["created_at"])[:19],
            str(row["batch_id"] or ""),
            row["file_name"] or "",
            row["mode"] or "",
            str(row["rejected_count"] or ""),
            state,
        )
    console.print(table)


@app.command()
def rollback(
    code: str = typer.Argument(..., help="layer code"),
    to: int = typer.Option(..., "--to", help="version to restore (see `sibiao layers history`)"),
) -> None:
    """Restore an earlier version of a layer (it becomes the newest version)."""
    cfg = settings()
    engine = make_engine(database_url(cfg))
    try:
        published = rollback_layer(
            engine, cfg, default_catalog(cfg.catalog_dir), code, to, user="cli"
        )
    finally:
        engine.dispose()
    console.print(
        f"{code}: version {to} restored as version {published.version} "
        f"({published.features:,} features)"
    )
