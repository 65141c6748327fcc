"""Features of a layer as GeoJSON text built by PostGIS: pages, single features, extents.

One statement answers a page: PostgreSQL selects the page, writes each feature with
``ST_AsGeoJSON`` and ``json_build_object`` and joins them with ``string_agg``, so Python
only wraps the text. The same statement returns the layer's current version and
``numberMatched``, which is exact:

- without bbox, datetime or filter it is the feature count recorded for the current
  version in ``layer_versions`` (written in the publishing transaction), so free;
- otherwise it is a ``count(*)`` with the same conditions, computed once per layer
  version and query and then kept (paging through a filtered layer counts once).

Coordinates: CRS84 (lon/lat) by default; otherwise in the axis order of the EPSG
definition, as OGC API Features Part 2 requires: EPSG:4326 and 4490 lat/lon, EPSG:4547
northing/easting (CGCS2000 Gauss-Kruger CRSs put north first), EPSG:3857 x/y. PostGIS
transforms (4547, 3857) and swaps; bbox-crs and filter-crs coordinates follow the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    Table,
    Text,
    and_,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import DataError

from layers.access import (
    DEFAULT_READER,
    OutputCrs,
    Reader,
    north_first,
    output_crs,
    served_layer,
    table_for,
)
from layers.cql import filter_clause, parse_filter
from layers.live import LiveLayers
from layers.masking import masked_features, without_personal
from schemas.catalog import AttributeType, Catalog, Layer
from schemas.errors import InvalidInput, NotFound
from schemas.geodesy import OUTPUT_CRS_URIS, parse_crs
from schemas.tables import catalog_layers, layer_versions

MAX_LIMIT: Final = 10_000
DEFAULT_LIMIT: Final = 100
MAX_OFFSET: Final = 2**31 - 1

TimeValue = date | datetime


@dataclass(frozen=True)
class Interval:
    """A datetime parameter: an instant (start == end) or a range open at either end."""

    start: TimeValue | None
    end: TimeValue | None


@dataclass(frozen=True)
class ItemsQuery:
    """What a client asks of ``/collections/{id}/items`` (syntax already checked)."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: tuple[float, ...] | None = None
    bbox_crs: str | None = None
    interval: Interval | None = None
    filter: str | None = None
    filter_lang: str | None = None
    filter_crs: str | None = None
    properties: tuple[str, ...] | None = None
    sortby: tuple[tuple[str, bool], ...] = ()  # (name, descending)
    crs: str | None = None

    @property
    def conditions_key(self) -> tuple[object, ...]:
        """Return what decides which features match (the count cache key)."""
        return (
            self.bbox,
            self.bbox_crs,
            self.interval,
            self.filter,
            self.filter_lang,
            self.filter_crs,
        )


@dataclass(frozen=True)
class ItemsPage:
    """A page of features as GeoJSON text (the inside of the ``features`` array)."""

    features: str
    returned: int
    matched: int
    version: int
    crs: OutputCrs
    query: ItemsQuery = field(repr=False)


@dataclass(frozen=True)
class Extent:
    """A layer's extent: lon/lat box (None when empty) and time range of its time field."""

    bbox: tuple[float, float, float, float] | None
    start: str | None
    end: str | None


def _names(layer: Layer, names: Sequence[str] | None, what: str) -> list[str]:
    known = [a.name for a in layer.attributes]
    if names is None:
        return known
    for name in names:
        if name not in known:
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise InvalidInput(f"{what} {shown!r} is not a property of {layer.code}: {known}")
    return list(dict.fromkeys(names))


def geojson_geometry(geom: Any, out: OutputCrs) -> ColumnElement[str]:
    """Return ST_AsGeoJSON of ``geom`` in the output CRS and axis order."""
    expr = geom
    if out.transform:
        expr = func.ST_Transform(expr, literal_column(str(int(out.epsg))))
    if out.swap:
        expr = func.ST_FlipCoordinates(expr)
    return func.ST_AsGeoJSON(expr, literal_column(str(int(out.decimals))), literal_column("0"))


