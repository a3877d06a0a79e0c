"""Today so far: the day's figures against the same hours of the last same weekdays, straight from the lake.

What the Overview's "Today" cards and the creator and merchant "today" cards show between builds. They read
the lake at its last committed run (a stream micro-batch or a file ingest), never a build's snapshots, so
they move with every commit; only the days they need are scanned (the fact tables are partitioned by day).

- **Now** is the time of the newest order in the lake (`latest_order_time`), not the wall clock: a lake
  fed by a replay or by a feed that is hours behind is judged as of its own last event, and the app says
  how old that is.
- **Orders figures** (GMV, orders, AOV, refund rate) cover midnight UTC up to now, against the same hours
  (midnight to the same time of day) of each of the last ``reference_weeks`` same weekdays. A reference
  that falls on a mega-sale day (`core.calendar`) is left out; on a mega-sale day itself the usual range
  is that of normal days and the cards say so. A refund that arrives later changes its order's day (the
  day the order was placed), as everywhere in the KPIs.
- **Engagement figures** (CTR, CVR) come from the daily engagement counts, which arrive once a day is
  over: they are those of the latest day that has engagement, against the same weekdays before it, whole
  days on both sides (CVR is that day's orders over its clicks).

Every figure's formula is the metric dictionary's (`core.metrics`) over the base columns of
`analytics.sources.merchant_daily`; the usual value is the median of the references and the usual range
their lowest and highest (at least `MIN_REFERENCES` of them, else the figure has no comparison).
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

import polars as pl

from analytics.sources import Inputs, load_inputs, merchant_daily
from core import metrics
from core.calendar import is_mega_sale_day
from core.config import Settings
from datastore.lake import LakeVersion, lake_version

ORDER_FIGURES: tuple[str, ...] = ("gmv", "orders", "aov", "refund_rate")
ENGAGEMENT_FIGURES: tuple[str, ...] = ("ctr", "cvr")
FIGURES: tuple[str, ...] = ORDER_FIGURES + ENGAGEMENT_FIGURES
REFERENCE_WEEKS = 4
MIN_REFERENCES = 2
_BASE = [name for name in metrics.BASE_COLUMNS if name not in ("videos", "lives")]

TODAY_SCHEMA = pl.Schema(
    [
        ("metric", pl.String()),
        ("label", pl.String()),
        ("value", pl.Float64()),
        ("usual", pl.Float64()),
        ("usual_low", pl.Float64()),
        ("usual_high", pl.Float64()),
        ("change_pct", pl.Float64()),
        ("references", pl.Int64()),
        ("period", pl.String()),
        ("definition", pl.String()),
        ("higher_is_better", pl.Boolean()),
    ]
)
"""One row per figure: its value, the usual value (median of the references) and range, the change
against the usual value (a fraction; null without references), how many references there were, and the
period the figure covers in words."""


@dataclass(frozen=True)
class TodayWindow:
    """The periods today's figures cover."""

    now: datetime  # the newest order's time (UTC): orders up to and including it count
    engagement_day: date | None  # the latest day with engagement counts (None: no engagement yet)
    first_day: date  # the first day with orders: earlier days are no references (the data starts later)
    reference_weeks: int = REFERENCE_WEEKS

    @property
    def day(self) -> date:
        return self.now.date()

    @property
    def sale_day(self) -> bool:
        return is_mega_sale_day(self.day)

    def _references(self, day: date) -> list[date]:
        """The same weekdays before ``day`` within the data, mega-sale days left out."""
        back = (day - timedelta(days=7 * k) for k in range(1, self.reference_weeks + 1))
        return [ref for ref in back if ref >= self.first_day and not is_mega_sale_day(ref)]

    def order_days(self) -> list[date]:
        """Today and its reference days (same weekdays back, mega-sale days left out)."""
        return [self.day, *self._references(self.day)]

    def engagement_days(self) -> list[date]:
        """The engagement day and its reference days (empty without engagement)."""
        if self.engagement_day is None:
            return []
        return [self.engagement_day, *self._references(self.engagement_day)]

    def order_period(self) -> str:
        """The orders figures' period in words."""
        return f"today {self.day:%d %b}, 00:00–{self.now:%H:%M} UTC"

    def engagement_period(self) -> str:
        """The engagement figures' period in words."""
        if self.engagement_day is None:
            return "no engagement counts yet"
        return f"{self.engagement_day:%d %b} (engagement is counted per whole day)"


def order_span(orders: pl.LazyFrame) -> tuple[datetime, datetime] | None:
    """The oldest and the newest ``ordered_at`` in ``orders`` (None when there are none)."""
    first, last = (
        orders.select(first=pl.col("ordered_at").min(), last=pl.col("ordered_at").max()).collect().row(0)
    )
    return None if last is None else (first, last)


def latest_engagement_day(engagement: pl.LazyFrame, not_after: date) -> date | None:
    """The latest engagement ``date`` on or before ``not_after`` (None when there is none)."""
    return engagement.filter(pl.col("date") <= not_after).select(pl.col("date").max()).collect().item()


def today_window(inputs: Inputs, reference_weeks: int = REFERENCE_WEEKS) -> TodayWindow | None:
    """The window of today's figures for the lake ``inputs`` reads (None: the lake holds no orders)."""
    span = order_span(inputs.orders)
    if span is None:
        return None
    first, now = span
    return TodayWindow(
        now, latest_engagement_day(inputs.engagement, now.date()), first.date(), reference_weeks
    )


