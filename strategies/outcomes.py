"""What came of accepted recommendations: realized against predicted uplift, one definition for all.

The strategy board and the weekly review's follow-up both read `realized_uplift`, so they show the
same figure for the same action. For an action started on day S:

- ``days_observed`` = d = the days from S to the last day of data (the day before ``as_of``), at most
  the 28-day window the uplift is predicted over (`strategies.training.HORIZON_DAYS`); 0 for an action
  that starts on or after ``as_of``;
- ``realized_uplift`` = the entity's GMV in S .. S+d-1 (``gmv_since``) minus its GMV in the d days
  before S (``gmv_before``): the entity's own pre-period of the same length as the days observed,
  the same before/after windows the training set labels interventions with. It is a before/after
  difference, not a controlled estimate (trends and seasonality are in it); null while d is 0;
- ``predicted_so_far`` = the 28-day prediction × d / 28, so a running action compares like with like;
- ``complete`` once d reaches 28; ``state`` says where the window is in words: "complete (28 days)",
  "so far (21 of 28 days)" or "no data yet" (d = 0).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from strategies.training import HORIZON_DAYS

WINDOW_DAYS = HORIZON_DAYS
"""The window an uplift is predicted over, and so the most days an action is observed for."""

FOLLOWED_UP_STATUSES: tuple[str, ...] = ("accepted", "in_progress", "done")
"""Workflow statuses whose actions are followed up (accepted and not dismissed since)."""

OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "days_observed": pl.Int64(),
    "predicted_so_far": pl.Float64(),
    "gmv_before": pl.Float64(),
    "gmv_since": pl.Float64(),
    "realized_uplift": pl.Float64(),
    "complete": pl.Boolean(),
    "state": pl.String(),
}
"""The columns `realized_uplift` adds to the actions it is given."""

_ENTITY_KEYS = {"creator": "creator_id", "merchant": "merchant_id"}
_ROW = "_action_row"


def _as_date(frame: pl.DataFrame, column: str) -> pl.Expr:
    """``column`` as a date, whether it holds dates, datetimes or ISO strings (the state DB's
    drivers differ)."""
    if frame.schema[column] == pl.String:
        return pl.col(column).str.to_date(strict=False)
    return pl.col(column).cast(pl.Date)


def followed_up_actions(actions: pl.DataFrame, started_by: date | None = None) -> pl.DataFrame:
    """The actions to follow up: accepted, in progress or done, with a start date (on or before
    ``started_by`` when given); ``started_on`` as a date."""
    if "started_on" not in actions.columns:
        return actions.clear()
    started = pl.col("started_on")
    frame = actions.with_columns(_as_date(actions, "started_on")).filter(
        pl.col("status").is_in(list(FOLLOWED_UP_STATUSES)) & started.is_not_null()
    )
    return frame.filter(started <= started_by) if started_by is not None else frame


def _window_sums(
    actions: pl.DataFrame, daily: pl.DataFrame | pl.LazyFrame, key: str, last_day: date
) -> pl.DataFrame:
    """Per action row: GMV in the ``days_observed`` days since its start and as many days before."""
    first = actions.select((pl.col("started_on") - pl.duration(days=pl.col("days_observed"))).min()).item()
    per_day = (
        daily.lazy()
        .filter(
            pl.col(key).is_in(actions["entity_id"].unique().to_list())
            & pl.col("date").is_between(first, last_day)
        )
        .group_by(pl.col(key).alias("entity_id"), "date")
        .agg(pl.col("gmv").sum())
    )
    offset = (pl.col("date") - pl.col("started_on")).dt.total_days()
    return (
        actions.lazy()
        .select(_ROW, "entity_id", "started_on", "days_observed")
        .join(per_day, on="entity_id", how="inner")
        .filter(offset.is_between(-pl.col("days_observed"), pl.col("days_observed") - 1))
        .group_by(_ROW)
        .agg(
            gmv_before=pl.col("gmv").filter(offset < 0).sum(),
            gmv_since=pl.col("gmv").filter(offset >= 0).sum(),
        )
        .collect()
    )


def realized_uplift(
    actions: pl.DataFrame | pl.LazyFrame,
    creator_daily: pl.DataFrame | pl.LazyFrame | None,
    merchant_daily: pl.DataFrame | pl.LazyFrame | None,
    as_of: date,
    *,
    window_days: int = WINDOW_DAYS,
) -> pl.DataFrame:
    """``actions`` with their realized against predicted uplift so far (see the module docstring).

    Args:
        actions: one row per action with ``entity_kind`` (``creator``/``merchant``), ``entity_id``,
            ``started_on`` (a date, or an ISO string) and ``predicted_uplift`` (over ``window_days``);
            other columns are kept, in order.
        creator_daily: daily facts with ``creator_id``, ``date``, ``gmv`` (several rows per creator and
            day are summed); ``None`` leaves creator actions' GMV figures null (a scoped reader).
        merchant_daily: the same keyed by ``merchant_id``.
        as_of: results use data strictly before this day.
        window_days: the window the uplift is predicted over.

    Returns:
        The actions in their order with the `OUTCOME_SCHEMA` columns appended (replaced if present).
    """
    frame = actions.collect() if isinstance(actions, pl.LazyFrame) else actions
    frame = frame.drop([c for c in OUTCOME_SCHEMA if c in frame.columns])
    frame = frame.with_columns(_as_date(frame, "started_on"), pl.col("predicted_uplift").cast(pl.Float64))
    last_day = as_of - timedelta(days=1)
    days = (
        ((pl.lit(last_day) - pl.col("started_on")).dt.total_days() + 1)
        .clip(0, window_days)
        .cast(pl.Int64)
        .alias("days_observed")
    )
    frame = frame.with_row_index(_ROW).with_columns(days)
    sources = {
        kind: daily
        for kind, daily in (("creator", creator_daily), ("merchant", merchant_daily))
        if daily is not None
    }
    sums = []
    for kind, daily in sources.items():
        part = frame.filter((pl.col("entity_kind") == kind) & (pl.col("days_observed") > 0))
        if part.height:
            sums.append(_window_sums(part, daily, _ENTITY_KEYS[kind], last_day))
    window_sums = (
        pl.concat(sums)
        if sums
        else pl.DataFrame(schema={_ROW: pl.UInt32, "gmv_before": pl.Float64, "gmv_since": pl.Float64})
    )
    observed = pl.col("entity_kind").is_in(list(sources)) & (pl.col("days_observed") > 0)
    days_observed = pl.col("days_observed")
    return (
        frame.join(window_sums, on=_ROW, how="left", maintain_order="left")
        .with_columns(
            # an entity with no sales in its windows sold nothing: 0, not unknown
            *(
                pl.when(observed).then(pl.col(c).fill_null(0.0).cast(pl.Float64)).alias(c)
                for c in ("gmv_before", "gmv_since")
            ),
            (pl.col("predicted_uplift") * days_observed / window_days).alias("predicted_so_far"),
        )
        .with_columns(
            (pl.col("gmv_since") - pl.col("gmv_before")).alias("realized_uplift"),
            (days_observed >= window_days).fill_null(False).alias("complete"),
            pl.when(days_observed >= window_days)
            .then(pl.lit(f"complete ({window_days} days)"))
            .when(days_observed > 0)
            .then(pl.format("so far ({} of {} days)", days_observed, pl.lit(window_days)))
            .otherwise(pl.lit("no data yet"))
            .alias("state"),
        )
        .drop(_ROW)
        .select(*(c for c in frame.columns if c not in (_ROW, "days_observed")), *OUTCOME_SCHEMA)
        .cast(OUTCOME_SCHEMA)  # type: ignore[arg-type]
    )
