"""Portfolio allocation respects budget, capacity and intervals; the cost curve is the convex frontier."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.allocation import AllocationConfig, allocate, cost_curve


def _candidates(rows: list[tuple[str, str, str, float, float, float]]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows, schema=["entity_id", "strategy", "team", "expected_uplift", "uplift_low", "cost"], orient="row"
    )
    return frame.with_columns(
        entity_kind=pl.lit("creator"), net_value=0.1 * pl.col("expected_uplift") - pl.col("cost")
    )


def test_allocation_by_hand() -> None:
    candidates = _candidates(
        [
            ("a", "s1", "t1", 1000.0, 400.0, 20.0),  # net 80
            ("a", "s2", "t1", 900.0, 300.0, 10.0),  # net 80, same entity: only one of the two
            ("b", "s1", "t1", 700.0, -50.0, 20.0),  # interval crosses zero: skipped
            ("c", "s1", "t2", 600.0, 100.0, 30.0),  # net 30
            ("d", "s2", "t1", 500.0, 100.0, 10.0),  # net 40, but t1 capacity is 1
        ]
    )
    chosen = allocate(candidates, AllocationConfig(budget=100.0, team_capacity={"t1": 1, "t2": 5}))
    assert chosen.select("entity_id", "strategy").rows() == [("a", "s1"), ("c", "s1")]
    assert chosen["cumulative_cost"].to_list() == [20.0, 50.0]
    tight = allocate(candidates, AllocationConfig(budget=25.0, team_capacity={"t1": 5, "t2": 5}))
    assert tight["cost"].sum() <= 25.0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 30), st.sampled_from(["s1", "s2", "s3"]), st.floats(-50, 500), st.floats(1, 60)
        ),
        min_size=1,
        max_size=80,
    ),
    st.floats(0, 500),
    st.integers(0, 10),
)
@settings(max_examples=60, deadline=None)
def test_allocation_never_breaks_a_constraint(rows: list, budget: float, capacity: int) -> None:
    candidates = _candidates(
        [(f"e{e}", s, "t1" if s != "s3" else "t2", u, u - 40.0, c) for e, s, u, c in rows]
    ).unique(subset=["entity_id", "strategy"])
    chosen = allocate(
        candidates, AllocationConfig(budget=budget, team_capacity={"t1": capacity, "t2": capacity})
    )
    assert chosen["cost"].sum() <= budget + 1e-9
    assert chosen["entity_id"].is_unique().all()
    assert (chosen.group_by("team").len()["len"] <= capacity).all()
    assert (chosen["uplift_low"] > 0).all()
    assert (chosen["net_value"] > 0).all()


def test_cost_curve_is_the_concave_frontier() -> None:
    candidates = _candidates(
        [
            ("a", "cheap", "t", 100.0, 1.0, 10.0),  # rate 10
            ("a", "dear", "t", 160.0, 1.0, 40.0),  # upgrade from cheap: +60 for +30 → rate 2
            ("a", "waste", "t", 120.0, 1.0, 50.0),  # dominated by dear: never on the hull
            ("b", "only", "t", 90.0, 1.0, 30.0),  # rate 3
        ]
    )
    curve = cost_curve(candidates)
    assert curve["budget"].to_list() == [0.0, 10.0, 40.0, 70.0]
    assert curve["expected_uplift"].to_list() == [0.0, 100.0, 190.0, 250.0]
    assert curve["entities_treated"].to_list() == [0, 1, 2, 2]
    rates = curve["marginal_rate"].drop_nulls().to_numpy()
    assert np.all(np.diff(rates) <= 0), "marginal returns decrease along the curve"
    best_per_entity = (
        candidates.group_by("entity_id").agg(pl.col("expected_uplift").max())["expected_uplift"].sum()
    )
    assert curve["expected_uplift"][-1] == pytest.approx(best_per_entity)
