"""``sibiao serve``: run the HTTP API."""

from __future__ import annotations

import socket

import typer

from api.cli.common import console, settings
from api.security.serving import check_serving
from schemas.errors import ConfigurationError


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port"
            ) from None


def serve(
    host: str = typer.Option(None, "--host", help="address to bind (default SIBIAO_HOST)"),
    port: int = typer.Option(None, "--port", help="port (default SIBIAO_PORT, 8000)"),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="worker processes (one per core: each runs the app with its own pool)",
    ),
) -> None:
    """Run the API with uvicorn (the database must be migrated: `sibiao db upgrade`)."""
    import uvicorn

    from api.app import create_app
    from layers.readiness import ensure_ready

    cfg = settings()
    host = host or cfg.host
    port = port or cfg.port
    check_serving(cfg, host)
    _check_port(host, port)
    ensure_ready(cfg)
    base = f"http://{host}:{port}"
    console.print(f"Sibiao on {base}  — API docs {base}/docs, catalog {base}/catalog/layers")
    if workers == 1:
        uvicorn.run(create_app(cfg), host=host, port=port, log_level=cfg.log_level)
        return
    # Several processes need the app by name: each worker builds it from the same environment.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=cfg.log_level,
    )
