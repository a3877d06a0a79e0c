"""Leaderboards, rising stars, decliners and contribution to change.

Every function compares a period ``start``..``end`` (inclusive) with the previous period of equal
length, on a daily fact (``creator_daily``, ``merchant_daily`` or ``product_daily``).

Contribution to change splits the GMV change between two periods across the segments of one
dimension. The split is additive: each segment's contribution is its own GMV change, so the
contributions sum to the total change — exactly, since they are computed in integer cents. For
high-cardinality dimensions (creators) the ``top_n`` largest absolute contributions are kept and the
rest is pooled into one ``(other)`` row, which keeps the sum exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import polars as pl

from core.metrics import safe_ratio

OTHER = "(other)"
CONTRIBUTION_DIMENSIONS: tuple[str, ...] = ("region", "category", "tier", "content_kind", "creator_id")


@dataclass(frozen=True)
class MoversConfig:
    """Sizes and thresholds of the leaderboards and movers."""

    top_n: int = 100
    movers_n: int = 50
    min_base_gmv: float = 200.0
    """Rising stars and decliners need at least this much GMV in the previous period."""
    contributors_n: int = 20


def previous_range(start: date, end: date) -> tuple[date, date]:
    """The range of equal length just before ``start``..``end``.

    Raises:
        ValueError: if ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    length = (end - start).days + 1
    return start - timedelta(days=length), start - timedelta(days=1)


def period_totals(daily: pl.LazyFrame, key: str, start: date, end: date) -> pl.LazyFrame:
    """Per ``key``: GMV, net GMV and orders in the period and the previous one (zeros when absent).

    Sums of money are rounded to the cent: a float sum depends on the order of its terms (which a
    parallel group-by does not fix), and a creator with the same GMV in both periods must not rise or
    decline by 1e-13 USD depending on it.
    """
    previous_start, _ = previous_range(start, end)
    current = pl.col("date") >= start
    return (
        daily.filter(pl.col("date").is_between(previous_start, end))
        .group_by(key)
        .agg(
            pl.col("gmv").filter(current).sum().round(2).alias("gmv"),
            (pl.col("gmv") - pl.col("refunded_gmv")).filter(current).sum().round(2).alias("net_gmv"),
            pl.col("orders").filter(current).sum().alias("orders"),
            pl.col("gmv").filter(~current).sum().round(2).alias("previous_gmv"),
        )
        .with_columns(
            (pl.col("gmv") - pl.col("previous_gmv")).alias("change"),
            safe_ratio(pl.col("gmv") - pl.col("previous_gmv"), pl.col("previous_gmv")).alias("growth_pct"),
        )
    )


def leaderboard(
    daily: pl.LazyFrame,
    key: str,
    start: date,
    end: date,
    n: int = 100,
    attributes: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Top ``n`` of ``key`` by GMV in the period, with share of total and change against the previous.

    Columns: rank, ``key``, [attributes…], gmv, net_gmv, orders, share_of_gmv, previous_gmv, change,
    growth_pct, start, end. Ties are broken by ``key``.
    """
    totals = period_totals(daily, key, start, end).filter(pl.col("gmv") > 0)
    ranked = (
        totals.with_columns(safe_ratio(pl.col("gmv"), pl.col("gmv").sum()).alias("share_of_gmv"))
        .sort(["gmv", key], descending=[True, False])
        .head(n)
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int64), pl.lit(start).alias("start"), pl.lit(end).alias("end"))
    )
    if attributes is not None:
        ranked = ranked.join(attributes, on=key, how="left", maintain_order="left")
    return ranked


def movers(
    daily: pl.LazyFrame,
    key: str,
    start: date,
    end: date,
    direction: Literal["rising", "declining"],
    n: int = 50,
    min_base_gmv: float = 200.0,
    attributes: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Fastest-growing (or -shrinking) ``key`` by GMV growth, among those with a minimum base.

    Only entities whose previous-period GMV is at least ``min_base_gmv`` qualify, so tiny bases do not
    produce huge percentages. Ranked by ``growth_pct`` (then by absolute change, then ``key``).
    """
    totals = period_totals(daily, key, start, end).filter(pl.col("previous_gmv") >= min_base_gmv)
    if direction == "rising":
        totals = totals.filter(pl.col("change") > 0).sort(
            ["growth_pct", "change", key], descending=[True, True, False]
        )
    elif direction == "declining":
        totals = totals.filter(pl.col("change") < 0).sort(["growth_pct", "change", key])
    else:
        raise ValueError(f"unknown direction {direction!r}; use rising or declining")
    ranked = (
        totals.head(n)
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int64), pl.lit(start).alias("start"), pl.lit(end).alias("end"))
    )
    if attributes is not None:
        ranked = ranked.join(attributes, on=key, how="left", maintain_order="left")
    return ranked


