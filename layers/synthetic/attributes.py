"""Fill every attribute of a layer for n features, from its declaration and its plan's params.

:func:`synthesize` returns one array per declared attribute, every value valid for the
declaration (type, enum, min/max, pattern, max_length; required never null). What a value means
comes from the attribute's name and the plan's ``params``:

``code`` / ``codes``
    serial-code formats for the natural key / other identifiers (:mod:`.identifiers`), with
    ``{town}``, ``{town3}``, ``{village}``, ``{village3}``, ``{major}``, ``{minor}`` and
    ``{year}`` (drawn in ``code_years``, or the year of the date attribute ``year_of``).
``weights``
    ``{attr: {value: weight}}`` for enums (uniform otherwise; component ``state`` 95/3/1/1 %).
``ranges``
    ``{attr: [lo, hi]}`` (``[lo, hi, log]`` for log-uniform; ``{choices: […], weights: […]}``
    for set sizes), or ``{attr: {by: enum_attr, value: …}}``; ``decimals: {attr: k}``.
``booleans``
    ``{attr: p}`` probability of true (or ``{by: …}``).
``dates`` / ``after``
    ``{attr: [start, end]}``; ``{attr: [other_attr, min_days, max_days]}`` for later dates.
``templates`` / ``values`` / ``lists`` / ``pools``
    text: templates with placeholders (:mod:`.texts`), a choice of values, a list of several
    values joined, and named pools for placeholders.
``nulls`` / ``only_if``
    null rate of optional attributes (default 5 %); ``{attr: {other: [values]}}`` to fill an
    attribute only for some rows (e.g. ``demolished_on`` only when demolished).

Anything else is found from context: addresses, address codes, building codes and road names
from the nearest house number, building and road of each feature; people's names, ID numbers
and phones from :mod:`.naming`; credit codes; pinyin; units default to the owning department.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from layers.synthetic.admin import Division
from layers.synthetic.identifiers import credit_codes, romanize, serial_codes, take_numbers
from layers.synthetic.naming import id_numbers, person_names, phones, zero_pad
from layers.synthetic.texts import Rows, by_group, render
from layers.synthetic.world import World
from schemas.catalog import Attribute, AttributeType, Layer

Columns = dict[str, np.ndarray]
STATE_SHARES = {"intact": 0.95, "damaged": 0.03, "missing": 0.01, "occupied": 0.01}
DEFAULT_NULL_RATE = 0.05
DEFAULT_DATES = (date(2015, 1, 1), date(2025, 12, 31))
PERSON_FIELDS = frozenset(
    {"person_name", "head_name", "landlord_name", "contact_cadre", "chief_name", "grid_chief"}
)
ID_PATTERN = r"^\d{17}[\dX]$"
#: String attributes that name an organisation: by default the layer's department.
UNIT_FIELDS = frozenset(
    {
        "maintenance_unit",
        "owner_unit",
        "management_unit",
        "operator",
        "responsible_unit",
        "monitoring_unit",
        "manage_unit",
        "producer",
        "builder",
        "property_company",
        "appraisal_agency",
    }
)


def synthesize(
    layer: Layer,
    n: int,
    rng: np.random.Generator,
    *,
    world: World,
    town: Division,
    points: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Columns:
    """Return one array of ``n`` values per attribute of ``layer`` (declaration order).

    ``points`` are the features' geometries (any type; their representative points are used to
    find villages, roads and addresses, and areas/lengths are measured on them); ``fixed``
    gives columns the strategy already knows (they are used as they are).
    """
    params = params or {}
    rows = Rows(
        layer=layer,
        n=n,
        rng=rng,
        world=world,
        town=town,
        params=params,
        fixed=dict(fixed or {}),
        xy=_anchor_points(points, n),
        geoms=points,
    )
    out = rows.out
    for name, value in rows.fixed.items():
        out[name] = _as_array(value, n)
    for attr in sorted(layer.attributes, key=lambda a: _stage(a, params)):
        if attr.name not in out:
            out[attr.name] = _value(attr, rows)
    _blank(layer, rows)
    return {a.name: out[a.name] for a in layer.attributes}


def _stage(attr: Attribute, params: Mapping[str, Any]) -> int:
    """Return when to make an attribute: enums, other non-text, text, templated text, pinyin."""
    if attr.enum:
        return 0
    if attr.type is not AttributeType.string:
        return 1
    if attr.name == "pinyin":
        return 4
    return 3 if attr.name in params.get("templates", {}) else 2


def _anchor_points(points: np.ndarray | None, n: int) -> NDArray[np.float64] | None:
    """Return one (x, y) per feature: the point itself, a line's middle, a polygon's inside."""
    if points is None:
        return None
    geoms = np.asarray(points, dtype=object)
    if len(geoms) != n:
        raise ValueError(f"{len(geoms)} geometries for {n} features")
    if n == 0:
        return np.zeros((0, 2))
    kinds = shapely.get_type_id(geoms)
    if (kinds == 0).all():
        return np.asarray(shapely.get_coordinates(geoms), dtype=np.float64)
    lines = np.isin(kinds, [1, 5])
    anchors = shapely.point_on_surface(geoms)
    if lines.any():
        anchors[lines] = shapely.line_interpolate_point(geoms[lines], 0.5, normalized=True)
    return np.asarray(shapely.get_coordinates(anchors), dtype=np.float64)


def _as_array(value: Any, n: int) -> np.ndarray:
    """Return a fixed column as an array of ``n`` values."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list | tuple):
        return np.array(value, dtype=object)
    return np.full(n, value, dtype=object)


