"""Shared CLI pieces: the consoles, settings, JSON output."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from schemas.settings import Settings

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """Return settings from the environment."""
    return Settings()


def print_json(data: Any) -> None:
    """Print ``data`` as JSON (UTF-8, not escaped) on standard output."""
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
