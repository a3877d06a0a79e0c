"""Which alert rules hold at which hours: the lake's recent orders against seasonal expectations.

Every rule is judged on a window of hours that ends at an evaluation hour (``window_end``, the first hour
*not* in the window) against an expected range built from earlier data only:

- ``below_expected`` (GMV or orders, platform or per region; a region is the creator's, as in the KPIs):
  the expected value is the median of the same window on the last ``reference_weeks`` same weekdays,
  leaving out references that fall on a mega-sale day; on a mega-sale day itself it is that median times
  the segment's sale-day factor, measured on the latest earlier sale day (its day total over the median
  of its own 4 same-weekday references); with no earlier sale day in the data a sale day is not judged.
  The spread is Poisson for orders (variance = expected count) and compound Poisson for GMV (variance =
  the references' median sum of squared order values). The rule holds when the observed value is below
  ``min(expected - threshold·sd, expected·(1 - min_change))``.
- ``rate_spike`` (a merchant's share of orders refunded or cancelled): the baseline rate is the
  merchant's own over the ``baseline_days`` before the window (a rate is normalized by volume, so sale
  days need no separate treatment); the rule holds when at least ``min_volume`` orders were placed, the
  count is above ``expected + threshold·sd`` (binomial) and the rate at least ``(1 + min_change)`` times
  the baseline.
- ``quiet`` (a creator among the ``top_n`` by GMV over the ``baseline_days`` before the day, who published
  in each of those weeks): the expected orders of the window are the creator's average over those days;
  the rule holds when the creator published nothing in the window, at least ``min_volume`` orders were
  expected and the observed count is at most ``(1 - min_change)`` of it and below the Poisson bound.

`rule_breaches` returns one row per (rule, entity, window_end) that holds, with the evidence; the alert
state (`alerts.state`) and the replay tests (`alert_episodes`) consume it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

from alerts.rules import Rule

HOUR = timedelta(hours=1)
UTC_TYPE = pl.Datetime("us", "UTC")
BREACH_SCHEMA = pl.Schema(
    [
        ("rule_id", pl.String()),
        ("entity_kind", pl.String()),
        ("entity_id", pl.String()),
        ("merchant_id", pl.String()),
        ("window_start", UTC_TYPE),
        ("window_end", UTC_TYPE),
        ("observed", pl.Float64()),
        ("expected", pl.Float64()),
        ("expected_low", pl.Float64()),
        ("expected_high", pl.Float64()),
        ("unit", pl.String()),
        ("volume", pl.Float64()),
        ("severity", pl.String()),
    ]
)
"""One row per rule, entity and evaluation hour whose condition holds. ``unit`` is ``USD``, ``count`` or
``ratio`` (how ``observed`` and the expected range read); ``volume`` the orders behind the judgement."""


def floor_hour(moment: datetime) -> datetime:
    """``moment`` (naive = UTC) truncated to its hour, in UTC."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def history_hours(rule: Rule) -> int:
    """How many hours before the first evaluated window a rule reads."""
    if rule.kind == "below_expected":
        return 24 * (7 * rule.reference_weeks + rule.spread_days) + 2 * rule.window_hours
    return 24 * rule.baseline_days + rule.window_hours + 48


def poisson_high(mean: pl.Expr, threshold: float) -> pl.Expr:
    """The count above which a Poisson draw of ``mean`` is ``threshold`` deviations high, on the
    Freeman-Tukey scale (``sqrt(x) + sqrt(x + 1) - sqrt(4·mean + 1)``, close to normal for small means)."""
    return ((threshold + (4 * mean + 1).sqrt()) / 2) ** 2 - 0.5


def poisson_low(mean: pl.Expr, threshold: float) -> pl.Expr:
    """The count below which a Poisson draw of ``mean`` is ``threshold`` deviations low (0 when none is)."""
    root = (4 * mean + 1).sqrt() - threshold
    return pl.when(root > 0).then((root / 2) ** 2 - 0.5).otherwise(0.0).clip(lower_bound=0.0)


def _hours(first: datetime, last: datetime) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"hour": pl.datetime_range(first, last, "1h", time_unit="us", time_zone="UTC", eager=True)}
    )


