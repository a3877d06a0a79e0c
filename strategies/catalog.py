"""The strategy catalog: strategies as data, loaded once from ``catalog.toml``."""

from __future__ import annotations

import operator
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Literal

import polars as pl

from core.schema import STRATEGIES

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
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
    """Read and validate the catalog file."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    strategies = []
    for entry in raw["strategy"]:
        if entry["id"] not in STRATEGIES:
            raise ValueError(f"{path}: strategy {entry['id']!r} is not one of {', '.join(STRATEGIES)}")
        if entry["target"] not in ("creator", "merchant"):
            raise ValueError(f"{path}: strategy {entry['id']!r} has unknown target {entry['target']!r}")
        conditions = []
        for c in entry.get("eligibility", []):
            if c["op"] not in _OPS:
                raise ValueError(f"{path}: strategy {entry['id']!r}: unknown operator {c['op']!r}")
            conditions.append(Condition(c["feature"], c["op"], float(c["value"])))
        cost = entry["cost"]
        strategies.append(
            Strategy(
                id=entry["id"],
                target=entry["target"],
                name=entry["name"],
                description=entry["description"],
                team=entry["team"],
                cost=Cost(
                    kind=cost["kind"],
                    amount=float(cost.get("amount", 0.0)),
                    rate=float(cost.get("rate", 0.0)),
                ),
                eligibility=tuple(conditions),
            )
        )
    ids = [s.id for s in strategies]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate strategy ids")
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