def properties_json(columns: Sequence[tuple[str, Any]]) -> ColumnElement[Any]:
    """Return json_build_object over (name, column) pairs; names are catalog identifiers."""
    args: list[Any] = []
    for name, column in columns:
        if not name.replace("_", "").isalnum() or not name.isascii():
            raise InvalidInput(f"{name!r} is not a property name")
        args += [literal_column(f"'{name}'"), column]
    return func.json_build_object(*args)


def feature_text(fid: Any, geometry: Any, props: ColumnElement[Any]) -> ColumnElement[str]:
    """Return the text of one GeoJSON Feature built from SQL expressions."""
    return func.concat(
        literal_column("""'{"type":"Feature","id":'"""),
        fid,
        literal_column("""',"geometry":'"""),
        geometry,
        literal_column("""',"properties":'"""),
        props,
        literal_column("""'}'"""),
    )


def bbox_condition(
    geom: Column[Any], bbox: tuple[float, ...], bbox_crs: str | None, storage_epsg: int
) -> ColumnElement[bool]:
    """Return ``ST_Intersects(geom, bbox)`` with the bbox moved to storage; check it first."""
    if len(bbox) not in (4, 6):
        raise InvalidInput("bbox takes 4 numbers (or 6 with heights)")
    values = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else tuple(bbox)
    crs = parse_crs(bbox_crs) if bbox_crs else parse_crs("OGC:CRS84")
    if crs.canonical not in OUTPUT_CRS_URIS:
        raise InvalidInput(f"bbox-crs must be one of {', '.join(OUTPUT_CRS_URIS.values())}")
    a, b, c, d = values
    minx, miny, maxx, maxy = (b, a, d, c) if north_first(crs) else (a, b, c, d)
    definition = crs.crs
    geographic = definition is not None and definition.is_geographic
    if minx > maxx or miny > maxy:
        raise InvalidInput("bbox minimum is greater than its maximum (check the axis order)")
    if geographic and not (-180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90):
        raise InvalidInput("bbox is outside longitudes [-180, 180] or latitudes [-90, 90]")
    epsg = crs.epsg or 4326
    env: Any
    if geographic and epsg in (4326, 4490) and storage_epsg in (4326, 4490):
        env = func.ST_MakeEnvelope(minx, miny, maxx, maxy, literal_column(str(storage_epsg)))
    else:
        side = max(maxx - minx, maxy - miny) / 64 or 1.0
        env = func.ST_Transform(
            func.ST_Segmentize(
                func.ST_MakeEnvelope(minx, miny, maxx, maxy, literal_column(str(int(epsg)))), side
            ),
            literal_column(str(storage_epsg)),
        )
    return func.ST_Intersects(geom, env)


def _day_start(value: TimeValue) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=UTC)


def interval_condition(layer: Layer, table: Table, interval: Interval) -> ColumnElement[bool]:
    """Return the condition on the layer's time field; a layer without one refuses."""
    if layer.time_field is None:
        raise InvalidInput(f"{layer.code} has no time field: datetime does not apply to it")
    column = table.c[layer.time_field]
    conds: list[ColumnElement[bool]] = []
    if layer.attribute(layer.time_field).type is AttributeType.date:
        if interval.start is not None:
            start = interval.start
            conds.append(column >= (start.date() if isinstance(start, datetime) else start))
        if interval.end is not None:
            end = interval.end
            conds.append(column <= (end.date() if isinstance(end, datetime) else end))
    else:
        if interval.start is not None:
            conds.append(column >= _day_start(interval.start))
        if interval.end is not None:
            end = interval.end
            if isinstance(end, datetime):
                conds.append(column <= end)
            else:
                conds.append(column < _day_start(end + timedelta(days=1)))
    return and_(column.is_not(None), *conds)


