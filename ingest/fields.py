"""Map a file's field names onto the catalog's attributes (aliases, ``--map``, truncation)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.catalog import Layer
from schemas.errors import InvalidInput

DBF_NAME_BYTES = 10


@dataclass(frozen=True)
class FieldMapping:
    """Which source field feeds which attribute, and what was left over."""

    to_attribute: dict[str, str]
    ignored: tuple[str, ...]

    def source_of(self, attribute: str) -> str | None:
        """Return the source field mapped to ``attribute``."""
        for source, name in self.to_attribute.items():
            if name == attribute:
                return source
        return None


def _key(name: str) -> str:
    return name.strip().casefold()


def _truncated(name: str, encoding: str | None) -> str:
    """Return a field name as a DBF stores it: at most 10 bytes in the file's encoding."""
    codec = "gbk" if (encoding or "").upper() in ("GBK", "GB18030", "CP936") else "utf-8"
    raw = name.encode(codec, errors="ignore")[:DBF_NAME_BYTES]
    return raw.decode(codec, errors="ignore")


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Parse ``SRC=DST`` pairs of ``--map``."""
    out: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InvalidInput(f"--map {pair!r}: write SOURCE_FIELD=attribute")
        out[source.strip()] = target.strip()
    return out


def map_fields(
    layer: Layer,
    fields: list[str],
    overrides: dict[str, str] | None = None,
    *,
    dbf_encoding: str | None = None,
    truncated_names: bool = False,
) -> FieldMapping:
    """Return the mapping of ``fields`` onto ``layer``; refuse unknown overrides and gaps."""
    overrides = overrides or {}
    by_key = {_key(f): f for f in fields}
    mapping: dict[str, str] = {}
    names = {a.name for a in layer.attributes}
    for source, target in overrides.items():
        if target not in names:
            raise InvalidInput(
                f"--map {source}={target}: layer {layer.code} has no attribute "
                f"{target!r} (attributes: {', '.join(sorted(names))})"
            )
        if source not in fields:
            raise InvalidInput(
                f"--map {source}={target}: the file has no field {source!r} "
                f"(fields: {', '.join(fields)})"
            )
        mapping[source] = target
    taken = set(mapping.values())
    for attr in layer.attributes:
        if attr.name in taken:
            continue
        for candidate in (attr.name, *attr.aliases):
            keys = [_key(candidate)]
            if truncated_names:
                keys.append(_key(_truncated(candidate, dbf_encoding)))
            found = next(
                (by_key[k] for k in keys if k in by_key and by_key[k] not in mapping), None
            )
            if found is not None:
                mapping[found] = attr.name
                break
    missing = [a for a in layer.attributes if a.required and a.name not in mapping.values()]
    if missing:
        attr = missing[0]
        looked = ", ".join((attr.name, *attr.aliases))
        raise InvalidInput(
            f"the file has no field for the required attribute {attr.name!r} of {layer.code} "
            f"(looked for: {looked}; fields are: {', '.join(fields)}); "
            f"name it with --map FIELD={attr.name}"
        )
    ignored = tuple(f for f in fields if f not in mapping)
    return FieldMapping(to_attribute=mapping, ignored=ignored)
