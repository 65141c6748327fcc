"""``sibiao keys``: API keys of the intake systems (add, list, revoke)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table

from api.cli.common import console, print_json
from api.cli.users import transaction
from api.security import check_system
from schemas.accounts import create_key, list_keys, revoke_key

app = typer.Typer(help="API keys of the intake systems.", no_args_is_help=True)


@app.command()
def add(
    system: str = typer.Option(..., "--system", help="the intake system the key acts for"),
    json_out: bool = typer.Option(False, "--json", help="print JSON (the key included)"),
) -> None:
    """Make a key bound to one system and print it (once: only its hash is kept)."""
    system = check_system(system)
    with transaction() as (conn, cfg):
        key, secret = create_key(
            conn, system=system, district_code=cfg.district_code, created_by="cli"
        )
    if json_out:
        print_json({**key.as_dict(), "key": secret})
        return
    console.print(f"key {key.id} for {key.system}: {secret}", highlight=False, soft_wrap=True)
    console.print("shown only now: give it to the system (header X-API-Key)")


@app.command("list")
def list_command(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the keys (never the secrets)."""
    with transaction() as (conn, _):
        keys = list_keys(conn)
    if json_out:
        print_json([k.as_dict() for k in keys])
        return
    table = Table("id", "system", "prefix", "created", "last used", "revoked")
    for key in keys:
        table.add_row(
            str(key.id),
            key.system,
            key.prefix,
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    console.print(table)


@app.command()
def revoke(key_id: int = typer.Argument(..., help="the key's id (sibiao keys list)")) -> None:
    """Revoke a key at once."""
    with transaction() as (conn, _):
        key = revoke_key(conn, key_id, now=datetime.now(UTC))
    console.print(f"revoked key {key.id} of {key.system}", highlight=False)
