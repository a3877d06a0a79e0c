"""The metric dictionary: every business metric of Liftboard, defined once.

A metric is a Polars expression over a frame of *summed base columns* (one row per period and
segment, say): ``gmv``, ``refunded_gmv``, ``orders``, ``cancelled``, ``commission``, ``impressions``,
``views``, ``clicks``, ``add_to_carts``, ``videos``, ``lives``, ``active_creators`` and
``active_merchants``. Pipelines, pages (tooltips, number formats) and reports take formulas, labels,
units and formats from here; nothing re-types a formula.

Order accounting (see docs/analytics.md): an order counts towards ``orders`` and ``gmv`` unless it was
cancelled; a refunded order was completed and then refunded, so it is in ``gmv`` and in
``refunded_gmv``; ``net_gmv = gmv - refunded_gmv`` is the GMV of orders that stayed completed.
Ratios are null when their denominator is zero (never 0, never inf) and rates are clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import polars as pl

BASE_COLUMNS: tuple[str, ...] = (
    "impressions",
    "views",
    "clicks",
    "add_to_carts",
    "orders",
    "gmv",
    "refunded_gmv",
    "cancelled",
    "commission",
    "videos",
    "lives",
)
"""Additive columns of the daily facts: summing them over any rows gives the total of those rows."""

Unit = Literal["USD", "count", "ratio", "USD per 1,000 views"]


def safe_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator``, null when the denominator is zero or null."""
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def rate(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """A share: ``safe_ratio`` clipped to [0, 1] (e.g. orders not driven by a click can exceed clicks)."""
    return safe_ratio(numerator, denominator).clip(0.0, 1.0)


Column = Callable[[str], pl.Expr]
"""How a formula reads a base column: ``pl.col`` or a renaming of it (`Metric.over`)."""


@dataclass(frozen=True)
class Metric:
    """One metric: how it is computed, shown and explained."""

    name: str
    label: str
    formula: Callable[[Column], pl.Expr]
    """The formula over base columns, given how to read a column."""
    unit: Unit
    format: str
    """Streamlit ``NumberColumn`` format preset ("dollar", "percent", "localized")."""
    d3_format: str
    """d3 format for Plotly axes and hover labels."""
    excel_format: str
    definition: str
    higher_is_better: bool = True
    additive: bool = False
    """Whether the metric is a sum over days (GMV, orders): a part of a period can then be scaled to a
    run-rate for the whole of it (ratios and distinct counts cannot)."""

    @property
    def expr(self) -> pl.Expr:
        """The formula over the base columns themselves (``gmv``, ``clicks``, …)."""
        return self.formula(pl.col)

    def over(self, suffix: str) -> pl.Expr:
        """The formula over suffixed base columns: ``ctr.over("_28d")`` is clicks_28d / views_28d."""
        return self.formula(lambda name: pl.col(f"{name}{suffix}"))

    @property
    def is_rate(self) -> bool:
        """Whether the metric is a share in [0, 1]."""
        return self.unit == "ratio"


_METRIC_LIST: tuple[Metric, ...] = (
    Metric(
        "gmv",
        "GMV",
        lambda c: c("gmv"),
        "USD",
        "dollar",
        "$,.0f",
        '"$"#,##0',
        "Gross merchandise value of orders that were not cancelled (completed, including later refunded).",
        additive=True,
    ),
    Metric(
        "net_gmv",
        "Net GMV",
        lambda c: c("gmv") - c("refunded_gmv"),
        "USD",
        "dollar",
        "$,.0f",
        '"$"#,##0',
        "GMV minus the GMV of refunded orders: the value of orders that stayed completed.",
        additive=True,
    ),
    Metric(
        "orders",
        "Orders",
        lambda c: c("orders"),
        "count",
        "localized",
        ",d",
        "#,##0",
        "Number of orders that were not cancelled.",
        additive=True,
    ),
    Metric(
        "aov",
        "AOV",
        lambda c: safe_ratio(c("gmv"), c("orders")),
        "USD",
        "dollar",
        "$,.2f",
        '"$"#,##0.00',
        "Average order value: GMV divided by orders.",
    ),
    Metric(
        "ctr",
        "CTR",
        lambda c: rate(c("clicks"), c("views")),
        "ratio",
        "percent",
        ".2%",
        "0.00%",
        "Click-through rate: product clicks divided by content views.",
    ),
    Metric(
        "cvr",
        "CVR",
        lambda c: rate(c("orders"), c("clicks")),
        "ratio",
        "percent",
        ".2%",
        "0.00%",
        "Conversion rate: orders divided by product clicks.",
    ),
    Metric(
        "gpm",
        "GPM",
        lambda c: safe_ratio(c("gmv") * 1000.0, c("views")),
        "USD per 1,000 views",
        "dollar",
        "$,.2f",
        '"$"#,##0.00',
        "GMV per 1,000 content views.",
    ),
    Metric(
        "commission",
        "Commission",
        lambda c: c("commission"),
        "USD",
        "dollar",
        "$,.0f",
        '"$"#,##0',
        "Commission earned by creators on orders that were not cancelled.",
        additive=True,
    ),
    Metric(
        "take_rate",
        "Take rate",
        lambda c: rate(c("commission"), c("gmv")),
        "ratio",
        "percent",
        ".2%",
        "0.00%",
        "Commission as a share of GMV.",
    ),
    Metric(
        "refund_rate",
        "Refund rate",
        lambda c: rate(c("refunded_gmv"), c("gmv")),
        "ratio",
        "percent",
        ".2%",
        "0.00%",
        "Share of GMV that was refunded.",
        higher_is_better=False,
    ),
    Metric(
        "active_creators",
        "Active creators",
        lambda c: c("active_creators"),
        "count",
        "localized",
        ",d",
        "#,##0",
        "Creators with at least one piece of content or one order in the period.",
    ),
    Metric(
        "active_merchants",
        "Active merchants",
        lambda c: c("active_merchants"),
        "count",
        "localized",
        ",d",
        "#,##0",
        "Merchants with at least one order in the period.",
    ),
    Metric(
        "gmv_per_active_creator",
        "GMV per active creator",
        lambda c: safe_ratio(c("gmv"), c("active_creators")),
        "USD",
        "dollar",
        "$,.2f",
        '"$"#,##0.00',
        "GMV divided by the number of active creators.",
    ),
)

METRICS: Mapping[str, Metric] = MappingProxyType({metric.name: metric for metric in _METRIC_LIST})
"""Every metric by name, in display order."""

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
RATE_METRICS: tuple[str, ...] = tuple(name for name, metric in METRICS.items() if metric.is_rate)


def metric(name: str) -> Metric:
    """The metric called ``name``, or a clear error listing the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}") from None


def metric_exprs(names: Iterable[str] | None = None) -> list[pl.Expr]:
    """The expressions of ``names`` (all metrics by default), each aliased to its name, as Float64."""
    return [metric(name).expr.cast(pl.Float64).alias(name) for name in (names or METRIC_NAMES)]


def with_metrics(lf: pl.LazyFrame, names: Iterable[str] | None = None) -> pl.LazyFrame:
    """``lf`` (summed base columns) with the metric columns added; missing activity counts are null."""
    columns = set(lf.collect_schema().names())
    missing = [
        pl.lit(None, dtype=pl.Int64).alias(name)
        for name in ("active_creators", "active_merchants")
        if name not in columns
    ]
    return lf.with_columns(missing).with_columns(metric_exprs(names))


def describe_metrics() -> pl.DataFrame:
    """The dictionary as a frame (name, label, unit, formats, definition) for docs and UIs."""
    return pl.DataFrame(
        [
            {
                "name": m.name,
                "label": m.label,
                "unit": m.unit,
                "format": m.format,
                "d3_format": m.d3_format,
                "excel_format": m.excel_format,
                "definition": m.definition,
                "higher_is_better": m.higher_is_better,
            }
            for m in METRICS.values()
        ]
    )
