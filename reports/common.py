"""Pieces both reports share: ISO weeks, scoped reads, headline KPIs with comparisons, 6/12 trends.

Comparisons follow the weekly-business-review practice: this week against the previous week, the
mean of the four weeks before it, and the same week 13 weeks earlier. Changes are fractions
(``(value - reference) / |reference|``), null where the reference is missing or zero. The "6/12"
trend of a metric is the trailing 6 weeks beside the trailing 6 calendar months (the data spans
about half a year, so 6 months stands in for the usual 12). Months are computed only from data up to
the end of the reviewed week, so the last one is partial: a sum over days (GMV, orders) is shown as the
month's run-rate (its total so far × days in the month ÷ days elapsed), anything else "to date".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from analytics.kpis import creator_totals, merchant_totals
from core.access import User
from core.config import Settings
from core.metrics import METRICS, safe_ratio, with_metrics
from datastore import db
from datastore.snapshots import SnapshotNotFound, latest_manifest, load_snapshot, scoped_snapshot
from reports.model import Chart, Kpi, NoReportData, ReportError

WEEK_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_week(text: str) -> date:
    """The Monday of ISO week ``YYYY-Www`` (e.g. ``2026-W47``).

    Raises:
        ReportError: not an ISO week.
    """
    match = WEEK_PATTERN.match(text.strip())
    if not match:
        raise ReportError(f"week {text!r} is not an ISO week like 2026-W47")
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise ReportError(f"week {text!r} does not exist") from None


def week_label(monday: date) -> str:
    """``2026-W47`` for the Monday of that week."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def week_period(monday: date) -> str:
    """``2026-W47 (2026-11-16 – 2026-11-22)``."""
    return f"{week_label(monday)} ({monday.isoformat()} – {(monday + timedelta(days=6)).isoformat()})"


def manifest_or_raise(settings: Settings) -> dict[str, object]:
    """The current build's manifest.

    Raises:
        NoReportData: before the first build.
    """
    manifest = latest_manifest(settings)
    if manifest is None:
        raise NoReportData(f"no analytics build in {settings.snapshots}; run `liftboard build` first")
    return manifest


def last_complete_week(as_of: date) -> date:
    """The Monday of the last ISO week that ends before ``as_of``."""
    return as_of - timedelta(days=as_of.weekday()) - timedelta(days=7)


def complete_weeks(settings: Settings) -> list[date]:
    """Mondays of every complete week in the current build, oldest first."""
    weekly = _snapshot("kpi_weekly", settings)
    return (
        weekly.filter(pl.col("complete") & (pl.col("breakdown") == "overall"))
        .select(pl.col("period_start").unique().sort())
        .collect()
        .to_series()
        .to_list()
    )


def _snapshot(name: str, settings: Settings) -> pl.LazyFrame:
    try:
        return load_snapshot(name, settings)
    except SnapshotNotFound as exc:
        raise NoReportData(str(exc)) from None


def snapshot_for(name: str, settings: Settings, user: User | None) -> pl.LazyFrame:
    """Snapshot ``name`` as ``user`` may see it (everything for ``None`` or ops); see liftboard.access."""
    if user is None:
        return _snapshot(name, settings)
    try:
        return scoped_snapshot(name, settings, user)
    except SnapshotNotFound as exc:
        raise NoReportData(str(exc)) from None


def is_scoped(user: User | None) -> bool:
    """Whether ``user`` sees only some merchants."""
    return user is not None and user.merchant_ids is not None


def dimension(name: str, settings: Settings, ids: Sequence[str] | None = None) -> pl.DataFrame:
    """A dimension table (creators, merchants, products) from the state DB, optionally some ids."""
    frame = db.read_table(name, settings)
    if ids is not None:
        key = {"creators": "creator_id", "merchants": "merchant_id", "products": "product_id"}[name]
        frame = frame.filter(pl.col(key).is_in(list(ids)))
    return frame


# ------------------------------------------------------------------------------------------------
# Headline KPIs
# ------------------------------------------------------------------------------------------------


def weekly_series_from_kpis(kpi_weekly: pl.LazyFrame, metrics: Sequence[str], segment: str) -> pl.DataFrame:
    """Wide weekly values (period_start, one column per metric) of one segment of a KPI table."""
    long = (
        kpi_weekly.filter(pl.col("segment") == segment, pl.col("metric").is_in(list(metrics)))
        .select("period_start", "metric", "value")
        .collect()
    )
    if long.height == 0:
        return pl.DataFrame(schema={"period_start": pl.Date, **{m: pl.Float64 for m in metrics}})
    wide = long.pivot(on="metric", index="period_start", values="value").sort("period_start")
    for name in metrics:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(name))
    return wide.select("period_start", *metrics)


def series_from_merchant_daily(
    merchant_daily: pl.LazyFrame, metrics: Sequence[str], every: str, end: date
) -> pl.DataFrame:
    """Wide values per week (``every="1w"``) or month (``"1mo"``) from ``merchant_daily`` up to ``end``."""
    start = pl.col("date").dt.truncate(every).alias("period_start")
    totals = merchant_totals(merchant_daily.filter(pl.col("date") <= end), [start])
    return with_metrics(totals, metrics).select("period_start", *metrics).sort("period_start").collect()


