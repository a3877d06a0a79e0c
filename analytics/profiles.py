"""Creator and merchant profiles: everything one entity's page shows, as typed results.

A profile is assembled from published tables the caller has already scoped to its user (the
segments, features and daily facts of analytics; the recommendations and SHAP drivers of strategies;
the interests and recalls of matching, when published) and the dimensions. Nothing here reads storage
or knows about users: the app's data layer passes scoped frames in and caches what comes out.

The directories (one row per creator or merchant with segment and 28-day performance) live here too,
so the list and the profile read the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from analytics import kpis
from core import metrics

HISTORY_DAYS = 91
"""A profile's daily trend covers at least the last 91 days to the range's end."""

PEER_METRICS: tuple[tuple[str, str], ...] = (
    ("gmv_28d", "GMV 28d"),
    ("orders_28d", "Orders 28d"),
    ("ctr_28d", "CTR 28d"),
    ("cvr_28d", "CVR 28d"),
    ("gpm_28d", "GPM 28d"),
    ("content_per_week_13w", "Content per week"),
    ("aov_91d", "AOV 91d"),
    ("refund_rate_91d", "Refund rate 91d"),
)
"""Creator features compared with the median creator of the same tier: (column, label)."""

FUNNEL_STAGES: tuple[str, ...] = ("impressions", "views", "clicks", "add_to_carts", "orders")

CREATOR_DIRECTORY_COLUMNS: tuple[str, ...] = (
    "creator_id",
    "handle",
    "tier",
    "region",
    "primary_category",
    "lifecycle_stage",
    "value_segment",
    "followers",
    "gmv_28d",
    "gmv_prev_28d",
    "gmv_trend_28d",
    "orders_28d",
    "ctr_28d",
    "cvr_28d",
    "content_28d",
    "live_share_of_gmv_91d",
    "lifetime_gmv",
)
MERCHANT_DIRECTORY_COLUMNS: tuple[str, ...] = (
    "merchant_id",
    "name",
    "category",
    "region",
    "lifecycle_stage",
    "value_segment",
    "rating",
    "catalog_products",
    "active_creators_28d",
    "gmv_28d",
    "gmv_prev_28d",
    "gmv_trend_28d",
    "orders_28d",
    "refund_rate_91d",
    "median_commission_rate",
    "category_median_commission_rate",
    "top_creator_gmv_share_91d",
    "lifetime_gmv",
)


@dataclass(frozen=True)
class CreatorProfile:
    """One creator's profile. Single rows are mappings of column to value; tables are frames.

    Attributes:
        creator_id: the creator.
        handle: the creator's handle (the id when the dimension has none).
        segment: tier, region, primary category, lifecycle stage and value segment.
        features: the creator's features as of the build (empty when none were computed).
        peers: the median of every `PEER_METRICS` column over the creators of the same tier, and
            ``creators``, how many there are.
        peer_comparison: ``metric`` (label), ``creator`` and ``peer_median``, one row per
            `PEER_METRICS` entry.
        trend: metrics per day from at least `HISTORY_DAYS` days before the range's end.
        funnel: impressions, views, clicks, add-to-carts and orders summed over the range.
        mix: metrics per content kind over the range.
        recommendations: the creator's recommended strategies, best rank first.
        drivers: their SHAP drivers, per strategy in position order.
        interests: the creator's interests (empty when not published).
        product_recs: recommended products (empty when not published).
    """

    creator_id: str
    handle: str
    segment: Mapping[str, Any]
    features: Mapping[str, Any]
    peers: Mapping[str, Any]
    peer_comparison: pl.DataFrame
    trend: pl.DataFrame
    funnel: Mapping[str, Any]
    mix: pl.DataFrame
    recommendations: pl.DataFrame
    drivers: pl.DataFrame
    interests: pl.DataFrame
    product_recs: pl.DataFrame


@dataclass(frozen=True)
class MerchantProfile:
    """One merchant's page. Single rows are mappings of column to value; tables are frames.

    Attributes:
        merchant_id: the merchant.
        name: its name (the id when the dimension has none).
        features: its features as of the build.
        summary: the same features as a one-row frame (for export).
        segment: lifecycle stage and value segment (empty when unsegmented).
        trend: metrics per day from at least `HISTORY_DAYS` days before the range's end.
        creators: the creators who sold its products in the range, by GMV, with their handles.
        concentration: cumulative share of the range's GMV against the number of creators.
        catalog: its products with what each sold in the range, by GMV.
        recommendations: its recommended strategies, best rank first.
        drivers: their SHAP drivers, per strategy in position order.
        recruits: creators recommended for it to recruit (empty when not published).
    """

    merchant_id: str
    name: str
    features: Mapping[str, Any]
    summary: pl.DataFrame
    segment: Mapping[str, Any]
    trend: pl.DataFrame
    creators: pl.DataFrame
    concentration: pl.DataFrame
    catalog: pl.DataFrame
    recommendations: pl.DataFrame
    drivers: pl.DataFrame
    recruits: pl.DataFrame


def _for_entity(frame: pl.LazyFrame, kind: str, entity_id: str, order: list[str]) -> pl.DataFrame:
    return (
        frame.filter((pl.col("entity_kind") == kind) & (pl.col("entity_id") == entity_id))
        .sort(order)
        .collect()
    )


def _optional(frame: pl.LazyFrame | None, column: str, value: str) -> pl.DataFrame:
    return pl.DataFrame() if frame is None else frame.filter(pl.col(column) == value).collect()


def creator_directory(segments: pl.LazyFrame, features: pl.LazyFrame, creators: pl.LazyFrame) -> pl.DataFrame:
    """Every segmented creator with segment, lifecycle and 28-day performance, largest GMV first."""
    feature_columns = (
        "creator_id",
        "followers",
        "orders_28d",
        "gmv_trend_28d",
        "lifetime_gmv",
        "ctr_28d",
        "cvr_28d",
        "content_28d",
        "live_share_of_gmv_91d",
    )
    return (
        segments.join(features.select(feature_columns), on="creator_id", how="left")
        .join(creators.select("creator_id", "handle"), on="creator_id", how="left")
        .select(CREATOR_DIRECTORY_COLUMNS)
        .sort("gmv_28d", descending=True)
        .collect()
    )


def merchant_directory(
    segments: pl.LazyFrame, features: pl.LazyFrame, merchants: pl.LazyFrame
) -> pl.DataFrame:
    """Every merchant with features, with lifecycle and 28-day performance, largest GMV first."""
    return (
        features.join(
            segments.select("merchant_id", "lifecycle_stage", "value_segment"), on="merchant_id", how="left"
        )
        .join(merchants.select("merchant_id", "name"), on="merchant_id", how="left")
        .select(MERCHANT_DIRECTORY_COLUMNS)
        .sort("gmv_28d", descending=True)
        .collect()
    )


def creator_profile(
    creator_id: str,
    start: date,
    end: date,
    *,
    segments: pl.LazyFrame,
    features: pl.LazyFrame,
    daily: pl.LazyFrame,
    recommendations: pl.LazyFrame,
    drivers: pl.LazyFrame,
    creators: pl.LazyFrame,
    interests: pl.LazyFrame | None = None,
    product_recs: pl.LazyFrame | None = None,
) -> CreatorProfile | None:
    """The profile of ``creator_id`` over ``start`` .. ``end`` (inclusive); ``None`` when the creator
    has no segment row (unknown, or outside what the frames hold).

    Args:
        creator_id: the creator.
        start: first day of the range.
        end: last day of the range.
        segments: ``creator_segments``.
        features: ``creator_features`` (every creator: the tier's peers are read from it).
        daily: ``creator_daily``.
        recommendations: ``recommendations`` of the current run.
        drivers: ``shap_drivers`` of the current run.
        creators: the creators dimension.
        interests: ``creator_interests``, when published.
        product_recs: ``creator_product_recs``, when published.
    """
    segment = segments.filter(pl.col("creator_id") == creator_id).collect()
    if segment.height == 0:
        return None
    row = features.filter(pl.col("creator_id") == creator_id).collect()
    own: dict[str, Any] = row.row(0, named=True) if row.height else {}
    tier = segment["tier"][0]
    peers = (
        features.filter(pl.col("tier") == tier)
        .select(pl.len().alias("creators"), *(pl.col(c).median() for c, _ in PEER_METRICS))
        .collect()
        .row(0, named=True)
    )
    comparison = pl.DataFrame(
        {
            "metric": [label for _, label in PEER_METRICS],
            "creator": [own.get(c) for c, _ in PEER_METRICS],
            "peer_median": [peers[c] for c, _ in PEER_METRICS],
        },
        schema={"metric": pl.String, "creator": pl.Float64, "peer_median": pl.Float64},
        strict=False,
    )
    facts = daily.filter(pl.col("creator_id") == creator_id)
    history_start = min(start, end - timedelta(days=HISTORY_DAYS - 1))
    trend = (
        metrics.with_metrics(
            kpis.creator_totals(facts.filter(pl.col("date").is_between(history_start, end)), ["date"])
        )
        .sort("date")
        .collect()
    )
    in_range = facts.filter(pl.col("date").is_between(start, end))
    funnel = in_range.select(*(pl.col(c).sum() for c in FUNNEL_STAGES)).collect().row(0, named=True)
    mix = metrics.with_metrics(kpis.creator_totals(in_range, ["content_kind"])).collect()
    handle = creators.filter(pl.col("creator_id") == creator_id).select("handle").collect()
    return CreatorProfile(
        creator_id=creator_id,
        handle=handle["handle"][0] if handle.height else creator_id,
        segment=segment.row(0, named=True),
        features=own,
        peers=peers,
        peer_comparison=comparison,
        trend=trend,
        funnel=funnel,
        mix=mix,
        recommendations=_for_entity(recommendations, "creator", creator_id, ["rank"]),
        drivers=_for_entity(drivers, "creator", creator_id, ["strategy", "position"]),
        interests=_optional(interests, "creator_id", creator_id),
        product_recs=_optional(product_recs, "creator_id", creator_id),
    )


def merchant_profile(
    merchant_id: str,
    start: date,
    end: date,
    *,
    features: pl.LazyFrame,
    segments: pl.LazyFrame,
    daily: pl.LazyFrame,
    product_daily: pl.LazyFrame,
    recommendations: pl.LazyFrame,
    drivers: pl.LazyFrame,
    merchants: pl.LazyFrame,
    products: pl.LazyFrame,
    creators: pl.LazyFrame,
    recruits: pl.LazyFrame | None = None,
) -> MerchantProfile | None:
    """The page of ``merchant_id`` over ``start`` .. ``end`` (inclusive); ``None`` when it has no
    features row (unknown, or outside what the frames hold).

    Args:
        merchant_id: the merchant.
        start: first day of the range.
        end: last day of the range.
        features: ``merchant_features``.
        segments: ``merchant_segments``.
        daily: ``merchant_daily`` (per merchant, creator and day).
        product_daily: ``product_daily``.
        recommendations: ``recommendations`` of the current run.
        drivers: ``shap_drivers`` of the current run.
        merchants: the merchants dimension.
        products: the products dimension.
        creators: the creators dimension (for handles).
        recruits: ``merchant_creator_recs``, when published.
    """
    summary = features.filter(pl.col("merchant_id") == merchant_id).collect()
    if summary.height == 0:
        return None
    name = merchants.filter(pl.col("merchant_id") == merchant_id).select("name").collect()
    segment = segments.filter(pl.col("merchant_id") == merchant_id).collect()
    facts = daily.filter(pl.col("merchant_id") == merchant_id)
    history_start = min(start, end - timedelta(days=HISTORY_DAYS - 1))
    trend = (
        metrics.with_metrics(
            kpis.merchant_totals(facts.filter(pl.col("date").is_between(history_start, end)), ["date"])
        )
        .sort("date")
        .collect()
    )
    in_range = facts.filter(pl.col("date").is_between(start, end))
    sellers = (
        metrics.with_metrics(kpis.merchant_totals(in_range, ["creator_id"]))
        .select("creator_id", "gmv", "orders", "refund_rate", "ctr", "cvr", "commission")
        .sort("gmv", descending=True)
        .collect()
    )
    total = sellers["gmv"].sum() or 0.0
    concentration = sellers.with_columns(
        pl.int_range(1, pl.len() + 1).alias("creators"),
        (pl.col("gmv").cum_sum() / total if total else pl.lit(None, dtype=pl.Float64)).alias(
            "cumulative_share"
        ),
    ).select("creators", "cumulative_share")
    sellers = sellers.join(
        creators.select("creator_id", "handle").collect(), on="creator_id", how="left", maintain_order="left"
    ).select("creator_id", "handle", *sellers.columns[1:])
    sold = metrics.with_metrics(
        product_daily.filter((pl.col("merchant_id") == merchant_id) & pl.col("date").is_between(start, end))
        .group_by("product_id")
        .agg(*(pl.col(c).sum() for c in ("views", "clicks", "orders", "gmv", "refunded_gmv", "commission")))
    ).select("product_id", "gmv", "orders", "ctr", "cvr", "refund_rate")
    catalog = (
        products.filter(pl.col("merchant_id") == merchant_id)
        .join(sold, on="product_id", how="left")
        .select(
            "product_id",
            "title",
            "category",
            "price",
            "commission_rate",
            "listed_on",
            "gmv",
            "orders",
            "ctr",
            "cvr",
            "refund_rate",
        )
        .with_columns(pl.col("gmv").fill_null(0.0), pl.col("orders").fill_null(0))
        .sort("gmv", descending=True)
        .collect()
    )
    return MerchantProfile(
        merchant_id=merchant_id,
        name=name["name"][0] if name.height else merchant_id,
        features=summary.row(0, named=True),
        summary=summary,
        segment=segment.row(0, named=True) if segment.height else {},
        trend=trend,
        creators=sellers,
        concentration=concentration,
        catalog=catalog,
        recommendations=_for_entity(recommendations, "merchant", merchant_id, ["rank"]),
        drivers=_for_entity(drivers, "merchant", merchant_id, ["strategy", "position"]),
        recruits=_optional(recruits, "merchant_id", merchant_id),
    )
