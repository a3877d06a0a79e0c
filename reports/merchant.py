"""The report of one merchant for merchant-success teams, assembled once for every format.

Sections: the merchant's headline KPIs (week over week, against the 4-week average and 13 weeks
earlier) and their 6/12 trends; its products and the creators selling them over the last 28 days
against the 28 days before; how it compares with the merchants of its category; its
recommendations with their rationale and the actions already taken. A merchant-success user can only
make the report of a merchant assigned to them; any other id is "not found", as in the app.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from core.access import User, can_see_merchant
from core.config import Settings
from core.metrics import METRICS
from reports.common import (
    dimension,
    headline_kpis,
    manifest_or_raise,
    series_from_merchant_daily,
    snapshot_for,
    trend_chart,
    week_label,
    week_period,
    weekly_series_from_kpis,
)
from reports.model import Report, ReportError, Section, Table, kpi_table
from reports.weekly import _strategy_names, resolve_week
from strategies.store import read_actions
from strategies.wording import NET_VALUE_HELP, evidence_label

MERCHANT_METRICS: tuple[str, ...] = (
    "gmv",
    "net_gmv",
    "orders",
    "aov",
    "active_creators",
    "ctr",
    "cvr",
    "refund_rate",
)
TREND_METRICS: tuple[str, ...] = ("gmv", "orders", "aov", "active_creators")
WINDOW_DAYS = 28

RATE_FORMATS = ("ratio", "pct_change")
"""Formats of rates: their difference from the median is in percentage points, not relative."""
TIMES_FROM = 10.0
"""From this many times the median on, the difference reads as a multiple (a 1,079× median) rather than a
relative change (+107,823.4%)."""


def _why(rationale: str) -> str:
    """The rationale's reasons, after its first sentence (the expected gain, which the line before says):
    "Why: Of this, …"; empty when it gives none."""
    reasons = rationale.split(". ", 1)[1] if ". " in rationale else ""
    return f"Why: {reasons[:1].upper()}{reasons[1:]}" if reasons else ""


def _vs_median(value: float | None, median: float | None, fmt: str) -> dict[str, object]:
    """The merchant against its category's median, and the format it reads in: rates in percentage
    points, amounts and counts as a relative change, or as a multiple when ``TIMES_FROM`` times or more."""
    if value is None or median is None:
        return {"vs_median": None, "vs_median_format": None}
    if fmt in RATE_FORMATS:
        return {"vs_median": (value - median) * 100, "vs_median_format": "pp_change"}
    if not median:
        return {"vs_median": None, "vs_median_format": None}
    if median > 0 and value / median >= TIMES_FROM:
        return {"vs_median": value / median, "vs_median_format": "multiple"}
    return {"vs_median": (value - median) / abs(median), "vs_median_format": "pct_change"}


COMPARISON_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("gmv_28d", "GMV (28 days)", "usd"),
    ("gmv_trend_28d", "GMV trend (28 vs prior 28 days)", "pct_change"),
    ("orders_28d", "Orders (28 days)", "int"),
    ("aov_91d", "AOV (91 days)", "usd2"),
    ("ctr_28d", "CTR (28 days)", "ratio"),
    ("cvr_28d", "CVR (28 days)", "ratio"),
    ("refund_rate_91d", "Refund rate (91 days)", "ratio"),
    ("cancellation_rate_91d", "Cancellation rate (91 days)", "ratio"),
    ("take_rate_91d", "Take rate (91 days)", "ratio"),
    ("median_commission_rate", "Median commission rate", "ratio"),
    ("median_price", "Median price", "usd2"),
    ("active_creators_28d", "Active creators (28 days)", "int"),
    ("top_creator_gmv_share_91d", "Top creator's GMV share (91 days)", "ratio"),
    ("catalog_products", "Products in catalog", "int"),
    ("rating", "Rating", "number"),
    ("ships_in_days", "Ships in (days)", "number"),
)
LOWER_IS_BETTER = {"refund_rate_91d", "cancellation_rate_91d", "ships_in_days", "top_creator_gmv_share_91d"}


def _window(daily: pl.LazyFrame, key: str, end: date) -> pl.DataFrame:
    """Per ``key``: GMV, orders, views, clicks in the 28 days to ``end`` and GMV in the 28 before."""
    start = end - timedelta(days=WINDOW_DAYS - 1)
    previous_start = start - timedelta(days=WINDOW_DAYS)
    current = pl.col("date") >= start
    return (
        daily.filter(pl.col("date").is_between(previous_start, end))
        .group_by(key)
        .agg(
            pl.col("gmv").filter(current).sum().alias("gmv"),
            (pl.col("gmv") - pl.col("refunded_gmv")).filter(current).sum().alias("net_gmv"),
            pl.col("orders").filter(current).sum().alias("orders"),
            pl.col("views").filter(current).sum().alias("views"),
            pl.col("clicks").filter(current).sum().alias("clicks"),
            pl.col("commission").filter(current).sum().alias("commission"),
            pl.col("gmv").filter(~current).sum().alias("previous_gmv"),
        )
        .with_columns(
            METRICS["ctr"].expr.alias("ctr"),
            METRICS["cvr"].expr.alias("cvr"),
            (pl.col("gmv") - pl.col("previous_gmv")).alias("change"),
            pl.when(pl.col("previous_gmv") > 0)
            .then((pl.col("gmv") - pl.col("previous_gmv")) / pl.col("previous_gmv"))
            .alias("growth_pct"),
        )
        .filter((pl.col("gmv") > 0) | (pl.col("previous_gmv") > 0) | (pl.col("views") > 0))
        .sort("gmv", key, descending=[True, False])
        .collect()
    )


_WINDOW_FORMATS = {
    "gmv": "usd",
    "net_gmv": "usd",
    "orders": "int",
    "views": "int",
    "clicks": "int",
    "commission": "usd",
    "previous_gmv": "usd",
    "ctr": "ctr",
    "cvr": "cvr",
    "change": "usd",
    "growth_pct": "pct_change",
    "price": "usd2",
    "commission_rate": "ratio",
    "followers": "int",
    "share_of_gmv": "ratio",
}
_WINDOW_LABELS = {
    "gmv": "GMV (28 d)",
    "net_gmv": "Net GMV",
    "previous_gmv": "GMV (prev 28 d)",
    "change": "Change",
    "growth_pct": "Growth",
    "share_of_gmv": "Share",
    "commission_rate": "Commission",
}


def merchant_report(
    settings: Settings, merchant_id: str, user: User | None = None, week: str | date | None = None
) -> Report:
    """Assemble the report of ``merchant_id`` for ``week`` (default: the last complete week).

    Raises:
        NoReportData: no build.
        ReportError: unknown merchant (or one ``user`` may not see), or unknown week.
    """
    manifest = manifest_or_raise(settings)
    merchant_id = merchant_id.strip()
    if user is not None and not can_see_merchant(user, merchant_id):
        raise ReportError(f"merchant {merchant_id!r} not found")
    merchants = dimension("merchants", settings, [merchant_id])
    if merchants.height == 0:
        raise ReportError(f"merchant {merchant_id!r} not found")
    merchant = merchants.row(0, named=True)
    monday = resolve_week(settings, week)
    sunday = monday + timedelta(days=6)

    merchant_kpis = _merchant_kpis(settings, user, merchant_id)
    weekly = weekly_series_from_kpis(merchant_kpis, MERCHANT_METRICS, merchant_id)
    merchant_daily = snapshot_for("merchant_daily", settings, user).filter(
        pl.col("merchant_id") == merchant_id
    )
    monthly = series_from_merchant_daily(merchant_daily, MERCHANT_METRICS, "1mo", sunday)
    kpis = headline_kpis(weekly, monday, MERCHANT_METRICS)
    gmv = kpis[0]

    sections = [
        Section(
            key="headline",
            title=f"{merchant['name']} ({merchant_id}): headline KPIs",
            short_title="Headline KPIs",
            summary=(
                f"{merchant['category']} merchant in {merchant['region']}, rating {merchant['rating']:.1f}, "
                f"ships in {merchant['ships_in_days']:.1f} days, "
                f"on the marketplace since {merchant['joined_on']}.",
                f"GMV in {week_label(monday)}: ${gmv.value or 0:,.0f}"
                + (f" ({gmv.change_pct:+.1%} week over week)." if gmv.change_pct is not None else "."),
            ),
            kpis=kpis,
            tables=(kpi_table(kpis),),
        ),
        Section(
            key="trends",
            title="Trends (6 weeks | 6 months)",
            short_title="Trends",
            charts=tuple(trend_chart(weekly, monthly, monday, name) for name in TREND_METRICS),
        ),
        _products(settings, user, merchant_id, sunday),
        _creators(settings, merchant_daily, sunday),
        _category(settings, user, merchant_id, str(merchant["category"])),
        _recommendations(settings, user, merchant_id),
    ]
    filters = {"merchant": f"{merchant_id} {merchant['name']}"}  # the week is in the period
    if user is not None:
        filters["user"] = user.username
    filters["build"] = str(manifest["build_id"])
    return Report(
        kind="merchant",
        title=f"Merchant report: {merchant['name']} ({merchant_id})",
        period=f"{week_period(monday)}; products and creators over the 28 days to {sunday.isoformat()}",
        filters=filters,
        build_id=str(manifest["build_id"]),
        generated_at=datetime.now(UTC).replace(microsecond=0),
        sections=tuple(sections),
        slug=f"merchant-{merchant_id}-{week_label(monday)}",
    )


def _merchant_kpis(settings: Settings, user: User | None, merchant_id: str) -> pl.LazyFrame:
    # merchant_kpi_weekly is keyed by ``segment`` (the merchant id), not ``merchant_id``, so the access
    # layer cannot scope it; the caller has checked ``can_see_merchant`` and only this merchant's rows
    # are read.
    return snapshot_for("merchant_kpi_weekly", settings, None).filter(pl.col("segment") == merchant_id)


def _products(settings: Settings, user: User | None, merchant_id: str, sunday: date) -> Section:
    daily = snapshot_for("product_daily", settings, user).filter(pl.col("merchant_id") == merchant_id)
    window = _window(daily, "product_id", sunday)
    products = dimension("products", settings).filter(pl.col("merchant_id") == merchant_id)
    frame = window.join(
        products.select("product_id", "title", "category", "price", "commission_rate"),
        on="product_id",
        how="left",
    ).select(
        "product_id",
        "title",
        "price",
        "commission_rate",
        "gmv",
        "previous_gmv",
        "change",
        "growth_pct",
        "orders",
        "views",
        "clicks",
        "ctr",
        "cvr",
    )
    total = float(frame["gmv"].sum()) if frame.height else 0.0
    sold = int((frame["gmv"] > 0).sum()) if frame.height else 0
    top = frame.head(1).to_dicts()
    summary = [
        f"{sold:,} of {products.height:,} products sold in the 28 days to {sunday}; GMV ${total:,.0f}."
    ]
    if top and total > 0:
        summary.append(
            f"Top product: {top[0]['title']} (${top[0]['gmv']:,.0f}, {top[0]['gmv'] / total:.0%} of GMV)."
        )
    return Section(
        key="products",
        title="Products (last 28 days)",
        short_title="Products",
        summary=tuple(summary),
        tables=(
            Table(
                key="products",
                title="Products by GMV",
                frame=frame,
                labels={**_WINDOW_LABELS, "product_id": "Product", "title": "Title"},
                formats=_WINDOW_FORMATS,
                print_rows=40,
                widths={"title": 2.4},
                slide_columns=("title", "price", "gmv", "growth_pct", "orders", "cvr"),
            ),
        ),
    )


def _creators(settings: Settings, merchant_daily: pl.LazyFrame, sunday: date) -> Section:
    window = _window(merchant_daily, "creator_id", sunday)
    creators = dimension("creators", settings, window["creator_id"].to_list())
    total = float(window["gmv"].sum()) if window.height else 0.0
    frame = (
        window.join(
            creators.select("creator_id", "handle", "region", "followers", "primary_category"),
            on="creator_id",
            how="left",
        )
        .with_columns((pl.col("gmv") / total if total else pl.lit(None, pl.Float64)).alias("share_of_gmv"))
        .select(
            "creator_id",
            "handle",
            "region",
            "followers",
            "gmv",
            "share_of_gmv",
            "previous_gmv",
            "change",
            "growth_pct",
            "orders",
            "commission",
            "cvr",
        )
    )
    active = int((frame["gmv"] > 0).sum()) if frame.height else 0
    new = int(((frame["previous_gmv"] == 0) & (frame["gmv"] > 0)).sum()) if frame.height else 0
    lost = int(((frame["previous_gmv"] > 0) & (frame["gmv"] == 0)).sum()) if frame.height else 0
    return Section(
        key="creators",
        title="Creators selling its products (last 28 days)",
        short_title="Creators",
        summary=(
            f"{active:,} creators sold its products in the 28 days to {sunday}: "
            f"{new:,} new against the 28 days "
            f"before, {lost:,} stopped.",
        ),
        tables=(
            Table(
                key="creators",
                title="Creators by GMV",
                frame=frame,
                labels={**_WINDOW_LABELS, "creator_id": "Creator", "handle": "Handle"},
                formats=_WINDOW_FORMATS,
                print_rows=40,
                widths={"handle": 1.6},
                slide_columns=("handle", "region", "followers", "gmv", "share_of_gmv", "growth_pct"),
            ),
        ),
    )


def _category(settings: Settings, user: User | None, merchant_id: str, category: str) -> Section:
    # Category medians are aggregates over the category's merchants: no other merchant's rows are shown.
    features = (
        snapshot_for("merchant_features", settings, None).filter(pl.col("category") == category).collect()
    )
    own = features.filter(pl.col("merchant_id") == merchant_id)
    rows = []
    for column, label, fmt in COMPARISON_FEATURES:
        if column not in features.columns:
            continue
        values = features[column].drop_nulls()
        value = own[column][0] if own.height else None
        median = float(values.median()) if values.len() else None  # type: ignore[arg-type]
        if value is not None and values.len():
            below = float((values < value).sum() + 0.5 * (values == value).sum()) / values.len()
            percentile = 1.0 - below if column in LOWER_IS_BETTER else below
        else:
            percentile = None
        rows.append(
            {
                "measure": label,
                "format": fmt,
                "merchant": None if value is None else float(value),
                "category_median": median,
                **_vs_median(None if value is None else float(value), median, fmt),
                "percentile": percentile,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "measure": pl.String,
            "format": pl.String,
            "merchant": pl.Float64,
            "category_median": pl.Float64,
            "vs_median": pl.Float64,
            "vs_median_format": pl.String,
            "percentile": pl.Float64,
        },
    )
    better = frame.filter(pl.col("percentile") >= 0.75)["measure"].to_list()
    worse = frame.filter(pl.col("percentile") <= 0.25)["measure"].to_list()
    summary = [f"Compared with the {features.height} merchants of the {category} category (as of the build)."]
    if better:
        summary.append("Strong (top quarter of the category): " + "; ".join(better) + ".")
    if worse:
        summary.append("Weak (bottom quarter): " + "; ".join(worse) + ".")
    return Section(
        key="category",
        title=f"Compared with its category ({category})",
        short_title="Category comparison",
        summary=tuple(summary),
        tables=(
            Table(
                key="category",
                title="Merchant against the category median",
                frame=frame,
                labels={
                    "measure": "Measure",
                    "merchant": "Merchant",
                    "category_median": "Category median",
                    "vs_median": "vs median",
                    "percentile": "Percentile (higher is better)",
                },
                formats={"vs_median": "pct_change", "percentile": "ratio"},
                metric_column="format",
                per_row_columns=("merchant", "category_median"),
                format_columns={"vs_median": "vs_median_format"},
                widths={"measure": 2.2},
                hidden=("format", "vs_median_format"),
            ),
        ),
    )


def _recommendations(settings: Settings, user: User | None, merchant_id: str) -> Section:
    recs = (
        snapshot_for("recommendations", settings, user)
        .filter((pl.col("entity_kind") == "merchant") & (pl.col("entity_id") == merchant_id))
        .sort("rank")
        .collect()
    )
    actions = read_actions(settings, entity_ids=[merchant_id])
    if actions.height:
        actions = actions.filter(pl.col("entity_kind") == "merchant").select(
            "strategy", pl.col("status").alias("action_status"), pl.col("started_on").cast(pl.String)
        )
        recs = recs.join(actions.unique("strategy", keep="first"), on="strategy", how="left")
    else:
        recs = recs.with_columns(
            pl.lit(None, pl.String).alias("action_status"), pl.lit(None, pl.String).alias("started_on")
        )
    if "established" not in recs.columns:  # a build from before the evidence flag
        recs = recs.with_columns(established=pl.lit(None, pl.Boolean))
    frame = recs.with_columns(pl.col("strategy").replace(_strategy_names())).select(
        "rank",
        "strategy",
        evidence_label(pl.col("established")).fill_null("").alias("evidence"),
        "expected_uplift",
        "uplift_low",
        "uplift_high",
        "cost",
        "net_value",
        "is_best",
        pl.col("action_status").fill_null("proposed"),
        "started_on",
        pl.col("rationale").fill_null(""),
    )
    best = frame.filter(pl.col("is_best")).head(1).to_dicts()
    summary = (
        (
            f"Best strategy: {best[0]['strategy']}, "
            f"expected +${best[0]['expected_uplift']:,.0f} GMV over 28 days "
            f"(${best[0]['uplift_low']:,.0f} to ${best[0]['uplift_high']:,.0f}) for ${best[0]['cost']:,.0f}"
            + (f"; its effect is {best[0]['evidence']}." if best[0]["evidence"] else "."),
            _why(best[0]["rationale"]),
            NET_VALUE_HELP,
        )
        if best
        else ("No recommendation for this merchant in the current run.",)
    )
    return Section(
        key="recommendations",
        title="Recommendations and rationale",
        short_title="Recommendations",
        summary=tuple(line for line in summary if line),
        tables=(
            Table(
                key="recommendations",
                title="Strategies ranked for this merchant",
                frame=frame.with_columns(
                    pl.col("is_best").cast(pl.String).replace({"true": "best", "false": ""})
                ),
                labels={
                    "expected_uplift": "Expected uplift (28 d)",
                    "uplift_low": "Low",
                    "uplift_high": "High",
                    "net_value": "Net value",
                    "is_best": "Best",
                    "evidence": "Evidence",
                    "action_status": "Status",
                },
                formats={
                    "rank": "int",
                    "expected_uplift": "usd",
                    "uplift_low": "usd",
                    "uplift_high": "usd",
                    "cost": "usd",
                    "net_value": "usd",
                },
                widths={"rationale": 4.0, "strategy": 1.6, "rank": 0.5},
                slide_columns=("rank", "strategy", "expected_uplift", "cost", "net_value", "action_status"),
            ),
        ),
    )


def merchant_report_bytes(
    settings: Settings, user: User | None, merchant_id: str, fmt: str, week: str | date | None = None
) -> bytes:
    """The merchant report of ``merchant_id`` in ``fmt`` (``xlsx``, ``pdf``, ``pptx`` or ``html``).

    For the app's merchant page: ``st.download_button(data=lambda: merchant_report_bytes(...))``.

    Raises:
        ReportError: unknown format or merchant (including one ``user`` may not see).
        NoReportData: no build.
    """
    from reports.render import render

    return render(merchant_report(settings, merchant_id, user, week), fmt)
