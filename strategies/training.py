"""Training sets for the uplift models: one row per intervention, the entity's features as of the
assignment, its arm, and its GMV and clicks in the 28 days after assignment (and the 28 days before).

No leakage: features are computed as of the Monday of the assignment's ISO week, from data strictly
before that day — always on or before ``assigned_on`` — so grouping interventions by week needs one
feature computation per week instead of one per day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from analytics.sources import Inputs, creator_daily, merchant_daily
from core.schema import CREATOR_STRATEGIES, MERCHANT_STRATEGIES

HORIZON_DAYS = 28
ENTITY_ID = {"creator": "creator_id", "merchant": "merchant_id"}
ARMS = {"creator": CREATOR_STRATEGIES, "merchant": MERCHANT_STRATEGIES}

FeaturesFn = Callable[[str, date], pl.DataFrame]
"""(entity kind, as-of date) → one row per entity with an ``entity_id`` column and feature columns."""


def daily_outcomes(fact: pl.LazyFrame, kind: str) -> pl.LazyFrame:
    """GMV and clicks per entity and day from a kind's daily fact (`analytics.sources.creator_daily` or
    `merchant_daily`, whose GMV is the metric dictionary's; a creator's clicks are those on their
    content, a merchant's those on its products)."""
    return fact.group_by(pl.col(ENTITY_ID[kind]).alias("entity_id"), "date").agg(
        pl.col("gmv", "clicks").sum(), net_gmv=(pl.col("gmv") - pl.col("refunded_gmv")).sum()
    )


def feature_as_of(assigned_on: pl.Expr) -> pl.Expr:
    """The Monday of the assignment's ISO week: the as-of date of its features."""
    return assigned_on - pl.duration(days=assigned_on.dt.weekday() - 1)


def outcomes(interventions: pl.LazyFrame, daily: pl.LazyFrame, horizon: int = HORIZON_DAYS) -> pl.LazyFrame:
    """GMV, net GMV (completed orders less refunds) and clicks of each intervention's entity in
    ``horizon`` days from ``assigned_on`` (``gmv_after``, ``net_gmv_after``, ``clicks_after``) and in the
    ``horizon`` days before (``…_before``); 0 where the entity had none."""
    offset = (pl.col("date") - pl.col("assigned_on")).dt.total_days()
    windows = (
        interventions.select("intervention_id", "entity_id", "assigned_on")
        .join(daily, on="entity_id", how="inner")
        .filter(offset.is_between(-horizon, horizon - 1))
        .group_by("intervention_id")
        .agg(
            gmv_after=pl.col("gmv").filter(offset >= 0).sum(),
            gmv_before=pl.col("gmv").filter(offset < 0).sum(),
            clicks_after=pl.col("clicks").filter(offset >= 0).sum(),
            clicks_before=pl.col("clicks").filter(offset < 0).sum(),
            net_gmv_after=pl.col("net_gmv").filter(offset >= 0).sum(),
            net_gmv_before=pl.col("net_gmv").filter(offset < 0).sum(),
        )
    )
    return interventions.join(windows, on="intervention_id", how="left").with_columns(
        pl.col("gmv_after", "gmv_before", "net_gmv_after", "net_gmv_before").fill_null(0.0),
        pl.col("clicks_after", "clicks_before").fill_null(0).cast(pl.Int64),
    )


def training_set(
    interventions: pl.DataFrame,
    inputs: Inputs,
    kind: str,
    features: FeaturesFn,
    last_day: date,
    daily: pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """One row per intervention of ``kind`` whose 28-day outcome window ends by ``last_day``: features as
    of the assignment week's Monday, ``arm_index`` (0 control, k = the strategy's position in its kind's
    arm list + 1), ``assignment`` and the outcome columns, taken from ``daily`` (the kind's daily fact;
    computed from ``inputs`` when not given)."""
    if daily is None:
        fact = creator_daily if kind == "creator" else merchant_daily
        daily = fact(inputs, last_day + timedelta(days=1))
    arms = ARMS[kind]
    rows = (
        interventions.lazy()
        .filter(
            (pl.col("entity_kind") == kind)
            & (pl.col("assigned_on") + pl.duration(days=HORIZON_DAYS - 1) <= pl.lit(last_day))
        )
        .with_columns(
            features_as_of=feature_as_of(pl.col("assigned_on")),
            arm_index=pl.when(pl.col("arm") == "treatment")
            .then(
                pl.col("strategy").replace_strict(
                    list(arms), list(range(1, len(arms) + 1)), return_dtype=pl.Int64
                )
            )
            .otherwise(0),
        )
    )
    labelled = outcomes(rows, daily_outcomes(daily, kind)).collect()
    parts = []
    for as_of in labelled["features_as_of"].unique().sort():
        batch = labelled.filter(pl.col("features_as_of") == as_of)
        snapshot = features(kind, as_of)
        parts.append(batch.join(snapshot, on="entity_id", how="inner"))
    if not parts:
        return labelled.clear()
    return pl.concat(parts, how="diagonal_relaxed").sort("intervention_id")


def data_window(train: pl.DataFrame) -> tuple[date, date]:
    """First assignment day and last outcome day of a training set."""
    first = train["assigned_on"].min()
    last = train["assigned_on"].max()
    assert isinstance(first, date)
    assert isinstance(last, date)
    return first, last + timedelta(days=HORIZON_DAYS - 1)