def _conditions(
    layer: Layer, table: Table, query: ItemsQuery, storage_epsg: int
) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if query.bbox is not None:
        conds.append(bbox_condition(table.c.geom, query.bbox, query.bbox_crs, storage_epsg))
    elif query.bbox_crs is not None:
        parse_crs(query.bbox_crs)
    if query.interval is not None:
        conds.append(interval_condition(layer, table, query.interval))
    if query.filter is not None:
        node = parse_filter(query.filter, query.filter_lang)
        conds.append(
            filter_clause(
                node,
                table=table,
                layer=layer,
                filter_crs=query.filter_crs,
                storage_epsg=storage_epsg,
            )
        )
    elif query.filter_lang is not None:
        parse_filter("1=1", query.filter_lang)
    return conds


def _version_expr(code: str) -> Any:
    return (
        select(catalog_layers.c.current_version)
        .where(catalog_layers.c.code == code)
        .scalar_subquery()
    )


def _stored_count(code: str, table: Table) -> Any:
    recorded = (
        select(layer_versions.c.feature_count)
        .join(
            catalog_layers,
            and_(
                catalog_layers.c.code == layer_versions.c.layer_code,
                catalog_layers.c.current_version == layer_versions.c.version,
            ),
        )
        .where(layer_versions.c.layer_code == code)
        .scalar_subquery()
    )
    live = select(func.count()).select_from(table).scalar_subquery()
    return func.coalesce(recorded, live)


def _page_statement(
    layer: Layer,
    table: Table,
    query: ItemsQuery,
    conds: list[ColumnElement[bool]],
    out: OutputCrs,
    *,
    with_count: bool,
) -> Select[Any]:
    props = _names(layer, query.properties, "property")
    sort = [(_names(layer, [name], "sortby")[0], desc) for name, desc in query.sortby]
    order = [table.c[name].desc() if desc else table.c[name].asc() for name, desc in sort]
    order.append(table.c.fid.asc())
    sort_cols = [table.c[name].label(f"s__{i}") for i, (name, _) in enumerate(sort)]
    page = (
        select(
            table.c.fid,
            *(table.c[name] for name in props),
            *sort_cols,
            geojson_geometry(table.c.geom, out).label("g__"),
        )
        .where(*conds)
        .order_by(*order)
        .limit(query.limit)
        .offset(query.offset)
        .subquery("p")
    )
    text = feature_text(page.c.fid, page.c.g__, properties_json([(n, page.c[n]) for n in props]))
    page_order = [
        page.c[f"s__{i}"].desc() if desc else page.c[f"s__{i}"].asc()
        for i, (_, desc) in enumerate(sort)
    ] + [page.c.fid.asc()]
    agg = func.string_agg(text, aggregate_order_by(literal_column("','"), *page_order))
    matched: Any = null()
    if with_count:
        matched = (
            select(func.count()).select_from(table).where(*conds).scalar_subquery()
            if conds
            else _stored_count(layer.code, table)
        )
    return select(
        func.coalesce(agg, "").label("features"),
        func.count().label("returned"),
        _version_expr(layer.code).label("version"),
        matched.label("matched"),
    ).select_from(page)


def _run(conn: Connection, statement: Select[Any]) -> Any:
    """Execute a page query; a value the data cannot take (1/0, overflow) is the client's."""
    try:
        return conn.execute(statement).one()
    except DataError as exc:
        diag = getattr(getattr(exc.orig, "diag", None), "message_primary", None)
        raise InvalidInput(f"the filter cannot be evaluated: {diag or 'invalid value'}") from None


def items(
    conn: Connection,
    *,
    catalog: Catalog,
    live: LiveLayers,
    code: str,
    query: ItemsQuery,
    storage_epsg: int,
    reader: Reader = DEFAULT_READER,
) -> ItemsPage:
    """Return one page of the features matching ``query`` of a layer ``reader`` may read.

    When the reader gets personal fields masked, they are masked and may not be filtered or
    sorted on.
    """
    layer = served_layer(catalog, code, reader=reader)
    mask = reader.masks(layer)
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}")
    if not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be within 0..{MAX_OFFSET}")
    table = table_for(catalog, code, srid=storage_epsg, reader=reader)
    out = output_crs(query.crs, storage_epsg=storage_epsg)
    queried = without_personal(layer) if mask else layer
    if mask:
        for name, _ in query.sortby:
            _names(queried, [name], "sortby")
    conds = _conditions(queried, table, query, storage_epsg)
    key = (code, live.clock.get(code), query.conditions_key)
    known = live.counts.get(key) if conds else None
    row = _run(conn, _page_statement(layer, table, query, conds, out, with_count=known is None))
    version = int(row.version or 0)
    if known is not None and version != key[1]:
        known = None
        row = _run(conn, _page_statement(layer, table, query, conds, out, with_count=True))
        version = int(row.version or 0)
    if known is None:
        known = int(row.matched)
        if conds:
            live.counts.put((code, version, query.conditions_key), known)
    live.clock.note(code, version)
    features = str(row.features)
    return ItemsPage(
        features=masked_features(layer, features) if mask else features,
        returned=int(row.returned),
        matched=known,
        version=version,
        crs=out,
        query=query,
    )


