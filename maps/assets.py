"""Every JS/CSS file a map page uses, served by the platform under ``/maps/static``.

Nothing is loaded from a CDN. Each *library* is a folder of an installed package or of
this package, published under ``/maps/static/<library>/<file>``:

============  ==========================================  ==============================
library       folder                                      from
============  ==========================================  ==============================
leaflet       ``xstatic/pkg/leaflet/data``                PyPI XStatic-Leaflet
markercluster ``xstatic/pkg/leaflet_markercluster/data``  PyPI XStatic-Leaflet-MarkerCluster
jquery        ``xstatic/pkg/jquery/data``                 PyPI XStatic-jQuery
fontawesome   ``xstatic/pkg/font_awesome/data``           PyPI XStatic-Font-Awesome
folium        ``folium/templates``                        PyPI folium (heat map plug-in)
vendor        ``maps/static/vendor``                      npm, committed (see its README)
sibiao        ``maps/static/sibiao``                      our own scripts and styles
============  ==========================================  ==============================

:func:`use_offline_assets` points folium's default JS/CSS (``folium.Map`` and the plug-ins
whose files we serve) at these URLs; :func:`external_references` finds any script,
stylesheet, image or link of a page that still points outside the platform, and
:func:`check_offline` refuses such a page, so a page cannot go online by accident.
Bootstrap and the Bootstrap 3 glyphicons of folium's defaults are left out: no page needs
them and no package we install ships them (use ``folium.Icon(prefix="fa")``).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Final

from schemas.errors import NotFound

STATIC_PREFIX: Final = "/maps/static"
HERE: Final = Path(__file__).resolve().parent
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
}
#: A day: asset files change only when packages are upgraded.
CACHE_CONTROL: Final = "public, max-age=86400"


@dataclass(frozen=True)
class Library:
    """A folder of static files published under ``/maps/static/<name>/``."""

    name: str
    root: Path
    version: str
    source: str


def _xstatic(name: str, module: str, source: str) -> Library:
    pkg = importlib.import_module(f"xstatic.pkg.{module}")
    return Library(name, Path(pkg.BASE_DIR).resolve(), str(pkg.VERSION), source)


@functools.cache
def libraries() -> dict[str, Library]:
    """Return the published libraries by name."""
    import folium

    found = [
        _xstatic("leaflet", "leaflet", "PyPI XStatic-Leaflet"),
        _xstatic("markercluster", "leaflet_markercluster", "PyPI XStatic-Leaflet-MarkerCluster"),
        _xstatic("jquery", "jquery", "PyPI XStatic-jQuery"),
        _xstatic("fontawesome", "font_awesome", "PyPI XStatic-Font-Awesome"),
        Library(
            "folium",
            (Path(folium.__file__).parent / "templates").resolve(),
            folium.__version__,
            "PyPI folium",
        ),
        Library("vendor", HERE / "static" / "vendor", "see README.md", "npm, committed"),
        Library("sibiao", HERE / "static" / "sibiao", "0.1.0", "this package"),
    ]
    return {lib.name: lib for lib in found}


def static_url(library: str, path: str) -> str:
    """Return the URL of a file of a library (checked to exist)."""
    resolve(f"{library}/{path}")
    return f"{STATIC_PREFIX}/{library}/{path}"


def resolve(path: str) -> Path:
    """Return the file behind ``/maps/static/<path>``; raise NotFound for anything else."""
    parts = PurePosixPath(path).parts
    if len(parts) < 2 or any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise NotFound(f"no map asset {path[:80]!r}")
    library = libraries().get(parts[0])
    if library is None or PurePosixPath(path).suffix not in MEDIA_TYPES:
        raise NotFound(f"no map asset {path[:80]!r}")
    target = library.root.joinpath(*parts[1:]).resolve()
    if not target.is_relative_to(library.root) or not target.is_file():
        raise NotFound(f"no map asset {path[:80]!r}")
    return target


def media_type(path: Path | str) -> str:
    """Return the Content-Type of an asset file."""
    return MEDIA_TYPES[PurePosixPath(str(path)).suffix]


class Assets:
    """URLs of the files pages reference (resolved once, each checked to exist)."""

    def __init__(self) -> None:
        self.leaflet_js = static_url("leaflet", "leaflet.js")
        self.leaflet_css = static_url("leaflet", "leaflet.css")
        self.markercluster_js = static_url("markercluster", "leaflet.markercluster.js")
        self.markercluster_css = static_url("markercluster", "MarkerCluster.css")
        self.markercluster_default_css = static_url("markercluster", "MarkerCluster.Default.css")
        self.vectorgrid_js = static_url(
            "vendor", "leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"
        )
        self.awesome_js = static_url(
            "vendor", "leaflet.awesome-markers/leaflet.awesome-markers.min.js"
        )
        self.awesome_css = static_url(
            "vendor", "leaflet.awesome-markers/leaflet.awesome-markers.css"
        )
        self.awesome_rotate_css = static_url("sibiao", "awesome-rotate.css")
        self.fontawesome_css = static_url("fontawesome", "css/all.min.css")
        self.jquery_js = static_url("jquery", "jquery.min.js")
        self.heat_js = static_url("folium", "leaflet_heat.min.js")
        self.sibiao_css = static_url("sibiao", "sibiao.css")
        self.sibiao_js = static_url("sibiao", "sibiao.js")
        self.layer_js = static_url("sibiao", "layer.js")
        self.upload_js = static_url("sibiao", "upload.js")
        self.dispatch_js = static_url("sibiao", "dispatch.js")
        self.planner_js = static_url("sibiao", "planner.js")
        self.grid_js = static_url("sibiao", "grid.js")


@functools.cache
def assets() -> Assets:
    """Return the asset URLs."""
    return Assets()


def folium_defaults() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return folium.Map's default JS and CSS, named as folium names them, served by us."""
    a = assets()
    js = [("leaflet", a.leaflet_js), ("jquery", a.jquery_js), ("awesome_markers", a.awesome_js)]
    css = [
        ("leaflet_css", a.leaflet_css),
        ("awesome_markers_font_css", a.fontawesome_css),
        ("awesome_markers_css", a.awesome_css),
        ("awesome_rotate_css", a.awesome_rotate_css),
    ]
    return js, css


