"""Cohorts of creators and merchants: retention and GMV per member by weeks since the cohort's start.

Definitions (docs/analytics.md):

- **Weeks** are ISO weeks starting on Monday; only *complete* weeks before the as-of date count.
- **Active** in a week: a creator with ≥1 piece of content or ≥1 order, a merchant with ≥1 order.
- **Cohort kinds**:
  ``joined`` — the week of ``joined_on``, for entities that joined in or after the first week of data
  (earlier joiners have no observed week 0). Week-0 retention is the *activation rate*: the share of
  joiners active in their joining week; it may be below 100 %.
  ``first_active`` — the week of the first activity; week-0 retention is 100 % by construction.
  ``first_sale`` — the week of the first order; week-0 retention is 100 % (an order is activity).
  Entities whose first activity or sale falls in the first week of data may have started earlier, so
  that week is left out of ``first_active`` and ``first_sale`` cohorts (left-censored).
- ``retention`` = active members / members; ``gmv_per_member`` = cohort GMV in the week / members.

Output of `cohort_retention` (one row per cohort and week since its start)::

    cohort_kind, cohort_week, weeks_since, week_start, members, active_members, retention, gmv,
    gmv_per_member, cumulative_gmv_per_member

`cohort_comparison` adds, per row, the previous cohort's value at the same ``weeks_since`` and the
average over all cohorts observed at that age, for retention and GMV per member.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

import polars as pl

from core.metrics import BASE_COLUMNS, safe_ratio

CohortKind = Literal["joined", "first_active", "first_sale"]
CREATOR_COHORT_KINDS: tuple[CohortKind, ...] = ("joined", "first_active", "first_sale")
MERCHANT_COHORT_KINDS: tuple[CohortKind, ...] = ("joined", "first_sale")
COHORT_COLUMNS: tuple[str, ...] = (
    "cohort_kind",
    "cohort_week",
    "weeks_since",
    "week_start",
    "members",
    "active_members",
    "retention",
    "gmv",
    "gmv_per_member",
    "cumulative_gmv_per_member",
)


def week_of(column: str | pl.Expr) -> pl.Expr:
    """The Monday starting the ISO week of a date column."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.dt.truncate("1w")


def last_complete_week(as_of: date) -> date:
    """The start of the last ISO week that ends before ``as_of``."""
    monday_of_as_of = as_of - timedelta(days=as_of.weekday())
    return monday_of_as_of - timedelta(days=7)


def creator_weekly(creator_daily: pl.LazyFrame, as_of: date | None = None) -> pl.LazyFrame:
    """Per creator and ISO week: summed base columns and ``active`` (≥1 content or order)."""
    daily = creator_daily if as_of is None else creator_daily.filter(pl.col("date") < as_of)
    return (
        daily.group_by(week_of("date").alias("week_start"), "creator_id")
        .agg(pl.col(name).sum() for name in BASE_COLUMNS)
        .with_columns(((pl.col("videos") + pl.col("lives") > 0) | (pl.col("orders") > 0)).alias("active"))
    )


def merchant_weekly(merchant_daily: pl.LazyFrame, as_of: date | None = None) -> pl.LazyFrame:
    """Per merchant and ISO week: summed order and engagement columns and ``active`` (≥1 order)."""
    daily = merchant_daily if as_of is None else merchant_daily.filter(pl.col("date") < as_of)
    columns = [name for name in BASE_COLUMNS if name in daily.collect_schema().names()]
    return (
        daily.group_by(week_of("date").alias("week_start"), "merchant_id")
        .agg(pl.col(name).sum() for name in columns)
        .with_columns((pl.col("orders") > 0).alias("active"))
    )


def cohort_members(
    entities: pl.LazyFrame,
    weekly: pl.LazyFrame,
    key: str,
    kind: CohortKind,
    first_week: date,
    last_week: date,
) -> pl.LazyFrame:
    """(``key``, cohort_week) for one cohort kind, cohorts from ``first_week`` to ``last_week``.

    ``entities`` has ``key`` and ``joined_on``; ``weekly`` has ``key``, ``week_start``, ``active`` and
    ``orders``.
    """
    if kind == "joined":
        members = entities.select(key, week_of("joined_on").alias("cohort_week"))
        lower = first_week
    elif kind in ("first_active", "first_sale"):
        started = pl.col("active") if kind == "first_active" else pl.col("orders") > 0
        members = weekly.filter(started).group_by(key).agg(pl.col("week_start").min().alias("cohort_week"))
        lower = first_week + timedelta(days=7)  # the first week of data is left-censored
    else:
        raise ValueError(f"unknown cohort kind {kind!r}; use joined, first_active or first_sale")
    return members.filter(pl.col("cohort_week").is_between(lower, last_week))


