"""Fit generated attribute records to a catalog layer declaration (check, coerce, complete).

Generators write what they know under the declared attribute names (or their aliases); this
module keeps exactly the declared columns, checks every value against its declaration (type,
enum, pattern, max_length, min/max), and invents a valid value for a required attribute the
generator did not know, so the output loads whatever the catalog grows.
"""

from __future__ import annotations

import re
import re._parser as sre_parse
import string
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from schemas.catalog import Attribute, AttributeType, Layer

_ALPHABET = string.ascii_letters + string.digits
_CATEGORIES = {
    sre_parse.CATEGORY_DIGIT: string.digits,
    sre_parse.CATEGORY_WORD: _ALPHABET + "_",
    sre_parse.CATEGORY_SPACE: " ",
}


def _char_set(items: Sequence[tuple[Any, Any]]) -> str:
    """Return the characters an ``IN`` node of a parsed pattern accepts."""
    chars: set[str] = set()
    negate = False
    for op, arg in items:
        if op is sre_parse.NEGATE:
            negate = True
        elif op is sre_parse.LITERAL:
            chars.add(chr(arg))
        elif op is sre_parse.RANGE:
            chars.update(chr(c) for c in range(arg[0], arg[1] + 1))
        elif op is sre_parse.CATEGORY:
            chars.update(_CATEGORIES.get(arg, ""))
    if negate:
        chars = set(_ALPHABET) - chars
    return "".join(sorted(chars))


def _emit(nodes: Any, rng: np.random.Generator) -> str:
    """Return a random string produced by parsed pattern nodes."""
    out = []
    for op, arg in nodes:
        if op is sre_parse.LITERAL:
            out.append(chr(arg))
        elif op is sre_parse.NOT_LITERAL:
            out.append(str(rng.choice([c for c in _ALPHABET if ord(c) != arg])))
        elif op is sre_parse.ANY:
            out.append(str(rng.choice(list(_ALPHABET))))
        elif op is sre_parse.IN:
            out.append(str(rng.choice(list(_char_set(arg)))))
        elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            low, high, sub = arg
            count = int(rng.integers(low, min(high, low + 6) + 1))
            out.extend(_emit(sub, rng) for _ in range(count))
        elif op is sre_parse.SUBPATTERN:
            out.append(_emit(arg[-1], rng))
        elif op is sre_parse.BRANCH:
            out.append(_emit(arg[1][int(rng.integers(len(arg[1])))], rng))
        elif op is not sre_parse.AT:
            raise ValueError(f"pattern construct {op} is not supported")
    return "".join(out)


def sample_pattern(pattern: str, rng: np.random.Generator) -> str:
    """Return a random string that fully matches ``pattern`` (a simple regular expression)."""
    parsed = sre_parse.parse(pattern)
    for _ in range(50):
        value = _emit(parsed, rng)
        if re.fullmatch(pattern, value):
            return value
    raise ValueError(f"cannot produce a value matching {pattern!r}")


def problem(attr: Attribute, value: Any) -> str | None:
    """Return why ``value`` does not fit the attribute, or None when it does (None fits)."""
    if value is None:
        return "missing" if attr.required else None
    kind = attr.type
    if kind is AttributeType.string:
        if not isinstance(value, str):
            return "not a string"
        if attr.max_length is not None and len(value) > attr.max_length:
            return "too long"
        if attr.enum is not None and value not in attr.enum_values:
            return "not an enum value"
        if attr.pattern is not None and not re.fullmatch(attr.pattern, value):
            return "does not match the pattern"
        return None
    if kind in (AttributeType.integer, AttributeType.float):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            return "not a number"
        if kind is AttributeType.integer and float(value) != int(value):
            return "not an integer"
        if attr.min is not None and value < attr.min:
            return "below min"
        if attr.max is not None and value > attr.max:
            return "above max"
        return None
    expected = {
        AttributeType.boolean: bool,
        AttributeType.date: date,
        AttributeType.datetime: datetime,
    }[kind]
    return None if isinstance(value, expected) else f"not a {kind.value}"


def invent(attr: Attribute, rng: np.random.Generator, serial: int) -> Any:
    """Return a plausible valid value for an attribute nothing was generated for."""
    kind = attr.type
    if kind is AttributeType.string:
        if attr.enum is not None:
            return str(rng.choice(list(attr.enum_values)))
        if attr.pattern is not None:
            return sample_pattern(attr.pattern, rng)
        return f"{attr.zh}{serial}"[: attr.max_length]
    if kind in (AttributeType.integer, AttributeType.float):
        low = attr.min if attr.min is not None else 0.0
        high = attr.max if attr.max is not None else low + 100.0
        value = float(rng.uniform(low, low + (high - low) * 0.1))
        return int(np.ceil(value)) if kind is AttributeType.integer else round(value, 2)
    if kind is AttributeType.boolean:
        return bool(rng.integers(2))
    day = date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 3650)))
    return day if kind is AttributeType.date else datetime(day.year, day.month, day.day, 9)


def _clean(attr: Attribute, value: Any) -> Any:
    """Coerce a generated value towards the declaration (round, clip, truncate)."""
    if value is None:
        return None
    if attr.type in (AttributeType.integer, AttributeType.float) and isinstance(
        value, int | float | np.number
    ):
        number = float(np.clip(float(value), attr.min or -np.inf, attr.max or np.inf))
        if attr.min is not None and attr.min > number:
            number = attr.min
        return int(round(number)) if attr.type is AttributeType.integer else round(number, 3)
    if attr.type is AttributeType.string and isinstance(value, str) and attr.max_length:
        return value[: attr.max_length]
    return value


def _lookup(attr: Attribute, record: Mapping[str, Any]) -> Any:
    """Return the record's value for the attribute, by name or by one of its aliases."""
    for key in (attr.name, *attr.aliases):
        if key in record:
            return record[key]
    return None


def conform(
    layer: Layer, records: Sequence[Mapping[str, Any]], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Return one row per record with exactly the layer's attributes, each valid or None.

    Required attributes missing or invalid get an invented valid value; natural keys are made
    unique.
    """
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for serial, record in enumerate(records, start=1):
        row: dict[str, Any] = {}
        for attr in layer.attributes:
            value = _clean(attr, _lookup(attr, record))
            if problem(attr, value) is not None:
                value = invent(attr, rng, serial) if attr.required else None
            row[attr.name] = value
        key = tuple(row[k] for k in layer.natural_key)
        for _ in range(100):
            if key not in seen:
                break
            for name in layer.natural_key:
                row[name] = invent(layer.attribute(name), rng, serial)
            key = tuple(row[k] for k in layer.natural_key)
        seen.add(key)
        rows.append(row)
    return rows