def _any(conditions: Iterable[pl.Expr]) -> pl.Expr:
    """Whether any of ``conditions`` holds (false for none)."""
    return reduce(operator.or_, conditions, pl.lit(False))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _so_far(window: TodayWindow) -> pl.Expr:
    """Orders placed on today or a reference day before the time of day of ``window.now``."""
    at = pl.col("ordered_at")
    elapsed = window.now - _midnight(window.day)
    days = window.order_days()
    return _any(at.is_between(_midnight(day), _midnight(day) + elapsed, closed="both") for day in days)


def _on_days(column: str, days: list[date]) -> pl.Expr:
    """``column`` (a timestamp or a date) falls on one of ``days``: a range filter per day, which the
    lake's day partitions and the Parquet statistics can prune on."""
    col = pl.col(column)
    if column == "date":
        return col.is_in(days)
    return _any(
        col.is_between(_midnight(day), _midnight(day + timedelta(days=1)), closed="left") for day in days
    )


def _daily(inputs: Inputs, orders: pl.Expr, engagement: pl.Expr, scope: pl.Expr | None) -> pl.LazyFrame:
    """Base columns per day of the orders and engagement selected, within ``scope`` (a filter on
    `merchant_daily`'s columns), summed over creators and merchants."""
    selected = replace(
        inputs, orders=inputs.orders.filter(orders), engagement=inputs.engagement.filter(engagement)
    )
    daily = merchant_daily(selected)
    if scope is not None:
        daily = daily.filter(scope)
    return daily.group_by("date").agg(pl.col(_BASE).sum())


def _figures(per_day: pl.DataFrame, day: date | None, names: tuple[str, ...], period: str) -> list[dict]:
    """One row per metric: ``day``'s value against the other days of ``per_day`` (its references)."""
    rows = []
    if day is None:
        values = pl.DataFrame(schema={"date": pl.Date(), **{name: pl.Float64() for name in names}})
    else:
        values = per_day.with_columns(metrics.metric_exprs(names)).select("date", *names)
    current = values.filter(pl.col("date") == day) if day is not None else values.clear()
    references = values.filter(pl.col("date") != day) if day is not None else values.clear()
    for name in names:
        metric = metrics.metric(name)
        refs = references[name].drop_nulls()
        value = current[name].item() if current.height else None
        enough = refs.len() >= MIN_REFERENCES
        usual = float(refs.median()) if enough else None  # type: ignore[arg-type]
        change = (value - usual) / usual if enough and value is not None and usual else None
        rows.append(
            {
                "metric": name,
                "label": metric.label,
                "value": value,
                "usual": usual,
                "usual_low": float(refs.min()) if enough else None,  # type: ignore[arg-type]
                "usual_high": float(refs.max()) if enough else None,  # type: ignore[arg-type]
                "change_pct": change,
                "references": refs.len(),
                "period": period,
                "definition": metric.definition,
                "higher_is_better": metric.higher_is_better,
            }
        )
    return rows


def today_figures(inputs: Inputs, window: TodayWindow, scope: pl.Expr | None = None) -> pl.DataFrame:
    """Today's figures (`TODAY_SCHEMA`, in `FIGURES` order) for the whole marketplace or for ``scope``: a
    filter on ``merchant_id`` / ``creator_id`` (one creator's or one merchant's card, or the merchants a
    user may see).

    Reference days with no orders at all in scope count as zero (a day that sold nothing is a reference),
    so the references are the days themselves, not only the days with rows.
    """
    nothing = pl.lit(False)
    orders = _daily(inputs, _so_far(window), nothing, scope).collect()
    orders = _complete(orders, window.order_days())
    engagement_days = window.engagement_days()
    if engagement_days:
        engaged = _daily(
            inputs, _on_days("ordered_at", engagement_days), _on_days("date", engagement_days), scope
        )
        engaged_days = _complete(engaged.collect(), engagement_days)
    else:
        engaged_days = orders.clear()
    rows = _figures(orders, window.day, ORDER_FIGURES, window.order_period())
    rows += _figures(engaged_days, window.engagement_day, ENGAGEMENT_FIGURES, window.engagement_period())
    return pl.DataFrame(rows, schema=TODAY_SCHEMA, orient="row")


def _complete(per_day: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """``per_day`` with a row of zeros for each of ``days`` that had nothing."""
    grid = pl.DataFrame({"date": days}, schema={"date": pl.Date()})
    return grid.join(per_day, on="date", how="left").with_columns(pl.col(_BASE).fill_null(0))


@dataclass(frozen=True)
class Today:
    """Today's figures as the lake's last committed run leaves them, and how fresh they are."""

    figures: pl.DataFrame  # `TODAY_SCHEMA`; empty when the lake holds no orders
    window: TodayWindow | None
    lake: LakeVersion  # the run the figures read (its id and when it was committed)


def lake_today(
    settings: Settings,
    *,
    creator_id: str | None = None,
    merchant_ids: Collection[str] | None = None,
    run_id: str | None = None,
    reference_weeks: int = REFERENCE_WEEKS,
) -> Today:
    """Today's figures from the last committed run of the lake: the marketplace's, one creator's
    (``creator_id``) or those of some merchants (``merchant_ids``: a merchant's card, or what a
    merchant-success user may see). Both scopes together: the creator's sales of those merchants.
    ``run_id``: read the lake as that committed run left it (default: the last one)."""
    version = lake_version(settings, run_id)
    inputs = load_inputs(replace(settings, lake_run=version.run_id))
    window = today_window(inputs, reference_weeks)
    if window is None:
        return Today(pl.DataFrame(schema=TODAY_SCHEMA), None, version)
    scope = pl.lit(True)
    if creator_id is not None:
        scope &= pl.col("creator_id") == creator_id
    if merchant_ids is not None:
        scope &= pl.col("merchant_id").is_in(sorted(merchant_ids))
    return Today(today_figures(inputs, window, scope), window, version)
