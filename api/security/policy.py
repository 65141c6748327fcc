"""The authorization policy: ``api/policy.yaml`` as a checked model, and the one decision.

:meth:`Policy.decide` answers, for a caller, a route template, a method and the request's
parameters: allowed or not (401 for anonymous callers, 403 for the others), which layers and
sensitivity the request touches, whether it is audited, and the rate limit that applies.
:meth:`Policy.case_action_roles` answers which roles may take a workflow action on a case in
a given status (the ``case_actions`` table; checked by :mod:`api.security.case_actions`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.routing import compile_path

from cases.models import Status
from cases.workflow import TRANSITIONS, Action
from schemas.accounts import Principal, Role
from schemas.catalog import Catalog, Sensitivity
from schemas.errors import ConfigurationError

POLICY_FILE = Path(__file__).resolve().parent.parent / "policy.yaml"
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ORDER = {Sensitivity.public: 0, Sensitivity.internal: 1, Sensitivity.restricted: 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerSource(_Strict):
    """Where a request names its layers: a path parameter or a comma-separated query one."""

    path: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.path is None) == (self.query is None):
            raise ValueError("give exactly one of path or query")
        return self


class RateLimit(_Strict):
    """At most ``requests`` per ``seconds`` per client address (anonymous callers)."""

    requests: int = Field(ge=1)
    seconds: int = Field(ge=1)


class Rule(_Strict):
    """Who may call some routes with some methods."""

    paths: tuple[str, ...] = Field(min_length=1)
    methods: tuple[Method, ...] = Field(min_length=1)
    allow: tuple[str, ...] = ()
    layer: LayerSource | None = None
    system_param: str | None = None
    rate_limit: RateLimit | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _something_allowed(self) -> Self:
        if not self.allow and self.layer is None:
            raise ValueError(f"rule for {self.paths[0]} allows nobody: give allow or layer")
        for path in self.paths:
            if not path.startswith("/"):
                raise ValueError(f"path {path!r} must start with '/'")
            names = set(re.findall(r"{([^}:]+)", path))
            if self.layer is not None and self.layer.path and self.layer.path not in names:
                raise ValueError(f"{path} has no path parameter {self.layer.path!r}")
            if self.system_param and self.system_param not in names:
                raise ValueError(f"{path} has no path parameter {self.system_param!r}")
        return self


class CaseActionRule(_Strict):
    """Who may take one workflow action: ``allow``, or other roles ``from`` some statuses."""

    model_config = ConfigDict(populate_by_name=True)

    allow: tuple[str, ...] = Field(min_length=1)
    from_status: dict[Status, tuple[str, ...]] = Field(default_factory=dict, alias="from")

    def names(self, action: Action, status: Status) -> tuple[str, ...]:
        """Return the role and group names that may take ``action`` from ``status``.

        From a status the action is not legal from, every name of the rule: a role that may
        take the action somewhere then learns that it is not legal now (409), not 403.
        """
        if status in self.from_status:
            return self.from_status[status]
        if (status, action) in TRANSITIONS:
            return self.allow
        return (*self.allow, *(n for names in self.from_status.values() for n in names))


#: The routes whose roles the case_actions table must agree with (see Policy._consistent).
TRANSITIONS_ROUTE = ("/cases/{case_id}/transitions", "POST")
MERGE_ROUTE = ("/cases/{case_id}/merge", "POST")


class Policy(_Strict):
    """The whole file."""

    version: int
    roles: dict[Role, str]
    groups: dict[str, tuple[Role, ...]]
    sensitivity: dict[Sensitivity, tuple[str, ...]]
    rules: tuple[Rule, ...]
    case_actions: dict[Action, CaseActionRule]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        missing = set(Role) - set(self.roles)
        if missing:
            raise ValueError(f"roles must describe every role; missing {sorted(missing)}")
        clash = set(self.groups) & {r.value for r in Role}
        if clash:
            raise ValueError(f"group names must not be role names: {sorted(clash)}")
        if set(self.sensitivity) != set(Sensitivity):
            raise ValueError("sensitivity must list public, internal and restricted")
        actions = self.case_actions.values()
        for names in [
            *(r.allow for r in self.rules),
            *self.sensitivity.values(),
            *(a.allow for a in actions),
            *(names for a in actions for names in a.from_status.values()),
        ]:
            for name in names:
                if name not in self.groups and name not in Role.__members__:
                    raise ValueError(f"{name!r} is neither a role nor a group")
        seen: dict[tuple[str, str], int] = {}
        for index, rule in enumerate(self.rules):
            for path in rule.paths:
                for method in rule.methods:
                    key = (path, method)
                    if key in seen:
                        raise ValueError(
                            f"{method} {path} has two rules (#{seen[key] + 1} and #{index + 1})"
                        )
                    seen[key] = index
        self._check_case_actions()
        return self

    def _check_case_actions(self) -> None:
        missing = sorted(a.value for a in set(Action) - set(self.case_actions))
        if missing:
            raise ValueError(f"case_actions must name every action; missing {missing}")
        for action, entry in self.case_actions.items():
            wrong = sorted(s.value for s in entry.from_status if (s, action) not in TRANSITIONS)
            if wrong:
                raise ValueError(f"case_actions.{action.value}: not legal from {wrong}")
        # The routes' rules and the table must agree: a role let in on the route that may take
        # no action there (or the reverse) is a mistake of the file.
        merge = self._case_action_anywhere(Action.merge)
        others = frozenset().union(
            *(self._case_action_anywhere(a) for a in Action if a is not Action.merge)
        )
        for (path, method), roles in ((TRANSITIONS_ROUTE, others), (MERGE_ROUTE, merge)):
            rule = self._index.get((path, method))
            if rule is not None and self.expand(rule.allow) != roles:
                raise ValueError(
                    f"{method} {path} allows {sorted(r.value for r in self.expand(rule.allow))}"
                    f" but case_actions give {sorted(r.value for r in roles)}"
                )

    def _case_action_anywhere(self, action: Action) -> frozenset[Role]:
        entry = self.case_actions[action]
        return self.expand([*entry.allow, *(n for v in entry.from_status.values() for n in v)])

    def case_action_roles(self, action: Action, status: Status) -> frozenset[Role]:
        """Return the roles that may take a workflow action on a case in ``status``."""
        return self.expand(self.case_actions[action].names(action, status))

    def expand(self, names: Iterable[str]) -> frozenset[Role]:
        """Return the roles that role and group names stand for."""
        roles: set[Role] = set()
        for name in names:
            roles.update(self.groups[name] if name in self.groups else (Role(name),))
        return frozenset(roles)

    @cached_property
    def _index(self) -> dict[tuple[str, str], Rule]:
        return {(p, m): r for r in self.rules for p in r.paths for m in r.methods}

    @cached_property
    def _compiled(self) -> tuple[tuple[re.Pattern[str], str, str, Rule], ...]:
        out = []
        for (path, method), rule in self._index.items():
            regex, _, _ = compile_path(path)
            out.append((regex, path, method, rule))
        return tuple(out)

    def rule(self, path: str, method: str) -> Rule | None:
        """Return the rule of a route template and method (HEAD falls back to GET)."""
        found = self._index.get((path, method))
        if found is None and method == "HEAD":
            found = self._index.get((path, "GET"))
        return found

    def templates(self) -> set[tuple[str, str]]:
        """Return every (path, method) the policy names."""
        return set(self._index)

    def candidates(self, path: str, method: str) -> list[tuple[str, Rule, dict[str, str]]]:
        """Return the templates (with their rule and parameters) a concrete path matches."""
        wanted = {method, "GET"} if method == "HEAD" else {method}
        found = []
        for regex, template, rule_method, rule in self._compiled:
            if rule_method in wanted:
                match = regex.match(path)
                if match:
                    found.append((template, rule, match.groupdict()))
        return found

    def decide(
        self,
        principal: Principal,
        *,
        method: str,
        template: str,
        rule: Rule | None,
        path_params: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        catalog: Catalog,
    ) -> Decision:
        """Return whether ``principal`` may call ``method template`` with these parameters."""
        action = f"{method} {template}"
        if rule is None:
            return Decision(
                action=action,
                allowed=False,
                status=403,
                reason=f"no policy rule for {action}; every route needs one in api/policy.yaml",
                audit=method in WRITE_METHODS,
            )
        allowed = self.expand(rule.allow) if rule.allow else frozenset(Role)
        codes: tuple[str, ...] = ()
        level = Sensitivity.public
        if rule.layer is not None:
            codes = _layer_codes(rule.layer, path_params, query)
            level = _strictest(catalog, codes)
            allowed = allowed & self.expand(self.sensitivity[level])
        target = _target(codes, path_params)
        audit = method in WRITE_METHODS or level is Sensitivity.restricted
        base = Decision(
            action=action,
            allowed=True,
            status=200,
            reason="",
            audit=audit,
            target=target,
            layers=codes,
            sensitivity=level,
            rate_limit=rule.rate_limit if principal.role is Role.anonymous else None,
        )
        if principal.role not in allowed:
            what = f"{level.value} layer {', '.join(codes)}" if rule.layer and codes else action
            if principal.role is Role.anonymous:
                return base.deny(401, f"sign in to call {what}")
            return base.deny(403, f"the role {principal.role.value} may not call {what}")
        if rule.system_param and principal.role is Role.system:
            bound = path_params.get(rule.system_param)
            if bound != principal.system:
                return base.deny(
                    403, f"this API key is bound to {principal.system!r}, not {bound!r}"
                )
        return base


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy says about one request."""

    action: str
    allowed: bool
    status: int
    reason: str
    audit: bool
    target: str | None = None
    layers: tuple[str, ...] = ()
    sensitivity: Sensitivity = Sensitivity.public
    rate_limit: RateLimit | None = None

    def deny(self, status: int, reason: str) -> Decision:
        """Return this decision turned into a refusal."""
        return Decision(
            action=self.action,
            allowed=False,
            status=status,
            reason=reason,
            audit=self.audit,
            target=self.target,
            layers=self.layers,
            sensitivity=self.sensitivity,
        )


