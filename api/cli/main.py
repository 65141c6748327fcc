"""Entry point of the ``sibiao`` command."""

from __future__ import annotations

import logging
import sys

import typer

from api.cli import db, generate, ingest, keys, layers, maps, replay, serve, users, worker
from api.cli.common import err_console
from schemas.errors import SibiaoError

app = typer.Typer(
    name="sibiao",
    help="Sibiao 四标: base layers of the district in PostGIS, and the dispatch of cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(layers.app, name="layers")
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
app.add_typer(maps.app, name="map")
app.command("serve")(serve.serve)
app.command("ingest")(ingest.ingest)
app.command("load")(ingest.load)
app.command("rejects")(ingest.rejects)
app.command("generate")(generate.generate)
app.command("generate-cases")(generate.generate_cases)
app.command("worker")(worker.worker)
app.command("replay-cases")(replay.replay_cases)


@app.callback()
def root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="more log output"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="only errors"),
) -> None:
    """Set the log level for every subcommand."""
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Run the command; a domain error prints one line and exits 1, never a traceback."""
    try:
        app()
    except SibiaoError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
