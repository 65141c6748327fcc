"""Map pages for people: the layer index, the upload page, layer and load pages, their assets.

Pages read the API from the browser; every script and style they use is served here under
``/maps/static`` from installed packages or this project's files, never from a CDN.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from api.deps import CatalogDep, ConnectionDep, EngineDep, SettingsDep
from cases.routing import current_rules
from ingest.jobs import batch_status
from maps.assets import CACHE_CONTROL, media_type, resolve
from maps.grid import find_cell, grid_page, missing_cell_page
from maps.operations import dispatch_page, planner_page
from maps.pages import index_page, layer_page, upload_page
from schemas.errors import NotFound

router = APIRouter(prefix="/maps", tags=["maps"], include_in_schema=False)
PAGE_HEADERS: Final = {"Cache-Control": "no-cache"}
LayerCode = Annotated[str, Path(description="layer code", max_length=64)]
Text = Annotated[str | None, Query(max_length=100)]


def _html(page: str) -> HTMLResponse:
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.get("/static/{path:path}", summary="A script, style, image or font of the map pages")
def static(path: Annotated[str, Path(max_length=300)]) -> FileResponse:
    """Return an asset file with its content type."""
    file = resolve(path)
    return FileResponse(file, media_type=media_type(file), headers={"Cache-Control": CACHE_CONTROL})


@router.get("", summary="Maps index")
def maps_root() -> RedirectResponse:
    """Redirect to the index page."""
    return RedirectResponse("/maps/", status_code=307)


@router.get("/", summary="Maps index", response_class=HTMLResponse)
def index(catalog: CatalogDep) -> HTMLResponse:
    """Return the list of layers by group, linking to their pages."""
    return _html(index_page(catalog))


@router.get("/upload", summary="Upload a file into a layer", response_class=HTMLResponse)
def upload(catalog: CatalogDep, settings: SettingsDep) -> HTMLResponse:
    """Return the upload page (layer picker, drop zone, progress, load report)."""
    return _html(upload_page(catalog, settings))


@router.get("/layers/{code}", summary="A layer on the map", response_class=HTMLResponse)
def layer(catalog: CatalogDep, settings: SettingsDep, code: LayerCode) -> HTMLResponse:
    """Return the layer page: the layer, its latest load's rejected rows, extent, versions."""
    return _html(layer_page(catalog, settings, code))


@router.get("/loads/{load_id}", summary="A load on the map", response_class=HTMLResponse)
def load(
    engine: EngineDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    load_id: Annotated[int, Path(ge=1, le=2**62)],
) -> HTMLResponse:
    """Return the layer page of a load's layer, showing that load's report and rejected rows."""
    status = batch_status(engine, load_id)
    return _html(layer_page(catalog, settings, str(status["layer"]), load_id=load_id))


@router.get("/dispatch", summary="The dispatcher's map of cases", response_class=HTMLResponse)
def dispatch(catalog: CatalogDep, settings: SettingsDep) -> HTMLResponse:
    """Return the dispatcher's map: cases by step, overdue ones marked, filters, case cards."""
    return _html(dispatch_page(catalog, settings))


@router.get("/planner", summary="The planner's map around an incident", response_class=HTMLResponse)
def planner(
    catalog: CatalogDep,
    settings: SettingsDep,
    lon: Annotated[float | None, Query(ge=-1e8, le=1e8, description="incident x")] = None,
    lat: Annotated[float | None, Query(ge=-1e8, le=1e8, description="incident y")] = None,
    crs: Text = None,
    layers: Annotated[str | None, Query(max_length=700, description="layer codes")] = None,
) -> HTMLResponse:
    """Return the planner's map: nearest facilities, rings, raster values, coverage gaps."""
    return _html(planner_page(catalog, settings, lon=lon, lat=lat, crs=crs, layers=layers))


@router.get("/grid/{grid_code}", summary="One grid cell on the map", response_class=HTMLResponse)
def grid(
    request: Request,
    conn: ConnectionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    grid_code: Annotated[str, Path(max_length=40, description="15-digit grid cell code")],
) -> HTMLResponse:
    """Return the page of one grid cell: outline, village and town, assets, cases (404 page)."""
    try:
        cell = find_cell(
            conn,
            catalog=catalog,
            live=request.app.state.live,
            code=grid_code,
            storage_epsg=settings.storage_epsg,
        )
    except NotFound as exc:
        return HTMLResponse(missing_cell_page(grid_code, str(exc)), status_code=404)
    return _html(grid_page(catalog, settings, cell, current_rules(conn)))