def _layer_codes(
    source: LayerSource, path_params: Mapping[str, str], query: Iterable[tuple[str, str]]
) -> tuple[str, ...]:
    if source.path is not None:
        value = path_params.get(source.path)
        return (value,) if value else ()
    values = [v for k, v in query if k == source.query]
    return tuple(dict.fromkeys(p.strip() for v in values for p in v.split(",") if p.strip()))


def _strictest(catalog: Catalog, codes: Iterable[str]) -> Sensitivity:
    level = Sensitivity.public
    for code in codes:
        if catalog.has_layer(code):
            found = catalog.layer(code).sensitivity
            if _ORDER[found] > _ORDER[level]:
                level = found
    return level


def _target(codes: tuple[str, ...], path_params: Mapping[str, str]) -> str | None:
    if codes:
        return ",".join(codes)[:500]
    if path_params:
        return "&".join(f"{k}={v}" for k, v in path_params.items())[:500]
    return None


def load_policy(path: Path | None = None) -> Policy:
    """Read and check a policy file; raise ConfigurationError naming what is wrong."""
    path = path or POLICY_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Policy.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read the policy {path}: {exc}") from None
    except ValueError as exc:
        raise ConfigurationError(f"the policy {path} is not valid: {exc}") from None


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    """Return the packaged policy, read once."""
    return load_policy()