def draw_enum(
    attr: Attribute, n: int, rng: np.random.Generator, params: Mapping[str, Any]
) -> NDArray[np.object_]:
    """Return ``n`` enum values of ``attr``, weighted by ``params['weights'][attr]``."""
    values = attr.enum_values
    weights = params.get("weights", {}).get(attr.name)
    if weights is None and attr.name == "state" and set(values) == set(STATE_SHARES):
        weights = STATE_SHARES
    if weights is None:
        return np.asarray(values, dtype=object)[rng.integers(0, len(values), n)]
    unknown = set(weights) - set(values)
    if unknown:
        raise ValueError(f"weights of {attr.name} name values not in its enum: {sorted(unknown)}")
    p = np.array([float(weights.get(v, 0.0)) for v in values])
    return np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p / p.sum())]


def _value(attr: Attribute, rows: Rows) -> np.ndarray:
    """Return the values of one attribute."""
    kind = attr.type
    if attr.enum:
        return draw_enum(attr, rows.n, rows.rng, rows.params)
    if kind in (AttributeType.integer, AttributeType.float):
        return _number(attr, rows)
    if kind is AttributeType.boolean:
        spec = rows.params.get("booleans", {}).get(attr.name, 0.5)
        p = by_group(spec, rows, lambda s, k: np.full(k, float(s)), float)
        return np.asarray(rows.rng.random(rows.n) < p)
    if kind in (AttributeType.date, AttributeType.datetime):
        return _dates(attr, rows)
    return _text(attr, rows)


def _number(attr: Attribute, rows: Rows) -> np.ndarray:
    """Return numbers within the declared bounds (geometric sizes measured)."""
    measured = _measured(attr.name, rows)
    if measured is not None:
        values = measured
    else:
        spec = rows.params.get("ranges", {}).get(attr.name)
        if spec is None:
            if attr.min is None or attr.max is None:
                raise KeyError(f"{rows.layer.code}.{attr.name}: give params.ranges")
            spec = [attr.min, attr.min + (attr.max - attr.min) * 0.2]
        values = by_group(spec, rows, lambda s, k: _draw_range(rows.rng, s, k), float)
    values = np.asarray(values, dtype=np.float64)
    lo = attr.min if attr.min is not None else -np.inf
    hi = attr.max if attr.max is not None else np.inf
    if attr.type is AttributeType.integer:
        return np.clip(np.rint(values), np.ceil(lo), np.floor(hi)).astype(np.int64)
    decimals = rows.params.get("decimals", {}).get(attr.name)
    if decimals is None:
        finite = values[np.isfinite(values)]
        decimals = 2 if finite.size and np.abs(finite).max() < 10 else 1
    result: np.ndarray = np.clip(np.round(values, int(decimals)), lo, hi)
    return result


def _draw_range(rng: np.random.Generator, spec: Any, k: int) -> NDArray[np.float64]:
    """Draw ``k`` numbers from ``[lo, hi]``, ``[lo, hi, 'log']`` or ``{choices, weights}``."""
    if isinstance(spec, Mapping):
        choices = np.asarray(spec["choices"], dtype=np.float64)
        w = np.asarray(spec.get("weights", np.ones(choices.size)), dtype=np.float64)
        return choices[rng.choice(choices.size, k, p=w / w.sum())]
    lo, hi = float(spec[0]), float(spec[1])
    if len(spec) > 2 and spec[2] == "log":
        return np.exp(rng.uniform(np.log(max(lo, 1e-9)), np.log(hi), k))
    return rng.uniform(lo, hi, k)


def _measured(name: str, rows: Rows) -> NDArray[np.float64] | None:
    """Return areas/lengths measured on polygon/line geometries, else None."""
    factor = {"area_m2": 1.0, "area_km2": 1e-6, "length_m": 1.0, "length_km": 1e-3}.get(name)
    if rows.geoms is None or factor is None or rows.n == 0:
        return None
    geoms = np.asarray(rows.geoms, dtype=object)
    kinds = set(shapely.get_type_id(geoms).tolist())
    if name.startswith("area") and kinds <= {3, 6}:
        return np.asarray(shapely.area(geoms), dtype=np.float64) * factor
    if name.startswith("length") and kinds <= {1, 5}:
        return np.asarray(shapely.length(geoms), dtype=np.float64) * factor
    return None


