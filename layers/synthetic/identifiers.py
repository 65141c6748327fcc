"""Identifiers of synthetic features: serial codes from formats, credit codes, pinyin.

* :func:`serial_codes` turns a format such as ``"440114{town3}1"`` or ``"WJ{town3}-{serial:7}"``
  into codes unique across a run (running serials per prefix in ``world.serials``).
* :func:`credit_codes` makes unified social credit codes (GB 32100) with both check characters:
  the organisation code's (GB 11714) and the credit code's.
* :func:`romanize` writes a Chinese place or road name in pinyin from ``pinyin.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from layers.synthetic.naming import zero_pad
from layers.synthetic.utilities import Serials
from layers.synthetic.yamlfile import read_yaml

PINYIN_FILE = Path(__file__).with_name("pinyin.yaml")
_SERIAL = re.compile(r"\{serial(?::(\d+))?\}")
_FIELD = re.compile(r"\{(\w+)\}")
#: GB 32100 character set and weights of the 18-character unified social credit code.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
#: GB 11714 weights of the 9-character organisation code.
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2])
#: Registration authority + kind of the credit code, by the kind of unit.
CREDIT_KINDS = {
    "government": "11",
    "public_institution": "12",
    "social_organisation": "52",
    "individual_business": "92",
    "enterprise": "91",
}
_SPREAD = 48_271  # odd and not a multiple of 5: a bijection of 0..10^8-1 (serials look random)


def serial_codes(
    fmt: str, fields: Mapping[str, object], n: int, serials: Serials, namespace: str
) -> NDArray[np.object_]:
    """Return ``n`` codes from ``fmt``: placeholders from ``fields`` plus a running serial.

    ``{serial:W}`` places a W-digit serial (default: 6 digits appended at the end). Serials run
    per ``namespace`` (the layer) and distinct prefix across the whole run, so a layer's codes
    never repeat. ``fields`` values are scalars or arrays of ``n`` values.
    """
    match = _SERIAL.search(fmt)
    width = int(match.group(1)) if match and match.group(1) else 6
    head, tail = (fmt[: match.start()], fmt[match.end() :]) if match else (fmt, "")
    heads, tails = _fill(head, fields, n), _fill(tail, fields, n)
    out = np.empty(n, dtype=object)
    groups, keys = pd.factorize(heads + "|" + tails)  # first-seen order: deterministic
    for k, key in enumerate(keys):
        rows = np.flatnonzero(groups == k)
        prefix, suffix = str(key).split("|", 1)
        numbers = take_numbers(serials, f"{namespace}:{key}", rows.size)
        if numbers[-1] >= 10**width:
            raise ValueError(f"{namespace}: more than {10**width - 1:,} codes under {prefix}")
        out[rows] = np.char.add(np.char.add(prefix, zero_pad(numbers, width)), suffix)
    return out


def _fill(text: str, fields: Mapping[str, object], n: int) -> NDArray[np.object_]:
    """Return ``text`` with ``{field}`` placeholders filled, row by row."""
    names = _FIELD.findall(text)
    for name in names:
        if name not in fields:
            raise KeyError(f"unknown placeholder {{{name}}} in code format {text!r}")
    if all(np.ndim(np.asarray(fields[k], dtype=object)) == 0 for k in names):
        return np.full(n, text.format(**{k: fields[k] for k in names}), dtype=object)
    columns = {k: np.broadcast_to(np.asarray(fields[k], dtype=object), (n,)) for k in names}
    return np.array(
        [text.format(**{k: columns[k][i] for k in names}) for i in range(n)], dtype=object
    )


def take_numbers(serials: Serials, key: str, n: int) -> NDArray[np.int64]:
    """Return ``n`` integers 1, 2, … continuing a run-wide counter named ``key``."""
    start = serials.next.get(key, 1)
    serials.next[key] = start + n
    return np.arange(start, start + n, dtype=np.int64)


def credit_codes(
    serial: NDArray[np.int64], kinds: Sequence[str] | NDArray[np.str_], region: str = "440114"
) -> NDArray[np.object_]:
    """Return unified social credit codes with valid check characters, one per serial."""
    n = len(serial)
    if n == 0:
        return np.zeros(0, dtype=object)
    body = zero_pad((np.asarray(serial) * _SPREAD + 12_345_679) % 10**8, 8)
    digits = np.frombuffer("".join(body.tolist()).encode("ascii"), dtype=np.uint8).reshape(n, 8)
    check = 11 - (digits.astype(int) - 48) @ _ORG_WEIGHTS % 11
    org = np.char.add(
        body, np.where(check == 10, "X", np.where(check == 11, "0", check.astype(str)))
    )
    head = np.array([CREDIT_KINDS.get(str(k), "91") for k in kinds])
    first17 = np.char.add(np.char.add(head, region), org)
    table = np.zeros(128, dtype=np.int64)
    table[[ord(c) for c in _USCC_CHARS]] = np.arange(len(_USCC_CHARS))
    chars = np.frombuffer("".join(first17.tolist()).encode("ascii"), dtype=np.uint8)
    values = table[chars].reshape(n, 17)
    last = (31 - values @ _USCC_WEIGHTS % 31) % 31
    return np.char.add(first17, np.array(list(_USCC_CHARS))[last]).astype(object)


@lru_cache(maxsize=1)
def _pinyin() -> tuple[dict[str, str], dict[str, str]]:
    """Return the specific and generic word tables."""
    data = read_yaml(PINYIN_FILE)
    return dict(data["specific"]), dict(data["generic"])


def romanize(name: str) -> str | None:
    """Return ``name`` in pinyin (``新华二路`` → ``Xinhua Er Lu``), or None when not covered."""
    specific, generic = _pinyin()
    words: list[tuple[str, bool]] = []
    i = 0
    while i < len(name):
        for size in range(min(5, len(name) - i), 0, -1):
            piece = name[i : i + size]
            if piece in specific or piece in generic:
                is_specific = piece in specific
                words.append((specific[piece] if is_specific else generic[piece], is_specific))
                i += size
                break
        else:
            return None
    out: list[str] = []
    joined = False
    for word, is_specific in words:
        if is_specific and joined:
            out[-1] += word.lower()
        else:
            out.append(word)
        joined = is_specific
    return " ".join(out)