def monthly_series_overall(
    creator_daily: pl.LazyFrame, merchant_daily: pl.LazyFrame, metrics: Sequence[str], end: date
) -> pl.DataFrame:
    """Wide monthly values of the whole marketplace from the daily facts, up to ``end`` (inclusive)."""
    month = pl.col("date").dt.truncate("1mo").alias("period_start")
    totals = creator_totals(creator_daily.filter(pl.col("date") <= end), [month])
    active_merchants = (
        merchant_daily.filter((pl.col("date") <= end) & (pl.col("orders") > 0))
        .group_by(month)
        .agg(pl.col("merchant_id").n_unique().alias("active_merchants"))
    )
    joined = totals.join(active_merchants, on="period_start", how="left")
    return with_metrics(joined, metrics).select("period_start", *metrics).sort("period_start").collect()


def _change(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return (value - reference) / abs(reference)


def headline_kpis(weekly: pl.DataFrame, week: date, metrics: Sequence[str]) -> tuple[Kpi, ...]:
    """KPI cards of ``week`` from wide weekly values.

    Compared with the previous week, the mean of the 4 weeks before and the week 13 weeks earlier.
    """
    by_week = {row["period_start"]: row for row in weekly.to_dicts()}

    def value(day: date, name: str) -> float | None:
        row = by_week.get(day)
        return None if row is None or row.get(name) is None else float(row[name])

    cards = []
    for name in metrics:
        current = value(week, name)
        previous = value(week - timedelta(days=7), name)
        last_four = [value(week - timedelta(days=7 * k), name) for k in range(1, 5)]
        known = [v for v in last_four if v is not None]
        average = sum(known) / len(known) if known else None
        earlier = value(week - timedelta(days=91), name)
        metric = METRICS[name]
        cards.append(
            Kpi(
                metric=name,
                label=metric.label,
                value=current,
                previous=previous,
                change_pct=_change(current, previous),
                average_4w=average,
                change_vs_4w_pct=_change(current, average),
                value_13w_ago=earlier,
                change_vs_13w_pct=_change(current, earlier),
                higher_is_better=metric.higher_is_better,
            )
        )
    return tuple(cards)


# ------------------------------------------------------------------------------------------------
# 6/12 trends
# ------------------------------------------------------------------------------------------------

WEEKS_SHOWN = 6
MONTHS_SHOWN = 6


def trend_chart(weekly: pl.DataFrame, monthly: pl.DataFrame, week: date, name: str) -> Chart:
    """The "6/12" chart of one metric: trailing 6 weeks (to ``week``) beside trailing 6 months."""
    first_week = week - timedelta(days=7 * (WEEKS_SHOWN - 1))
    weeks = weekly.filter(pl.col("period_start").is_between(first_week, week)).sort("period_start")
    week_end = week + timedelta(days=6)
    month_start = date(week_end.year, week_end.month, 1)
    months = monthly.filter(pl.col("period_start") <= month_start).sort("period_start").tail(MONTHS_SHOWN)
    rows: list[dict[str, object]] = []
    for row in weeks.iter_rows(named=True):
        rows.append(
            {
                "panel": f"Last {WEEKS_SHOWN} weeks",
                "x": week_label(row["period_start"]).split("-")[1],
                "y": row[name],
                "series": "weekly",
            }
        )
    data_first = monthly["period_start"].min() if monthly.height else None
    metric = METRICS[name]
    days = calendar.monthrange(month_start.year, month_start.month)[1]
    partial = week_end.day < days  # the reviewed week ends inside its month
    for row in months.iter_rows(named=True):
        start, value = row["period_start"], row[name]
        label = start.strftime("%b %Y")
        if start == month_start and partial:
            if metric.additive and value is not None:
                # a sum over part of a month would read as a fall: show the month's run-rate instead
                value = value * days / week_end.day
                label += " (run-rate)"
            else:
                label += f" (to {week_end.day})"
        rows.append({"panel": f"Last {MONTHS_SHOWN} months", "x": label, "y": value, "series": "monthly"})
    frame = pl.DataFrame(
        rows, schema={"panel": pl.String, "x": pl.String, "y": pl.Float64, "series": pl.String}
    )
    return Chart(
        key=f"trend_{name}",
        title=metric.label,
        frame=frame,
        kind="line",
        y_format=name,
        note=trend_note(month_start, week_end, data_first),  # type: ignore[arg-type]
    )


def trend_note(month_start: date, week_end: date, data_first: date | None) -> str:
    """The one footnote of every 6/12 trend chart of a report (the same for sums and rates, so a section
    prints it once)."""
    days = calendar.monthrange(month_start.year, month_start.month)[1]
    note = "Months are calendar months."
    if week_end.day < days:
        note += (
            f" {month_start:%b %Y} runs to the end of the reviewed week ({week_end.day} of {days} days): "
            f"sums (GMV, orders) show its run-rate, the total so far × {days} ÷ {week_end.day}; rates and "
            "counts of distinct creators or merchants show the value so far."
        )
    if data_first is not None:
        note += f" Data starts {data_first:%b %Y}."
    return note


def share(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``safe_ratio`` re-exported for report frames."""
    return safe_ratio(numerator, denominator)
