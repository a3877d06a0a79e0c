"""Segments: creator tiers by followers, lifecycle stages and value segments.

Rules (documented in docs/analytics.md, thresholds in `SegmentConfig`):

- **Tier** by followers: nano < 10k ≤ micro < 100k ≤ mid < 500k ≤ macro < 1M ≤ mega.
- **Lifecycle** (first rule that matches, evaluated on features as of a date):
  ``new`` — tenure under ``new_days`` (28) days;
  ``dormant`` — no activity (creators: content or order; merchants: order) in the last
  ``dormant_days`` (28) days;
  ``declining`` — GMV of the last 28 days at most ``1 + decline_threshold`` (70 %) of the previous
  28 days', which had at least ``min_base_gmv``;
  ``ramping`` — tenure under ``ramp_days`` (182) days and GMV of the last 28 days at least
  ``1 + ramp_threshold`` (120 %) of the previous 28 days' (or some GMV after none);
  ``established`` — everything else.
- **Value segment** on GMV of the last 91 days, among entities with any: ``top_1pct`` (fewer than 1 %
  of sellers have more GMV), ``top_10pct`` (fewer than 10 %), ``core`` (fewer than half),
  ``long_tail`` (the rest); ``inactive`` without GMV. Ties share the better segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

TIER_BOUNDS: tuple[int, ...] = (10_000, 100_000, 500_000, 1_000_000)
TIER_NAMES: tuple[str, ...] = ("nano", "micro", "mid", "macro", "mega")
LIFECYCLE_STAGES: tuple[str, ...] = ("new", "ramping", "established", "declining", "dormant")
VALUE_SEGMENTS: tuple[str, ...] = ("top_1pct", "top_10pct", "core", "long_tail", "inactive")


@dataclass(frozen=True)
class SegmentConfig:
    """Thresholds of the lifecycle and value rules."""

    new_days: int = 28
    ramp_days: int = 182
    dormant_days: int = 28
    ramp_threshold: float = 0.2
    decline_threshold: float = -0.3
    min_base_gmv: float = 50.0
    top_share: float = 0.01
    high_share: float = 0.10
    core_share: float = 0.50


def tier_expr(followers: pl.Expr) -> pl.Expr:
    """The creator tier (nano … mega, see ``TIER_NAMES`` for the order) of a follower count."""
    names, bounds = TIER_NAMES, TIER_BOUNDS
    return (
        pl.when(followers < bounds[0])
        .then(pl.lit(names[0]))
        .when(followers < bounds[1])
        .then(pl.lit(names[1]))
        .when(followers < bounds[2])
        .then(pl.lit(names[2]))
        .when(followers < bounds[3])
        .then(pl.lit(names[3]))
        .otherwise(pl.lit(names[4]))
    )


def lifecycle_expr(
    tenure_days: pl.Expr,
    days_since_last_activity: pl.Expr,
    gmv_28d: pl.Expr,
    gmv_prev_28d: pl.Expr,
    cfg: SegmentConfig,
) -> pl.Expr:
    """The lifecycle stage from tenure, recency and the last two 28-day GMV windows."""
    dormant = days_since_last_activity.is_null() | (days_since_last_activity >= cfg.dormant_days)
    declining = (gmv_prev_28d >= cfg.min_base_gmv) & (gmv_28d <= gmv_prev_28d * (1 + cfg.decline_threshold))
    growing = ((gmv_prev_28d > 0) & (gmv_28d >= gmv_prev_28d * (1 + cfg.ramp_threshold))) | (
        (gmv_prev_28d <= 0) & (gmv_28d > 0)
    )
    return (
        pl.when(tenure_days < cfg.new_days)
        .then(pl.lit("new"))
        .when(dormant)
        .then(pl.lit("dormant"))
        .when(declining)
        .then(pl.lit("declining"))
        .when((tenure_days < cfg.ramp_days) & growing)
        .then(pl.lit("ramping"))
        .otherwise(pl.lit("established"))
    )


def value_segment_expr(gmv: pl.Expr, cfg: SegmentConfig) -> pl.Expr:
    """The value segment of each row by how many rows with positive GMV have more (see the module)."""
    positive = gmv > 0
    n_positive = positive.sum()
    # share_above: the fraction of positive-GMV entities with strictly more GMV than this one
    share_above = pl.when(positive).then((gmv.rank("min", descending=True) - 1) / n_positive)
    return (
        pl.when(~positive | gmv.is_null())
        .then(pl.lit("inactive"))
        .when(share_above < cfg.top_share)
        .then(pl.lit("top_1pct"))
        .when(share_above < cfg.high_share)
        .then(pl.lit("top_10pct"))
        .when(share_above < cfg.core_share)
        .then(pl.lit("core"))
        .otherwise(pl.lit("long_tail"))
    )


def creator_segments(features: pl.LazyFrame, cfg: SegmentConfig | None = None) -> pl.LazyFrame:
    """Tier, lifecycle stage and value segment per creator, from `analytics.features.creator_features`."""
    cfg = cfg or SegmentConfig()
    return features.select(
        "as_of",
        "creator_id",
        "region",
        "primary_category",
        "tier",
        lifecycle_expr(
            pl.col("tenure_days"),
            pl.col("days_since_last_activity"),
            pl.col("gmv_28d"),
            pl.col("gmv_prev_28d"),
            cfg,
        ).alias("lifecycle_stage"),
        value_segment_expr(pl.col("gmv_91d"), cfg).alias("value_segment"),
        "gmv_28d",
        "gmv_prev_28d",
        "gmv_91d",
    )


def merchant_segments(features: pl.LazyFrame, cfg: SegmentConfig | None = None) -> pl.LazyFrame:
    """Lifecycle stage and value segment per merchant, from `analytics.features.merchant_features`."""
    cfg = cfg or SegmentConfig()
    return features.select(
        "as_of",
        "merchant_id",
        "region",
        "category",
        lifecycle_expr(
            pl.col("tenure_days"),
            pl.col("days_since_last_order"),
            pl.col("gmv_28d"),
            pl.col("gmv_prev_28d"),
            cfg,
        ).alias("lifecycle_stage"),
        value_segment_expr(pl.col("gmv_91d"), cfg).alias("value_segment"),
        "gmv_28d",
        "gmv_prev_28d",
        "gmv_91d",
    )