def item(
    conn: Connection,
    *,
    catalog: Catalog,
    code: str,
    fid: str,
    crs: str | None,
    properties: Sequence[str] | None,
    storage_epsg: int,
    reader: Reader = DEFAULT_READER,
) -> tuple[str, OutputCrs]:
    """Return one feature as GeoJSON text and its CRS; raise NotFound (``reader`` as for items)."""
    layer = served_layer(catalog, code, reader=reader)
    mask = reader.masks(layer)
    table = table_for(catalog, code, srid=storage_epsg, reader=reader)
    out = output_crs(crs, storage_epsg=storage_epsg)
    props = _names(layer, properties, "property")
    if not fid.isascii() or not fid.isdigit() or len(fid) > 18:
        raise NotFound(f"no feature {fid[:40]!r} in {code}")
    text = feature_text(
        table.c.fid,
        geojson_geometry(table.c.geom, out),
        properties_json([(n, table.c[n]) for n in props]),
    )
    found = conn.execute(select(text).where(table.c.fid == int(fid))).scalar()
    if found is None:
        raise NotFound(f"no feature {fid} in {code}")
    return (masked_features(layer, str(found)) if mask else str(found)), out


def _iso(value: Any) -> ColumnElement[str]:
    """Return a date or timestamp as ISO 8601 text (NULL stays NULL)."""
    if value is None:
        return cast(null(), Text)
    return func.to_json(value).op("#>>")(literal_column("'{}'"))


def extents(
    conn: Connection,
    *,
    catalog: Catalog,
    live: LiveLayers,
    codes: Sequence[str],
    storage_epsg: int,
    reader: Reader = DEFAULT_READER,
) -> dict[str, Extent]:
    """Return each layer's extent, computed once per layer version (one query for all)."""
    result: dict[str, Extent] = {}
    todo: list[tuple[str, int]] = []
    for code in codes:
        version = live.clock.get(code)
        cached = live.extents.get((code, version))
        if cached is not None:
            result[code] = Extent(*cached)  # type: ignore[arg-type]
        else:
            todo.append((code, version))
    if todo:
        parts = []
        for code, _ in todo:
            layer = served_layer(catalog, code, reader=reader)
            table = table_for(catalog, code, srid=storage_epsg, reader=reader)
            box = func.ST_Extent(table.c.geom)
            time_col = table.c[layer.time_field] if layer.time_field else None
            parts.append(
                select(
                    literal_column(f"'{layer.code}'").label("code"),
                    func.ST_XMin(box).label("xmin"),
                    func.ST_YMin(box).label("ymin"),
                    func.ST_XMax(box).label("xmax"),
                    func.ST_YMax(box).label("ymax"),
                    _iso(func.min(time_col) if time_col is not None else None).label("t0"),
                    _iso(func.max(time_col) if time_col is not None else None).label("t1"),
                )
            )
        rows = conn.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all()
        by_code = {row.code: row for row in rows}
        for code, version in todo:
            row = by_code[code]
            bbox = (
                None
                if row.xmin is None
                else (float(row.xmin), float(row.ymin), float(row.xmax), float(row.ymax))
            )
            values = (bbox, row.t0, row.t1)
            live.extents.put((code, version), values)
            result[code] = Extent(*values)
    return result
