"""The daily activity facts every analytics stage builds on, and the lake inputs they come from.

Three facts, each one row per (date, entity, …) with summed *base columns* (`analytics.metrics`):

- ``creator_daily`` — grain (date, creator_id, content_kind): engagement, orders and content published,
  with the creator's region, tier and primary category (``category``): every dimension column of this
  fact is a trait of the creator, so filters on it select creators. ``content_kind`` is ``video`` or
  ``live`` for activity on a piece of content and ``none`` for orders no content brought (storefront).
  An order on a piece of content counts for the creator of that content (orders name the same one).
- ``merchant_daily`` — grain (date, merchant_id, creator_id): orders and engagement on the merchant's
  products brought by each creator, with the merchant's category and region.
- ``product_daily`` — grain (date, product_id): orders and engagement per product with its merchant
  and the *product* category (GMV by what was sold, rather than by who sold it).

All facts only hold days strictly before ``as_of`` when one is given, and are built by lazy plans the
streaming engine can run (scans with pushed-down filters, joins against small dimensions, group-bys).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from analytics.lake import scan_table
from analytics.metrics import BASE_COLUMNS
from analytics.segments import tier_expr
from liftboard.config import Settings

NO_CONTENT = "none"
"""``content_kind`` of orders that no piece of content brought."""

_BASE_TYPES: dict[str, pl.DataType] = {
    name: (pl.Float64() if name in ("gmv", "refunded_gmv", "commission") else pl.Int64())
    for name in BASE_COLUMNS
}
_STRING = pl.String()
CREATOR_DAILY_SCHEMA = pl.Schema(
    [
        ("date", pl.Date()),
        ("creator_id", _STRING),
        ("content_kind", _STRING),
        ("category", _STRING),
        ("region", _STRING),
        ("tier", _STRING),
        *_BASE_TYPES.items(),
    ]
)
_ORDER_ENGAGEMENT_COLUMNS = tuple(name for name in BASE_COLUMNS if name not in ("videos", "lives"))
ORDER_COLUMNS = ("orders", "gmv", "refunded_gmv", "cancelled", "commission")
ENGAGEMENT_COLUMNS = ("impressions", "views", "clicks", "add_to_carts")
MERCHANT_DAILY_SCHEMA = pl.Schema(
    [
        ("date", pl.Date()),
        ("merchant_id", _STRING),
        ("creator_id", _STRING),
        ("category", _STRING),
        ("region", _STRING),
        *((name, _BASE_TYPES[name]) for name in _ORDER_ENGAGEMENT_COLUMNS),
    ]
)
PRODUCT_DAILY_SCHEMA = pl.Schema(
    [
        ("date", pl.Date()),
        ("product_id", _STRING),
        ("merchant_id", _STRING),
        ("category", _STRING),
        *((name, _BASE_TYPES[name]) for name in _ORDER_ENGAGEMENT_COLUMNS),
    ]
)


@dataclass(frozen=True)
class Inputs:
    """Lazy scans of the canonical tables that analytics read."""

    creators: pl.LazyFrame
    merchants: pl.LazyFrame
    products: pl.LazyFrame
    showcase: pl.LazyFrame
    content: pl.LazyFrame
    engagement: pl.LazyFrame
    orders: pl.LazyFrame


def load_inputs(settings: Settings) -> Inputs:
    """Lazy scans of every table the analytics need (nothing is read yet)."""
    return Inputs(
        **{
            name: scan_table(name, settings)
            for name in ("creators", "merchants", "products", "showcase", "content", "engagement", "orders")
        }
    )


def _before(column: str, as_of: date | None, *, timestamp: bool) -> pl.Expr:
    if as_of is None:
        return pl.lit(True)
    bound = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) if timestamp else as_of
    return pl.col(column) < pl.lit(bound)


def order_lines(orders: pl.LazyFrame, as_of: date | None = None) -> pl.LazyFrame:
    """Orders before ``as_of`` as additive base columns per order (date, ids, orders, gmv, …)."""
    status = pl.col("status")
    kept = status != "cancelled"
    return orders.filter(_before("ordered_at", as_of, timestamp=True)).select(
        pl.col("ordered_at").dt.date().alias("date"),
        "creator_id",
        "content_id",
        "product_id",
        "merchant_id",
        kept.cast(pl.Int64).alias("orders"),
        pl.when(kept).then(pl.col("gmv")).otherwise(0.0).alias("gmv"),
        pl.when(status == "refunded").then(pl.col("gmv")).otherwise(0.0).alias("refunded_gmv"),
        (~kept).cast(pl.Int64).alias("cancelled"),
        pl.when(kept).then(pl.col("commission")).otherwise(0.0).alias("commission"),
    )


def _zero_fill(lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    present = set(lf.collect_schema().names())
    return lf.with_columns(
        pl.lit(0, dtype=dtype).alias(name)
        for name, dtype in schema.items()
        if name not in present and name in BASE_COLUMNS
    )


_KINDS = ("video", "live", NO_CONTENT)


def _kind_code(kind: pl.Expr) -> pl.Expr:
    return pl.when(kind == "video").then(0).when(kind == "live").then(1).otherwise(2).cast(pl.Int64)


def _pack(day: pl.Expr, code: pl.Expr) -> pl.Expr:
    """One Int64 group key for (date, content kind): multi-column string keys group several times slower."""
    return day.cast(pl.Int32).cast(pl.Int64) * len(_KINDS) + code


def creator_daily(inputs: Inputs, as_of: date | None = None) -> pl.LazyFrame:
    """Creator activity per day and content kind (see the module docstring)."""
    kinds = inputs.content.select("content_id", "creator_id", _kind_code(pl.col("kind")).alias("__kind"))
    sales = order_lines(inputs.orders, as_of)
    order_sums = [pl.col(name).sum() for name in ("orders", "gmv", "refunded_gmv", "cancelled", "commission")]
    # orders on content: aggregate per (content, day) first, then look the kind up on far fewer rows
    on_content = (
        sales.filter(pl.col("content_id").is_not_null())
        .group_by("content_id", "date")
        .agg(*order_sums)
        .join(kinds, on="content_id", how="inner")
        .select("creator_id", _pack(pl.col("date"), pl.col("__kind")).alias("__key"), *ORDER_COLUMNS)
    )
    direct = (
        sales.filter(pl.col("content_id").is_null())
        .group_by("creator_id", _pack(pl.col("date"), pl.lit(2, pl.Int64)).alias("__key"))
        .agg(*order_sums)
    )
    engagement = (
        inputs.engagement.filter(_before("date", as_of, timestamp=False))
        .group_by("content_id", "date")
        .agg(pl.col(name).sum() for name in ENGAGEMENT_COLUMNS)
        .join(kinds, on="content_id", how="inner")
        .select("creator_id", _pack(pl.col("date"), pl.col("__kind")).alias("__key"), *ENGAGEMENT_COLUMNS)
    )
    published = inputs.content.filter(_before("published_at", as_of, timestamp=True)).select(
        "creator_id",
        _pack(pl.col("published_at").dt.date(), _kind_code(pl.col("kind"))).alias("__key"),
        (pl.col("kind") == "video").cast(pl.Int64).alias("videos"),
        (pl.col("kind") == "live").cast(pl.Int64).alias("lives"),
    )
    keys = ["creator_id", "__key"]
    parts = [
        _zero_fill(part, CREATOR_DAILY_SCHEMA).select(*keys, *BASE_COLUMNS)
        for part in (on_content, direct, engagement, published)
    ]
    creators = inputs.creators.select(
        "creator_id",
        pl.col("primary_category").alias("category"),
        "region",
        tier_expr(pl.col("followers")).alias("tier"),
    )
    code = pl.col("__key") % len(_KINDS)
    return (
        pl.concat(parts, how="vertical")
        .group_by(keys)
        .agg(pl.col(name).sum() for name in BASE_COLUMNS)
        .join(creators, on="creator_id", how="left")
        .with_columns(
            (pl.col("__key") // len(_KINDS)).cast(pl.Int32).cast(pl.Date).alias("date"),
            pl.when(code == 0)
            .then(pl.lit(_KINDS[0]))
            .when(code == 1)
            .then(pl.lit(_KINDS[1]))
            .otherwise(pl.lit(_KINDS[2]))
            .alias("content_kind"),
        )
        .select(CREATOR_DAILY_SCHEMA.names())
        .cast(CREATOR_DAILY_SCHEMA)
    )


def merchant_daily(inputs: Inputs, as_of: date | None = None) -> pl.LazyFrame:
    """Merchant activity per day and creator (see the module docstring)."""
    product_merchant = inputs.products.select("product_id", "merchant_id")
    creator_of_content = inputs.content.select("content_id", "creator_id")
    sales = order_lines(inputs.orders, as_of).select(
        "date", "merchant_id", "creator_id", "orders", "gmv", "refunded_gmv", "cancelled", "commission"
    )
    engagement = (
        inputs.engagement.filter(_before("date", as_of, timestamp=False))
        .join(creator_of_content, on="content_id", how="inner")
        .join(product_merchant, on="product_id", how="inner")
        .select("date", "merchant_id", "creator_id", "impressions", "views", "clicks", "add_to_carts")
    )
    keys = ["date", "merchant_id", "creator_id"]
    parts = [
        _zero_fill(part, MERCHANT_DAILY_SCHEMA).select(*keys, *_ORDER_ENGAGEMENT_COLUMNS)
        for part in (sales, engagement)
    ]
    merchants = inputs.merchants.select("merchant_id", "category", "region")
    return (
        pl.concat(parts, how="vertical")
        .group_by(keys)
        .agg(pl.col(name).sum() for name in _ORDER_ENGAGEMENT_COLUMNS)
        .join(merchants, on="merchant_id", how="left")
        .select(MERCHANT_DAILY_SCHEMA.names())
        .cast(MERCHANT_DAILY_SCHEMA)
    )


def product_daily(inputs: Inputs, as_of: date | None = None) -> pl.LazyFrame:
    """Orders and engagement per day and product, with the product's merchant and category."""
    sales = order_lines(inputs.orders, as_of).select(
        "date", "product_id", "orders", "gmv", "refunded_gmv", "cancelled", "commission"
    )
    engagement = inputs.engagement.filter(_before("date", as_of, timestamp=False)).select(
        "date", "product_id", "impressions", "views", "clicks", "add_to_carts"
    )
    keys = ["date", "product_id"]
    parts = [
        _zero_fill(part, PRODUCT_DAILY_SCHEMA).select(*keys, *_ORDER_ENGAGEMENT_COLUMNS)
        for part in (sales, engagement)
    ]
    return (
        pl.concat(parts, how="vertical")
        .group_by(keys)
        .agg(pl.col(name).sum() for name in _ORDER_ENGAGEMENT_COLUMNS)
        .join(inputs.products.select("product_id", "merchant_id", "category"), on="product_id", how="left")
        .select(PRODUCT_DAILY_SCHEMA.names())
        .cast(PRODUCT_DAILY_SCHEMA)
    )


def default_as_of(orders: pl.LazyFrame) -> date | None:
    """The day after the last order date (``None`` without orders): the default as-of of a build."""
    last = orders.select(pl.col("ordered_at").max()).collect().item()
    if last is None:
        return None
    return date.fromordinal(last.date().toordinal() + 1)
