"""KPIs by day and by ISO week, overall and by breakdown, with comparisons; KPI cards for any range.

``kpi_table`` returns a long frame, one row per (period_start, breakdown, segment, metric)::

    period, period_start, period_end, complete, breakdown, segment, metric, value,
    previous_value, change, change_pct, value_4w_ago, change_pct_4w, value_13w_ago, change_pct_13w

``previous_value`` is the period just before (the previous day or week); ``value_4w_ago`` and
``value_13w_ago`` the same day or week 4 and 13 weeks earlier. Every (period, segment) between the
first and the last period is present, so a segment without activity shows zeros rather than a gap.
``breakdown`` is ``overall`` (segment ``all``); ``region``, ``category`` (the creator's primary
category), ``tier`` and ``content_kind`` from ``creator_daily``; ``product_category`` (what was sold)
from ``product_daily``; ``merchant`` (segment = merchant_id) from ``merchant_daily``. Active merchants
are known for ``overall``, ``product_category`` and ``merchant``; active creators for every breakdown
but ``product_category`` (null where unknown).

``kpi_cards`` computes the metric cards of an arbitrary date range and filters from ``creator_daily``
(never the raw lake) against the previous range of equal length.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal

import polars as pl

from analytics.sources import CONTENT_KINDS, kind_code, kind_name
from core.metrics import BASE_COLUMNS, METRIC_NAMES, METRICS, safe_ratio, with_metrics

Period = Literal["day", "week"]
BREAKDOWNS: dict[str, str | None] = {
    "overall": None,
    "region": "region",
    "category": "category",
    "tier": "tier",
    "content_kind": "content_kind",
    "product_category": "category",
    "merchant": "merchant_id",
}
"""Breakdown name → column of the daily fact it groups by (``None``: no grouping)."""
DAILY_BREAKDOWNS: tuple[str, ...] = (
    "overall",
    "region",
    "category",
    "tier",
    "content_kind",
    "product_category",
)
WEEKLY_BREAKDOWNS: tuple[str, ...] = tuple(BREAKDOWNS)
"""Weekly tables have every breakdown; daily ones leave out merchants (20k merchants × 182 days)."""
OVERALL = "all"
_KNOWN_COUNTS: dict[str, tuple[str, ...]] = {
    "active_creators": ("overall", "region", "category", "tier", "content_kind", "merchant"),
    "active_merchants": ("overall", "product_category", "merchant"),
}
KPI_COLUMNS: tuple[str, ...] = (
    "period",
    "period_start",
    "period_end",
    "complete",
    "breakdown",
    "segment",
    "metric",
    "value",
    "previous_value",
    "change",
    "change_pct",
    "value_4w_ago",
    "change_pct_4w",
    "value_13w_ago",
    "change_pct_13w",
)


def period_start(column: str | pl.Expr, period: Period) -> pl.Expr:
    """The first day of the day or ISO week (Monday) ``column`` falls in."""
    expr = pl.col(column) if isinstance(column, str) else column
    if period == "day":
        return expr
    if period == "week":
        return expr.dt.truncate("1w")
    raise ValueError(f"unknown period {period!r}; use 'day' or 'week'")


def _period_days(period: Period) -> int:
    return 1 if period == "day" else 7


def _active_creator(row_active: pl.Expr | None = None) -> pl.Expr:
    active = (pl.col("videos") + pl.col("lives") > 0) | (pl.col("orders") > 0)
    return pl.col("creator_id").filter(active if row_active is None else row_active).n_unique()


def creator_totals(creator_daily: pl.LazyFrame, keys: Sequence[str | pl.Expr]) -> pl.LazyFrame:
    """Base columns summed over ``keys`` plus ``active_creators`` (≥1 content or order)."""
    return creator_daily.group_by(keys).agg(
        *(pl.col(name).sum() for name in BASE_COLUMNS), _active_creator().alias("active_creators")
    )


def merchant_totals(merchant_daily: pl.LazyFrame, keys: Sequence[str | pl.Expr]) -> pl.LazyFrame:
    """Order and engagement columns of ``merchant_daily`` summed over ``keys``, with active counts.

    ``active_merchants`` counts merchants with ≥1 order; ``active_creators`` counts creators with ≥1
    order of those merchants' products.
    """
    has_orders = pl.col("orders") > 0
    columns = [name for name in BASE_COLUMNS if name in merchant_daily.collect_schema().names()]
    return merchant_daily.group_by(keys).agg(
        *(pl.col(name).sum() for name in columns),
        pl.col("merchant_id").filter(has_orders).n_unique().alias("active_merchants"),
        pl.col("creator_id").filter(has_orders).n_unique().alias("active_creators"),
    )


_KINDS = CONTENT_KINDS


def creator_periods(creator_daily: pl.LazyFrame, period: Period) -> pl.LazyFrame:
    """One row per (period_start, creator_id, content_kind): summed base columns and ``active``
    (≥1 content or order in the period). Creator traits are not carried: see `traits_from_daily`.

    Days are already at that grain; weeks group on one packed integer key (week, content kind) beside
    ``creator_id``, which is several times faster than grouping on three columns.
    """
    active = ((pl.col("videos") + pl.col("lives") > 0) | (pl.col("orders") > 0)).alias("active")
    if period == "day":
        return creator_daily.select(
            pl.col("date").alias("period_start"), "creator_id", "content_kind", *BASE_COLUMNS, active
        )
    code = kind_code(pl.col("content_kind"))
    key = period_start("date", period).cast(pl.Int32).cast(pl.Int64) * len(_KINDS) + code
    return (
        creator_daily.group_by("creator_id", key.alias("__key"))
        .agg(pl.col(name).sum() for name in BASE_COLUMNS)
        .with_columns(
            (pl.col("__key") // len(_KINDS)).cast(pl.Int32).cast(pl.Date).alias("period_start"),
            kind_name(pl.col("__key") % len(_KINDS)).alias("content_kind"),
            active,
        )
        .drop("__key")
    )


def traits_from_daily(creator_daily: pl.LazyFrame) -> pl.LazyFrame:
    """(creator_id, region, category, tier): one row per creator of the fact (a full pass over it;
    `analytics.sources.creator_traits` gives the same from the creators table at a fraction of the
    cost)."""
    return creator_daily.group_by("creator_id").agg(
        pl.col(name).max() for name in ("region", "category", "tier")
    )


def _creator_breakdowns(
    creator_daily: pl.LazyFrame, period: Period, breakdowns: Sequence[str], traits: pl.LazyFrame | None
) -> dict[str, pl.LazyFrame]:
    """(period_start, segment, base columns, active_creators) for the creator breakdowns.

    Counting active creators is a sum of a flag once each creator has one row per period (and kind),
    which avoids a distinct count per group; creator traits are joined on after aggregating (carrying
    strings through the big group-by is what costs most).
    """
    per_kind = creator_periods(creator_daily, period)
    if period == "week":
        # the weekly aggregate feeds every breakdown: compute it once (about a third of the daily rows)
        per_kind = per_kind.collect(engine="streaming").lazy()
    per_creator = per_kind.group_by("period_start", "creator_id").agg(
        *(pl.col(name).sum() for name in BASE_COLUMNS), pl.col("active").any()
    )
    if any(BREAKDOWNS[name] in ("region", "category", "tier") for name in breakdowns):
        if traits is None:
            traits = traits_from_daily(creator_daily)
        per_creator = per_creator.join(
            traits.select("creator_id", "region", "category", "tier"), on="creator_id", how="left"
        )
    sums = [pl.col(name).sum() for name in BASE_COLUMNS]
    active = pl.col("active").sum().cast(pl.UInt32).alias("active_creators")
    totals = {}
    for name in breakdowns:
        column = BREAKDOWNS[name]
        if name in ("merchant", "product_category"):
            continue
        source = per_kind if name == "content_kind" else per_creator
        segment = (pl.lit(OVERALL) if column is None else pl.col(column).cast(pl.String)).alias("segment")
        totals[name] = source.group_by("period_start", segment).agg(*sums, active)
    return totals


def _period_totals(
    creator_totals_by_breakdown: dict[str, pl.LazyFrame],
    merchant_daily: pl.LazyFrame,
    product_daily: pl.LazyFrame | None,
    period: Period,
    breakdown: str,
) -> pl.LazyFrame:
    """(period_start, segment, base columns, active counts) for one breakdown."""
    column = BREAKDOWNS[breakdown]
    start = period_start("date", period).alias("period_start")
    segment = (pl.lit(OVERALL) if column is None else pl.col(column).cast(pl.String)).alias("segment")
    no_content = [pl.lit(0, pl.Int64).alias("videos"), pl.lit(0, pl.Int64).alias("lives")]
    if breakdown == "merchant":
        return merchant_totals(merchant_daily, [start, segment]).with_columns(no_content)
    if breakdown == "product_category":
        if product_daily is None:
            raise ValueError("the product_category breakdown needs product_daily")
        has_orders = pl.col("orders") > 0
        columns = [name for name in BASE_COLUMNS if name in product_daily.collect_schema().names()]
        return (
            product_daily.group_by(start, segment)
            .agg(
                *(pl.col(name).sum() for name in columns),
                pl.col("merchant_id").filter(has_orders).n_unique().alias("active_merchants"),
            )
            .with_columns(*no_content, pl.lit(None, pl.UInt32).alias("active_creators"))
        )
    totals = creator_totals_by_breakdown[breakdown]
    if breakdown == "overall":
        merchants = (
            merchant_daily.filter(pl.col("orders") > 0)
            .group_by(start, segment)
            .agg(pl.col("merchant_id").n_unique().alias("active_merchants"))
        )
        return totals.join(merchants, on=["period_start", "segment"], how="left")
    return totals.with_columns(pl.lit(None, pl.UInt32).alias("active_merchants"))


def _complete_grid(
    totals: pl.LazyFrame, first: date, last: date, period: Period, *, known: Sequence[str]
) -> pl.LazyFrame:
    """Every (period_start, segment) from ``first`` to ``last``; missing combinations get zeros."""
    periods = pl.LazyFrame(
        {"period_start": pl.date_range(first, last, interval=f"{_period_days(period)}d", eager=True)}
    )
    segments = totals.select("segment").unique()
    return (
        periods.join(segments, how="cross")
        .join(totals, on=["period_start", "segment"], how="left")
        .with_columns(pl.col(name).fill_null(0) for name in (*BASE_COLUMNS, *known))
    )


_LAGS: dict[str, int] = {"previous_value": 0, "value_4w_ago": 28, "value_13w_ago": 91}
"""Comparison column → how many days earlier (0: the period just before)."""


def _with_comparisons(
    wide: pl.LazyFrame, metrics: Sequence[str], period: Period, first_start: date
) -> pl.LazyFrame:
    """Long (period_start, segment, metric, value) with the previous and 4/13-week-earlier values,
    ordered by segment, metric and period.

    ``wide`` holds one row per (period_start, segment) of a complete grid (`_complete_grid`) whose
    first period starts on ``first_start``: sorted by segment and period, the value k periods earlier
    is the row k places up when the period is at least the k-th of the series. Comparisons are taken
    on the wide table (one row per period and segment) before it is unpivoted, rather than by joining
    the long table to itself three times, and the output order comes from integer ranks rather than
    a sort on strings (both dominated the per-merchant weekly table's time and memory).
    """
    days = _period_days(period)
    position = (pl.col("period_start") - pl.lit(first_start)).dt.total_days() // days
    ordered = wide.sort("segment", "period_start").with_columns(
        position.alias("__position"),
        (pl.col("segment") != pl.col("segment").shift()).fill_null(True).cum_sum().alias("__segment"),
    )

    def earlier(metric: str, lag_days: int) -> pl.Expr:
        steps = 1 if lag_days == 0 else lag_days // days
        value = pl.col(metric).cast(pl.Float64)
        return pl.when(pl.col("__position") >= steps).then(value.shift(steps))

    packed = ordered.select(
        "period_start",
        "segment",
        "__segment",
        *(
            pl.struct(
                pl.col(metric).cast(pl.Float64).alias("value"),
                *(earlier(metric, lag).alias(name) for name, lag in _LAGS.items()),
            ).alias(metric)
            for metric in metrics
        ),
    )
    metric_rank = {name: rank for rank, name in enumerate(sorted(metrics))}

    def pct(previous: str) -> pl.Expr:
        return safe_ratio(pl.col("value") - pl.col(previous), pl.col(previous).abs())

    return (
        packed.unpivot(
            index=["period_start", "segment", "__segment"], on=list(metrics), variable_name="metric"
        )
        .unnest("value")
        .with_columns(
            (pl.col("value") - pl.col("previous_value")).alias("change"),
            pct("previous_value").alias("change_pct"),
            pct("value_4w_ago").alias("change_pct_4w"),
            pct("value_13w_ago").alias("change_pct_13w"),
            pl.col("metric").replace_strict(metric_rank, return_dtype=pl.UInt16).alias("__metric"),
        )
        .sort("__segment", "__metric", "period_start")
        .drop("__segment", "__metric")
    )


def kpi_table(
    creator_daily: pl.LazyFrame,
    merchant_daily: pl.LazyFrame,
    period: Period,
    breakdowns: Sequence[str] | None = None,
    as_of: date | None = None,
    metrics: Sequence[str] = METRIC_NAMES,
    product_daily: pl.LazyFrame | None = None,
    traits: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """KPIs per day or ISO week for each breakdown, long format (see the module docstring).

    Periods run from the first to the last date of ``creator_daily``; ``complete`` tells whether the
    whole period lies before ``as_of`` (a build's last week may be partial). ``traits`` (creator_id,
    region, category, tier — `analytics.sources.creator_traits`) saves a pass over ``creator_daily``
    to find each creator's segments; it must agree with the fact's own columns.
    """
    breakdowns = list(breakdowns or (WEEKLY_BREAKDOWNS if period == "week" else DAILY_BREAKDOWNS))
    if product_daily is None:
        breakdowns = [name for name in breakdowns if name != "product_category"]
    for name in breakdowns:
        if name not in BREAKDOWNS:
            raise ValueError(f"unknown breakdown {name!r}; known: {', '.join(BREAKDOWNS)}")
    span = creator_daily.select(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last")
    ).collect()
    first, last = span.item(0, "first"), span.item(0, "last")
    if first is None:
        return _empty_kpis()
    first_start = pl.select(pl.lit(first).pipe(period_start, period)).item()
    last_start = pl.select(pl.lit(last).pipe(period_start, period)).item()
    end_bound = as_of or (last + timedelta(days=1))
    creator_side = _creator_breakdowns(creator_daily, period, breakdowns, traits)
    # The aggregation is the only heavy part: run it once for all breakdowns (shared subplans are
    # computed once), then build grids, metrics and comparisons on the small totals.
    # Creator breakdowns share one per-creator aggregate: collect them together; the product and
    # merchant breakdowns read other facts, so they run afterwards (their hash tables and the creator
    # side's would otherwise be held at the same time, which set the build's peak memory).
    by_name: dict[str, pl.DataFrame] = {}
    for group in (
        [name for name in breakdowns if name in creator_side],
        [name for name in breakdowns if name not in creator_side],
    ):
        plans = [_period_totals(creator_side, merchant_daily, product_daily, period, name) for name in group]
        by_name.update(zip(group, pl.collect_all(plans, engine="streaming"), strict=True))
    all_totals = [by_name[name] for name in breakdowns]
    frames = []
    # frames in breakdown order, each sorted by segment, metric and period: the table's order
    for name, totals in sorted(zip(breakdowns, all_totals, strict=True), key=lambda pair: pair[0]):
        known = [count for count, where in _KNOWN_COUNTS.items() if name in where]
        grid = _complete_grid(totals.lazy(), first_start, last_start, period, known=known)
        wide = with_metrics(grid, metrics).select("period_start", "segment", *metrics)
        frames.append(
            _with_comparisons(wide, metrics, period, first_start).with_columns(
                pl.lit(name).alias("breakdown")
            )
        )
    days = _period_days(period)
    return (
        pl.concat(frames, how="vertical")
        .with_columns(
            pl.lit(period).alias("period"),
            (pl.col("period_start") + pl.duration(days=days - 1)).alias("period_end"),
            (pl.col("period_start") + pl.duration(days=days) <= pl.lit(end_bound)).alias("complete"),
        )
        .select(KPI_COLUMNS)
    )


def _empty_kpis() -> pl.LazyFrame:
    schema = {
        "period": pl.String,
        "period_start": pl.Date,
        "period_end": pl.Date,
        "complete": pl.Boolean,
        "breakdown": pl.String,
        "segment": pl.String,
        "metric": pl.String,
        **{name: pl.Float64 for name in KPI_COLUMNS[7:]},
    }
    return pl.LazyFrame(schema=schema)


def kpi_daily(
    creator_daily: pl.LazyFrame,
    merchant_daily: pl.LazyFrame,
    product_daily: pl.LazyFrame | None = None,
    as_of: date | None = None,
    traits: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Daily KPIs by every breakdown except merchant (see `kpi_table`)."""
    return kpi_table(
        creator_daily,
        merchant_daily,
        "day",
        DAILY_BREAKDOWNS,
        as_of,
        product_daily=product_daily,
        traits=traits,
    )


def kpi_weekly(
    creator_daily: pl.LazyFrame,
    merchant_daily: pl.LazyFrame,
    product_daily: pl.LazyFrame | None = None,
    as_of: date | None = None,
    traits: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Weekly (ISO, Monday-start) KPIs by every breakdown (see `kpi_table`)."""
    return kpi_table(
        creator_daily,
        merchant_daily,
        "week",
        WEEKLY_BREAKDOWNS,
        as_of,
        product_daily=product_daily,
        traits=traits,
    )


def filter_daily(
    daily: pl.LazyFrame,
    regions: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    content_kinds: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """``daily`` restricted to the given segments (``None`` or empty: no restriction)."""
    for column, allowed in (
        ("region", regions),
        ("category", categories),
        ("tier", tiers),
        ("content_kind", content_kinds),
    ):
        if allowed:
            daily = daily.filter(pl.col(column).is_in(list(allowed)))
    return daily


def kpi_cards(
    creator_daily: pl.LazyFrame | pl.DataFrame,
    start: date,
    end: date,
    *,
    regions: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
    content_kinds: Sequence[str] | None = None,
    merchant_daily: pl.LazyFrame | pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per metric for ``start``..``end`` (inclusive) against the previous range of equal length.

    Columns: metric, label, unit, format, definition, higher_is_better, value, previous_value, change,
    change_pct, previous_start, previous_end. Filters select creators (their region, primary category,
    tier) and content kinds; ``active_merchants`` is filled only when ``merchant_daily`` is given and
    no filter applies (a merchant has none of those traits).

    Raises:
        ValueError: if ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    length = (end - start).days + 1
    previous_start, previous_end = start - timedelta(days=length), start - timedelta(days=1)
    which = pl.when(pl.col("date") >= pl.lit(start)).then(pl.lit("current")).otherwise(pl.lit("previous"))
    daily = filter_daily(creator_daily.lazy(), regions, categories, tiers, content_kinds).filter(
        pl.col("date").is_between(previous_start, end)
    )
    totals = creator_totals(daily, [which.alias("range")])
    merchants_known = merchant_daily is not None and not (regions or categories or tiers or content_kinds)
    if merchant_daily is not None and merchants_known:
        merchants = merchant_daily.lazy().filter(pl.col("date").is_between(previous_start, end))
        totals = totals.join(
            merchant_totals(merchants, [which.alias("range")]).select("range", "active_merchants"),
            on="range",
            how="left",
        )
    ranges = pl.LazyFrame({"range": ["current", "previous"]})
    filled = ranges.join(totals, on="range", how="left").with_columns(
        pl.col(name).fill_null(0) for name in (*BASE_COLUMNS, "active_creators")
    )
    if merchants_known:
        filled = filled.with_columns(pl.col("active_merchants").fill_null(0))
    wide = with_metrics(filled).select("range", *METRIC_NAMES).collect()
    current = wide.filter(pl.col("range") == "current").row(0, named=True)
    previous = wide.filter(pl.col("range") == "previous").row(0, named=True)
    rows = []
    for name, metric in METRICS.items():
        value, before = current[name], previous[name]
        change = None if value is None or before is None else value - before
        change_pct = None if change is None or not before else change / abs(before)
        rows.append(
            {
                "metric": name,
                "label": metric.label,
                "unit": metric.unit,
                "format": metric.format,
                "definition": metric.definition,
                "higher_is_better": metric.higher_is_better,
                "value": value,
                "previous_value": before,
                "change": change,
                "change_pct": change_pct,
                "previous_start": previous_start,
                "previous_end": previous_end,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "label": pl.String,
            "unit": pl.String,
            "format": pl.String,
            "definition": pl.String,
            "higher_is_better": pl.Boolean,
            "value": pl.Float64,
            "previous_value": pl.Float64,
            "change": pl.Float64,
            "change_pct": pl.Float64,
            "previous_start": pl.Date,
            "previous_end": pl.Date,
        },
    )


OVERVIEW_BREAKDOWNS: tuple[str, ...] = ("region", "category", "tier", "content_kind")


def range_overview(
    creator_daily: pl.LazyFrame,
    merchant_daily: pl.LazyFrame,
    start: date,
    end: date,
    *,
    regions: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    tiers: Sequence[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """Everything the overview shows for ``start``..``end`` (inclusive) under the creator filters.

    Returns:
        ``cards``: `kpi_cards` against the previous range of equal length; ``daily``: metrics per day
        of both ranges, with ``range`` (``current``/``previous``) and ``day_of_range`` (0-based, to
        overlay the two); ``by_<breakdown>``: metrics of the current range per `OVERVIEW_BREAKDOWNS`
        entry, largest GMV first. Active merchants per day come from ``merchant_daily`` when no filter
        applies.
    """
    cards = kpi_cards(
        creator_daily,
        start,
        end,
        merchant_daily=merchant_daily,
        regions=regions,
        categories=categories,
        tiers=tiers,
    )
    length = (end - start).days + 1
    previous_start = start - timedelta(days=length)
    daily = filter_daily(creator_daily, regions, categories, tiers).filter(
        pl.col("date").is_between(previous_start, end)
    )
    per_day = with_metrics(creator_totals(daily, ["date"])).sort("date").collect()
    if not (regions or categories or tiers):
        merchants_per_day = (
            merchant_totals(merchant_daily.filter(pl.col("date").is_between(previous_start, end)), ["date"])
            .select("date", "active_merchants")
            .collect()
        )
        per_day = per_day.drop("active_merchants").join(merchants_per_day, on="date", how="left")
    per_day = per_day.with_columns(
        pl.when(pl.col("date") >= start).then(pl.lit("current")).otherwise(pl.lit("previous")).alias("range"),
        ((pl.col("date") - pl.lit(start)).dt.total_days() % length).alias("day_of_range"),
    )
    current = daily.filter(pl.col("date") >= start)
    breakdowns = {
        f"by_{column}": with_metrics(creator_totals(current, [column])).sort("gmv", descending=True).collect()
        for column in OVERVIEW_BREAKDOWNS
    }
    return {"cards": cards, "daily": per_day, **breakdowns}
