"""Text values of synthetic features: the per-feature context and the template renderer.

:class:`Rows` knows, for the features being made, their village, nearest road, nearest house
number and building (looked up lazily in :mod:`.sites`). :func:`render` fills ``templates``
(``"{village_short}{ord}小学"``, ``"花都区第{cn_n}人民医院"``), ``values`` and ``lists``.

Placeholders: ``town`` ``town_short`` ``village`` (联安村, 云山社区) ``village_short``
``road`` ``n`` (running number per layer) ``cn_n`` (the same in Chinese) ``ord`` (empty the
first time a text occurs in a chunk, then 第二, 第三 …) ``prefix`` (a place word) ``surname``,
the Chinese label of any enum attribute already drawn (``{kind}``), any other attribute already
drawn, and the plan's ``pools``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from string import Formatter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from layers.synthetic.admin import Division
from layers.synthetic.identifiers import take_numbers
from layers.synthetic.naming import pools
from layers.synthetic.sites import TownSites, place_name, short_name, town_sites
from layers.synthetic.world import World
from schemas.catalog import Attribute, Layer

IntArray = NDArray[np.int64]
ObjArray = NDArray[np.object_]
_ORD = "\x01"
_DIGITS = "零一二三四五六七八九"


def chinese_number(k: int) -> str:
    """Return 1–999 in Chinese numerals (十二, 二十, 一百零五)."""
    if k < 10:
        return _DIGITS[k]
    if k < 20:
        return "十" + (_DIGITS[k - 10] if k > 10 else "")
    if k < 100:
        return _DIGITS[k // 10] + "十" + (_DIGITS[k % 10] if k % 10 else "")
    rest = k % 100
    tail = (
        ""
        if rest == 0
        else (
            "零" + _DIGITS[rest]
            if rest < 10
            else (_DIGITS[1] if rest < 20 else "") + chinese_number(rest)
        )
    )
    return _DIGITS[k // 100] + "百" + tail


@dataclass
class Rows:
    """The features being made: their context, looked up on first use."""

    layer: Layer
    n: int
    rng: np.random.Generator
    world: World
    town: Division
    params: Mapping[str, Any]
    fixed: dict[str, Any]
    xy: NDArray[np.float64] | None
    geoms: np.ndarray | None = None
    out: dict[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def sites(self) -> TownSites:
        """Return the town's sites."""
        return town_sites(self.world, self.town)

    def _pick(self, size: int) -> IntArray:
        """Return random rows of a table of ``size`` rows (for features without points)."""
        return self.rng.integers(0, size, self.n) if size else np.full(self.n, -1)

    @cached_property
    def village_index(self) -> IntArray:
        """Return each feature's village (index into the town's villages)."""
        if self.xy is None:
            return self._pick(len(self.sites.villages))
        return self.sites.village_of(self.xy[:, 0], self.xy[:, 1])

    def village_names(self) -> list[str]:
        """Return each feature's village as places call it (联安村, 云山社区)."""
        names = [place_name(v) for v in self.sites.villages]
        return [names[i] for i in self.village_index]

    @cached_property
    def house_number_rows(self) -> IntArray:
        """Return each feature's nearest house number (-1: the town has none)."""
        if self.xy is None:
            return self._pick(self.sites.house_numbers["x"].size)
        return self.sites.nearest_house_number(self.xy[:, 0], self.xy[:, 1])

    def addresses(self) -> ObjArray:
        """Return the address of each feature's nearest house number (or town + village)."""
        rows = self.house_number_rows
        out = np.array(
            [f"广东省广州市花都区{self.town.name}{v}" for v in self.village_names()], dtype=object
        )
        ok = rows >= 0
        if ok.any():
            out[ok] = self.sites.fetch("house_numbers", rows[ok], ["address"])["address"]
        return out

    def address_codes(self) -> ObjArray:
        """Return the address code of each feature's nearest house number."""
        rows = self.house_number_rows
        codes = self.sites.house_numbers["address_code"]
        return np.array([codes[r] if r >= 0 else None for r in rows], dtype=object)

    def building_codes(self) -> ObjArray:
        """Return the code of each feature's nearest building."""
        if self.xy is None:
            rows = self._pick(self.sites.buildings["x"].size)
        else:
            rows = self.sites.nearest_building(self.xy[:, 0], self.xy[:, 1])
        out = np.full(self.n, None, dtype=object)
        ok = rows >= 0
        if ok.any():
            out[ok] = self.sites.fetch("buildings", rows[ok], ["code"])["code"]
        return out

    def road_names(self) -> ObjArray:
        """Return the name of each feature's nearest road."""
        roads = self.sites.roads
        if self.xy is None:
            rows = self._pick(len(roads))
        else:
            rows = self.sites.nearest_road(self.xy[:, 0], self.xy[:, 1])
        return np.array([roads[r].name if r >= 0 else None for r in rows], dtype=object)

    def code_fields(self) -> dict[str, object]:
        """Return the placeholders of code formats."""
        villages = np.array([v.code for v in self.sites.villages] or [self.town.code + "000"])
        village = villages[np.minimum(self.village_index, villages.size - 1)]
        years = self.params.get("code_years", [2012, 2025])
        drawn = self.rng.integers(int(years[0]), int(years[1]) + 1, self.n).astype(str)
        source = self.out.get(str(self.params.get("year_of", "")))
        if source is not None:  # the year of a date attribute (a case found in 2021: WJ…2021…)
            drawn = np.array(
                [str(d.year) if d is not None else y for d, y in zip(source, drawn, strict=True)]
            )
        return {
            "town": self.town.code,
            "town3": self.town.code[6:9],
            "village": village,
            "village3": np.array([v[9:12] for v in village]),
            "year": drawn,
            "major": str(self.params.get("major", "")),
            "minor": str(self.params.get("minor", "")),
        }

    def field(self, name: str, idx: IntArray, attr: str) -> ObjArray:
        """Return the value of placeholder ``name`` for rows ``idx``."""
        k = idx.size
        if name == "town":
            return np.full(k, self.town.name, dtype=object)
        if name == "town_short":
            return np.full(k, short_name(self.town.name), dtype=object)
        if name in ("village", "village_short"):
            names = self.village_names()
            return np.array(
                [names[i] if name == "village" else short_name(names[i]) for i in idx], dtype=object
            )
        if name == "road":
            road = self.out.get("road_name")
            road = self.road_names() if road is None else road
            return np.asarray(road, dtype=object)[idx]
        if name in ("n", "cn_n"):
            numbers = take_numbers(self.world.serials, f"#{self.layer.code}:{attr}", k)
            return np.array(
                [str(v) if name == "n" else chinese_number(int(v)) for v in numbers], dtype=object
            )
        if name == "ord":
            return np.full(k, _ORD, dtype=object)
        if name == "prefix":
            return np.asarray(pools().road_prefixes, dtype=object)[
                self.rng.integers(0, len(pools().road_prefixes), k)
            ]
        if name == "surname":
            return np.asarray(pools().surnames[:20], dtype=object)[self.rng.integers(0, 20, k)]
        if name in self.out:
            values = np.asarray(self.out[name], dtype=object)[idx]
            attribute = next((a for a in self.layer.attributes if a.name == name), None)
            if attribute is not None and attribute.enum:
                labels = {e.value: e.zh for e in attribute.enum}
                return np.array([labels.get(v, v) for v in values], dtype=object)
            return values
        pool = self.params.get("pools", {}).get(name)
        if pool is None:
            raise KeyError(f"{self.layer.code}.{attr}: unknown placeholder {{{name}}}")
        return np.asarray(pool, dtype=object)[self.rng.integers(0, len(pool), k)]


