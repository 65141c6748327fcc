"""CQL2 filters (text and JSON) to SQLAlchemy expressions over a layer's table.

pygeofilter parses; this evaluator builds the expression. Property names must be catalog
attributes (or ``geom``/``geometry`` for the geometry), functions are limited to
``CASEI`` (lower) and ``BBOX``, literals are checked against the column type they meet
(so ``population = 'many'`` is a 400, not a database error), and every value, geometries
included (as WKB), becomes a bound parameter. Geometry literals are in ``filter-crs``
(default CRS84, lon/lat) and are moved to storage coordinates before binding.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Final

import shapely
import shapely.geometry
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.sqlalchemy.evaluate import SQLAlchemyFilterEvaluator
from pygeofilter.backends.sqlalchemy.filters import combine, negate, runop
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Double,
    Float,
    Integer,
    Numeric,
    String,
    Table,
    bindparam,
    false,
    func,
    not_,
    true,
)
from sqlalchemy.sql.type_api import TypeEngine

from layers.access import north_first
from schemas.catalog import Layer
from schemas.errors import InvalidInput
from schemas.geodesy import CRS84, SourceCrs, parse_crs, transform_geometry

MAX_FILTER_CHARS: Final = 20_000
LANGS: Final = ("cql2-text", "cql2-json")
GEOMETRY_NAMES: Final = ("geom", "geometry")


def parse_filter(text: str, lang: str | None) -> ast.AstType:
    """Parse a CQL2 filter in ``lang`` (default cql2-text); raise InvalidInput on any fault."""
    lang = (lang or "cql2-text").strip().lower()
    if lang not in LANGS:
        raise InvalidInput(f"filter-lang {lang[:40]!r} is not supported; use one of {LANGS}")
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidInput(f"filter is longer than {MAX_FILTER_CHARS} characters")
    try:
        if lang == "cql2-json":
            from pygeofilter.parsers.cql2_json import parse as parse_json

            try:
                document = json.loads(text)
            except ValueError as exc:
                raise InvalidInput(f"filter is not JSON: {exc}") from None
            return parse_json(document)
        from pygeofilter.parsers.cql2_text import parse as parse_text

        return parse_text(text)
    except InvalidInput:
        raise
    except RecursionError:
        raise InvalidInput("filter is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - lark and the JSON parser raise many kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInput(f"filter is not valid {lang}: {first[:200]}") from None


def _kind(value: Any) -> str | None:
    """Return the value kind of a column expression, or None for a Python literal."""
    sqltype: TypeEngine[Any] | None = getattr(value, "type", None)
    if sqltype is None or not isinstance(value, ColumnElement):
        return None
    if isinstance(sqltype, Boolean):
        return "boolean"
    if isinstance(sqltype, Integer | Double | Float | Numeric):
        return "number"
    if isinstance(sqltype, DateTime):
        return "datetime"
    if isinstance(sqltype, Date):
        return "date"
    if isinstance(sqltype, String):
        return "string"
    if type(sqltype).__name__ == "Geometry":
        return "geometry"
    return "other"


def _coerce(kind: str, value: Any) -> Any:
    """Return ``value`` fit to compare with a column of ``kind``; raise InvalidInput."""
    if value is None:
        return value
    if kind == "number" and _is_number(value):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind in ("date", "datetime"):
        if isinstance(value, datetime | date):
            return value
        if isinstance(value, str):
            try:
                return (
                    date.fromisoformat(value) if kind == "date" else datetime.fromisoformat(value)
                )
            except ValueError:
                pass
    if kind == "geometry":
        raise InvalidInput("the geometry can only be used in spatial functions (S_INTERSECTS...)")
    shown = repr(value)[:60]
    raise InvalidInput(f"{shown} cannot be compared with a {kind} property")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fit(lhs: Any, rhs: Any) -> tuple[Any, Any]:
    """Check a pair of operands; coerce a literal to the column it meets."""
    left, right = _kind(lhs), _kind(rhs)
    if left == "geometry" or right == "geometry":
        raise InvalidInput("the geometry can only be used in spatial functions (S_INTERSECTS...)")
    if left not in (None, "other") and right is None:
        return lhs, _coerce(left, rhs)
    if right not in (None, "other") and left is None:
        return _coerce(right, lhs), rhs
    if left and right and left != right and "other" not in (left, right):
        if {left, right} != {"date", "datetime"}:
            raise InvalidInput(f"a {left} property cannot be compared with a {right} property")
    return lhs, rhs


class _Evaluator(SQLAlchemyFilterEvaluator):
    """pygeofilter's SQLAlchemy evaluator, held to the catalog and bound parameters."""

    def __init__(self, table: Table, layer: Layer, filter_crs: SourceCrs, storage_epsg: int):
        super().__init__({}, False)
        self.table = table
        self.names = {a.name for a in layer.attributes}
        self.filter_crs = filter_crs
        self.swap = north_first(filter_crs)
        self.storage_epsg = storage_epsg

    def _geometry(self, geom: shapely.Geometry) -> ColumnElement[Any]:
        if geom.is_empty:
            raise InvalidInput("a geometry in the filter is empty")
        if self.swap:
            geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
        stored = transform_geometry(geom, self.filter_crs, SourceCrs.from_epsg(self.storage_epsg))
        return func.ST_GeomFromWKB(
            bindparam(None, shapely.to_wkb(stored), unique=True), self.storage_epsg
        )

    def _box(self, coords: list[Any]) -> ColumnElement[Any]:
        if len(coords) == 6:
            coords = [coords[0], coords[1], coords[3], coords[4]]
        if len(coords) != 4 or not all(
            isinstance(c, int | float) and not isinstance(c, bool) for c in coords
        ):
            raise InvalidInput("BBOX takes 4 (or 6) numbers")
        minx, miny, maxx, maxy = (float(c) for c in coords)
        if minx > maxx or miny > maxy:
            raise InvalidInput("BBOX minimum is greater than its maximum")
        return self._geometry(shapely.box(minx, miny, maxx, maxy))

    @handle(ast.Attribute)
    def attribute(self, node: ast.Attribute) -> Any:
        name = str(node.name)
        if name in GEOMETRY_NAMES and name not in self.names:
            return self.table.c.geom
        if name not in self.names:
            known = ", ".join(sorted(self.names)) or "none"
            raise InvalidInput(f"unknown property {name[:60]!r} in filter; queryables: {known}")
        return self.table.c[name]

    @handle(ast.Comparison, subclasses=True)
    def comparison(self, node: ast.Comparison, lhs: Any, rhs: Any) -> Any:
        lhs, rhs = _fit(lhs, rhs)
        if _kind(lhs) is None and _kind(rhs) is None:
            try:
                return true() if runop(lhs, rhs, node.op.value) else false()
            except TypeError:
                raise InvalidInput(f"{lhs!r:.40} cannot be compared with {rhs!r:.40}") from None
        return runop(lhs, rhs, node.op.value)

    @handle(ast.Between)
    def between(self, node: ast.Between, lhs: Any, low: Any, high: Any) -> Any:
        _, low = _fit(lhs, low)
        _, high = _fit(lhs, high)
        expr = lhs.between(low, high)
        return not_(expr) if node.not_ else expr

    @handle(ast.Like)
    def like(self, node: ast.Like, lhs: Any) -> Any:
        if _kind(lhs) not in ("string", None) or not isinstance(node.pattern, str):
            raise InvalidInput("LIKE needs a text property and a text pattern")
        expr = lhs.like(node.pattern) if not node.nocase else lhs.ilike(node.pattern)
        return not_(expr) if node.not_ else expr

    @handle(ast.In)
    def in_(self, node: ast.In, lhs: Any, *options: Any) -> Any:
        if not options:
            raise InvalidInput("IN needs at least one value")
        fitted = [_fit(lhs, option)[1] for option in options]
        expr = lhs.in_(fitted)
        return not_(expr) if node.not_ else expr

    @handle(ast.IsNull)
    def null(self, node: ast.IsNull, lhs: Any) -> Any:
        return lhs.is_not(None) if node.not_ else lhs.is_(None)

    @handle(ast.Not)
    def not_(self, node: ast.Not, sub: Any) -> Any:
        return negate(sub)

    @handle(ast.And, ast.Or)
    def combination(self, node: ast.Node, lhs: Any, rhs: Any) -> Any:
        return combine((lhs, rhs), node.op.value)

    @handle(ast.SpatialComparisonPredicate, subclasses=True)
    def spatial_operation(self, node: ast.SpatialComparisonPredicate, lhs: Any, rhs: Any) -> Any:
        ops = {
            "INTERSECTS": func.ST_Intersects,
            "DISJOINT": func.ST_Disjoint,
            "CONTAINS": func.ST_Contains,
            "WITHIN": func.ST_Within,
            "TOUCHES": func.ST_Touches,
            "CROSSES": func.ST_Crosses,
            "OVERLAPS": func.ST_Overlaps,
            "EQUALS": func.ST_Equals,
        }
        for side in (lhs, rhs):
            if _kind(side) not in ("geometry", None) or isinstance(side, str | int | float):
                raise InvalidInput(f"S_{node.op.name} compares geometries")
        return ops[node.op.name](lhs, rhs)

    @handle(ast.Relate, ast.SpatialDistancePredicate, subclasses=True)
    def unsupported_spatial(self, node: ast.Node, *args: Any) -> Any:
        raise InvalidInput(f"{type(node).__name__} is not supported in filters")

    @handle(ast.TemporalPredicate, subclasses=True)
    def temporal(self, node: ast.TemporalPredicate, lhs: Any, rhs: Any) -> Any:
        op = node.op.value
        if isinstance(rhs, tuple) or op not in ("BEFORE", "AFTER", "TEQUALS"):
            raise InvalidInput(f"temporal operator {op} is not supported; compare dates instead")
        lhs, rhs = _fit(lhs, rhs)
        return {"BEFORE": lhs < rhs, "AFTER": lhs > rhs, "TEQUALS": lhs == rhs}[op]

    @handle(ast.Arithmetic, subclasses=True)
    def arithmetic(self, node: ast.Arithmetic, lhs: Any, rhs: Any) -> Any:
        for side in (lhs, rhs):
            if not (_kind(side) == "number" or _is_number(side)):
                raise InvalidInput("arithmetic needs numbers")
        return runop(lhs, rhs, node.op.value)

    @handle(ast.Function)
    def function(self, node: ast.Function, *arguments: Any) -> Any:
        name = str(node.name).lower()
        if name in ("lower", "casei") and len(arguments) == 1:
            (arg,) = arguments
            if not (_kind(arg) == "string" or isinstance(arg, str)):
                raise InvalidInput("CASEI needs text")
            return func.lower(arg)
        if name == "bbox":
            return self._box(list(arguments))
        raise InvalidInput(f"function {str(node.name)[:40]!r} is not supported (CASEI, BBOX are)")

    @handle(values.Geometry)
    def geometry(self, node: values.Geometry) -> Any:
        try:
            geom = shapely.geometry.shape(node.__geo_interface__)
        except Exception:  # noqa: BLE001 - shapely raises several kinds on bad coordinates
            raise InvalidInput("a geometry in the filter is malformed") from None
        return self._geometry(geom)

    @handle(values.Envelope)
    def envelope(self, node: values.Envelope) -> Any:
        return self._box([node.x1, node.y1, node.x2, node.y2])

    @handle(values.Interval)
    def interval(self, node: values.Interval, start: Any, end: Any) -> Any:
        return (start, end)

    def adopt(self, node: Any, *sub_args: Any) -> Any:
        raise InvalidInput(f"{type(node).__name__} is not supported in filters")


def filter_clause(
    node: ast.AstType,
    *,
    table: Table,
    layer: Layer,
    filter_crs: str | None = None,
    storage_epsg: int = 4490,
) -> ColumnElement[bool]:
    """Return the SQLAlchemy condition of a parsed filter over ``table``; raise InvalidInput."""
    crs = CRS84 if filter_crs is None else parse_crs(filter_crs)
    if crs.is_offset:
        raise InvalidInput("filter-crs must be a real CRS, not an offset such as GCJ-02")
    evaluator = _Evaluator(table, layer, crs, storage_epsg)
    try:
        result = evaluator.evaluate(node)
    except InvalidInput:
        raise
    except RecursionError:
        raise InvalidInput("filter is nested too deeply") from None
    except (KeyError, TypeError, ValueError, NotImplementedError, AttributeError) as exc:
        raise InvalidInput(f"filter cannot be applied: {type(exc).__name__}") from None
    if not isinstance(result, ColumnElement) or _kind(result) not in ("boolean", "other"):
        raise InvalidInput("filter must be a condition (true or false for each feature)")
    return result