def hourly_orders(
    orders: pl.LazyFrame, creators: pl.LazyFrame, first: datetime, last: datetime
) -> pl.LazyFrame:
    """Orders between the hours ``first`` and ``last`` (inclusive) summed per hour, creator and merchant.

    Columns: hour, creator_id, merchant_id, region (the creator's), placed (all orders), orders (not
    cancelled), gmv, gmv_sq (sum of squared order GMV), refunded, cancelled.
    """
    status = pl.col("status")
    kept = status != "cancelled"
    return (
        orders.filter(pl.col("ordered_at").is_between(first, last + HOUR, closed="left"))
        .join(creators.select("creator_id", "region"), on="creator_id", how="left")
        .group_by(pl.col("ordered_at").dt.truncate("1h").alias("hour"), "creator_id", "merchant_id", "region")
        .agg(
            pl.len().cast(pl.Int64).alias("placed"),
            kept.sum().cast(pl.Int64).alias("orders"),
            pl.col("gmv").filter(kept).sum().alias("gmv"),
            (pl.col("gmv") ** 2).filter(kept).sum().alias("gmv_sq"),
            (status == "refunded").sum().cast(pl.Int64).alias("refunded"),
            (~kept).sum().cast(pl.Int64).alias("cancelled"),
        )
        .with_columns(pl.col("region").fill_null("unknown"))
    )


def _dense(
    hourly: pl.LazyFrame, segment: pl.Expr, first: datetime, last: datetime, columns: Sequence[str]
) -> pl.LazyFrame:
    """Per segment and hour (every hour from ``first`` to ``last``, zeros where nothing happened)."""
    sums = hourly.group_by(segment.alias("segment"), "hour").agg(pl.col(columns).sum())
    segments = sums.select("segment").unique()
    return (
        segments.join(_hours(first, last), how="cross")
        .join(sums, on=["segment", "hour"], how="left")
        .with_columns(pl.col(columns).fill_null(0))
        .sort("segment", "hour")
    )


def sale_day_factors(
    orders: pl.LazyFrame, creators: pl.LazyFrame, scope: str, metric: str, sale_days: Iterable[date]
) -> pl.LazyFrame:
    """Per segment and mega-sale day in the data: the day's total over the median of the totals of its 4
    previous same weekdays that were not sale days (``segment``, ``sale_day``, ``factor``)."""
    sale = sorted(set(sale_days))
    kept = pl.col("status") != "cancelled"
    value = (pl.col("gmv") if metric == "gmv" else pl.lit(1.0)).filter(kept).sum()
    segment = pl.lit("all") if scope == "platform" else pl.col("region").fill_null("unknown")
    daily = (
        orders.join(creators.select("creator_id", "region"), on="creator_id", how="left")
        .group_by(segment.alias("segment"), pl.col("ordered_at").dt.date().alias("day"))
        .agg(value.alias("total"))
        .sort("segment", "day")
    )
    wanted = [day - timedelta(days=7 * k) for day in sale for k in range(1, 5)]
    refs = daily.filter(pl.col("day").is_in(wanted) & ~pl.col("day").is_in(sale))
    per_sale = pl.LazyFrame(
        {
            "sale_day": [day for day in sale for _ in range(4)],
            "day": wanted,
        },
        schema={"sale_day": pl.Date(), "day": pl.Date()},
    )
    reference = (
        per_sale.join(refs, on="day")
        .group_by("segment", "sale_day")
        .agg(pl.col("total").median().alias("reference"), pl.len().alias("n"))
        .filter(pl.col("n") >= 2)
    )
    return (
        daily.filter(pl.col("day").is_in(sale))
        .rename({"day": "sale_day"})
        .join(reference, on=["segment", "sale_day"])
        .filter(pl.col("reference") > 0)
        .select("segment", "sale_day", (pl.col("total") / pl.col("reference")).alias("factor"))
        .sort("sale_day")
    )


def _evaluated(frame: pl.LazyFrame, first_end: datetime, last_end: datetime) -> pl.LazyFrame:
    return frame.filter(pl.col("window_end").is_between(first_end, last_end))


