"""Turning per-entity, per-strategy predictions into a portfolio: who gets what under a budget and the
teams' capacities, and the cost curve of total expected incremental GMV against budget.

The cost curve follows the multi-armed Qini idea of Sverdrup, Wu, Athey & Wager ("Qini curves for
multi-armed treatment rules", maq): for each entity, only the arms on the upper-left convex hull of
(cost, expected uplift), starting from "do nothing" at (0, 0), are efficient; moving along an entity's
hull buys uplift at decreasing marginal rates. Merging every entity's hull segments by marginal rate,
highest first, and accumulating gives the best expected uplift attainable at each budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class AllocationConfig:
    """Constraints of one allocation."""

    budget: float
    team_capacity: dict[str, int]
    require_positive_low: bool = True  # only allocate where the interval's lower bound is above zero


def allocate(candidates: pl.DataFrame, cfg: AllocationConfig) -> pl.DataFrame:
    """Greedy portfolio: best net value first, at most one strategy per entity, within the budget and each
    team's capacity, and (by default) only where the uplift interval lies above zero.

    ``candidates`` needs entity_kind, entity_id, strategy, team, expected_uplift, uplift_low, cost and
    net_value. Returns the chosen rows with ``cumulative_cost``. The greedy pass is sequential by nature
    (each pick changes what remains feasible); it runs once over the sorted candidates in numpy.
    """
    pool = candidates.filter(pl.col("net_value") > 0)
    if cfg.require_positive_low:
        pool = pool.filter(pl.col("uplift_low") > 0)
    pool = pool.sort("net_value", "expected_uplift", descending=True)
    if pool.height == 0:
        return pool.with_columns(cumulative_cost=pl.lit(0.0))
    entity = pool.select(pl.concat_str("entity_kind", "entity_id")).to_series().to_numpy()
    team = pool["team"].to_numpy()
    cost = pool["cost"].to_numpy()
    taken: set[str] = set()
    left = dict(cfg.team_capacity)
    spent = 0.0
    chosen = np.zeros(pool.height, dtype=bool)
    for i in range(pool.height):
        if entity[i] in taken or left.get(team[i], 0) <= 0 or spent + cost[i] > cfg.budget:
            continue
        chosen[i] = True
        taken.add(entity[i])
        left[team[i]] -= 1
        spent += cost[i]
    return pool.filter(pl.Series(chosen)).with_columns(cumulative_cost=pl.col("cost").cum_sum())


def _hull_segments(cost: np.ndarray, uplift: np.ndarray) -> list[tuple[int, int, float, float]]:
    """Upper convex hull from (0, 0) over one entity's arms: (from arm or -1, to arm, Δcost, Δuplift)."""
    segments: list[tuple[int, int, float, float]] = []
    here_cost, here_uplift, here = 0.0, 0.0, -1
    while True:
        gain = uplift - here_uplift
        spend = cost - here_cost
        ok = (spend > 0) & (gain > 0)
        if not ok.any():
            return segments
        rate = np.where(ok, gain / np.where(spend > 0, spend, 1.0), -np.inf)
        best = int(np.argmax(rate))
        segments.append((here, best, float(spend[best]), float(gain[best])))
        here_cost, here_uplift, here = float(cost[best]), float(uplift[best]), best


def cost_curve(candidates: pl.DataFrame, points: int = 60) -> pl.DataFrame:
    """Best total expected incremental GMV at each budget across all entities and strategies (each entity
    receives at most one strategy), with the strategy mix at each point.

    Returns budget, expected_uplift, entities_treated and marginal_rate (uplift per extra dollar) at
    ``points`` budgets spread over the curve, plus the exact breakpoints' end.
    """
    segments: list[tuple[str, bool, float, float, float]] = []
    for (kind, entity_id), group in candidates.group_by("entity_kind", "entity_id"):
        for _from, _to, spend, gain in _hull_segments(
            group["cost"].to_numpy(), group["expected_uplift"].to_numpy()
        ):
            segments.append((f"{kind}:{entity_id}", _from == -1, spend, gain, gain / spend))
    if not segments:
        return pl.DataFrame(
            schema={
                "budget": pl.Float64,
                "expected_uplift": pl.Float64,
                "entities_treated": pl.Int64,
                "marginal_rate": pl.Float64,
            }
        )
    frame = (
        pl.DataFrame(segments, schema=["entity", "new_entity", "cost", "uplift", "rate"], orient="row")
        # ties (entities at the same rate) in entity order: the candidates' group order is arbitrary
        .sort(["rate", "entity", "cost"], descending=[True, False, False])
        .with_columns(
            budget=pl.col("cost").cum_sum(),
            expected_uplift=pl.col("uplift").cum_sum(),
            entities_treated=pl.col("new_entity").cast(pl.Int64).cum_sum(),
            marginal_rate=pl.col("rate"),
        )
    )
    keep = np.unique(np.round(np.linspace(0, frame.height - 1, min(points, frame.height))).astype(int))
    start = pl.DataFrame(
        {"budget": [0.0], "expected_uplift": [0.0], "entities_treated": [0], "marginal_rate": [None]}
    )
    curve = frame[keep].select("budget", "expected_uplift", "entities_treated", "marginal_rate")
    return pl.concat([start.cast(curve.schema), curve])