def cohort_retention(
    members: pl.LazyFrame,
    weekly: pl.LazyFrame,
    key: str,
    kind: CohortKind,
    first_week: date,
    last_week: date,
) -> pl.LazyFrame:
    """Retention and GMV per member for every cohort and week since its start up to ``last_week``.

    ``first_week`` is the earliest cohort week there can be (the first week of data).
    """
    sizes = members.group_by("cohort_week").agg(pl.len().cast(pl.Int64).alias("members"))
    activity = (
        members.join(weekly.filter(pl.col("week_start") <= last_week), on=key, how="inner")
        .filter(pl.col("week_start") >= pl.col("cohort_week"))
        .group_by("cohort_week", "week_start")
        .agg(pl.col("active").sum().cast(pl.Int64).alias("active_members"), pl.col("gmv").sum())
    )
    if first_week > last_week:
        return _empty_cohorts()
    weeks = pl.LazyFrame({"week_start": pl.date_range(first_week, last_week, interval="7d", eager=True)})
    return (
        sizes.join(weeks, how="cross")
        .filter(pl.col("week_start") >= pl.col("cohort_week"))
        .join(activity, on=["cohort_week", "week_start"], how="left")
        .with_columns(pl.col("active_members").fill_null(0), pl.col("gmv").fill_null(0.0))
        .with_columns(
            pl.lit(kind).alias("cohort_kind"),
            ((pl.col("week_start") - pl.col("cohort_week")).dt.total_days() // 7).alias("weeks_since"),
            safe_ratio(pl.col("active_members"), pl.col("members")).alias("retention"),
            safe_ratio(pl.col("gmv"), pl.col("members")).alias("gmv_per_member"),
        )
        .sort("cohort_week", "weeks_since")
        .with_columns(
            pl.col("gmv_per_member").cum_sum().over("cohort_week").alias("cumulative_gmv_per_member")
        )
        .select(COHORT_COLUMNS)
    )


def _empty_cohorts() -> pl.LazyFrame:
    return pl.LazyFrame(
        schema={
            "cohort_kind": pl.String,
            "cohort_week": pl.Date,
            "weeks_since": pl.Int64,
            "week_start": pl.Date,
            "members": pl.Int64,
            "active_members": pl.Int64,
            "retention": pl.Float64,
            "gmv": pl.Float64,
            "gmv_per_member": pl.Float64,
            "cumulative_gmv_per_member": pl.Float64,
        }
    )


def cohort_comparison(retention: pl.LazyFrame) -> pl.LazyFrame:
    """Cohort-over-cohort: each row with the previous cohort's and the all-cohort average at that age."""
    keys = ["cohort_kind", "weeks_since"]
    ordered = retention.sort("cohort_kind", "weeks_since", "cohort_week")
    previous = {
        "retention": "previous_cohort_retention",
        "gmv_per_member": "previous_cohort_gmv_per_member",
    }
    return (
        ordered.with_columns(
            *(pl.col(column).shift(1).over(keys).alias(name) for column, name in previous.items()),
            pl.col("retention").mean().over(keys).alias("average_retention"),
            pl.col("gmv_per_member").mean().over(keys).alias("average_gmv_per_member"),
        )
        .with_columns(
            (pl.col("retention") - pl.col("previous_cohort_retention")).alias("retention_vs_previous_cohort"),
            (pl.col("retention") - pl.col("average_retention")).alias("retention_vs_average"),
            safe_ratio(pl.col("gmv_per_member"), pl.col("previous_cohort_gmv_per_member")).alias(
                "gmv_per_member_vs_previous_cohort"
            ),
            safe_ratio(pl.col("gmv_per_member"), pl.col("average_gmv_per_member")).alias(
                "gmv_per_member_vs_average"
            ),
        )
        .sort("cohort_kind", "cohort_week", "weeks_since")
    )


def _cohorts(
    entities: pl.LazyFrame,
    daily: pl.LazyFrame,
    weekly: pl.LazyFrame,
    key: str,
    kinds: tuple[CohortKind, ...],
    as_of: date,
) -> pl.LazyFrame:
    last_week = last_complete_week(as_of)
    # the first date comes from Parquet statistics when ``daily`` is a scan: no pass over the data
    first_day = daily.filter(pl.col("date") < as_of).select(pl.col("date").min()).collect().item()
    if first_day is None:
        return cohort_comparison(_empty_cohorts())
    first_week = first_day - timedelta(days=first_day.weekday())
    if first_week > last_week:
        return cohort_comparison(_empty_cohorts())
    entities = entities.select(key, "joined_on").filter(pl.col("joined_on") < as_of)
    # materialized once: every cohort kind reads it twice (members and activity)
    weekly = weekly.select(key, "week_start", "active", "orders", "gmv").collect(engine="streaming").lazy()
    frames = [
        cohort_retention(
            cohort_members(entities, weekly, key, kind, first_week, last_week),
            weekly,
            key,
            kind,
            first_week,
            last_week,
        )
        for kind in kinds
    ]
    return cohort_comparison(pl.concat(frames, how="vertical"))


def creator_cohorts(
    creator_daily: pl.LazyFrame,
    creators: pl.LazyFrame,
    as_of: date,
    kinds: tuple[CohortKind, ...] = CREATOR_COHORT_KINDS,
) -> pl.LazyFrame:
    """Creator cohorts of every kind with cohort-over-cohort comparison."""
    return _cohorts(creators, creator_daily, creator_weekly(creator_daily, as_of), "creator_id", kinds, as_of)


def merchant_cohorts(
    merchant_daily: pl.LazyFrame,
    merchants: pl.LazyFrame,
    as_of: date,
    kinds: tuple[CohortKind, ...] = MERCHANT_COHORT_KINDS,
) -> pl.LazyFrame:
    """Merchant cohorts of every kind with cohort-over-cohort comparison."""
    return _cohorts(
        merchants, merchant_daily, merchant_weekly(merchant_daily, as_of), "merchant_id", kinds, as_of
    )
