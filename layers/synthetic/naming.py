"""Chinese names, identity-card numbers and phone numbers for synthetic features.

The character pools are data in ``naming.yaml``; every draw comes from a numpy
generator handed in, so output is deterministic for a seed.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from layers.synthetic.yamlfile import read_yaml

NAMING_FILE = Path(__file__).with_name("naming.yaml")
#: GB 11643-1999 weights and check characters of the 18-digit citizen ID number.
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = "10X98765432"


class NamingPools(BaseModel):
    """Character pools for names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    surnames: tuple[str, ...] = Field(min_length=20)
    surname_weights: tuple[float, ...]
    given_chars: str = Field(min_length=50)
    road_prefixes: tuple[str, ...] = Field(min_length=50)
    origin_regions: tuple[str, ...] = Field(min_length=10, description="6-digit region codes")


@lru_cache(maxsize=1)
def pools() -> NamingPools:
    """Return the packaged pools."""
    return NamingPools.model_validate(read_yaml(NAMING_FILE))


def road_names(rng: np.random.Generator, n: int, *, suffixes: tuple[str, ...]) -> list[str]:
    """Return ``n`` distinct-looking road names (prefix + suffix, numbered when repeated)."""
    p = pools()
    prefixes = rng.choice(len(p.road_prefixes), size=n)
    ends = rng.choice(len(suffixes), size=n)
    seen: dict[str, int] = {}
    names = []
    for i, j in zip(prefixes, ends, strict=True):
        base = p.road_prefixes[i] + suffixes[j]
        seen[base] = seen.get(base, 0) + 1
        count = seen[base]
        names.append(base if count == 1 else f"{p.road_prefixes[i]}{_ordinal(count)}{suffixes[j]}")
    return names


def _ordinal(k: int) -> str:
    digits = "零一二三四五六七八九十"
    if k <= 10:
        return digits[k]
    if k < 20:
        return "十" + digits[k - 10]
    return digits[k // 10] + "十" + (digits[k % 10] if k % 10 else "")


def person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return ``n`` Chinese personal names (surname + one or two given characters)."""
    p = pools()
    weights = np.asarray(p.surname_weights, dtype=float)
    surnames = np.asarray(p.surnames)[
        rng.choice(len(p.surnames), size=n, p=weights / weights.sum())
    ]
    chars = np.array(list(p.given_chars))
    first = chars[rng.integers(0, chars.size, n)]
    second = np.where(rng.random(n) < 0.75, chars[rng.integers(0, chars.size, n)], "")
    return np.char.add(np.char.add(surnames, first), second)


def id_numbers(
    rng: np.random.Generator, n: int, *, home_share: float, home_region: str, male: np.ndarray
) -> np.ndarray:
    """Return ``n`` well-formed 18-character citizen ID numbers (with check characters)."""
    if n == 0:
        return np.array([], dtype="<U18")
    p = pools()
    regions = np.where(
        rng.random(n) < home_share,
        home_region,
        np.asarray(p.origin_regions)[rng.integers(0, len(p.origin_regions), n)],
    )
    born = np.datetime64(date(1945, 1, 1)) + rng.integers(
        0, (date(2008, 12, 31) - date(1945, 1, 1)).days, n
    ).astype("timedelta64[D]")
    births = np.char.replace(np.datetime_as_string(born, unit="D"), "-", "")
    serial = rng.integers(0, 500, n) * 2 + np.where(male, 1, 0)
    body = np.char.add(np.char.add(regions, births), zero_pad(serial, 3))
    digits = (
        np.frombuffer("".join(body.tolist()).encode("ascii"), dtype=np.uint8).reshape(n, 17) - 48
    )
    checks = np.asarray(list(_ID_CHECK))[(digits @ _ID_WEIGHTS) % 11]
    return np.char.add(body, checks)


def id_check_char(first17: str) -> str:
    """Return the GB 11643 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return ``n`` mobile numbers (1[3-9] + 9 digits)."""
    second = rng.integers(3, 10, n).astype(str)
    rest = zero_pad(rng.integers(0, 10**9, n), 9)
    return np.char.add(np.char.add("1", second), rest)


def dates_between(rng: np.random.Generator, n: int, start: date, end: date) -> list[date]:
    """Return ``n`` dates uniformly in [start, end]."""
    offsets = rng.integers(0, (end - start).days + 1, n)
    return [start + timedelta(days=int(d)) for d in offsets]


def zero_pad(values: np.ndarray, width: int) -> np.ndarray:
    """Return integers as zero-padded strings (safe for empty arrays)."""
    values = np.asarray(values)
    if values.size == 0:
        return np.array([], dtype=f"<U{width}")
    return np.char.zfill(values.astype(str), width)
