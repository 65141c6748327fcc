"""``sibiao users``: people's accounts (add, list, disable) and the first admin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.table import Table
from sqlalchemy import Connection

from api.cli.common import console, print_json, settings
from layers.readiness import ensure_ready
from schemas.accounts import create_user, disable_user, ensure_admin, list_users
from schemas.database import database_url, make_engine
from schemas.settings import Settings

app = typer.Typer(
    help="People's accounts: add, list, disable; the first admin.", no_args_is_help=True
)


@contextmanager
def transaction() -> Iterator[tuple[Connection, Settings]]:
    """Yield a connection in a transaction on the migrated database, and the settings."""
    cfg = settings()
    ensure_ready(cfg)
    engine = make_engine(database_url(cfg))
    try:
        with engine.begin() as conn:
            yield conn, cfg
    finally:
        engine.dispose()


@app.command()
def add(
    name: str = typer.Argument(..., help="the login name (letters, digits, _ . @ -)"),
    role: str = typer.Option(
        ..., "--role", help="analyst, dispatcher, department_handler, planner, supervisor, admin"
    ),
    town: list[str] = typer.Option(
        [], "--town", help="9-digit town code a dispatcher serves (repeat for several)"
    ),
    department: str = typer.Option(None, "--department", help="a department handler's department"),
    password: str = typer.Option(
        None, "--password", help="at least 10 characters; asked for (hidden) when left out"
    ),
) -> None:
    """Create an account."""
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with transaction() as (conn, cfg):
        user = create_user(
            conn,
            name=name,
            role=role,
            password=password,
            towns=town,
            department=department,
            district_code=cfg.district_code,
        )
    scope = f" towns {', '.join(user.towns)}" if user.towns else ""
    scope += f" department {user.department}" if user.department else ""
    console.print(f"created user {user.name} ({user.role.value}){scope}", highlight=False)


@app.command("list")
def list_accounts(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the accounts."""
    with transaction() as (conn, _):
        accounts = list_users(conn)
    if json_out:
        print_json([u.as_dict() for u in accounts])
        return
    table = Table("name", "role", "towns / department", "disabled", "last login")
    for user in accounts:
        table.add_row(
            user.name,
            user.role.value,
            ", ".join(user.towns) or (user.department or ""),
            "yes" if user.disabled else "",
            user.last_login.isoformat(timespec="seconds") if user.last_login else "",
        )
    console.print(table)


@app.command()
def disable(name: str = typer.Argument(..., help="the account to disable")) -> None:
    """Disable an account: it cannot sign in and its tokens stop working at once."""
    with transaction() as (conn, _):
        user = disable_user(conn, name)
    console.print(f"disabled user {user.name}", highlight=False)


@app.command("ensure-admin")
def ensure_admin_command() -> None:
    """Create `admin` with a random password (printed once) unless an enabled admin exists."""
    with transaction() as (conn, cfg):
        password = ensure_admin(conn, district_code=cfg.district_code)
    if password is None:
        console.print("an admin account exists; nothing to do")
        return
    console.print(
        f"created user admin with password [bold]{password}[/bold] "
        "(shown only now: keep it; sign in at POST /auth/token)",
        highlight=False,
        soft_wrap=True,
    )
