"""Load the routing rules and the working calendar from their reviewed data files.

``routing.yaml`` holds the 13 categories and 36 items of the mechanism; ``calendar.yaml`` the
weekends, public holidays, make-up working days and office hours. A file that does not satisfy
:mod:`cases.rules.models` fails with a message naming the file, the item and the field, as the
layer catalog does (:mod:`layers.registry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cases.rules.models import (
    CATEGORY_COUNT,
    ITEM_COUNT,
    CalendarYear,
    Category,
    Deadline,
    DeadlineUnit,
    Holiday,
    Item,
    Level,
    RoutingRules,
    Weekday,
    WorkingCalendar,
    WorkPeriod,
)
from schemas.catalog import Catalog
from schemas.error_location import describe_location
from schemas.errors import CatalogError

__all__ = [
    "CALENDAR_FILE",
    "CATEGORY_COUNT",
    "ITEM_COUNT",
    "ROUTING_FILE",
    "CalendarYear",
    "Category",
    "Deadline",
    "DeadlineUnit",
    "Holiday",
    "Item",
    "Level",
    "RoutingRules",
    "Weekday",
    "WorkPeriod",
    "WorkingCalendar",
    "check_against_catalog",
    "load_calendar",
    "load_routing_rules",
]

RULES_DIR: Final = Path(__file__).parent
ROUTING_FILE: Final = RULES_DIR / "routing.yaml"
CALENDAR_FILE: Final = RULES_DIR / "calendar.yaml"

#: List fields whose entries are named by one of their keys in error messages.
_NAMED_LISTS: Final = {
    "categories": ("category", "code"),
    "items": ("item", "code"),
    "years": ("year", "year"),
    "holidays": ("holiday", "name"),
    "working_hours": ("working period", "start"),
}
M = TypeVar("M", bound=BaseModel)


def _read(path: Path, model: type[M], what: str) -> M:
    """Read a YAML mapping from ``path`` and validate it as ``model``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping with {what}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = describe_location(data, tuple(first["loc"]), _NAMED_LISTS)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        where = "" if where == "top level" else f"{where}: "
        raise CatalogError(f"{path}: {where}{message}{more}") from None


def load_routing_rules(path: Path | None = None) -> RoutingRules:
    """Read and validate the routing rules (default: the packaged ``routing.yaml``)."""
    return _read(path or ROUTING_FILE, RoutingRules, "'version', 'categories' and 'items'")


def load_calendar(path: Path | None = None) -> WorkingCalendar:
    """Read and validate the working calendar (default: the packaged ``calendar.yaml``)."""
    return _read(path or CALENDAR_FILE, WorkingCalendar, "'working_hours' and 'years'")


def check_against_catalog(rules: RoutingRules, catalog: Catalog) -> None:
    """Check that every asset layer and asset filter of the rules exists in the catalog."""
    for item in rules.items:
        for code in item.asset_layers:
            if not catalog.has_layer(code):
                raise CatalogError(
                    f"item {item.code}, field asset_layers: {code!r} is not a catalog layer"
                )
            layer = catalog.layer(code)
            for name, values in (item.asset_filter or {}).items():
                try:
                    allowed = layer.attribute(name).enum_values
                except KeyError:
                    raise CatalogError(
                        f"item {item.code}, field asset_filter: layer {code} has no "
                        f"attribute {name!r}"
                    ) from None
                unknown = [v for v in values if allowed and v not in allowed]
                if unknown:
                    raise CatalogError(
                        f"item {item.code}, field asset_filter: {name} of {code} has no "
                        f"value {', '.join(unknown)}"
                    )