def by_group(spec: Any, rows: Rows, draw: Callable[[Any, int], np.ndarray], dtype: type) -> Any:
    """Apply ``draw(spec, k)``, or per value of ``spec['by']`` when the spec is split by one."""
    if not (isinstance(spec, Mapping) and "by" in spec):
        return draw(spec, rows.n)
    groups = np.asarray(rows.out[spec["by"]], dtype=object)
    out = np.empty(rows.n, dtype=object if dtype is object else np.float64)
    for value in dict.fromkeys(groups.tolist()):
        idx = np.flatnonzero(groups == value)
        sub = spec.get(value, spec.get("default"))
        if sub is None:
            raise KeyError(f"{rows.layer.code}: no entry for {spec['by']}={value}")
        out[idx] = draw(sub, idx.size)
    return out


def render(key: str, spec: Any, rows: Rows, attr: Attribute) -> ObjArray:
    """Return text values from ``templates``, ``values`` or ``lists`` specs."""
    if isinstance(spec, Mapping) and "by" in spec:
        groups = np.asarray(rows.out[spec["by"]], dtype=object)
        out = np.empty(rows.n, dtype=object)
        for value in dict.fromkeys(groups.tolist()):
            idx = np.flatnonzero(groups == value)
            sub = spec.get(value, spec.get("default"))
            if sub is None:
                raise KeyError(f"{rows.layer.code}.{attr.name}: no entry for {value}")
            out[idx] = _render_rows(key, sub, rows, attr, idx)
    else:
        out = _render_rows(key, spec, rows, attr, np.arange(rows.n))
    if key == "templates":
        out = _ordinals(out)
    return out


def _render_rows(key: str, spec: Any, rows: Rows, attr: Attribute, idx: IntArray) -> ObjArray:
    """Return values for rows ``idx``."""
    rng, k = rows.rng, idx.size
    if key == "values":
        if isinstance(spec, Mapping):
            values, weights = list(spec), np.array(list(spec.values()), dtype=float)
            return np.asarray(values, dtype=object)[
                rng.choice(len(values), k, p=weights / weights.sum())
            ]
        return np.asarray(spec, dtype=object)[rng.integers(0, len(spec), k)]
    if key == "lists":
        pool = list(spec["pool"])
        low, high = spec.get("count", [1, 3])
        sizes = rng.integers(int(low), min(int(high), len(pool)) + 1, k)
        sep = spec.get("sep", "、")
        return np.array(
            [
                sep.join(pool[j] for j in sorted(rng.choice(len(pool), s, replace=False)))
                for s in sizes
            ],
            dtype=object,
        )
    templates = [spec] if isinstance(spec, str) else list(spec)
    choice = rng.integers(0, len(templates), k)
    out = np.empty(k, dtype=object)
    for t, template in enumerate(templates):
        sel = np.flatnonzero(choice == t)
        if sel.size == 0:
            continue
        names = [f for _, f, _, _ in Formatter().parse(template) if f]
        filled = {f: rows.field(f, idx[sel], attr.name) for f in dict.fromkeys(names)}
        out[sel] = [template.format(**{f: filled[f][i] for f in filled}) for i in range(sel.size)]
    return out


def _ordinals(values: ObjArray) -> ObjArray:
    """Replace the ``{ord}`` marker: nothing the first time a text occurs, then 第二, 第三 etc."""
    seen: dict[str, int] = {}
    out = values.copy()
    for i, value in enumerate(values):
        if value is None or _ORD not in value:
            continue
        base = value.replace(_ORD, "")
        seen[base] = seen.get(base, 0) + 1
        count = seen[base]
        out[i] = base if count == 1 else value.replace(_ORD, "第" + chinese_number(count))
    return out