def _to_date(value: Any) -> date:
    """Return a date from a YAML date, an ISO string or a year."""
    if isinstance(value, date):
        return value
    if isinstance(value, int):
        return date(value, 1, 1)
    return date.fromisoformat(str(value))


def _dates(attr: Attribute, rows: Rows) -> NDArray[np.object_]:
    """Return dates in the plan's range, or a number of days after another date attribute."""
    rng, n = rows.rng, rows.n
    after = rows.params.get("after", {}).get(attr.name)
    if after is not None:
        other, lo, hi = after
        base = rows.out[other]
        days = rng.integers(int(lo), int(hi) + 1, n)
        return np.array(
            [
                None if b is None else b + timedelta(days=int(d))
                for b, d in zip(base, days, strict=True)
            ],
            dtype=object,
        )
    spec = rows.params.get("dates", {}).get(attr.name, DEFAULT_DATES)
    start, end = _to_date(spec[0]), _to_date(spec[1])
    offsets = rng.integers(0, (end - start).days + 1, n).astype("timedelta64[D]")
    result: NDArray[np.object_] = (np.datetime64(start, "D") + offsets).astype(object)
    return result


def _text(attr: Attribute, rows: Rows) -> NDArray[np.object_]:
    """Return strings, by the first rule that applies to this attribute."""
    name, p, n, rng = attr.name, rows.params, rows.n, rows.rng
    codes = dict(p.get("codes", {}))
    if "code" in p and rows.layer.natural_key:
        codes.setdefault(rows.layer.natural_key[0], p["code"])
    if name in codes:
        return serial_codes(
            str(codes[name]),
            rows.code_fields(),
            n,
            rows.world.serials,
            namespace=f"{rows.layer.code}.{name}",
        )
    if name == "uscc":
        kinds = rows.out.get("kind", np.full(n, p.get("credit_kind", "enterprise")))
        serial = take_numbers(rows.world.serials, "#uscc", n)
        return credit_codes(serial, np.asarray(kinds, dtype=str))
    if name == "pinyin":
        return np.array([romanize(str(v)) for v in rows.out["name"]], dtype=object)
    for key in ("templates", "values", "lists"):
        if name in p.get(key, {}):
            return render(key, p[key][name], rows, attr)
    contextual = _contextual(name, rows)
    if contextual is not None:
        return contextual
    if name in PERSON_FIELDS:
        return person_names(rng, n).astype(object)
    if attr.pattern == ID_PATTERN:
        male = rng.random(n) < 0.5
        return id_numbers(rng, n, home_share=0.6, home_region="440114", male=male).astype(object)
    if attr.pattern is not None and attr.pattern.startswith("^(1[3-9]"):
        return phones(rng, n).astype(object)
    if name.endswith("phone"):
        first = rng.choice(np.array(["3", "8"]), n)
        digits = np.char.add(first, zero_pad(rng.integers(0, 10**7, n), 7))
        return np.char.add("020-", digits).astype(object)
    if name in UNIT_FIELDS:
        return np.full(n, rows.layer.department, dtype=object)
    raise KeyError(f"{rows.layer.code}.{name}: no rule makes this attribute; add it to params")


def _contextual(name: str, rows: Rows) -> NDArray[np.object_] | None:
    """Return addresses, codes and names found around each feature, or None."""
    if name == "address":
        return rows.addresses()
    if name == "address_code":
        return rows.address_codes()
    if name == "building_code":
        return rows.building_codes()
    if name == "road_name":
        return rows.road_names()
    return None


def _blank(layer: Layer, rows: Rows) -> None:
    """Null some optional values (``nulls``) and those outside ``only_if`` conditions."""
    p, out, n = rows.params, rows.out, rows.n
    for attr in layer.attributes:
        if attr.required or attr.name in rows.fixed:
            continue
        mask = np.zeros(n, dtype=bool)
        condition = p.get("only_if", {}).get(attr.name)
        if condition is not None:
            for other, allowed in condition.items():
                mask |= ~np.isin(np.asarray(out[other], dtype=object), list(allowed))
        rate = float(p.get("nulls", {}).get(attr.name, DEFAULT_NULL_RATE))
        mask[rows.rng.choice(n, int(rate * n), replace=False)] = True  # exactly, not ~rate
        if mask.any():
            out[attr.name] = _with_nulls(out[attr.name], mask, attr.type)


def _with_nulls(values: np.ndarray, mask: NDArray[np.bool_], kind: AttributeType) -> np.ndarray:
    """Return ``values`` with nulls where ``mask`` (NaN for floats, None otherwise)."""
    if kind is AttributeType.float:
        result = np.asarray(values, dtype=np.float64).copy()
        result[mask] = np.nan
        return result
    result = np.asarray(values).astype(object)
    result[mask] = None
    return result
