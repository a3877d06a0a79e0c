"""The strategy catalog: strategies as data, loaded once from the catalog file ``core/strategies.toml``.

``core.strategies`` reads each entry's identity (id, target kind, aliases) for the schema and ingest;
this module reads the same entries' name, team, cost and eligibility. One file, one entry per strategy.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Literal

import polars as pl

from core.strategies import CATALOG_PATH, STRATEGY_REGISTRY, read_catalog_file, registry_from

_OPS: dict[str, Callable[[pl.Expr, float], pl.Expr]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Condition:
    """One eligibility condition on a feature."""

    feature: str
    op: str
    value: float

    def expr(self) -> pl.Expr:
        return _OPS[self.op](pl.col(self.feature), self.value).fill_null(False)

    def text(self) -> str:
        return f"{self.feature.replace('_', ' ')} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Cost:
    """What a strategy costs the platform for one entity over the horizon."""

    kind: Literal["fixed", "share_of_gmv"]
    amount: float = 0.0
    rate: float = 0.0

    def expr(self, expected_gmv_with_strategy: pl.Expr) -> pl.Expr:
        if self.kind == "fixed":
            return pl.lit(self.amount, dtype=pl.Float64)
        return self.rate * expected_gmv_with_strategy.clip(lower_bound=0.0)

    def text(self) -> str:
        return f"${self.amount:,.0f} per entity" if self.kind == "fixed" else f"{self.rate:.0%} of GMV"


@dataclass(frozen=True)
class Strategy:
    """A named action with a target kind, eligibility rule, cost model and owning team."""

    id: str
    target: Literal["creator", "merchant"]
    name: str
    description: str
    team: str
    cost: Cost
    eligibility: tuple[Condition, ...]
    aliases: tuple[str, ...] = ()

    def eligible(self) -> pl.Expr:
        """True where an entity's features meet every condition."""
        return reduce(operator.and_, (c.expr() for c in self.eligibility), pl.lit(True))


@dataclass(frozen=True)
class Catalog:
    """All strategies, the platform's take rate and the teams' capacities."""

    strategies: tuple[Strategy, ...]
    take_rate: float
    horizon_days: int
    team_capacity: dict[str, int]

    def for_target(self, target: str) -> tuple[Strategy, ...]:
        return tuple(s for s in self.strategies if s.target == target)

    def get(self, strategy_id: str) -> Strategy:
        for strategy in self.strategies:
            if strategy.id == strategy_id:
                return strategy
        raise KeyError(f"unknown strategy {strategy_id!r}; known: {', '.join(s.id for s in self.strategies)}")

    def frame(self) -> pl.DataFrame:
        """The catalog as a table (for pages and reports)."""
        return pl.DataFrame(
            {
                "strategy": [s.id for s in self.strategies],
                "name": [s.name for s in self.strategies],
                "target": [s.target for s in self.strategies],
                "team": [s.team for s in self.strategies],
                "cost": [s.cost.text() for s in self.strategies],
                "eligibility": [
                    " and ".join(c.text() for c in s.eligibility) or "all" for s in self.strategies
                ],
                "description": [s.description for s in self.strategies],
            }
        )


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Read and validate a catalog file (default: the shipped one, whose strategies the data knows).

    Every strategy of another file must be one the shipped catalog declares, for the same entity kind:
    the schema and ingest know only those.
    """
    raw = read_catalog_file(path)
    registry = registry_from(raw, str(path))
    known = STRATEGY_REGISTRY.kinds
    strategies = []
    for entry, identity in zip(raw["strategy"], registry.strategies, strict=True):
        if known.get(identity.id) != identity.kind:
            raise ValueError(
                f"{path}: strategy {identity.id!r} ({identity.kind}) is not one of the catalog's "
                f"{identity.kind} strategies: {', '.join(STRATEGY_REGISTRY.ids(identity.kind))}"
            )
        conditions = []
        for c in entry.get("eligibility", []):
            if c["op"] not in _OPS:
                raise ValueError(f"{path}: strategy {entry['id']!r}: unknown operator {c['op']!r}")
            conditions.append(Condition(c["feature"], c["op"], float(c["value"])))
        cost = entry["cost"]
        strategies.append(
            Strategy(
                id=identity.id,
                target=identity.kind,
                name=entry["name"],
                description=entry["description"],
                team=entry["team"],
                cost=Cost(
                    kind=cost["kind"],
                    amount=float(cost.get("amount", 0.0)),
                    rate=float(cost.get("rate", 0.0)),
                ),
                eligibility=tuple(conditions),
                aliases=identity.aliases,
            )
        )
    capacity = {str(k): int(v) for k, v in raw.get("teams", {}).items()}
    missing = {s.team for s in strategies} - capacity.keys()
    if missing:
        raise ValueError(f"{path}: no capacity declared for teams {sorted(missing)}")
    return Catalog(
        strategies=tuple(strategies),
        take_rate=float(raw["platform"]["take_rate"]),
        horizon_days=int(raw["platform"]["horizon_days"]),
        team_capacity=capacity,
    )