def _cents(expr: pl.Expr) -> pl.Expr:
    return (expr * 100).round(0).cast(pl.Int64)


def contribution_to_change(
    daily: pl.LazyFrame, dimension: str, start: date, end: date, top_n: int | None = None
) -> pl.LazyFrame:
    """Each segment's contribution to the GMV change from the previous period to ``start``..``end``.

    Columns: dimension, segment, previous_gmv, gmv, contribution, share_of_change, total_change.
    ``contribution`` sums exactly (in cents) to ``total_change``; ``share_of_change`` is
    contribution / total change (null when the total is zero). Sorted by absolute contribution.
    """
    previous_start, _ = previous_range(start, end)
    current = pl.col("date") >= start
    per_segment = (
        daily.filter(pl.col("date").is_between(previous_start, end))
        .group_by(pl.col(dimension).cast(pl.String).alias("segment"))
        .agg(
            _cents(pl.col("gmv").filter(~current).sum()).alias("previous_cents"),
            _cents(pl.col("gmv").filter(current).sum()).alias("current_cents"),
        )
        .with_columns((pl.col("current_cents") - pl.col("previous_cents")).alias("contribution_cents"))
        .sort(pl.col("contribution_cents").abs(), "segment", descending=[True, False])
    )
    if top_n is not None:
        ranked = per_segment.with_row_index("__rank")
        kept = ranked.filter(pl.col("__rank") < top_n).drop("__rank")
        rest = (
            ranked.filter(pl.col("__rank") >= top_n)
            .select(
                pl.lit(OTHER).alias("segment"),
                pl.col("previous_cents").sum(),
                pl.col("current_cents").sum(),
                pl.col("contribution_cents").sum(),
                pl.len().alias("__count"),
            )
            .filter(pl.col("__count") > 0)
            .drop("__count")
        )
        per_segment = pl.concat([kept, rest], how="vertical")
    total = pl.col("contribution_cents").sum()
    return per_segment.select(
        pl.lit(dimension).alias("dimension"),
        "segment",
        (pl.col("previous_cents") / 100).alias("previous_gmv"),
        (pl.col("current_cents") / 100).alias("gmv"),
        (pl.col("contribution_cents") / 100).alias("contribution"),
        pl.when(total != 0).then(pl.col("contribution_cents") / total).alias("share_of_change"),
        (total / 100).alias("total_change"),
        pl.col("contribution_cents"),
        total.alias("total_change_cents"),
    )


def gmv_change_contributions(
    creator_daily: pl.LazyFrame,
    start: date,
    end: date,
    dimensions: Sequence[str] = CONTRIBUTION_DIMENSIONS,
    top_n: int = 20,
) -> pl.LazyFrame:
    """`contribution_to_change` for several dimensions of ``creator_daily`` stacked, with the period."""
    frames = [
        contribution_to_change(
            creator_daily, dimension, start, end, top_n if dimension == "creator_id" else None
        )
        for dimension in dimensions
    ]
    previous_start, previous_end = previous_range(start, end)
    return pl.concat(frames, how="vertical").with_columns(
        pl.lit(start).alias("start"),
        pl.lit(end).alias("end"),
        pl.lit(previous_start).alias("previous_start"),
        pl.lit(previous_end).alias("previous_end"),
    )
