"""Turn a pydantic error location in a data file into words a reviewer can find."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe_location(
    data: Any, loc: tuple[int | str, ...], named_lists: Mapping[str, tuple[str, str]]
) -> str:
    """Return e.g. 'layer grid_cell, attribute code, field pattern' for a location.

    ``named_lists`` maps a list's key to the label of its entries and the key that names
    an entry (``{"layers": ("layer", "code")}``); other keys read as 'field KEY'.
    """
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in named_lists and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            label, name_key = named_lists[str(key)]
            index = int(loc[i + 1])
            try:
                node = node[key][index]
                name = node.get(name_key, f"#{index + 1}")
            except (KeyError, IndexError, TypeError, AttributeError):
                node, name = None, f"#{index + 1}"
            parts.append(f"{label} {name}")
            i += 2
            continue
        parts.append(f"field {key}")
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
        i += 1
    return ", ".join(parts) if parts else "top level"
