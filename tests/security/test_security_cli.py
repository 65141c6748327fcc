"""``sibiao users``, ``sibiao keys`` (through the CLI runner) and ``sibiao serve``'s secret rule.

``serve`` runs as users run it (the installed entry point: exit status and the one-line error
come from ``main``); the account commands run in-process, which is the same code, faster.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from api.cli.main import app as cli
from api.security.serving import check_serving
from schemas.accounts import authenticate, find_key
from schemas.errors import ConfigurationError
from schemas.settings import DEMO_SECRET_KEY, Settings

SIBIAO = str(Path(sys.executable).with_name("sibiao"))
RUNNER = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIBIAO_")}
    full_env.update(env or {})
    return subprocess.run(
        [SIBIAO, *args], capture_output=True, text=True, env=full_env, timeout=120, cwd="/"
    )


@pytest.fixture(scope="module")
def db_env(settings, engine):
    return {"SIBIAO_DATABASE_URL": settings.database_url, "SIBIAO_AUTH_ENABLED": "true"}


def sibiao(*args: str, env: dict[str, str]):
    """Run a subcommand in-process; return the runner's result."""
    return RUNNER.invoke(cli, list(args), env=env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_refuses_the_demo_secret_off_loopback_in_one_line():
    proc = run("serve", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "0.0.0.0" in lines[0] and "demo SIBIAO_SECRET_KEY" in lines[0]


def test_serving_rules_for_hosts_and_secrets():
    demo = Settings(auth_enabled=True, secret_key=DEMO_SECRET_KEY)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_serving(demo, host)
    strong = demo.model_copy(update={"secret_key": "s" * 48})
    check_serving(strong, "0.0.0.0")
    with pytest.raises(ConfigurationError, match="fewer than 32"):
        check_serving(demo.model_copy(update={"secret_key": "short"}), "10.0.0.5")
    with pytest.raises(ConfigurationError, match="SIBIAO_AUTH_ENABLED=false"):
        check_serving(strong.model_copy(update={"auth_enabled": False}), "0.0.0.0")
    assert Settings().auth_enabled is True  # the default is on; only tests turn it off


def test_users_add_list_disable(db_env, engine):
    with engine.connect() as conn:
        town = conn.execute(
            text("SELECT code FROM divisions WHERE level = 'town' LIMIT 1")
        ).scalar()
    name = f"cli_{os.getpid()}"
    added = sibiao(
        "users", "add", name, "--role", "dispatcher", "--town", town,
        "--password", "a long enough password", env=db_env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"created user {name} (dispatcher) towns {town}" in added.stdout
    listed = {
        u["name"]: u for u in json.loads(sibiao("users", "list", "--json", env=db_env).stdout)
    }
    assert listed[name]["towns"] == [town] and listed[name]["disabled"] is False
    assert "password" not in json.dumps(listed[name])

    bad = sibiao(
        "users", "add", "x_" + name, "--role", "dispatcher", "--password", "p" * 12, env=db_env
    )
    assert bad.exit_code != 0 and "dispatcher serves at least one town" in str(bad.exception)

    assert sibiao("users", "disable", name, env=db_env).exit_code == 0
    with engine.begin() as conn, pytest.raises(Exception, match="disabled"):
        authenticate(conn, name, "a long enough password", now=datetime.now(UTC))


def test_keys_add_prints_the_key_once_and_revoke_stops_it(db_env, engine):
    made = sibiao("keys", "add", "--system", "community_grid", "--json", env=db_env)
    assert made.exit_code == 0, made.output
    record = json.loads(made.stdout)
    with engine.begin() as conn:
        assert find_key(conn, record["key"], now=datetime.now(UTC)).system == "community_grid"
    listed = sibiao("keys", "list", "--json", env=db_env).stdout
    assert record["key"] not in listed and record["prefix"] in listed
    unknown = sibiao("keys", "add", "--system", "nowhere", env=db_env)
    assert unknown.exit_code != 0 and "no intake system 'nowhere'" in str(unknown.exception)
    assert sibiao("keys", "revoke", str(record["id"]), env=db_env).exit_code == 0
    with engine.begin() as conn:
        assert find_key(conn, record["key"], now=datetime.now(UTC)) is None


def test_ensure_admin_creates_one_admin_once(db_env, engine):
    with engine.begin() as conn:
        enabled = (
            conn.execute(
                text(
                    "UPDATE users SET disabled = true WHERE role = 'admin' AND NOT disabled "
                    "RETURNING id"
                )
            )
            .scalars()
            .all()
        )
    try:
        first = sibiao("users", "ensure-admin", env=db_env)
        assert first.exit_code == 0, first.output
        match = re.search(r"created user admin with password (\S+) ", first.stdout)
        assert match, first.stdout
        with engine.begin() as conn:
            user = authenticate(conn, "admin", match.group(1), now=datetime.now(UTC))
        assert user.role.value == "admin"
        second = sibiao("users", "ensure-admin", env=db_env)
        assert second.exit_code == 0 and "an admin account exists" in second.stdout
        assert match.group(1) not in second.stdout
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE name = 'admin'"))
            conn.execute(
                text("UPDATE users SET disabled = false WHERE id = ANY(:ids)"), {"ids": enabled}
            )
