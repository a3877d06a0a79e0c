"""Tiers, lifecycle stages and value segments."""

from __future__ import annotations

from datetime import date

import polars as pl
from polars.testing import assert_frame_equal

from analytics.segments import (
    LIFECYCLE_STAGES,
    SegmentConfig,
    creator_segments,
    lifecycle_expr,
    merchant_segments,
    tier_expr,
    value_segment_expr,
)


def test_tier_boundaries() -> None:
    followers = [0, 9_999, 10_000, 99_999, 100_000, 499_999, 500_000, 999_999, 1_000_000, 50_000_000]

    result = pl.DataFrame({"followers": followers}).select(tier_expr(pl.col("followers")).alias("tier"))

    expected = ["nano", "nano", "micro", "micro", "mid", "mid", "macro", "macro", "mega", "mega"]
    assert result["tier"].to_list() == expected


def test_lifecycle_rules_in_order() -> None:
    frame = pl.DataFrame(
        {
            "case": [
                "new",
                "dormant",
                "never_active",
                "declining",
                "ramping",
                "first_sales",
                "established",
                "old_grower",
            ],
            "tenure_days": [10, 400, 60, 400, 100, 100, 400, 400],
            "days_since_last_activity": [1, 28, None, 2, 2, 2, 2, 2],
            "gmv_28d": [500.0, 0.0, 0.0, 69.0, 130.0, 5.0, 100.0, 500.0],
            "gmv_prev_28d": [0.0, 100.0, 0.0, 100.0, 100.0, 0.0, 100.0, 100.0],
        }
    )

    result = frame.select(
        "case",
        lifecycle_expr(
            pl.col("tenure_days"),
            pl.col("days_since_last_activity"),
            pl.col("gmv_28d"),
            pl.col("gmv_prev_28d"),
            SegmentConfig(),
        ).alias("stage"),
    )

    expected = pl.DataFrame(
        {
            "case": frame["case"],
            "stage": [
                "new",
                "dormant",
                "dormant",
                "declining",
                "ramping",
                "ramping",
                "established",
                "established",
            ],
        }
    )
    assert_frame_equal(result, expected)
    assert set(result["stage"]) <= set(LIFECYCLE_STAGES)


def test_value_segments_by_gmv_rank() -> None:
    gmv = [float(value) for value in range(200, 0, -1)] + [0.0, 0.0]

    result = pl.DataFrame({"gmv": gmv}).select(
        value_segment_expr(pl.col("gmv"), SegmentConfig()).alias("segment")
    )

    counts = dict(result.group_by("segment").len().iter_rows())
    # of 200 sellers: ranks 1-2 are the top 1 %, 3-20 the rest of the top 10 %, 21-100 core
    assert counts == {"top_1pct": 2, "top_10pct": 18, "core": 80, "long_tail": 100, "inactive": 2}
    assert result["segment"][0] == "top_1pct"
    assert result["segment"][-1] == "inactive"


def test_creator_and_merchant_segments_from_features() -> None:
    as_of = date(2026, 11, 23)
    creators = pl.LazyFrame(
        {
            "as_of": [as_of, as_of],
            "creator_id": ["c1", "c2"],
            "region": ["US", "UK"],
            "primary_category": ["beauty", "home"],
            "tier": ["nano", "mid"],
            "tenure_days": [5, 300],
            "days_since_last_activity": [1, 40],
            "gmv_28d": [10.0, 0.0],
            "gmv_prev_28d": [0.0, 0.0],
            "gmv_91d": [10.0, 0.0],
        }
    )
    merchants = pl.LazyFrame(
        {
            "as_of": [as_of],
            "merchant_id": ["m1"],
            "region": ["US"],
            "category": ["beauty"],
            "tenure_days": [300],
            "days_since_last_order": [3],
            "gmv_28d": [50.0],
            "gmv_prev_28d": [100.0],
            "gmv_91d": [150.0],
        }
    )

    creator_result = (
        creator_segments(creators).select("creator_id", "lifecycle_stage", "value_segment").collect()
    )
    merchant_result = (
        merchant_segments(merchants).select("merchant_id", "lifecycle_stage", "value_segment").collect()
    )

    assert creator_result.rows() == [("c1", "new", "top_1pct"), ("c2", "dormant", "inactive")]
    assert merchant_result.rows() == [("m1", "declining", "top_1pct")]


def test_segments_of_no_entities() -> None:
    empty = pl.LazyFrame(
        schema={
            "as_of": pl.Date,
            "creator_id": pl.String,
            "region": pl.String,
            "primary_category": pl.String,
            "tier": pl.String,
            "tenure_days": pl.Int64,
            "days_since_last_activity": pl.Int64,
            "gmv_28d": pl.Float64,
            "gmv_prev_28d": pl.Float64,
            "gmv_91d": pl.Float64,
        }
    )

    assert creator_segments(empty).collect().is_empty()
