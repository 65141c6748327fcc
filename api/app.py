"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routers import catalog as catalog_routes
from api.routers import loads, system
from ingest.batches import reap_stale
from ingest.jobs import LoadJobs
from layers.registry import default_catalog
from schemas.catalog import Catalog
from schemas.database import check_server, database_url, make_engine
from schemas.settings import Settings


def create_app(settings: Settings | None = None, *, catalog: Catalog | None = None) -> FastAPI:
    """Build the app; the lifespan opens the engine (checking PostGIS) and disposes it."""
    settings = settings or Settings()
    catalog = catalog or default_catalog(settings.catalog_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(database_url(settings))
        check_server(engine)
        reap_stale(engine)
        app.state.engine = engine
        app.state.jobs = LoadJobs(engine, settings, catalog)
        try:
            yield
        finally:
            app.state.jobs.shutdown()
            engine.dispose()

    app = FastAPI(
        title="Sibiao 四标",
        version="0.1.0",
        description="Base layers of the district (四标四实) in PostGIS and the dispatch of "
        "citizens' cases on top of them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.catalog = catalog
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(catalog_routes.router)
    app.include_router(loads.router)
    return app
