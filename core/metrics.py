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

How a number reads is decided here too, once per unit (`Display`): a metric's from its unit and format,
and the other quantities the app shows (expected uplift, Qini coefficient, mean predicted lift, …) from
`FIELDS`. `display_of(column)` resolves a column to one of them; nothing guesses a format from a word
inside a column's name.
"""

from __future__ import annotations

import re
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

Unit = Literal["USD", "count", "ratio", "USD per 1,000 views", "points", "multiple", "number"]
"""``ratio``: a share shown as a percentage; ``points``: a difference of two shares (percentage points);
``multiple``: one value over another (1.25×); ``number``: a unitless score (a correlation, a Qini
coefficient)."""


def safe_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator``, null when the denominator is zero or null."""
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def rate(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """A share: ``safe_ratio`` clipped to [0, 1] (e.g. orders not driven by a click can exceed clicks)."""
    return safe_ratio(numerator, denominator).clip(0.0, 1.0)


@dataclass(frozen=True)
class Display:
    """How a quantity reads, in grids, charts, cards and workbooks alike: its unit and a fixed number of
    decimals (one column, one number of decimals)."""

    unit: Unit
    decimals: int = 0

    @property
    def is_money(self) -> bool:
        return self.unit in ("USD", "USD per 1,000 views")

    @property
    def scale(self) -> float:
        """What a stored value is multiplied by before a printf format shows it (points: ×100)."""
        return 100.0 if self.unit == "points" else 1.0

    @property
    def streamlit_format(self) -> str:
        """A Streamlit ``NumberColumn`` format (its decimals are set by `step`)."""
        if self.is_money:
            return "dollar"
        if self.unit == "ratio":
            return "percent"
        if self.unit == "count":
            return "localized"
        if self.unit == "points":
            return f"%+.{self.decimals}f pp"
        if self.unit == "multiple":
            return f"%.{self.decimals}f×"
        return f"%.{self.decimals}f"

    @property
    def step(self) -> float:
        """The ``NumberColumn`` step: Streamlit's presets take their (fixed) decimals from it."""
        return 10.0 ** -(self.decimals + (2 if self.unit == "ratio" else 0))

    @property
    def d3_format(self) -> str:
        """The d3 format of axes and hover labels."""
        d = self.decimals
        return {
            "USD": f"$,.{d}f",
            "USD per 1,000 views": f"$,.{d}f",
            "ratio": f".{d}%",
            "points": f"+.{d}%",
            "count": f",.{d}f",
            "multiple": f".{d}f",
        }.get(self.unit, f".{d}f")

    @property
    def excel_format(self) -> str:
        """The Excel number format of the stored value (points and multiples as plain numbers)."""
        d = "." + "0" * self.decimals if self.decimals else ""
        if self.is_money:
            return f'"$"#,##0{d}'
        if self.unit == "ratio":
            return f"0{d}%"
        if self.unit == "count":
            return f"#,##0{d}"
        return f"0{d}"

    def text(self, value: float | None) -> str:
        """The value as a label reads it: ``$1,234``, ``12.3%``, ``+1.5 pp``, ``1.25×``, ``0.408``."""
        if value is None or value != value:
            return "—"
        d = self.decimals
        if self.is_money:
            return f"{'-' if value < 0 else ''}${abs(value):,.{d}f}"
        if self.unit == "ratio":
            return f"{value * 100:.{d}f}%"
        if self.unit == "points":
            return f"{value * 100:+.{d}f} pp"
        if self.unit == "multiple":
            return f"{value:.{d}f}×"
        if self.unit == "count":
            return f"{value:,.{d}f}"
        return f"{value:.{d}f}"


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
    def display(self) -> Display:
        """How the metric reads: its unit, with the decimals of its d3 format."""
        decimals = re.search(r"\.(\d+)", self.d3_format)
        return Display(self.unit, int(decimals.group(1)) if decimals else 0)

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


_USD, _CENTS = Display("USD"), Display("USD", 2)
_SHARE, _COUNT, _SCORE = Display("ratio", 1), Display("count"), Display("number", 3)
_FIELD_GROUPS: tuple[tuple[Display, tuple[str, ...]], ...] = (
    (
        _USD,
        (
            "expected_uplift", "uplift_low", "uplift_high", "cost", "net_value", "cumulative_cost", "budget",
            "qini_area", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30", "realized_uplift",
            "predicted_so_far", "predicted_uplift", "gmv_before", "gmv_since", "change", "lifetime_gmv",
            "pilot_cost", "contribution", "previous_gmv", "platform_gmv", "gmv_if_sold",
        ),
    ),
    (
        _CENTS,
        (
            "price", "gmv_per_member", "average_gmv_per_member", "cumulative_gmv_per_member",
            # a pair's expected GMV over 28 days is often cents (0.5% × $300): whole dollars read $0
            "expected_gmv",
        ),
    ),
    (
        _SHARE,
        (
            "mean_predicted_lift", "holdout_policy_vs_oracle", "truth_policy_vs_oracle", "average_effect",
            "effect_low_95", "effect_high_95", "pilot_detectable_effect", "growth_pct", "change_pct",
            "change_pct_4w", "change_pct_13w", "gmv_trend_28d", "retention", "average_retention", "share",
            "share_of_gmv", "live_share_of_gmv_91d", "top_creator_gmv_share_91d", "beats_default_share",
            "commission_rate", "median_commission_rate", "category_median_commission_rate",
            "view_rate_28d", "share_of_platform_gmv", "confidence",
        ),
    ),
    # a creator's chance of selling a product new to them is mostly under 1%: one decimal read 0.0%
    (Display("ratio", 2), ("p_sold",)),
    (Display("points", 1), ("retention_vs_average", "retention_vs_previous_cohort")),
    (Display("multiple", 2), ("gmv_per_member_vs_average", "gmv_per_member_vs_previous_cohort")),
    (
        _COUNT,
        (
            "entities", "members", "active_members", "days_observed", "treated_rows", "control_rows",
            "pilot_per_arm", "pilot_required_per_arm", "pilot_eligible", "pilot_strata", "catalog_products",
            "followers", "content_28d", "rank", "weeks_since", "n_train", "n_holdout", "n_treated",
            "n_control", "rows", "rows_read", "rows_loaded", "rows_updated", "rows_quarantined",
            "rows_duplicate", "files", "products_matched", "baskets", "pair_count", "count_a", "count_b",
            "decile",
        ),
    ),
    (
        _SCORE,
        ("qini_coefficient", "holdout_spearman", "truth_spearman", "similarity", "score", "pmi"),
    ),
    (Display("number", 1), ("rating", "seconds", "half_life_days", "ships_in_days", "tenure_days")),
    (Display("number", 2), ("pair_strength", "adjusted_lift")),
)  # fmt: skip

FIELDS: Mapping[str, Display] = MappingProxyType(
    {name: display for display, names in _FIELD_GROUPS for name in names}
)
"""How quantities that are not metrics of the dictionary read (model scores, uplift, counts of rows …),
by the column name the libraries give them."""

_WINDOW_SUFFIXES = ("_prev_28d", "_prev", "_28d", "_91d", "_7d")
_RELATIVE_PREFIXES = ("previous_", "category_median_", "median_", "peer_median_")


def display_of(column: str) -> Display | None:
    """How ``column`` reads: a field of `FIELDS`, or a metric of the dictionary, possibly over a window
    (``ctr_28d``, ``gmv_prev_28d``) or of a reference (``previous_gmv``, ``median_cvr``); ``None`` for
    a column the dictionary does not know (shown by its type alone)."""
    if column in FIELDS:
        return FIELDS[column]
    base = column
    for suffix in _WINDOW_SUFFIXES:
        base = base.removesuffix(suffix)
    for prefix in _RELATIVE_PREFIXES:
        base = base.removeprefix(prefix)
    if base in METRICS:
        return METRICS[base].display
    return FIELDS.get(base)
