"""Route a case: item → level, unit, fallback and deadline; and the versioned rule book.

The rules name units generically where the place decides: "村(居)委会" is the committee of the
village/community the case falls in, "镇(街)…" the office of its town/subdistrict. Those are
resolved from the snapped location; without a location they stay unresolved (None) until a
dispatcher places the case. District departments are named as they are.

Every version of the rules is kept in ``routing_rule_versions``; the packaged ``routing.yaml`` is
version 1 (seeded by ``sibiao db upgrade``, or on first use). A case records the version it was
routed with, so later rule changes never re-route it silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects import postgresql

from cases.calendar import add_deadline
from cases.rules import (
    Item,
    Level,
    RoutingRules,
    WorkingCalendar,
    check_against_catalog,
    load_routing_rules,
)
from schemas.catalog import Catalog
from schemas.errors import CatalogError, InvalidInput, NotFound
from schemas.tables import routing_rule_versions

TOWN_MARK: Final = "镇(街)"
VILLAGE_MARK: Final = "村(居)委会"
PACKAGED_AUTHOR: Final = "routing.yaml (packaged)"


@dataclass(frozen=True, slots=True)
class Route:
    """Who must handle a case and by when, under which version of the rules."""

    item_code: str
    category_code: str
    level: Level
    department: str  # the rule's lead department as written (generic for town/village items)
    responsible_unit: str | None  # the actual unit; None until the place is known
    fallback_department: str | None
    deadline: datetime
    rule_version: int


def _marks(name: str) -> str:
    return name.replace("（", "(").replace("）", ")")


def resolve_unit(name: str, *, town_name: str | None, village_name: str | None) -> str | None:
    """Return the unit a rule names at a place; None when the place is needed but unknown."""
    name = _marks(name)
    if VILLAGE_MARK in name:
        if not village_name:
            return None
        return village_name if name == VILLAGE_MARK else name.replace(VILLAGE_MARK, village_name)
    if TOWN_MARK in name:
        return name.replace(TOWN_MARK, town_name) if town_name else None
    return name


def item_of(rules: RoutingRules, item_code: str) -> Item:
    """Return the item of a code; raise InvalidInput listing nothing long when unknown."""
    try:
        return rules.item(item_code)
    except KeyError:
        raise InvalidInput(
            f"unknown item {item_code!r} in routing rules version {rules.version}"
        ) from None


def route(
    rules: RoutingRules,
    item_code: str,
    *,
    calendar: WorkingCalendar,
    start: datetime,
    town_name: str | None = None,
    village_name: str | None = None,
) -> Route:
    """Return the route of an item at a place, with the deadline counted from ``start``."""
    item = item_of(rules, item_code)
    return Route(
        item_code=item.code,
        category_code=item.category,
        level=item.level,
        department=item.lead_department,
        responsible_unit=resolve_unit(
            item.lead_department, town_name=town_name, village_name=village_name
        ),
        fallback_department=resolve_unit(
            item.fallback_department, town_name=town_name, village_name=village_name
        ),
        deadline=add_deadline(calendar, start, item.deadline),
        rule_version=rules.version,
    )


# --- the rule book ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def packaged_rules() -> RoutingRules:
    """Return the rules of the packaged ``routing.yaml``, read once per process."""
    return load_routing_rules()


_PARSED: dict[tuple[str, int, str], RoutingRules] = {}
#: The newest version and its row stamp: ``xmin`` (transaction ids are cluster-wide, so a row
#: rewritten or a database re-created gets a new one) and ``ctid`` (a new row version has a new
#: place, even when rewritten in the transaction that wrote it). The rules text is read only
#: when the stamp is not in the process cache.
_STAMP: Final = "xmin::text || '/' || ctid::text AS stamp"
NEWEST_STAMP: Final = (
    f"SELECT version, {_STAMP} FROM routing_rule_versions ORDER BY version DESC LIMIT 1"
)
_NEWEST = text(NEWEST_STAMP)
_STAMP_OF = text(f"SELECT version, {_STAMP} FROM routing_rule_versions WHERE version = :version")
_ONE = text(
    f"SELECT version, {_STAMP}, rules::text FROM routing_rule_versions WHERE version = :version"
)


def _parse(version: int, stored: str) -> RoutingRules:
    """Return stored rules as a model."""
    return RoutingRules.model_validate({**json.loads(stored), "version": version})


def _server(conn: Connection) -> str:
    """Return which server and database a connection talks to (the cache's first key)."""
    return conn.engine.url.render_as_string(hide_password=True)


def _remember(key: tuple[str, int, str], rules: RoutingRules) -> RoutingRules:
    if len(_PARSED) > 64:
        _PARSED.clear()
    _PARSED[key] = rules
    return rules


def cached_rules(conn: Connection, version: int, stamp: str) -> RoutingRules:
    """Return the rules of a stored version whose row stamp is known; read them on a miss.

    The rules are parsed once per process and version: a request that already knows the newest
    version and stamp (see :data:`NEWEST_STAMP`) costs no query when nothing changed.
    """
    key = (_server(conn), version, stamp)
    if (found := _PARSED.get(key)) is not None:
        return found
    row = conn.execute(_ONE, {"version": version}).first()
    if row is None:
        raise NotFound(f"routing rules version {version} does not exist")
    return _remember((key[0], int(row[0]), str(row[1])), _parse(int(row[0]), str(row[2])))


def seed_rules(conn: Connection, *, now: datetime | None = None) -> bool:
    """Store the packaged rules as their version (1) if absent; return whether it was added."""
    packaged = packaged_rules()
    stmt = postgresql.insert(routing_rule_versions).values(
        version=packaged.version,
        rules=packaged.model_dump(mode="json"),
        author=PACKAGED_AUTHOR,
        note="the reviewed rules shipped with the platform",
        **({"created_at": now} if now is not None else {}),
    )
    result = conn.execute(stmt.on_conflict_do_nothing(index_elements=["version"]))
    return bool(result.rowcount)


def rules_version(conn: Connection, version: int) -> RoutingRules:
    """Return one stored version of the rules."""
    row = conn.execute(_STAMP_OF, {"version": version}).first()
    if row is None:
        if version == packaged_rules().version and seed_rules(conn):
            return rules_version(conn, version)
        raise NotFound(f"routing rules version {version} does not exist")
    return cached_rules(conn, int(row[0]), str(row[1]))


def current_rules(conn: Connection) -> RoutingRules:
    """Return the newest version of the rules (seeding the packaged ones on first use).

    One small query (version and row stamp); the rules themselves come from the process cache.
    """
    row = conn.execute(_NEWEST).first()
    if row is None:
        seed_rules(conn)
        return rules_version(conn, packaged_rules().version)
    return cached_rules(conn, int(row[0]), str(row[1]))


def update_rules(
    conn: Connection,
    rules: RoutingRules | Mapping[str, Any],
    author: str,
    *,
    catalog: Catalog | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> int:
    """Validate and store new rules as the next version; return that version number."""
    if not author or not author.strip():
        raise InvalidInput("a rule change needs an author")
    data = rules.model_dump(mode="json") if isinstance(rules, RoutingRules) else dict(rules)
    data.setdefault("version", 1)
    try:
        checked = RoutingRules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "rules"
        raise InvalidInput(f"routing rules, {where}: {first['msg']}") from None
    if catalog is not None:
        try:
            check_against_catalog(checked, catalog)
        except CatalogError as exc:
            raise InvalidInput(f"routing rules: {exc.message}") from None
    seed_rules(conn)
    conn.execute(text("LOCK TABLE routing_rule_versions IN SHARE ROW EXCLUSIVE MODE"))
    latest = conn.execute(select(func.max(routing_rule_versions.c.version))).scalar_one()
    version = int(latest or 0) + 1
    stored = checked.model_copy(update={"version": version})
    conn.execute(
        routing_rule_versions.insert().values(
            version=version,
            rules=stored.model_dump(mode="json"),
            author=author.strip(),
            note=note,
            **({"created_at": now} if now is not None else {}),
        )
    )
    return version
