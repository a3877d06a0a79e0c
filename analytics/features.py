"""Creator and merchant features as of a date, from data strictly before it.

Both functions return one row per entity that joined before ``as_of`` and only ever look at facts
dated before ``as_of`` (``date < as_of``; showcase entries added before it; products listed before
it), so adding rows dated on or after ``as_of`` changes nothing. Windows count back from ``as_of``:
"last 28 days" means ``as_of - 28 <= date < as_of``. The observed window never starts before the first
date of the facts (or the entity's joining), so per-week rates are not diluted by days with no data.

Dimension attributes that the lake stores only as of today (``followers``, ``rating``,
``ships_in_days``) are used as they are: the schema keeps no history of them.

Every column is documented in docs/analytics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from analytics.segments import tier_expr
from core.metrics import METRICS, rate, safe_ratio


@dataclass(frozen=True)
class FeatureConfig:
    """Windows of the features (days)."""

    short_days: int = 7
    window_days: int = 28
    long_days: int = 91
    fresh_days: int = 28

    @property
    def long_weeks(self) -> int:
        return self.long_days // 7


def _days_before(as_of: date) -> pl.Expr:
    """Days from a row's ``date`` to ``as_of`` (1 = the day before)."""
    return (pl.lit(as_of) - pl.col("date")).dt.total_days()


MONEY_COLUMNS = ("gmv", "refunded_gmv", "commission")
"""Base columns in USD: their window sums are rounded to the cent."""


def _window_sum(column: str, first_day: int, last_day: int) -> pl.Expr:
    """Sum of ``column`` over rows ``first_day`` to ``last_day`` days before as-of (``__days``); money to
    the cent, so that the sum does not depend on the order of its terms (which a parallel group-by, or
    daily facts computed in pieces, does not fix) beyond it."""
    total = pl.col(column).filter(pl.col("__days").is_between(first_day, last_day)).sum()
    return total.round(2) if column in MONEY_COLUMNS else total


def _observed_days(as_of: date, data_start: pl.Expr, joined_on: pl.Expr, window: int) -> pl.Expr:
    """Days of the window before ``as_of`` that lie after both the data start and the joining."""
    start = pl.max_horizontal(pl.lit(as_of - timedelta(days=window)), data_start, joined_on)
    return (pl.lit(as_of) - start).dt.total_days().clip(0, window)


def _data_start(daily: pl.LazyFrame) -> pl.LazyFrame:
    return daily.select(pl.col("date").min().alias("__data_start"))


def _weekly_posting(daily: pl.LazyFrame, key: str, weeks: int) -> pl.LazyFrame:
    """Per entity: sum and sum of squares of content per 7-day bucket, and active buckets."""
    bucket = ((pl.col("__days") - 1) // 7).alias("__bucket")
    return (
        daily.filter(pl.col("__days") <= 7 * weeks)
        .group_by(key, bucket)
        .agg(
            (pl.col("videos") + pl.col("lives")).sum().alias("__posts"),
            ((pl.col("videos") + pl.col("lives") + pl.col("orders")).sum() > 0).alias("__active"),
        )
        .group_by(key)
        .agg(
            pl.col("__posts").sum().alias("__posts_sum"),
            (pl.col("__posts").cast(pl.Float64) ** 2).sum().alias("__posts_sq"),
            pl.col("__active").sum().cast(pl.Int64).alias("weeks_active_13w"),
        )
    )


def _category_focus(daily: pl.LazyFrame, key: str, long_days: int) -> pl.LazyFrame:
    """Per entity: top category by views (ties: larger GMV, then name), its share and the entropy."""
    per_category = (
        daily.filter(pl.col("__days") <= long_days, pl.col("views") > 0)
        .group_by(key, "category")
        .agg(pl.col("views").sum(), pl.col("gmv").sum())
    )
    return (
        per_category.sort(key, "views", "gmv", "category", descending=[False, True, True, False])
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("category").first().alias("top_category_91d"),
            (pl.col("views").first() / pl.col("views").sum()).alias("top_category_share_91d"),
            pl.col("views").cast(pl.Float64).entropy(base=2).alias("category_entropy_91d"),
            pl.len().cast(pl.Int64).alias("categories_promoted_91d"),
        )
    )


def _sales_columns() -> list[str | pl.Expr]:
    """The sales block shared by creator and merchant features (windowed sums already aggregated)."""
    return [
        "orders_28d",
        "orders_91d",
        "gmv_7d",
        "gmv_28d",
        "gmv_prev_28d",
        "gmv_91d",
        safe_ratio(pl.col("gmv_28d") - pl.col("gmv_prev_28d"), pl.col("gmv_prev_28d")).alias("gmv_trend_28d"),
        "lifetime_gmv",
        METRICS["aov"].over("_91d").alias("aov_91d"),
        METRICS["refund_rate"].over("_91d").alias("refund_rate_91d"),
    ]


