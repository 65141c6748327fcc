"""The generation plan: for every catalog layer, a target count and a placement strategy."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from layers.synthetic.yamlfile import read_yaml
from schemas.catalog import Catalog
from schemas.errors import CatalogError

PLAN_FILE = Path(__file__).with_name("plan.yaml")


class LayerPlan(BaseModel):
    """How one layer is generated and how many features scale 1 should have."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: int = Field(ge=0, description="features at scale 1 (Huadu-sized)")
    strategy: str = Field(min_length=1)
    scales: bool = Field(default=True, description="whether the count grows with --scale")
    target_length_km: float | None = Field(default=None, ge=0, description="lines, at scale 1")
    target_totals: dict[str, float] = Field(
        default_factory=dict, description="attribute sums at scale 1, e.g. residents"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    def expected(self, scale: float) -> float:
        """Return the expected count at ``scale``."""
        return self.target * scale if self.scales else float(self.target)


class Plan(BaseModel):
    """The plan of every layer, by layer code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: dict[str, LayerPlan]

    def check(self, catalog: Catalog, strategies: set[str], *, strict: bool = False) -> None:
        """Raise CatalogError unless every catalog layer has a plan with a known strategy.

        ``strict`` also refuses plans for layers the catalog lacks (a typo in plan.yaml);
        a deployment with a smaller catalog checks without it.
        """
        codes = {layer.code for layer in catalog.layers}
        missing = sorted(codes - set(self.layers))
        unknown = sorted(set(self.layers) - codes)
        bad = sorted(
            f"{c} ({p.strategy})" for c, p in self.layers.items() if p.strategy not in strategies
        )
        problems = []
        if missing:
            problems.append(f"layers without a plan: {', '.join(missing)}")
        if unknown and strict:
            problems.append(f"plans for layers not in the catalog: {', '.join(unknown)}")
        if bad:
            problems.append(f"unknown strategies: {', '.join(bad)}")
        if problems:
            raise CatalogError(f"{PLAN_FILE}: " + "; ".join(problems))


def read_plan(path: Path = PLAN_FILE) -> Plan:
    """Read and validate a plan file."""
    try:
        return Plan.model_validate(read_yaml(path))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot be read: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CatalogError(f"{path}: {where}: {err['msg']}") from None


@lru_cache(maxsize=1)
def default_plan() -> Plan:
    """Return the packaged plan."""
    return read_plan()
