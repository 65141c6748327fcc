"""The ``sibiao`` command, run as users run it (the installed entry point)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import migrate

SIBIAO = str(Path(sys.executable).with_name("sibiao"))


def run(
    *args: str, env: dict[str, str] | None = None, user: str | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIBIAO_")}
    full_env.update(env or {})
    kwargs = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    return subprocess.run(
        [SIBIAO, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd="/",
        **kwargs,
    )


@pytest.fixture(scope="module")
def db_env(request):
    settings = request.getfixturevalue("settings")
    request.getfixturevalue("engine")
    return {"SIBIAO_DATABASE_URL": settings.database_url}


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_layers_list_json_has_104(db_env):
    proc = run("layers", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 104


def test_layers_list_filters_group_and_table_output():
    proc = run("layers", "list", "--group", "drainage", "--json")
    rows = json.loads(proc.stdout)
    assert rows and all(row["group"] == "drainage" for row in rows)
    table = run("layers", "list", env={"COLUMNS": "200"})
    assert "manhole_cover" in table.stdout and "104 layers" in table.stdout


def test_layers_show_json_carries_declaration():
    proc = run("layers", "show", "house_number", "--json")
    decl = json.loads(proc.stdout)
    assert decl["code"] == "house_number"
    assert decl["geometry"] == "Point"
    assert all("type" in attr for attr in decl["attributes"])


def test_layers_show_unknown_is_one_line():
    assert_one_line_error(run("layers", "show", "nope"), "no layer 'nope'")


def test_db_status_and_url_against_server(db_env):
    proc = run("db", "status", "--json", env=db_env)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["revision"] == migrate.head() == info["head"]
    assert info["embedded"] is False
    url = run("db", "url", env=db_env).stdout.strip()
    assert url.startswith("postgresql://") and "+psycopg" not in url
    if shutil.which("psql"):
        out = subprocess.run(
            ["psql", url, "-tAc", "SELECT count(*) FROM catalog_layers"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.stdout.strip() == "104"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("sqlite:///tmp/x.db", "needs PostgreSQL with PostGIS"),
        ("this is not a url", "not a database URL"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect to"),
    ],
)
def test_bad_database_url_is_one_clear_line(url, fragment):
    assert_one_line_error(run("db", "start", env={"SIBIAO_DATABASE_URL": url}), fragment)


def test_malformed_catalog_fails_naming_file_layer_field(tmp_path):
    src = Path(__file__).resolve().parents[2] / "layers" / "catalog" / "04_standard_grid.yaml"
    text = src.read_text(encoding="utf-8").replace(
        "role: grid_cell\n    geometry: MultiPolygon", "role: grid_cell\n    geometry: Hexagon"
    )
    (tmp_path / "04_standard_grid.yaml").write_text(text, encoding="utf-8")
    proc = run("layers", "list", env={"SIBIAO_CATALOG_DIR": str(tmp_path)})
    assert_one_line_error(proc, "04_standard_grid.yaml", "layer grid_cell", "field geometry")


@pytest.mark.slow
def test_port_in_use_is_one_clear_line(scratch_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run(
            "db", "start", env={"SIBIAO_DATA_DIR": str(scratch_dir), "SIBIAO_PG_PORT": str(port)}
        )
    assert_one_line_error(proc, f"port {port}", "in use")


@pytest.mark.slow
def test_data_folder_of_someone_else(scratch_dir):
    """As a user: refused in one line. As root: taken over for the server's own OS user."""
    if os.geteuid() != 0:
        assert_one_line_error(
            run("db", "start", env={"SIBIAO_DATA_DIR": "/"}), "belongs to user root"
        )
        return
    nobody = pwd.getpwnam("nobody")
    folder = scratch_dir / "data"
    folder.mkdir()
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    env = {"SIBIAO_DATA_DIR": str(folder)}
    try:
        proc = run("db", "start", env=env)
        assert proc.returncode == 0, proc.stderr
        owner = pwd.getpwuid((folder / "pg" / "data").stat().st_uid).pw_name
        assert owner in {"postgres", "sibiao"}
    finally:
        run("db", "stop", env=env)


def test_help_lists_subcommands():
    out = run("--help").stdout
    for word in ("db", "layers", "serve"):
        assert word in out
    assert "upgrade" in run("db", "--help").stdout
