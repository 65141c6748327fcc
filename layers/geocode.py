"""Geocode Chinese address text to a house-number point, with a confidence.

Normalisation: NFKC (full-width digits, letters and punctuation to ASCII), spaces and punctuation
dropped, the optional 广东省 / 广州市 / 花都区 prefixes dropped, sub-numbers written 号之一 / 号-1 /
号附1 / 12-1号 read as the same sub-number 1, road names matched literally or through the
reviewed aliases of ``layers/data/road_aliases.yaml``. The town is read from the text (the words
before the road) or taken from a hint the sender gave.

Confidence, first that applies:

* 1.0 — the normalised text is exactly a standard address: town, road, number (and sub-number);
* 0.9 — road and number match within the town (named, or hinted), text otherwise looser;
* 0.8 — road and number match exactly one house number in the district (town unknown or wrong);
* 0.5 — no such number, but the nearest number on the same road (within ``NEAR_NUMBERS``, same
  side of the street preferred) gives the point;
* None — nothing matched or it is ambiguous: the case needs a manual location, it is not dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import yaml
from sqlalchemy import Connection, text

from schemas.catalog import Catalog, LayerRole
from schemas.errors import CatalogError
from schemas.tables import LAYER_SCHEMA

ALIASES_FILE: Final = Path(__file__).with_name("data") / "road_aliases.yaml"
PREFIXES: Final = ("广东省", "广州市", "花都区")
NEAR_NUMBERS: Final = 4
_DASHES: Final = str.maketrans({"—": "-", "–": "-", "－": "-", "‐": "-", "‑": "-"})
_DROP: Final = re.compile(r"[\s,.;:!?'\"()\[\]{}<>、，。；：！？“”‘’（）【】《》·]+")
_NUMBER: Final = re.compile(r"(\d+)号?(?:(?:之|-|附)(\d+|[一二三四五六七八九十]+))?号?")
_CN_DIGITS: Final = {c: i for i, c in enumerate("零一二三四五六七八九")}


@dataclass(frozen=True, slots=True)
class GeocodeResult:
    """A house number found for an address text."""

    lon: float
    lat: float
    confidence: float
    address_code: str
    address: str
    town_code: str
    village_code: str | None
    method: str  # exact | town | district | nearest


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """What the text says: town (if named), road (standard name), number, sub-number."""

    town_code: str | None
    road: str
    number: int
    sub: int | None
    literal_road: bool
    exact_form: bool  # nothing but [town][road][number] after normalisation


@dataclass(frozen=True, slots=True)
class RoadAliases:
    """Reviewed road-name aliases: suffix pairs and explicit names."""

    suffixes: tuple[tuple[str, str], ...]
    names: Mapping[str, str]


@dataclass(frozen=True)
class Gazetteer:
    """Town names and road-name forms (literal and alias), longest form first."""

    towns: Mapping[str, str]  # name -> code
    forms: tuple[tuple[str, str, bool], ...]  # (written form, standard road, literal?)


def clean(text: str) -> str:
    """Return the text in NFKC with spaces and punctuation dropped and prefixes removed."""
    out = _DROP.sub("", unicodedata.normalize("NFKC", text).translate(_DASHES))
    for prefix in PREFIXES:
        out = out.removeprefix(prefix)
    return out


def chinese_number(text: str) -> int:
    """Return the value of digits or a small Chinese numeral (一 … 九十九)."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, units = text.partition("十")
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[units] if units else 0)
    return _CN_DIGITS[text]


def parse_number(text: str) -> tuple[int, int | None, int] | None:
    """Return (number, sub-number, characters used) of a house number at the start of text."""
    match = _NUMBER.match(text)
    if match is None:
        return None
    sub = chinese_number(match[2]) if match[2] else None
    return int(match[1]), sub, match.end()


def load_aliases(path: Path | None = None) -> RoadAliases:
    """Read the reviewed road-name aliases."""
    source = path or ALIASES_FILE
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        suffixes = tuple((str(a), str(b)) for a, b in data.get("suffixes") or ())
        names = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
    except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError) as exc:
        raise CatalogError(f"{source}: not a valid road alias file: {exc}") from None
    return RoadAliases(suffixes=suffixes, names=names)


@lru_cache(maxsize=1)
def default_aliases() -> RoadAliases:
    """Return the packaged aliases, read once."""
    return load_aliases()


def build_gazetteer(
    towns: Mapping[str, str], roads: Sequence[str], aliases: RoadAliases
) -> Gazetteer:
    """Return the gazetteer of town names and road forms for known roads."""
    known = set(roads)
    forms: dict[str, tuple[str, bool]] = {road: (road, True) for road in known}
    for road in sorted(known):
        for written, standard in aliases.suffixes:
            if road.endswith(standard) and len(road) > len(standard):
                alias = road.removesuffix(standard) + written
                if alias not in known and alias not in forms:
                    forms[alias] = (road, False)
    for alias, road in aliases.names.items():
        if road in known and alias not in known:
            forms[clean(alias)] = (road, False)
    ordered = sorted(forms.items(), key=lambda kv: (-len(kv[0]), kv[0]))
    return Gazetteer(towns=dict(towns), forms=tuple((f, r, lit) for f, (r, lit) in ordered))


_GAZETTEERS: dict[tuple[object, ...], Gazetteer] = {}


