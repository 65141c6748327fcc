"""What must hold before the API listens on an address: secrets off loopback."""

from __future__ import annotations

import ipaddress

from schemas.errors import ConfigurationError
from schemas.settings import DEMO_SECRET_KEY, Settings

MIN_SECRET = 32


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is reachable only from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_serving(settings: Settings, host: str) -> None:
    """Raise ConfigurationError (one line) unless it is safe to serve on ``host``.

    On loopback anything goes (the demo). Elsewhere authentication must be on and
    ``SIBIAO_SECRET_KEY`` must be a secret of at least 32 characters, not the demo's.
    """
    if is_loopback(host):
        return
    if not settings.auth_enabled:
        raise ConfigurationError(
            f"refusing to serve on {host} with SIBIAO_AUTH_ENABLED=false: "
            "without authentication serve on 127.0.0.1 only"
        )
    if settings.secret_key == DEMO_SECRET_KEY:
        raise ConfigurationError(
            f"refusing to serve on {host} with the demo SIBIAO_SECRET_KEY: set a random secret "
            "(e.g. `openssl rand -base64 48`) or serve on 127.0.0.1"
        )
    if len(settings.secret_key) < MIN_SECRET:
        raise ConfigurationError(
            f"refusing to serve on {host}: SIBIAO_SECRET_KEY has {len(settings.secret_key)} "
            f"characters, fewer than {MIN_SECRET}"
        )
