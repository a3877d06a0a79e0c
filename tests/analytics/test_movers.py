"""Leaderboards, rising stars, decliners and contribution to change."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics.movers import (
    OTHER,
    contribution_to_change,
    gmv_change_contributions,
    leaderboard,
    movers,
    previous_range,
)

from .conftest import FrameFactory

D = date
START, END = D(2026, 11, 16), D(2026, 11, 22)


@pytest.fixture
def daily(creator_daily_frame: FrameFactory) -> pl.DataFrame:
    return creator_daily_frame(
        [
            # previous week
            dict(date=D(2026, 11, 9), creator_id="c1", region="US", gmv=100.0, orders=1),
            dict(date=D(2026, 11, 10), creator_id="c2", region="UK", gmv=300.0, orders=3),
            dict(date=D(2026, 11, 11), creator_id="c3", region="US", gmv=50.0, orders=1),
            dict(date=D(2026, 11, 12), creator_id="c4", region="UK", gmv=1000.0, orders=5),
            # this week
            dict(date=D(2026, 11, 16), creator_id="c1", region="US", gmv=400.0, refunded_gmv=40.0, orders=4),
            dict(date=D(2026, 11, 17), creator_id="c2", region="UK", gmv=150.0, orders=1),
            dict(date=D(2026, 11, 18), creator_id="c3", region="US", gmv=500.0, orders=5),
            dict(date=D(2026, 11, 22), creator_id="c5", region="BR", gmv=10.0, orders=1),
            # outside both weeks
            dict(date=D(2026, 11, 23), creator_id="c4", region="UK", gmv=9999.0, orders=1),
        ]
    )


def test_previous_range() -> None:
    assert previous_range(START, END) == (D(2026, 11, 9), D(2026, 11, 15))
    with pytest.raises(ValueError, match="before start"):
        previous_range(END, START)


def test_leaderboard(daily: pl.DataFrame) -> None:
    result = leaderboard(daily.lazy(), "creator_id", START, END, n=3).collect()

    expected = pl.DataFrame(
        {
            "rank": [1, 2, 3],
            "creator_id": ["c3", "c1", "c2"],
            "gmv": [500.0, 400.0, 150.0],
            "net_gmv": [500.0, 360.0, 150.0],
            "orders": [5, 4, 1],
            "previous_gmv": [50.0, 100.0, 300.0],
            "change": [450.0, 300.0, -150.0],
            "growth_pct": [9.0, 3.0, -0.5],
            "share_of_gmv": [500 / 1060, 400 / 1060, 150 / 1060],
        }
    )
    assert_frame_equal(result.select(expected.columns), expected, check_dtypes=False)


def test_leaderboard_with_attributes(daily: pl.DataFrame) -> None:
    attributes = pl.LazyFrame({"creator_id": ["c1", "c3"], "handle": ["@one", "@three"]})

    result = leaderboard(daily.lazy(), "creator_id", START, END, n=2, attributes=attributes).collect()

    assert result.select("rank", "creator_id", "handle").rows() == [(1, "c3", "@three"), (2, "c1", "@one")]


def test_rising_stars_need_a_minimum_base(daily: pl.DataFrame) -> None:
    rising = movers(daily.lazy(), "creator_id", START, END, "rising", min_base_gmv=60.0).collect()
    declining = movers(daily.lazy(), "creator_id", START, END, "declining", min_base_gmv=60.0).collect()

    # c3 grew 9x from 50, below the base of 60; c5 is new (no base)
    assert rising.select("rank", "creator_id", "growth_pct").rows() == [(1, "c1", 3.0)]
    assert declining.select("rank", "creator_id", "growth_pct").rows() == [(1, "c4", -1.0), (2, "c2", -0.5)]
    with pytest.raises(ValueError, match="unknown direction"):
        movers(daily.lazy(), "creator_id", START, END, "sideways")  # type: ignore[arg-type]


def test_contribution_to_change_by_region(daily: pl.DataFrame) -> None:
    result = contribution_to_change(daily.lazy(), "region", START, END).collect()

    expected = pl.DataFrame(
        {
            "dimension": ["region"] * 3,
            "segment": ["UK", "US", "BR"],
            "previous_gmv": [1300.0, 150.0, 0.0],
            "gmv": [150.0, 900.0, 10.0],
            "contribution": [-1150.0, 750.0, 10.0],
            "share_of_change": [-1150 / -390, 750 / -390, 10 / -390],
            "total_change": [-390.0] * 3,
        }
    )
    assert_frame_equal(result.select(expected.columns), expected)


def test_top_contributors_and_the_rest(daily: pl.DataFrame) -> None:
    result = contribution_to_change(daily.lazy(), "creator_id", START, END, top_n=2).collect()

    assert result.select("segment", "contribution").rows() == [("c4", -1000.0), ("c3", 450.0), (OTHER, 160.0)]
    assert result["contribution_cents"].sum() == result["total_change_cents"][0] == -39000


def test_contributions_for_every_dimension(daily: pl.DataFrame) -> None:
    result = gmv_change_contributions(daily.lazy(), START, END).collect()

    totals = result.group_by("dimension").agg(
        pl.col("contribution_cents").sum(), pl.col("total_change_cents").first()
    )
    assert (totals["contribution_cents"] == -39000).all()
    assert (totals["total_change_cents"] == -39000).all()
    assert result.select("start", "end", "previous_start", "previous_end").unique().rows() == [
        (START, END, D(2026, 11, 9), D(2026, 11, 15))
    ]


def test_empty_inputs(creator_daily_frame: FrameFactory) -> None:
    empty = creator_daily_frame([]).lazy()

    assert leaderboard(empty, "creator_id", START, END).collect().is_empty()
    assert movers(empty, "creator_id", START, END, "rising").collect().is_empty()
    assert contribution_to_change(empty, "region", START, END).collect().is_empty()


rows = st.lists(
    st.tuples(
        st.sampled_from(["US", "UK", "BR", "ID"]),
        st.sampled_from([f"c{i}" for i in range(12)]),
        st.integers(min_value=0, max_value=13),
        st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda value: round(value, 2)),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, top_n=st.integers(min_value=1, max_value=5))
def test_contributions_sum_exactly_to_the_total_change(
    creator_daily_frame: FrameFactory, rows: list[tuple[str, str, int, float]], top_n: int
) -> None:
    daily = creator_daily_frame(
        [
            dict(date=D(2026, 11, 9) + timedelta(days=day), region=region, creator_id=creator, gmv=gmv)
            for region, creator, day, gmv in rows
        ]
    ).lazy()
    previous = sum(gmv for _, _, day, gmv in rows if day < 7)
    current = sum(gmv for _, _, day, gmv in rows if day >= 7)

    for dimension, n in (("region", None), ("creator_id", top_n)):
        result = contribution_to_change(daily, dimension, START, END, top_n=n).collect()
        if result.is_empty():
            assert not rows
            continue
        assert result["contribution_cents"].sum() == result["total_change_cents"][0]
        assert result["total_change"][0] == pytest.approx(current - previous, abs=0.01 * (len(rows) + 1))
        assert result.height <= (n + 1 if n else 4)