def creator_features(
    creator_daily: pl.LazyFrame,
    creators: pl.LazyFrame,
    showcase: pl.LazyFrame,
    products: pl.LazyFrame,
    as_of: date,
    cfg: FeatureConfig | None = None,
    *,
    merchant_daily: pl.LazyFrame | None = None,
    data_start: date | None = None,
) -> pl.LazyFrame:
    """Creator features as of ``as_of`` (one row per creator who joined before it).

    ``data_start`` is the first day of ``creator_daily`` (its minimum date when ``None``): the features
    of a bucket of creators (`analytics.partitions`) are those of the whole table given the whole
    table's first day, since nothing else in them looks across creators.

    Category focus (``top_category_91d``, ``top_category_share_91d``, ``category_entropy_91d``,
    ``categories_promoted_91d``) is measured on ``merchant_daily``: the views a creator brought to
    merchants of each category (a merchant's category stands for what it sells). Without
    ``merchant_daily`` those columns are null.
    """
    cfg = cfg or FeatureConfig()
    s, w, lw = cfg.short_days, cfg.window_days, cfg.long_days
    history = creator_daily.filter(pl.col("date") < as_of).with_columns(_days_before(as_of).alias("__days"))
    recent = history.filter(pl.col("__days") <= max(lw, 2 * w))
    is_live = pl.col("content_kind") == "live"
    if merchant_daily is None:
        focus = pl.LazyFrame(
            schema={
                "creator_id": pl.String,
                "top_category_91d": pl.String,
                "top_category_share_91d": pl.Float64,
                "category_entropy_91d": pl.Float64,
                "categories_promoted_91d": pl.Int64,
            }
        )
    else:
        promoted = merchant_daily.filter(
            pl.col("date") < as_of, pl.col("date") >= as_of - timedelta(days=lw)
        ).with_columns(_days_before(as_of).alias("__days"))
        focus = _category_focus(promoted, "creator_id", lw)
    windows = recent.group_by("creator_id").agg(
        _window_sum("videos", 1, lw).alias("videos_91d"),
        _window_sum("lives", 1, lw).alias("lives_91d"),
        _window_sum("impressions", 1, w).alias("impressions_28d"),
        _window_sum("views", 1, w).alias("views_28d"),
        _window_sum("clicks", 1, w).alias("clicks_28d"),
        _window_sum("add_to_carts", 1, w).alias("add_to_carts_28d"),
        (_window_sum("videos", 1, w) + _window_sum("lives", 1, w)).alias("content_28d"),
        _window_sum("orders", 1, w).alias("orders_28d"),
        _window_sum("orders", 1, lw).alias("orders_91d"),
        _window_sum("gmv", 1, s).alias("gmv_7d"),
        _window_sum("gmv", 1, w).alias("gmv_28d"),
        _window_sum("gmv", w + 1, 2 * w).alias("gmv_prev_28d"),
        _window_sum("gmv", 1, lw).alias("gmv_91d"),
        _window_sum("refunded_gmv", 1, lw).alias("refunded_gmv_91d"),
        _window_sum("commission", 1, w).alias("commission_28d"),
        _window_sum("commission", 1, lw).alias("commission_91d"),
        pl.col("gmv").filter(is_live, pl.col("__days") <= lw).sum().alias("live_gmv_91d"),
    )
    active = (pl.col("videos") + pl.col("lives") > 0) | (pl.col("orders") > 0)
    lifetime = history.group_by("creator_id").agg(
        pl.col("__days").filter(active).min().alias("days_since_last_activity"),
        pl.col("__days")
        .filter(pl.col("videos") + pl.col("lives") > 0)
        .min()
        .alias("days_since_last_content"),
        pl.col("__days").filter(pl.col("orders") > 0).min().alias("days_since_last_order"),
        pl.col("gmv").sum().alias("lifetime_gmv"),
    )
    on_showcase = showcase.filter(
        pl.col("added_on") < as_of, pl.col("removed_on").is_null() | (pl.col("removed_on") >= as_of)
    ).join(products.select("product_id", "price"), on="product_id", how="left")
    showcase_stats = on_showcase.group_by("creator_id").agg(
        pl.len().cast(pl.Int64).alias("showcase_products"),
        (pl.col("added_on") >= as_of - timedelta(days=cfg.fresh_days))
        .sum()
        .cast(pl.Int64)
        .alias("showcase_added_28d"),
        (pl.lit(as_of) - pl.col("added_on")).dt.total_days().median().alias("showcase_median_age_days"),
        pl.col("price").median().alias("showcase_median_price"),
    )
    people = creators.filter(pl.col("joined_on") < as_of).select(
        "creator_id",
        "region",
        "primary_category",
        "followers",
        tier_expr(pl.col("followers")).alias("tier"),
        "joined_on",
    )
    zero = [
        "videos_91d",
        "lives_91d",
        "impressions_28d",
        "views_28d",
        "clicks_28d",
        "add_to_carts_28d",
        "content_28d",
        "orders_28d",
        "orders_91d",
        "gmv_7d",
        "gmv_28d",
        "gmv_prev_28d",
        "gmv_91d",
        "refunded_gmv_91d",
        "commission_28d",
        "commission_91d",
        "live_gmv_91d",
        "lifetime_gmv",
        "showcase_products",
        "showcase_added_28d",
        "__posts_sum",
        "__posts_sq",
        "weeks_active_13w",
    ]
    weeks = (pl.col("__observed_days") / 7).ceil().clip(lower_bound=1)
    mean_posts = pl.col("__posts_sum") / weeks
    std_posts = (pl.col("__posts_sq") / weeks - mean_posts**2).clip(lower_bound=0).sqrt()
    return (
        people.join(
            _data_start(history) if data_start is None else pl.LazyFrame({"__data_start": [data_start]}),
            how="cross",
        )
        .join(windows, on="creator_id", how="left")
        .join(lifetime, on="creator_id", how="left")
        .join(_weekly_posting(history, "creator_id", cfg.long_weeks), on="creator_id", how="left")
        .join(focus, on="creator_id", how="left")
        .join(showcase_stats, on="creator_id", how="left")
        .with_columns(pl.col(name).fill_null(0) for name in zero)
        .with_columns(
            _observed_days(as_of, pl.col("__data_start"), pl.col("joined_on"), lw).alias("__observed_days"),
        )
        .select(
            pl.lit(as_of).alias("as_of"),
            "creator_id",
            "region",
            "primary_category",
            "followers",
            "tier",
            (pl.lit(as_of) - pl.col("joined_on")).dt.total_days().alias("tenure_days"),
            "days_since_last_activity",
            "days_since_last_content",
            "days_since_last_order",
            "weeks_active_13w",
            (pl.col("videos_91d") / weeks).alias("videos_per_week_13w"),
            (pl.col("lives_91d") / weeks).alias("lives_per_week_13w"),
            (pl.col("__posts_sum") / weeks).alias("content_per_week_13w"),
            safe_ratio(std_posts, mean_posts).alias("posting_cv_13w"),
            rate(pl.col("lives_91d"), pl.col("videos_91d") + pl.col("lives_91d")).alias(
                "live_share_of_content_91d"
            ),
            "content_28d",
            "impressions_28d",
            "views_28d",
            "clicks_28d",
            "add_to_carts_28d",
            safe_ratio(pl.col("views_28d"), pl.col("content_28d")).alias("views_per_content_28d"),
            rate(pl.col("views_28d"), pl.col("impressions_28d")).alias("view_rate_28d"),
            METRICS["ctr"].over("_28d").alias("ctr_28d"),
            METRICS["cvr"].over("_28d").alias("cvr_28d"),
            METRICS["gpm"].over("_28d").alias("gpm_28d"),
            *_sales_columns(),
            "commission_28d",
            "commission_91d",
            rate(pl.col("live_gmv_91d"), pl.col("gmv_91d")).alias("live_share_of_gmv_91d"),
            "top_category_91d",
            "top_category_share_91d",
            "category_entropy_91d",
            pl.col("categories_promoted_91d").fill_null(
                0 if merchant_daily is not None else pl.lit(None, pl.Int64)
            ),
            "showcase_products",
            "showcase_added_28d",
            "showcase_median_age_days",
            "showcase_median_price",
        )
        .sort("creator_id")
    )


