"""Masking of personal attributes (``personal: true`` in the catalog) for some readers.

Who sees what (docs/security.md): api/policy.yaml lets only roles allowed personal data
(``analyst``, ``supervisor``, ``admin``) read a restricted layer at all. Of those, supervisors
and admins see personal values as stored; analysts (they load and check data, they need not
identify anybody) get them masked. Masking keeps a value's shape, so an analyst can still
tell that a field is filled and roughly valid:

* names (``*name``): the first character, then ``**`` — ``张三丰`` → ``张**``;
* identity numbers (``*id_number``): the first 6 (region) and last 4 characters, 8 stars
  between — ``440114199001011234`` → ``440114********1234``;
* phones (``phone``, ``*phone``, ``*mobile``): the first 3 and last 4 characters, 4 stars
  between — ``13812345678`` → ``138****5678``;
* any other personal field: ``***``.

A value too short to keep its ends (an ID number of 10 characters or fewer, a phone of 7 or
fewer) becomes all stars of the same shape, never partly shown. ``None`` stays ``None`` (an
empty field tells nothing). Everything here is pure: no database, no request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from schemas.catalog import Layer

#: Roles that read a restricted layer with its personal fields masked.
MASKED_ROLES: Final = frozenset({"analyst"})
#: Roles that read personal fields as stored.
UNMASKED_ROLES: Final = frozenset({"supervisor", "admin"})
STARS: Final = "***"


class Kind(StrEnum):
    """How a personal field is masked, told from its name."""

    name = "name"
    id_number = "id_number"
    phone = "phone"
    other = "other"


def kind_of(field: str) -> Kind:
    """Return how a personal field named ``field`` is masked."""
    lowered = field.lower()
    if lowered.endswith("id_number") or lowered in ("id_card", "sfzh"):
        return Kind.id_number
    if lowered.endswith(("phone", "mobile", "tel")):
        return Kind.phone
    if lowered.endswith("name"):
        return Kind.name
    return Kind.other


def mask_name(value: str) -> str:
    """Return a person's name masked: its first character and ``**`` (``张三`` → ``张**``)."""
    text = value.strip()
    return f"{text[0]}**" if text else STARS


def mask_id_number(value: str) -> str:
    """Return an identity number masked: first 6, 8 stars, last 4."""
    text = value.strip()
    if len(text) <= 10:
        return "*" * max(len(text), 1)
    return f"{text[:6]}********{text[-4:]}"


def mask_phone(value: str) -> str:
    """Return a phone number masked: first 3, 4 stars, last 4."""
    text = value.strip()
    if len(text) <= 7:
        return "*" * max(len(text), 1)
    return f"{text[:3]}****{text[-4:]}"


def mask_value(field: str, value: Any) -> Any:
    """Return the masked value of the personal field ``field`` (None stays None)."""
    if value is None:
        return None
    text = str(value)
    match kind_of(field):
        case Kind.name:
            return mask_name(text)
        case Kind.id_number:
            return mask_id_number(text)
        case Kind.phone:
            return mask_phone(text)
        case _:
            return STARS


def masks_personal(role: str | None) -> bool:
    """Return whether a caller in ``role`` gets personal fields masked.

    None (authentication off: the unrestricted caller) and the roles of
    :data:`UNMASKED_ROLES` see values as stored; every other role that reaches a restricted
    layer gets them masked (a role added later is masked until it is named here).
    """
    if role is None:
        return False
    return str(role) not in UNMASKED_ROLES


def mask_properties(layer: Layer, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Return a feature's properties with the layer's personal fields masked."""
    personal = set(layer.personal_fields)
    return {
        name: mask_value(name, value) if name in personal else value
        for name, value in properties.items()
    }


def without_personal(layer: Layer) -> Layer:
    """Return the layer as a masked reader may query it: its personal attributes left out.

    Filtering or sorting on a masked field would tell its values (``person_name LIKE '张三%'``),
    so for such a reader they are not queryable and not sortable: naming one is a 400.
    """
    if not layer.personal_fields:
        return layer
    kept = tuple(a for a in layer.attributes if not a.personal)
    return layer.model_copy(update={"attributes": kept})


def masked_features(layer: Layer, features: str) -> str:
    """Return comma-joined GeoJSON Feature texts with the layer's personal fields masked."""
    if not features or not layer.personal_fields:
        return features
    parsed = json.loads(f"[{features}]")
    for feature in parsed:
        feature["properties"] = mask_properties(layer, feature.get("properties") or {})
    text = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    return text[1:-1]