@functools.cache
def use_offline_assets() -> None:
    """Point folium's class-level default JS/CSS at ``/maps/static`` (once per process)."""
    import folium
    from folium import plugins

    js, css = folium_defaults()
    folium.Map.default_js = js
    folium.Map.default_css = css
    a = assets()
    cluster_css = [
        ("markerclustercss", a.markercluster_css),
        ("markerclusterdefaultcss", a.markercluster_default_css),
    ]
    for cls in (plugins.MarkerCluster, plugins.FastMarkerCluster):
        cls.default_js = [("markerclusterjs", a.markercluster_js)]
        cls.default_css = cluster_css
    plugins.VectorGridProtobuf.default_js = [("vectorGrid", a.vectorgrid_js)]
    plugins.HeatMap.default_js = [("leaflet-heat.js", a.heat_js)]


class _References(HTMLParser):
    """Collect the URLs of src/href attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data") and value:
                self.urls.append((tag, name, value.strip()))


def references(html: str) -> list[tuple[str, str, str]]:
    """Return (tag, attribute, URL) of every src/href-like attribute of a page."""
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.urls


def is_external(url: str) -> bool:
    """Return whether a URL leaves the platform (another host or scheme)."""
    lowered = url.lower()
    if lowered.startswith(("http://", "https://", "//", "ftp://", "ws://", "wss://")):
        return True
    return ":" in lowered.split("/", 1)[0] and not lowered.startswith(
        ("data:", "blob:", "javascript:", "mailto:", "#")
    )


def external_references(html: str) -> list[str]:
    """Return the URLs of scripts, styles, images and links that point outside the platform."""
    return [url for _, _, url in references(html) if is_external(url)]


def check_offline(html: str) -> str:
    """Return the page unchanged, or raise RuntimeError if it references another host."""
    found = external_references(html)
    if found:
        raise RuntimeError(f"a map page references outside assets: {found[:5]}")
    return html