def merchant_features(
    merchant_daily: pl.LazyFrame,
    merchants: pl.LazyFrame,
    products: pl.LazyFrame,
    as_of: date,
    cfg: FeatureConfig | None = None,
) -> pl.LazyFrame:
    """Merchant features as of ``as_of`` (one row per merchant who joined before it)."""
    cfg = cfg or FeatureConfig()
    s, w, lw = cfg.short_days, cfg.window_days, cfg.long_days
    history = merchant_daily.filter(pl.col("date") < as_of).with_columns(_days_before(as_of).alias("__days"))
    recent = history.filter(pl.col("__days") <= max(lw, 2 * w))
    windows = recent.group_by("merchant_id").agg(
        _window_sum("views", 1, w).alias("views_28d"),
        _window_sum("clicks", 1, w).alias("clicks_28d"),
        _window_sum("orders", 1, w).alias("orders_28d"),
        _window_sum("orders", 1, lw).alias("orders_91d"),
        _window_sum("cancelled", 1, lw).alias("cancelled_91d"),
        _window_sum("gmv", 1, s).alias("gmv_7d"),
        _window_sum("gmv", 1, w).alias("gmv_28d"),
        _window_sum("gmv", w + 1, 2 * w).alias("gmv_prev_28d"),
        _window_sum("gmv", 1, lw).alias("gmv_91d"),
        _window_sum("refunded_gmv", 1, lw).alias("refunded_gmv_91d"),
        _window_sum("commission", 1, lw).alias("commission_91d"),
        pl.col("creator_id")
        .filter(pl.col("__days") <= w, pl.col("orders") > 0)
        .n_unique()
        .alias("active_creators_28d"),
        pl.col("creator_id").filter(pl.col("orders") > 0).n_unique().alias("active_creators_91d"),
    )
    top_creator = (
        recent.filter(pl.col("__days") <= lw)
        .group_by("merchant_id", "creator_id")
        .agg(pl.col("gmv").sum())
        .group_by("merchant_id")
        .agg(safe_ratio(pl.col("gmv").max(), pl.col("gmv").sum()).alias("top_creator_gmv_share_91d"))
    )
    lifetime = history.group_by("merchant_id").agg(
        pl.col("__days").filter(pl.col("orders") > 0).min().alias("days_since_last_order"),
        pl.col("gmv").sum().alias("lifetime_gmv"),
    )
    listed = products.filter(pl.col("listed_on") < as_of)
    catalog = listed.group_by("merchant_id").agg(
        pl.len().cast(pl.Int64).alias("catalog_products"),
        (pl.col("listed_on") >= as_of - timedelta(days=cfg.fresh_days))
        .sum()
        .cast(pl.Int64)
        .alias("products_listed_28d"),
        (pl.lit(as_of) - pl.col("listed_on")).dt.total_days().median().alias("catalog_median_age_days"),
        pl.col("price").median().alias("median_price"),
        pl.col("commission_rate").median().alias("median_commission_rate"),
    )
    category = listed.group_by("category").agg(
        pl.col("price").median().alias("category_median_price"),
        pl.col("commission_rate").median().alias("category_median_commission_rate"),
    )
    zero = [
        "views_28d",
        "clicks_28d",
        "orders_28d",
        "orders_91d",
        "cancelled_91d",
        "gmv_7d",
        "gmv_28d",
        "gmv_prev_28d",
        "gmv_91d",
        "refunded_gmv_91d",
        "commission_91d",
        "active_creators_28d",
        "active_creators_91d",
        "lifetime_gmv",
        "catalog_products",
        "products_listed_28d",
    ]
    return (
        merchants.filter(pl.col("joined_on") < as_of)
        .join(windows, on="merchant_id", how="left")
        .join(top_creator, on="merchant_id", how="left")
        .join(lifetime, on="merchant_id", how="left")
        .join(catalog, on="merchant_id", how="left")
        .join(category, on="category", how="left")
        .with_columns(pl.col(name).fill_null(0) for name in zero)
        .select(
            pl.lit(as_of).alias("as_of"),
            "merchant_id",
            "region",
            "category",
            "rating",
            "ships_in_days",
            (pl.lit(as_of) - pl.col("joined_on")).dt.total_days().alias("tenure_days"),
            "days_since_last_order",
            "catalog_products",
            "products_listed_28d",
            "catalog_median_age_days",
            "median_price",
            "category_median_price",
            safe_ratio(pl.col("median_price"), pl.col("category_median_price")).alias(
                "price_index_vs_category"
            ),
            "median_commission_rate",
            "category_median_commission_rate",
            safe_ratio(pl.col("median_commission_rate"), pl.col("category_median_commission_rate")).alias(
                "commission_rate_ratio_vs_category"
            ),
            (pl.col("median_commission_rate") - pl.col("category_median_commission_rate")).alias(
                "commission_rate_gap_vs_category"
            ),
            pl.col("active_creators_28d").cast(pl.Int64),
            pl.col("active_creators_91d").cast(pl.Int64),
            "top_creator_gmv_share_91d",
            "views_28d",
            "clicks_28d",
            METRICS["ctr"].over("_28d").alias("ctr_28d"),
            METRICS["cvr"].over("_28d").alias("cvr_28d"),
            *_sales_columns(),
            rate(pl.col("cancelled_91d"), pl.col("orders_91d") + pl.col("cancelled_91d")).alias(
                "cancellation_rate_91d"
            ),
            rate(pl.col("commission_91d"), pl.col("gmv_91d")).alias("take_rate_91d"),
        )
        .sort("merchant_id")
    )