def below_expected_breaches(
    hourly: pl.LazyFrame,
    factors: pl.LazyFrame,
    rule: Rule,
    first_end: datetime,
    last_end: datetime,
    sale_days: Iterable[date],
) -> pl.LazyFrame:
    """Where a ``below_expected`` rule holds for a window ending between ``first_end`` and ``last_end``."""
    w, metric = rule.window_hours, rule.metric
    segment = pl.lit("all") if rule.scope == "platform" else pl.col("region")
    first = first_end - HOUR * history_hours(rule)
    sale = sorted(set(sale_days))
    frame = _dense(hourly, segment, first, last_end - HOUR, ["orders", "gmv"]).with_columns(
        value=pl.col(metric).cast(pl.Float64).rolling_sum(w).over("segment"),
        volume=pl.col("orders").cast(pl.Float64).rolling_sum(w).over("segment"),
        window_end=pl.col("hour") + HOUR,
        day=pl.col("hour").dt.date(),
    )
    first_day = (pl.col("hour") - HOUR * (w - 1)).dt.date()
    frame = frame.with_columns(  # a window that crosses into or out of a sale day is not judged
        sale=pl.col("day").is_in(sale),
        straddles=(first_day != pl.col("day")) & (first_day.is_in(sale) | pl.col("day").is_in(sale)),
    )
    weeks = range(1, rule.reference_weeks + 1)

    def references(column: str) -> pl.Expr:
        return pl.concat_list(
            [
                pl.when(~pl.col("sale").shift(168 * k).over("segment"))
                .then(pl.col(column).shift(168 * k).over("segment"))
                .otherwise(None)
                for k in weeks
            ]
        ).list.drop_nulls()

    spread_hours = 24 * rule.spread_days
    judged = (
        frame.with_columns(refs=references("value"), volume_refs=references("volume"))
        .with_columns(
            reference=pl.when(pl.col("refs").list.len() >= 2).then(pl.col("refs").list.median()),
            expected_volume=pl.when(pl.col("refs").list.len() >= 2).then(pl.col("volume_refs").list.median()),
        )
        .with_columns(  # how far a normal window strays from its reference, in logs (sale days apart)
            log_ratio=pl.when(~pl.col("sale") & (pl.col("expected_volume") >= rule.min_volume))
            .then(((pl.col("value") + 1) / (pl.col("reference") + 1)).log())
            .otherwise(None)
        )
        .with_columns(
            spread=pl.col("log_ratio")
            .rolling_std(spread_hours, min_samples=24)
            .shift(rule.window_hours)
            .over("segment")
        )
        .pipe(_evaluated, first_end, last_end)
        .filter(pl.col("reference").is_not_null() & pl.col("spread").is_not_null())
        .sort("day")
        .join_asof(
            factors.rename({"sale_day": "factor_day"}).sort("factor_day"),
            left_on="day",
            right_on="factor_day",
            by="segment",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .with_columns(factor=pl.when(pl.col("sale")).then(pl.col("factor")).otherwise(1.0))
        .filter(pl.col("factor").is_not_null() & ~pl.col("straddles"))
        .with_columns(
            expected=pl.col("reference") * pl.col("factor"),
            expected_volume=pl.col("expected_volume") * pl.col("factor"),
        )
        .with_columns(
            expected_low=pl.min_horizontal(
                (pl.col("expected") + 1) * (-rule.threshold * pl.col("spread")).exp() - 1,
                pl.col("expected") * (1 - rule.min_change),
            ).clip(lower_bound=0.0),
            expected_high=(pl.col("expected") + 1) * (rule.threshold * pl.col("spread")).exp() - 1,
        )
        .filter((pl.col("expected_volume") >= rule.min_volume) & (pl.col("value") < pl.col("expected_low")))
    )
    return judged.select(
        _breach_columns(
            rule,
            entity=pl.col("segment"),
            merchant=pl.lit(None, pl.String),
            start=pl.col("window_end") - HOUR * w,
            observed=pl.col("value"),
            unit="USD" if metric == "gmv" else "count",
            volume=pl.col("volume"),
        )
    )


def _breach_columns(
    rule: Rule,
    *,
    entity: pl.Expr,
    merchant: pl.Expr,
    start: pl.Expr,
    unit: str,
    volume: pl.Expr,
    observed: pl.Expr | None = None,
    expected: pl.Expr | None = None,
    low: pl.Expr | None = None,
    high: pl.Expr | None = None,
) -> list[pl.Expr]:
    """The columns of a breach, the same for every rule (what ``rule_breaches`` concatenates)."""
    return [
        pl.lit(rule.id).alias("rule_id"),
        pl.lit(rule.entity_kind).alias("entity_kind"),
        entity.alias("entity_id"),
        merchant.alias("merchant_id"),
        start.alias("window_start"),
        pl.col("window_end"),
        (pl.col("observed") if observed is None else observed).alias("observed"),
        (pl.col("expected") if expected is None else expected).alias("expected"),
        (pl.col("expected_low") if low is None else low).alias("expected_low"),
        (pl.col("expected_high") if high is None else high).alias("expected_high"),
        pl.lit(unit).alias("unit"),
        volume.alias("volume"),
        pl.lit(rule.severity).alias("severity"),
    ]


def rate_spike_breaches(
    hourly: pl.LazyFrame, rule: Rule, first_end: datetime, last_end: datetime
) -> pl.LazyFrame:
    """Where a merchant ``rate_spike`` rule holds for a window ending between the two hours."""
    w, base = rule.window_hours, 24 * rule.baseline_days
    first = first_end - HOUR * history_hours(rule)
    frame = _dense(hourly, pl.col("merchant_id"), first, last_end - HOUR, ["placed", rule.metric])
    count = pl.col(rule.metric).cast(pl.Float64)
    placed = pl.col("placed").cast(pl.Float64)
    judged = (
        frame.with_columns(
            observed_count=count.rolling_sum(w).over("segment"),
            volume=placed.rolling_sum(w).over("segment"),
            base_count=count.rolling_sum(base).over("segment").shift(w).over("segment"),
            base_placed=placed.rolling_sum(base).over("segment").shift(w).over("segment"),
            window_end=pl.col("hour") + HOUR,
        )
        .pipe(_evaluated, first_end, last_end)
        .filter(pl.col("base_placed").is_not_null() & (pl.col("volume") >= rule.min_volume))
        .with_columns(  # a merchant with no such orders yet has a small, not zero, rate (add-one)
            expected=(pl.col("base_count") + 1) / (pl.col("base_placed") + 2),
            observed=pl.col("observed_count") / pl.col("volume"),
        )
        .with_columns(
            expected_low=poisson_low(pl.col("expected") * pl.col("volume"), rule.threshold)
            / pl.col("volume"),
            expected_high=pl.max_horizontal(
                poisson_high(pl.col("expected") * pl.col("volume"), rule.threshold) / pl.col("volume"),
                pl.col("expected") * (1 + rule.min_change),
            ),
        )
        .filter(pl.col("observed") > pl.col("expected_high"))
    )
    return judged.select(
        _breach_columns(
            rule,
            entity=pl.col("segment"),
            merchant=pl.col("segment"),
            start=pl.col("window_end") - HOUR * w,
            unit="ratio",
            volume=pl.col("volume"),
        )
    )


def top_creators(orders: pl.LazyFrame, days: Sequence[date], top_n: int, baseline_days: int) -> pl.LazyFrame:
    """The ``top_n`` creators by GMV over the ``baseline_days`` before each of ``days`` (day, creator_id)."""
    frames = []
    for day in days:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        frames.append(
            orders.filter(
                pl.col("ordered_at").is_between(start - timedelta(days=baseline_days), start, closed="left")
                & (pl.col("status") != "cancelled")
            )
            .group_by("creator_id")
            .agg(pl.col("gmv").sum())
            .sort("gmv", "creator_id", descending=[True, False])
            .head(top_n)
            .select(pl.lit(day).alias("day"), "creator_id")
        )
    if not frames:
        return pl.LazyFrame(schema={"day": pl.Date(), "creator_id": pl.String()})
    return pl.concat(frames)


def hourly_content(content: pl.LazyFrame, first: datetime, last: datetime) -> pl.LazyFrame:
    """Pieces of content published per creator and hour between ``first`` and ``last`` (inclusive)."""
    return (
        content.filter(pl.col("published_at").is_between(first, last + HOUR, closed="left"))
        .group_by(pl.col("published_at").dt.truncate("1h").alias("hour"), "creator_id")
        .agg(pl.len().cast(pl.Int64).alias("pieces"))
    )


def quiet_breaches(
    hourly: pl.LazyFrame,
    content_hourly: pl.LazyFrame,
    watched: pl.LazyFrame,
    rule: Rule,
    first_end: datetime,
    last_end: datetime,
) -> pl.LazyFrame:
    """Where a watched (top) creator has published nothing and sold far below their usual in a window
    ending between the hours (a creator's sales come in bursts after each post, so silence on orders
    alone is not unusual; silence on both is)."""
    w, base = rule.window_hours, 24 * rule.baseline_days
    first = first_end - HOUR * history_hours(rule)
    candidates = watched.select("creator_id").unique()
    sold = hourly.join(candidates, on="creator_id", how="semi").select("hour", "creator_id", "orders")
    posted = content_hourly.join(candidates, on="creator_id", how="semi")
    both = pl.concat([sold, posted], how="diagonal_relaxed").with_columns(
        pl.col("orders", "pieces").fill_null(0)
    )
    frame = _dense(both, pl.col("creator_id"), first, last_end - HOUR, ["orders", "pieces"])

    def usual(column: str) -> pl.Expr:
        return (
            pl.col(column).cast(pl.Float64).rolling_sum(base).over("segment").shift(w).over("segment")
            * w
            / base
        )

    weekly = pl.col("pieces").cast(pl.Float64).rolling_sum(168).over("segment")
    regular = pl.all_horizontal(  # published in each of the weeks before the window
        [weekly.shift(w + 168 * k).over("segment") > 0 for k in range(rule.baseline_days // 7)]
    )
    judged = (
        frame.with_columns(
            observed=pl.col("orders").cast(pl.Float64).rolling_sum(w).over("segment"),
            observed_pieces=pl.col("pieces").cast(pl.Float64).rolling_sum(w).over("segment"),
            expected=usual("orders"),
            expected_pieces=usual("pieces"),
            regular=regular,
            window_end=pl.col("hour") + HOUR,
            day=pl.col("hour").dt.date(),
        )
        .pipe(_evaluated, first_end, last_end)
        .filter(pl.col("regular"))
        .join(watched.rename({"creator_id": "segment"}), on=["day", "segment"], how="semi")
        .with_columns(
            expected_low=pl.min_horizontal(
                poisson_low(pl.col("expected"), rule.threshold), pl.col("expected") * (1 - rule.min_change)
            ),
            expected_high=poisson_high(pl.col("expected"), rule.threshold),
        )
        .filter(
            (pl.col("expected") >= rule.min_volume)
            & (pl.col("observed_pieces") == 0)
            & (pl.col("observed") <= pl.col("expected_low"))
        )
    )
    return judged.select(
        _breach_columns(
            rule,
            entity=pl.col("segment"),
            merchant=pl.lit(None, pl.String),
            start=pl.col("window_end") - HOUR * w,
            unit="count",
            volume=pl.col("expected"),
        )
    )


def live_streams(
    orders: pl.LazyFrame, engagement: pl.LazyFrame, content: pl.LazyFrame, first_day: date, last_day: date
) -> pl.LazyFrame:
    """Every live stream published between the two days: content_id, creator_id, day, clicks (on its day,
    when engagement is recorded) and orders (not cancelled, attributed to it, on its day)."""
    lives = content.filter(
        (pl.col("kind") == "live") & pl.col("published_at").dt.date().is_between(first_day, last_day)
    ).select("content_id", "creator_id", pl.col("published_at").dt.date().alias("day"))
    clicks = (
        engagement.join(
            lives.select("content_id", "day"), left_on=["content_id", "date"], right_on=["content_id", "day"]
        )
        .group_by("content_id")
        .agg(pl.col("clicks").sum().cast(pl.Float64))
    )
    sold = (
        orders.filter(pl.col("status") != "cancelled")
        .join(lives.select("content_id", "day"), on="content_id")
        .filter(pl.col("ordered_at").dt.date() == pl.col("day"))
        .group_by("content_id")
        .agg(pl.len().cast(pl.Float64).alias("orders"))
    )
    return (
        lives.join(clicks, on="content_id", how="left")
        .join(sold, on="content_id", how="left")
        .with_columns(pl.col("clicks", "orders").fill_null(0.0))
    )


def live_conversion_breaches(
    lives: pl.LazyFrame, rule: Rule, first_end: datetime, last_end: datetime
) -> pl.LazyFrame:
    """Where a live stream converted far below its creator's usual: judged once its day is complete, for
    ``window_hours`` after it; the usual is the creator's pooled conversion (orders per click) over their
    lives in the ``baseline_days`` before, from at least ``min_history`` of them."""
    history = lives.select(
        "creator_id",
        pl.col("day").alias("past_day"),
        pl.col("clicks").alias("past_clicks"),
        pl.col("orders").alias("past_orders"),
    )
    usual = (
        lives.join(history, on="creator_id")
        .filter(
            (pl.col("past_day") < pl.col("day"))
            & (pl.col("past_day") >= pl.col("day") - pl.duration(days=rule.baseline_days))
        )
        .group_by("content_id")
        .agg(
            pl.len().alias("n_lives"),
            pl.col("past_clicks").sum().alias("base_clicks"),
            pl.col("past_orders").sum().alias("base_orders"),
        )
        .filter((pl.col("n_lives") >= rule.min_history) & (pl.col("base_clicks") > 0))
    )
    day_end = pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC") + pl.duration(days=1)
    judged = (
        lives.join(usual, on="content_id")
        .with_columns(
            rate=pl.col("base_orders") / pl.col("base_clicks"),
            observed_rate=pl.when(pl.col("clicks") > 0).then(pl.col("orders") / pl.col("clicks")),
        )
        .with_columns(expected_orders=pl.col("rate") * pl.col("clicks"))
        .with_columns(
            low_orders=pl.min_horizontal(
                poisson_low(pl.col("expected_orders"), rule.threshold),
                pl.col("expected_orders") * (1 - rule.min_change),
            ),
            high_orders=poisson_high(pl.col("expected_orders"), rule.threshold),
        )
        .filter((pl.col("expected_orders") >= rule.min_volume) & (pl.col("orders") < pl.col("low_orders")))
        .with_columns(
            window_end=pl.datetime_ranges(
                pl.max_horizontal(day_end + HOUR, pl.lit(first_end)),
                pl.min_horizontal(day_end + HOUR * rule.window_hours, pl.lit(last_end)),
                "1h",
            )
        )
        .explode("window_end")
        .filter(pl.col("window_end").is_not_null())
    )
    return judged.select(
        _breach_columns(
            rule,
            entity=pl.col("content_id"),
            merchant=pl.lit(None, pl.String),
            start=day_end - pl.duration(days=1),
            observed=pl.col("observed_rate"),
            expected=pl.col("rate"),
            low=pl.col("low_orders") / pl.col("clicks"),
            high=pl.col("high_orders") / pl.col("clicks"),
            unit="ratio",
            volume=pl.col("clicks"),
        )
    )


def rule_breaches(
    orders: pl.LazyFrame,
    creators: pl.LazyFrame,
    content: pl.LazyFrame,
    engagement: pl.LazyFrame,
    rules: Sequence[Rule],
    first_end: datetime,
    last_end: datetime,
    sale_days: Iterable[date],
) -> pl.DataFrame:
    """Every (rule, entity, window_end) whose condition holds, for windows ending at each hour from
    ``first_end`` to ``last_end`` (inclusive, truncated to hours), with its evidence (`BREACH_SCHEMA`)."""
    first_end, last_end = floor_hour(first_end), floor_hour(last_end)
    requested = first_end
    first_end -= HOUR * (max((rule.for_hours for rule in rules), default=1) - 1)
    sale = tuple(sale_days)
    longest = max((history_hours(rule) for rule in rules), default=0) + 24 * 28
    hourly = hourly_orders(orders, creators, first_end - HOUR * longest, last_end).collect().lazy()
    parts: list[pl.LazyFrame] = []
    for rule in rules:
        if rule.kind == "below_expected":
            factors = sale_day_factors(orders, creators, rule.scope, rule.metric, sale)
            parts.append(below_expected_breaches(hourly, factors, rule, first_end, last_end, sale))
        elif rule.kind == "rate_spike":
            parts.append(rate_spike_breaches(hourly, rule, first_end, last_end))
        elif rule.kind == "live_conversion":
            last_day = (last_end - HOUR).date()
            first_day = (first_end - HOUR * (rule.window_hours + 24)).date() - timedelta(
                days=rule.baseline_days
            )
            lives = live_streams(orders, engagement, content, first_day, last_day).collect().lazy()
            parts.append(live_conversion_breaches(lives, rule, first_end, last_end))
        else:
            days = pl.date_range(
                (first_end - HOUR).date(), (last_end - HOUR).date(), "1d", eager=True
            ).to_list()
            watched = top_creators(orders, days, rule.top_n, rule.baseline_days)
            content_hourly = hourly_content(content, first_end - HOUR * longest, last_end).collect().lazy()
            parts.append(quiet_breaches(hourly, content_hourly, watched, rule, first_end, last_end))
    if not parts:
        return BREACH_SCHEMA.to_frame()
    frames = pl.collect_all([part.select(list(BREACH_SCHEMA)).cast(BREACH_SCHEMA) for part in parts])
    held = pl.concat(frames).sort("rule_id", "entity_id", "window_end")
    return sustained(held, rules).filter(pl.col("window_end") >= requested)


def sustained(breaches: pl.DataFrame, rules: Sequence[Rule]) -> pl.DataFrame:
    """The breaches whose rule has held for the rule's ``for_hours`` consecutive evaluations up to them."""
    needed = pl.DataFrame(
        {"rule_id": [rule.id for rule in rules], "_for": [rule.for_hours for rule in rules]},
        schema={"rule_id": pl.String(), "_for": pl.Int64()},
    )
    span = (pl.col("window_end") - pl.col("window_end").shift(pl.col("_for").first() - 1)).over(
        "rule_id", "entity_id"
    )
    return (
        breaches.join(needed, on="rule_id", how="left")
        .with_columns(pl.col("_for").fill_null(1))
        .filter((pl.col("_for") == 1) | (span == pl.duration(hours=pl.col("_for") - 1)))
        .drop("_for")
    )


def alert_episodes(breaches: pl.DataFrame, rules: Sequence[Rule]) -> pl.DataFrame:
    """Breach hours merged into alerts as the alert state does: a (rule, entity) whose condition comes
    back within the rule's cooldown continues the same alert.

    Columns: rule_id, entity_kind, entity_id, merchant_id, opened (first window_end), last_seen (last
    window_end) and hours (evaluations that held).
    """
    cooldown = pl.DataFrame(
        {"rule_id": [rule.id for rule in rules], "cooldown_hours": [rule.cooldown_hours for rule in rules]}
    )
    return (
        breaches.join(cooldown, on="rule_id")
        .sort("rule_id", "entity_id", "window_end")
        .with_columns(
            gap=(
                pl.col("window_end") - pl.col("window_end").shift(1).over("rule_id", "entity_id")
            ).dt.total_hours()
        )
        .with_columns(
            episode=(pl.col("gap").is_null() | (pl.col("gap") > pl.col("cooldown_hours") + 1))
            .cum_sum()
            .over("rule_id", "entity_id")
        )
        .group_by("rule_id", "entity_kind", "entity_id", "episode")
        .agg(
            pl.col("merchant_id").first(),
            pl.col("window_end").min().alias("opened"),
            pl.col("window_end").max().alias("last_seen"),
            pl.len().alias("hours"),
        )
        .drop("episode")
        .sort("opened", "rule_id", "entity_id")
    )
