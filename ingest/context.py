"""What a load settles before it reads a row: the file's CRS, the district's extent, its hash.

``district_extent`` is the outline of the district grown by the settings' margin (features
outside it are rejected); it is kept per database and version of the district layer, so
the loads of a whole district compute it once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyproj
import shapely
from sqlalchemy import Connection, text

from ingest.sources import Source
from ingest.target import current_version
from ingest.validate import Extent
from schemas.catalog import Catalog, LayerRole
from schemas.errors import InvalidInput
from schemas.geodesy import SourceCrs, parse_crs
from schemas.settings import Settings


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolve_crs(source: Source, override: str | None) -> SourceCrs:
    """Return the CRS to read the file in: the override, else the file's own, else refuse."""
    if override:
        return parse_crs(override)
    if source.crs is None:
        raise InvalidInput(
            f"{source.path.name}: the file declares no coordinate system; give it with "
            "--source-crs (an EPSG code such as 4490, 4326 or 4547, or gcj02 / bd09)"
        )
    crs = pyproj.CRS.from_user_input(source.crs)
    if len(crs.axis_info) > 2:
        crs = crs.to_2d()
    epsg = crs.to_epsg(min_confidence=60)
    if epsg is not None:
        return parse_crs(epsg)
    authority = crs.to_authority(min_confidence=60)
    if authority is not None:
        return parse_crs(":".join(authority))
    raise InvalidInput(
        f"{source.path.name}: its coordinate system has no EPSG code ({source.crs[:80]}…); "
        "give it with --source-crs"
    )


_EXTENTS: dict[tuple[str, str, int, float], Extent] = {}
GK_ZONE_FIRST_EPSG = 4534  # CGCS2000 / 3-degree Gauss-Kruger CM 75E; +1 per 3° to CM 135E


def district_extent(conn: Connection, catalog: Catalog, settings: Settings) -> Extent:
    """Return where features may lie: the district outline grown by the margin, else a box.

    The outline is grown in the CGCS2000 3-degree Gauss-Krüger zone of its centre (metres;
    a twentieth of the time of a geodesic buffer, and the zone's scale error is under 0.02 %
    within 1.5° of its meridian), and kept per database and version of the district layer,
    so the loads of a whole district compute it once.
    """
    district = catalog.by_role(LayerRole.district)
    code = district.code
    margin_m = settings.extent_margin_deg * 111_000
    version = current_version(conn, district)
    key = (conn.engine.url.render_as_string(hide_password=True), code, version, margin_m)
    if version and key in _EXTENTS:
        return _EXTENTS[key]
    row = conn.execute(
        text(f"""
            WITH outline AS (SELECT ST_Union(geom) AS g FROM layers."{code}"),
            zone AS (
                SELECT g, {GK_ZONE_FIRST_EPSG} + (least(greatest(
                    round(ST_X(ST_Centroid(g)) / 3) * 3, 75), 135)::int - 75) / 3 AS srid
                FROM outline WHERE g IS NOT NULL)
            SELECT ST_AsBinary(ST_Transform(ST_Buffer(ST_Transform(g, srid), :m), :storage))
            FROM zone
        """),
        {"m": margin_m, "storage": settings.storage_epsg},
    ).first()
    if row is None or row[0] is None:
        minx, miny, maxx, maxy = settings.district_extent
        margin = settings.extent_margin_deg
        return Extent(minx - margin, miny - margin, maxx + margin, maxy + margin)
    area = shapely.from_wkb(bytes(row[0]))
    shapely.prepare(area)
    minx, miny, maxx, maxy = area.bounds
    extent = Extent(minx, miny, maxx, maxy, area=area)
    if version:
        # GEOS builds a prepared geometry's indexes at first use: do it now, before the
        # extent is shared by loads running on other threads
        extent.holds(np.array([minx, (minx + maxx) / 2]), np.array([miny, (miny + maxy) / 2]))
        _EXTENTS[key] = extent
    return extent
