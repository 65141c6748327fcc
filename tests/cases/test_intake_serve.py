"""``sibiao serve --workers``: several uvicorn processes, each building the app by name."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli.main import app


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Record what uvicorn would run instead of serving (no port is opened)."""
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.setattr("layers.readiness.ensure_ready", lambda cfg: None)
    return calls


def test_workers_run_the_app_factory_by_name(ran):
    result = CliRunner().invoke(app, ["serve", "--port", "18999", "--workers", "2"])
    assert result.exit_code == 0, result.output
    ((target, options),) = ran
    assert target == "api.app:create_app"
    assert options["factory"] is True and options["workers"] == 2 and options["port"] == 18999


def test_one_worker_runs_the_built_app(ran):
    result = CliRunner().invoke(app, ["serve", "--port", "18998"])
    assert result.exit_code == 0, result.output
    ((target, options),) = ran
    assert not isinstance(target, str) and "workers" not in options


def test_zero_workers_is_refused(ran):
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code != 0 and not ran
    assert "--workers" in result.output
