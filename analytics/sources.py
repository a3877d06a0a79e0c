"""The daily activity facts every analytics stage builds on, and the lake inputs they come from.

Three facts, each one row per (date, entity, …) with summed *base columns* (`core.metrics`):

- ``creator_daily`` — grain (date, creator_id, content_kind): engagement, orders and content published,
  with the creator's region, tier and primary category (``category``): every dimension column of this
  fact is a trait of the creator, so filters on it select creators. ``content_kind`` is ``video`` or
  ``live`` for activity on a piece of content and ``none`` for orders no content brought (storefront).
  An order on a piece of content counts for the creator of that content (orders name the same one).
- ``merchant_daily`` — grain (date, merchant_id, creator_id): orders and engagement on the merchant's
  products brought by each creator, with the merchant's category and region.
- ``product_daily`` — grain (date, product_id): orders and engagement per product with its merchant
  and the *product* category (GMV by what was sold, rather than by who sold it).

All facts only hold days strictly before ``as_of`` when one is given (and from ``start`` on: a fact is
a sum per day, so the facts of consecutive day ranges, concatenated, are the fact of their union — the
cluster build computes them per range), and are built by lazy plans the
streaming engine can run (scans with pushed-down filters, joins against small dimensions, group-bys).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from analytics.segments import tier_expr
from core.config import Settings
from core.metrics import BASE_COLUMNS
from datastore.lake import lake_version, scan_table

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
    """Lazy scans of every table the analytics need (nothing is read yet), all at the versions of one
    ingestion run (``datastore.lake.lake_version``: the run ``settings`` is pinned to, else the last)."""
    version = lake_version(settings)
    return Inputs(
        **{
            name: scan_table(name, settings, version)
            for name in ("creators", "merchants", "products", "showcase", "content", "engagement", "orders")
        }
    )


def _bound(day: date, timestamp: bool) -> date | datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if timestamp else day


def _before(column: str, as_of: date | None, *, timestamp: bool, start: date | None = None) -> pl.Expr:
    """Rows of days before ``as_of`` (all when ``None``) and, given ``start``, from ``start`` on."""
    condition = pl.lit(True) if as_of is None else pl.col(column) < pl.lit(_bound(as_of, timestamp))
    if start is not None:
        condition = condition & (pl.col(column) >= pl.lit(_bound(start, timestamp)))
    return condition


def order_lines(orders: pl.LazyFrame, as_of: date | None = None, start: date | None = None) -> pl.LazyFrame:
    """Orders before ``as_of`` (and from ``start`` on, given one) as additive base columns per order
    (date, ids, orders, gmv, …)."""
    status = pl.col("status")
    kept = status != "cancelled"
    return orders.filter(_before("ordered_at", as_of, timestamp=True, start=start)).select(
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


CONTENT_KINDS = ("video", "live", NO_CONTENT)
"""The values of ``content_kind``; packed group keys carry a kind as its position here."""
_KINDS = CONTENT_KINDS


def kind_code(kind: pl.Expr) -> pl.Expr:
    """A content kind (or ``none``) as its position in `CONTENT_KINDS` (Int64)."""
    return pl.when(kind == _KINDS[0]).then(0).when(kind == _KINDS[1]).then(1).otherwise(2).cast(pl.Int64)


def kind_name(code: pl.Expr) -> pl.Expr:
    """The inverse of `kind_code`."""
    return (
        pl.when(code == 0)
        .then(pl.lit(_KINDS[0]))
        .when(code == 1)
        .then(pl.lit(_KINDS[1]))
        .otherwise(pl.lit(_KINDS[2]))
    )


def creator_traits(creators: pl.LazyFrame) -> pl.LazyFrame:
    """(creator_id, category, region, tier) from the creators table: the creator dimensions of
    ``creator_daily`` (``category`` is the primary category, ``tier`` follows the follower count)."""
    return creators.select(
        "creator_id",
        pl.col("primary_category").alias("category"),
        "region",
        tier_expr(pl.col("followers")).alias("tier"),
    )


_DAY_SHIFT = 500_000
_DAYS = 1_000_000


def _packed(day: pl.Expr, code: pl.Expr) -> pl.Expr:
    """One Int64 group key ``__key`` for (creator row number ``__creator``, date, content kind).

    Grouping on string ids (and on several columns) is what the daily fact spends most of its time on:
    the creator id becomes its row number in ``creators`` once per piece of content, and the final
    group-by runs on this single integer. Days are shifted so that any date from about the year 600 to 3300
    packs and unpacks exactly.
    """
    days = day.cast(pl.Int32).cast(pl.Int64) + _DAY_SHIFT
    return ((pl.col("__creator").cast(pl.Int64) * _DAYS + days) * len(_KINDS) + code).alias("__key")


def creator_daily(inputs: Inputs, as_of: date | None = None, start: date | None = None) -> pl.LazyFrame:
    """Creator activity per day and content kind (see the module docstring).

    Orders and content name creators known to ``creators`` (ingest enforces the foreign keys), so the
    lookups below are inner joins.
    """
    creators = creator_traits(inputs.creators).with_row_index("__creator")
    number = creators.select("creator_id", "__creator")
    content = inputs.content.select(
        "content_id", "creator_id", "published_at", kind_code(pl.col("kind")).alias("__kind")
    ).join(number, on="creator_id", how="inner")
    kinds = content.select("content_id", "__creator", "__kind")
    sales = order_lines(inputs.orders, as_of, start)
    # orders on content: aggregate per (content, day) first (15 M orders → a sixth as many rows), then
    # look the creator and kind up on those rows
    on_content = (
        sales.filter(pl.col("content_id").is_not_null())
        .group_by("content_id", "date")
        .agg(pl.col(name).sum() for name in ORDER_COLUMNS)
        .join(kinds, on="content_id", how="inner")
        .select(_packed(pl.col("date"), pl.col("__kind")), *ORDER_COLUMNS)
    )
    direct = (
        sales.filter(pl.col("content_id").is_null())
        .group_by("creator_id", "date")
        .agg(pl.col(name).sum() for name in ORDER_COLUMNS)
        .join(number, on="creator_id", how="inner")
        .select(_packed(pl.col("date"), pl.lit(2, pl.Int64)), *ORDER_COLUMNS)
    )
    # engagement rows are already nearly one per (content, day): look up first, group on the integer
    engagement = (
        inputs.engagement.filter(_before("date", as_of, timestamp=False, start=start))
        .join(kinds, on="content_id", how="inner")
        .select(_packed(pl.col("date"), pl.col("__kind")), *ENGAGEMENT_COLUMNS)
    )
    published = content.filter(_before("published_at", as_of, timestamp=True, start=start)).select(
        _packed(pl.col("published_at").dt.date(), pl.col("__kind")),
        (pl.col("__kind") == 0).cast(pl.Int64).alias("videos"),
        (pl.col("__kind") == 1).cast(pl.Int64).alias("lives"),
    )
    parts = [
        _zero_fill(part, CREATOR_DAILY_SCHEMA).select("__key", *BASE_COLUMNS)
        for part in (on_content, direct, engagement, published)
    ]
    key = pl.col("__key")
    day_key = key // len(_KINDS)
    return (
        pl.concat(parts, how="vertical")
        .group_by("__key")
        .agg(pl.col(name).sum() for name in BASE_COLUMNS)
        .with_columns(
            (day_key // _DAYS).cast(pl.UInt32).alias("__creator"),
            (day_key % _DAYS - _DAY_SHIFT).cast(pl.Int32).cast(pl.Date).alias("date"),
            kind_name(key % len(_KINDS)).alias("content_kind"),
        )
        .join(creators, on="__creator", how="inner")
        .select(CREATOR_DAILY_SCHEMA.names())
        .cast(CREATOR_DAILY_SCHEMA)
    )


def merchant_daily(inputs: Inputs, as_of: date | None = None, start: date | None = None) -> pl.LazyFrame:
    """Merchant activity per day and creator (see the module docstring).

    Ids become row numbers before the group-by (7 M (day, merchant, creator) groups at ``large``):
    integer keys keep the group-by's hash table half the size of string keys, which sets the build's
    peak memory. Orders, content and products name known creators and merchants (ingest checks the
    foreign keys), so the lookups are inner joins.
    """
    creators = inputs.creators.select("creator_id").with_row_index("__creator")
    merchants = inputs.merchants.select("merchant_id", "category", "region").with_row_index("__merchant")
    merchant_number = merchants.select("merchant_id", "__merchant")
    product_merchant = inputs.products.select("product_id", "merchant_id").join(
        merchant_number, on="merchant_id", how="inner"
    )
    creator_of_content = inputs.content.select("content_id", "creator_id").join(
        creators, on="creator_id", how="inner"
    )
    sales = (
        order_lines(inputs.orders, as_of, start)
        .join(creators, on="creator_id", how="inner")
        .join(merchant_number, on="merchant_id", how="inner")
        .select("date", "__merchant", "__creator", *ORDER_COLUMNS)
    )
    engagement = (
        inputs.engagement.filter(_before("date", as_of, timestamp=False, start=start))
        .join(creator_of_content.select("content_id", "__creator"), on="content_id", how="inner")
        .join(product_merchant.select("product_id", "__merchant"), on="product_id", how="inner")
        .select("date", "__merchant", "__creator", *ENGAGEMENT_COLUMNS)
    )
    # one Int64 key (merchant, creator, day): a single-integer group-by holds the least memory
    n_creators = max(inputs.creators.select(pl.len()).collect().item(), 1)
    n_merchants = inputs.merchants.select(pl.len()).collect().item()
    if n_merchants * n_creators >= (1 << 63) // (_DAYS * 2):
        raise ValueError(
            f"{n_merchants} merchants × {n_creators} creators do not fit merchant_daily's integer key"
        )
    pair = pl.col("__merchant").cast(pl.Int64) * n_creators + pl.col("__creator")
    day = pl.col("date").cast(pl.Int32).cast(pl.Int64) + _DAY_SHIFT
    key = pl.col("__key")
    parts = [
        _zero_fill(part, MERCHANT_DAILY_SCHEMA).select(
            (pair * _DAYS + day).alias("__key"), *_ORDER_ENGAGEMENT_COLUMNS
        )
        for part in (sales, engagement)
    ]
    return (
        pl.concat(parts, how="vertical")
        .group_by("__key")
        .agg(pl.col(name).sum() for name in _ORDER_ENGAGEMENT_COLUMNS)
        .with_columns(
            (key // _DAYS // n_creators).cast(pl.UInt32).alias("__merchant"),
            (key // _DAYS % n_creators).cast(pl.UInt32).alias("__creator"),
            (key % _DAYS - _DAY_SHIFT).cast(pl.Int32).cast(pl.Date).alias("date"),
        )
        .join(merchants, on="__merchant", how="inner")
        .join(creators, on="__creator", how="inner")
        .select(MERCHANT_DAILY_SCHEMA.names())
        .cast(MERCHANT_DAILY_SCHEMA)
    )


def product_daily(inputs: Inputs, as_of: date | None = None, start: date | None = None) -> pl.LazyFrame:
    """Orders and engagement per day and product, with the product's merchant and category.

    Grouped on (product row number, day) packed in one integer, for the reason `merchant_daily` gives.
    """
    products = inputs.products.select("product_id", "merchant_id", "category").with_row_index("__product")
    number = products.select("product_id", "__product")
    key = (
        pl.col("__product").cast(pl.Int64) * _DAYS + pl.col("date").cast(pl.Int32).cast(pl.Int64) + _DAY_SHIFT
    ).alias("__key")
    sales = (
        order_lines(inputs.orders, as_of, start)
        .join(number, on="product_id", how="inner")
        .select(key, *ORDER_COLUMNS)
    )
    engagement = (
        inputs.engagement.filter(_before("date", as_of, timestamp=False, start=start))
        .join(number, on="product_id", how="inner")
        .select(key, *ENGAGEMENT_COLUMNS)
    )
    parts = [
        _zero_fill(part, PRODUCT_DAILY_SCHEMA).select("__key", *_ORDER_ENGAGEMENT_COLUMNS)
        for part in (sales, engagement)
    ]
    return (
        pl.concat(parts, how="vertical")
        .group_by("__key")
        .agg(pl.col(name).sum() for name in _ORDER_ENGAGEMENT_COLUMNS)
        .with_columns(
            (pl.col("__key") // _DAYS).cast(pl.UInt32).alias("__product"),
            (pl.col("__key") % _DAYS - _DAY_SHIFT).cast(pl.Int32).cast(pl.Date).alias("date"),
        )
        .join(products, on="__product", how="inner")
        .select(PRODUCT_DAILY_SCHEMA.names())
        .cast(PRODUCT_DAILY_SCHEMA)
    )


def default_as_of(orders: pl.LazyFrame) -> date | None:
    """The day after the last order date (``None`` without orders): the default as-of of a build."""
    last = orders.select(pl.col("ordered_at").max()).collect().item()
    if last is None:
        return None
    return date.fromordinal(last.date().toordinal() + 1)
