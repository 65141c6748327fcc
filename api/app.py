"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.collector import startup_frozen
from api.compression import install_compression
from api.dispatch import start_escalation, stop_escalation, utc_now
from api.errors import install_error_handlers
from api.openapi import install_openapi_30
from api.routers import (
    accounts,
    auth,
    dispatch_admin,
    intake,
    loads,
    maps,
    ogc,
    open311,
    planner,
    raster_tiles,
    rasters,
    snap,
    system,
    tiles,
)
from api.routers import cases as case_routes
from api.routers import catalog as catalog_routes
from api.security import install_security, route_guards
from ingest.batches import reap_stale
from ingest.jobs import LoadJobs
from layers.live import LiveLayers
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
        app.state.live = LiveLayers(engine)
        app.state.jobs = LoadJobs(engine, settings, catalog, on_published=app.state.live.invalidate)
        app.state.escalation = start_escalation(app, engine, settings)
        try:
            with startup_frozen():  # full collections skip the start-up objects
                yield
        finally:
            stop_escalation(app)
            app.state.jobs.shutdown()
            engine.dispose()

    app = FastAPI(
        title="Sibiao 四标",
        version="0.1.0",
        description="Base layers of the district (四标四实) in PostGIS and the dispatch of "
        "citizens' cases on top of them.",
        lifespan=lifespan,
        dependencies=route_guards(settings),
    )
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.clock = utc_now
    install_error_handlers(app)
    install_compression(app)
    app.include_router(system.router)
    app.include_router(catalog_routes.router)
    app.include_router(loads.router)
    app.include_router(ogc.router)
    app.include_router(tiles.router)
    app.include_router(planner.router)
    app.include_router(rasters.router)
    app.include_router(raster_tiles.router)
    app.include_router(maps.router)
    app.include_router(intake.router)
    app.include_router(case_routes.router)
    app.include_router(dispatch_admin.router)
    app.include_router(snap.router)
    app.include_router(open311.router)
    app.include_router(auth.router)
    app.include_router(accounts.router)
    install_openapi_30(app, catalog)
    install_security(app)
    return app