def gazetteer(conn: Connection, catalog: Catalog, aliases: RoadAliases | None = None) -> Gazetteer:
    """Return the gazetteer of the database, rebuilt when the house-number layer changes."""
    aliases = aliases or default_aliases()
    layer = catalog.by_role(LayerRole.house_number)
    row = conn.execute(
        text(
            "SELECT current_database(), coalesce((SELECT current_version FROM catalog_layers "
            "WHERE code = :code), 0)"
        ),
        {"code": layer.code},
    ).one()
    key = (str(row[0]), int(row[1]), aliases.suffixes, tuple(sorted(aliases.names.items())))
    if (found := _GAZETTEERS.get(key)) is not None:
        return found
    towns = conn.execute(text("SELECT name, code FROM divisions WHERE level = 'town'")).all()
    roads = conn.execute(
        text(
            f'SELECT DISTINCT road_name FROM {LAYER_SCHEMA}."{layer.table_name}" '
            "WHERE road_name IS NOT NULL AND road_name <> ''"
        )
    ).scalars()
    built = build_gazetteer({str(n): str(c) for n, c in towns}, [str(r) for r in roads], aliases)
    if len(_GAZETTEERS) >= 8:
        _GAZETTEERS.clear()
    _GAZETTEERS[key] = built
    return built


def parse_address(
    address: str, gaz: Gazetteer, *, town_hint: str | None = None
) -> ParsedAddress | None:
    """Return town, road and number of an address text, or None when no road+number is found."""
    body = clean(address)
    for form, road, literal in gaz.forms:
        start = body.rfind(form)
        while start >= 0:
            parsed = parse_number(body[start + len(form) :])
            if parsed is not None:
                number, sub, used = parsed
                before = body[:start]
                town = next((code for name, code in gaz.towns.items() if name in before), None)
                if town is None and town_hint:
                    hint = clean(town_hint)
                    town = hint[:9] if hint.isdigit() else gaz.towns.get(hint)
                exact = literal and before in gaz.towns and start + len(form) + used == len(body)
                return ParsedAddress(town, road, number, sub, literal, exact)
            start = body.rfind(form, 0, start)
    return None


def _candidates(conn: Connection, catalog: Catalog, road: str) -> list[tuple[object, ...]]:
    layer = catalog.by_role(LayerRole.house_number)
    return [
        tuple(row)
        for row in conn.execute(
            text(
                "SELECT address_code, address, number, town_code, village_code, "
                f'ST_X(geom), ST_Y(geom) FROM {LAYER_SCHEMA}."{layer.table_name}" '
                "WHERE road_name = :road ORDER BY address_code"
            ),
            {"road": road},
        )
    ]


def _result(row: tuple[object, ...], confidence: float, method: str) -> GeocodeResult:
    code, address, _, town, village, lon, lat = row
    return GeocodeResult(
        lon=float(lon),  # type: ignore[arg-type]
        lat=float(lat),  # type: ignore[arg-type]
        confidence=confidence,
        address_code=str(code),
        address=str(address),
        town_code=str(town),
        village_code=None if village is None else str(village),
        method=method,
    )


def _numbered(rows: list[tuple[object, ...]]) -> list[tuple[int, int | None, tuple[object, ...]]]:
    out = []
    for row in rows:
        parsed = parse_number(clean(str(row[2])))
        if parsed is not None:
            out.append((parsed[0], parsed[1], row))
    return out


def geocode(
    conn: Connection,
    catalog: Catalog,
    address: str,
    *,
    town_hint: str | None = None,
    aliases: RoadAliases | None = None,
) -> GeocodeResult | None:
    """Return the house number an address text names, with a confidence; None when unsure."""
    if not address or not address.strip():
        return None
    parsed = parse_address(address, gazetteer(conn, catalog, aliases), town_hint=town_hint)
    if parsed is None:
        return None
    numbered = _numbered(_candidates(conn, catalog, parsed.road))
    same = [r for n, s, r in numbered if n == parsed.number and s == parsed.sub]
    if not same and parsed.sub is not None:  # 12号之一 where only 12号 is registered
        same = [r for n, s, r in numbered if n == parsed.number and s is None]
    in_town = [r for r in same if parsed.town_code is not None and r[3] == parsed.town_code]
    if len(in_town) == 1:
        exact = parsed.exact_form and _sub_equal(in_town[0], parsed)
        return _result(in_town[0], 1.0 if exact else 0.9, "exact" if exact else "town")
    if len(same) == 1:
        return _result(same[0], 0.8, "district")
    if same:
        return None  # the same road and number in several towns, and no town to decide
    near = [
        (abs(n - parsed.number), (n - parsed.number) % 2, n, r)
        for n, s, r in numbered
        if s is None
        and 0 < abs(n - parsed.number) <= NEAR_NUMBERS
        and (parsed.town_code is None or r[3] == parsed.town_code)
    ]
    if not near:
        return None
    near.sort(key=lambda t: (t[1], t[0], t[2]))
    towns = {str(t[3][3]) for t in near}
    if len(towns) > 1:
        return None
    return _result(near[0][3], 0.5, "nearest")


def _sub_equal(row: tuple[object, ...], parsed: ParsedAddress) -> bool:
    found = parse_number(clean(str(row[2])))
    return found is not None and found[1] == parsed.sub
