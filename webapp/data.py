"""The app's data layer: every read a page makes, scoped to the signed-in user and cached.

This is the only module that uses ``st.cache_data`` / ``st.cache_resource``. Every reader takes the
`access.User` and goes through `snapshots.scoped_snapshot` (or filters a state-DB read
by the user's merchants), so a page can never reach rows outside the user's scope, whatever the URL
says. Cache keys include the Liftboard home and the build id, so a new build is picked up at once.
Results are small, aggregated frames (the daily facts are scanned lazily and reduced before they are
collected); caches are bounded with ``ttl`` and ``max_entries``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
import streamlit as st

from analytics import kpis
from core import access, metrics
from core.access import User
from core.config import Settings
from core.snapshots import CATALOG
from core.schema import TABLES, table_spec
from datastore import db, snapshots, users
from datastore.snapshots import SnapshotNotFound, latest_manifest

TTL = 600
MATCHING_SNAPSHOTS: tuple[str, ...] = tuple(s.name for s in CATALOG if s.stage == "matching")


def settings() -> Settings:
    """The installation the app serves (environment: ``LIFTBOARD_HOME``, ``LIFTBOARD_DATABASE_URL``)."""
    return Settings.from_env()


def manifest() -> dict[str, Any] | None:
    """The current build's manifest, or ``None`` before the first build."""
    return latest_manifest(settings())


def _build_key() -> tuple[str, str]:
    s = settings()
    m = latest_manifest(s)
    if m is None:
        raise SnapshotNotFound(f"no analytics build in {s.snapshots}; run `liftboard build` first")
    return str(s.home), m["build_id"]


def has_snapshot(name: str) -> bool:
    """Whether the current build published ``name``."""
    m = manifest()
    return m is not None and name in m.get("snapshots", [])


def has_matching() -> bool:
    """Whether any matching table is published (the Products & matching page shows only then)."""
    return any(has_snapshot(name) for name in MATCHING_SNAPSHOTS)


def as_of() -> date:
    """The build's as-of date: results use data strictly before it."""
    m = manifest()
    if m is None:
        raise SnapshotNotFound("no analytics build yet; run `liftboard build` first")
    return date.fromisoformat(m["as_of"])


def last_day() -> date:
    """The last day of data in the current build (the day before as-of)."""
    return as_of() - timedelta(days=1)


# ------------------------------------------------------------------------------------------------
# Date presets
# ------------------------------------------------------------------------------------------------

PRESETS: dict[str, str] = {
    "7d": "Last 7 days",
    "28d": "Last 28 days",
    "91d": "Last 91 days",
    "last_week": "Last full week",
    "custom": "Custom",
}


def preset_range(preset: str, last: date, custom: tuple[date, date] | None = None) -> tuple[date, date]:
    """The inclusive date range of ``preset`` relative to ``last`` (the data's last day)."""
    if preset in ("7d", "28d", "91d"):
        days = int(preset[:-1])
        return last - timedelta(days=days - 1), last
    if preset == "last_week":
        # the last Monday–Sunday week that ends on or before ``last``
        end = last - timedelta(days=(last.weekday() + 1) % 7)
        return end - timedelta(days=6), end
    if preset == "custom" and custom is not None:
        start, end = custom
        return (start, end) if start <= end else (end, start)
    return last - timedelta(days=27), last


# ------------------------------------------------------------------------------------------------
# Snapshots
# ------------------------------------------------------------------------------------------------


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _snapshot(name: str, user: User, _key: tuple[str, str]) -> pl.DataFrame:
    return snapshots.scoped_snapshot(name, settings(), user).collect()


def snapshot(name: str, user: User) -> pl.DataFrame:
    """A whole (small) snapshot, scoped to ``user`` (PermissionError outside their role)."""
    return _snapshot(name, user, _build_key())


def scan(name: str, user: User) -> pl.LazyFrame:
    """A lazy, scoped scan of a (large) snapshot; callers reduce it before collecting."""
    return snapshots.scoped_snapshot(name, settings(), user)


# ------------------------------------------------------------------------------------------------
# Matching tables
# ------------------------------------------------------------------------------------------------

# How each matching table reads best (columns, descending): by its subject, then its own rank; pairs
# strongest first.
MATCHING_ORDER: dict[str, tuple[list[str], bool]] = {
    "similar_products": (["product_id", "rank"], False),
    "product_pairs": (["adjusted_lift", "pair_count"], True),
    "creator_product_recs": (["creator_id", "rank"], False),
    "merchant_creator_recs": (["merchant_id", "rank"], False),
    "creator_interests": (["creator_id", "dimension", "half_life_days", "rank"], False),
}
_PAIR_IDS = ("product_a", "product_b")  # ids besides every *_id column
_TEXT_COLUMNS = ("title", "similar_title", "handle", "best_product_title")


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _matching_table(name: str, user: User, _key: tuple[str, str]) -> pl.DataFrame:
    frame = snapshots.scoped_snapshot(name, settings(), user)
    columns, descending = MATCHING_ORDER[name]
    return frame.sort(columns, descending=descending, nulls_last=True).collect()


def matching_table(user: User, name: str, search: str = "") -> pl.DataFrame:
    """A matching table in reading order (sorted once per build). With ``search``: the rows where an id
    equals it or a title or handle contains it (case-insensitive), the searched entity's own rows first."""
    frame = _matching_table(name, user, _build_key())
    search = search.strip()
    if not search:
        return frame
    ids = [c for c in frame.columns if c.endswith("_id") or c in _PAIR_IDS]
    texts = [c for c in frame.columns if c in _TEXT_COLUMNS]
    needle = search.lower()
    conditions = [pl.col(c).cast(pl.String) == search for c in ids] + [
        pl.col(c).str.to_lowercase().str.contains(needle, literal=True) for c in texts
    ]
    frame = frame.filter(pl.any_horizontal(conditions))
    subject = MATCHING_ORDER[name][0][0]
    if subject.endswith("_id"):  # stable: the reading order stays within each part
        frame = frame.sort(pl.col(subject) != search, maintain_order=True)
    return frame


# ------------------------------------------------------------------------------------------------
# Overview
# ------------------------------------------------------------------------------------------------


def _filters(regions: Sequence[str], categories: Sequence[str], tiers: Sequence[str]) -> dict[str, Any]:
    return {
        "regions": list(regions) or None,
        "categories": list(categories) or None,
        "tiers": list(tiers) or None,
    }


@st.cache_data(ttl=TTL, max_entries=32, show_spinner=False)
def _dimension_values(user: User, _key: tuple[str, str]) -> dict[str, list[str]]:
    features = snapshots.scoped_snapshot("creator_segments", settings(), user)
    frame = features.select("region", "primary_category", "tier").unique().collect()
    tiers = [t for t in ("nano", "micro", "mid", "macro", "mega") if t in set(frame["tier"].to_list())]
    return {
        "region": sorted(frame["region"].drop_nulls().unique().to_list()),
        "category": sorted(frame["primary_category"].drop_nulls().unique().to_list()),
        "tier": tiers,
    }


def dimension_values(user: User) -> dict[str, list[str]]:
    """The regions, categories and tiers present (for the sidebar filters)."""
    if not user.is_ops:
        return {"region": [], "category": [], "tier": []}
    return _dimension_values(user, _build_key())


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _overview(
    user: User,
    start: date,
    end: date,
    regions: tuple[str, ...],
    categories: tuple[str, ...],
    tiers: tuple[str, ...],
    _key: tuple[str, str],
) -> dict[str, pl.DataFrame]:
    creator_daily = snapshots.scoped_snapshot("creator_daily", settings(), user)
    merchant_daily = snapshots.scoped_snapshot("merchant_daily", settings(), user)
    f = _filters(regions, categories, tiers)
    cards = kpis.kpi_cards(creator_daily, start, end, merchant_daily=merchant_daily, **f)
    length = (end - start).days + 1
    previous_start = start - timedelta(days=length)
    daily = kpis.filter_daily(creator_daily, f["regions"], f["categories"], f["tiers"]).filter(
        pl.col("date").is_between(previous_start, end)
    )
    per_day = metrics.with_metrics(kpis.creator_totals(daily, ["date"])).sort("date").collect()
    if not (regions or categories or tiers):
        merchants_per_day = (
            kpis.merchant_totals(
                merchant_daily.filter(pl.col("date").is_between(previous_start, end)), ["date"]
            )
            .select("date", "active_merchants")
            .collect()
        )
        per_day = per_day.drop("active_merchants").join(merchants_per_day, on="date", how="left")
    per_day = per_day.with_columns(
        pl.when(pl.col("date") >= start).then(pl.lit("current")).otherwise(pl.lit("previous")).alias("range"),
        ((pl.col("date") - pl.lit(start)).dt.total_days() % length).alias("day_of_range"),
    )
    current = daily.filter(pl.col("date") >= start)
    breakdowns = {
        column: metrics.with_metrics(kpis.creator_totals(current, [column]))
        .sort("gmv", descending=True)
        .collect()
        for column in ("region", "category", "tier", "content_kind")
    }
    return {"cards": cards, "daily": per_day, **{f"by_{k}": v for k, v in breakdowns.items()}}


def overview(
    user: User,
    start: date,
    end: date,
    regions: Sequence[str],
    categories: Sequence[str],
    tiers: Sequence[str],
) -> dict[str, pl.DataFrame]:
    """KPI cards (vs the previous period), per-day metrics of both periods, and breakdowns."""
    return _overview(user, start, end, tuple(regions), tuple(categories), tuple(tiers), _build_key())


# ------------------------------------------------------------------------------------------------
# Creators
# ------------------------------------------------------------------------------------------------


@st.cache_resource(ttl=TTL, max_entries=4, show_spinner=False)
def _dimension(name: str, _key: tuple[str, str]) -> pl.DataFrame:
    return db.read_table(name, settings())


def creators_dim(user: User) -> pl.DataFrame:
    """The creators dimension (ops only: creators are not scoped by merchant)."""
    if not user.is_ops:
        raise PermissionError(f"{user.username} may not see the creator directory")
    return _dimension("creators", _build_key())


def merchants_dim(user: User) -> pl.DataFrame:
    """The merchants dimension, scoped."""
    return access.scope_frame(_dimension("merchants", _build_key()).lazy(), user, "merchants").collect()


def products_dim(user: User) -> pl.DataFrame:
    """The products dimension, scoped by merchant."""
    return access.scope_frame(_dimension("products", _build_key()).lazy(), user, "products").collect()


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _creator_directory(user: User, _key: tuple[str, str]) -> pl.DataFrame:
    seg = snapshots.scoped_snapshot("creator_segments", settings(), user).collect()
    feat = (
        snapshots.scoped_snapshot("creator_features", settings(), user)
        .select(
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
        .collect()
    )
    names = _dimension("creators", _key).select("creator_id", "handle")
    return (
        seg.join(feat, on="creator_id", how="left")
        .join(names, on="creator_id", how="left")
        .select(
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
        .sort("gmv_28d", descending=True)
    )


def creator_directory(
    user: User,
    *,
    search: str = "",
    tiers: Sequence[str] = (),
    lifecycles: Sequence[str] = (),
    categories: Sequence[str] = (),
    regions: Sequence[str] = (),
    gmv_range: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """Every creator with segment, lifecycle and 28-day performance, filtered."""
    if not user.is_ops:
        raise PermissionError(f"{user.username} may not see the creator directory")
    frame = _creator_directory(user, _build_key())
    if search.strip():
        needle = search.strip().lower()
        frame = frame.filter(
            pl.col("handle").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("creator_id").str.to_lowercase().str.contains(needle, literal=True)
        )
    for column, allowed in (
        ("tier", tiers),
        ("lifecycle_stage", lifecycles),
        ("primary_category", categories),
        ("region", regions),
    ):
        if allowed:
            frame = frame.filter(pl.col(column).is_in(list(allowed)))
    if gmv_range is not None:
        frame = frame.filter(pl.col("gmv_28d").is_between(gmv_range[0], gmv_range[1]))
    return frame


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _creator_profile(
    user: User, creator_id: str, start: date, end: date, _key: tuple[str, str]
) -> dict[str, Any]:
    s = settings()
    seg = (
        snapshots.scoped_snapshot("creator_segments", s, user)
        .filter(pl.col("creator_id") == creator_id)
        .collect()
    )
    if seg.height == 0:
        return {}
    feat = snapshots.scoped_snapshot("creator_features", s, user)
    row = feat.filter(pl.col("creator_id") == creator_id).collect()
    tier = seg["tier"][0]
    peers = (
        feat.filter(pl.col("tier") == tier)
        .select(
            pl.len().alias("creators"),
            *(
                pl.col(c).median()
                for c in (
                    "gmv_28d",
                    "orders_28d",
                    "ctr_28d",
                    "cvr_28d",
                    "gpm_28d",
                    "content_per_week_13w",
                    "aov_91d",
                    "refund_rate_91d",
                )
            ),
        )
        .collect()
    )
    daily = snapshots.scoped_snapshot("creator_daily", s, user).filter(pl.col("creator_id") == creator_id)
    history_start = min(start, end - timedelta(days=90))
    trend = (
        metrics.with_metrics(
            kpis.creator_totals(daily.filter(pl.col("date").is_between(history_start, end)), ["date"])
        )
        .sort("date")
        .collect()
    )
    in_range = daily.filter(pl.col("date").is_between(start, end))
    funnel_row = in_range.select(
        *(pl.col(c).sum() for c in ("impressions", "views", "clicks", "add_to_carts", "orders"))
    ).collect()
    mix = metrics.with_metrics(kpis.creator_totals(in_range, ["content_kind"])).collect()
    recs = (
        snapshots.scoped_snapshot("recommendations", s, user)
        .filter((pl.col("entity_kind") == "creator") & (pl.col("entity_id") == creator_id))
        .sort("rank")
        .collect()
    )
    drivers = (
        snapshots.scoped_snapshot("shap_drivers", s, user)
        .filter((pl.col("entity_kind") == "creator") & (pl.col("entity_id") == creator_id))
        .sort("strategy", "position")
        .collect()
    )
    interests = pl.DataFrame()
    if has_snapshot("creator_interests"):
        interests = (
            snapshots.scoped_snapshot("creator_interests", s, user)
            .filter(pl.col("creator_id") == creator_id)
            .collect()
        )
    product_recs = pl.DataFrame()
    if has_snapshot("creator_product_recs"):
        product_recs = (
            snapshots.scoped_snapshot("creator_product_recs", s, user)
            .filter(pl.col("creator_id") == creator_id)
            .collect()
        )
    handle = _dimension("creators", _key).filter(pl.col("creator_id") == creator_id)
    return {
        "segment": seg,
        "features": row,
        "peers": peers,
        "handle": handle["handle"][0] if handle.height else creator_id,
        "trend": trend,
        "funnel": funnel_row,
        "mix": mix,
        "recommendations": recs,
        "drivers": drivers,
        "interests": interests,
        "product_recs": product_recs,
    }


def creator_profile(user: User, creator_id: str, start: date, end: date) -> dict[str, Any]:
    """Everything the creator profile shows; ``{}`` when the creator is unknown (or out of scope)."""
    if not user.is_ops:
        return {}
    return _creator_profile(user, creator_id, start, end, _build_key())


# ------------------------------------------------------------------------------------------------
# Merchants
# ------------------------------------------------------------------------------------------------


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _merchant_directory(user: User, _key: tuple[str, str]) -> pl.DataFrame:
    s = settings()
    seg = snapshots.scoped_snapshot("merchant_segments", s, user).select(
        "merchant_id", "lifecycle_stage", "value_segment"
    )
    feat = snapshots.scoped_snapshot("merchant_features", s, user)
    names = access.scope_frame(_dimension("merchants", _key).lazy(), user).select("merchant_id", "name")
    return (
        feat.join(seg, on="merchant_id", how="left")
        .join(names, on="merchant_id", how="left")
        .select(
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
        .sort("gmv_28d", descending=True)
        .collect()
    )


def merchant_directory(
    user: User,
    *,
    search: str = "",
    categories: Sequence[str] = (),
    regions: Sequence[str] = (),
    lifecycles: Sequence[str] = (),
) -> pl.DataFrame:
    """The merchants ``user`` may see, with 28-day performance, filtered."""
    frame = _merchant_directory(user, _build_key())
    if search.strip():
        needle = search.strip().lower()
        frame = frame.filter(
            pl.col("name").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("merchant_id").str.to_lowercase().str.contains(needle, literal=True)
        )
    for column, allowed in (("category", categories), ("region", regions), ("lifecycle_stage", lifecycles)):
        if allowed:
            frame = frame.filter(pl.col(column).is_in(list(allowed)))
    return frame


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _merchant_profile(
    user: User, merchant_id: str, start: date, end: date, _key: tuple[str, str]
) -> dict[str, Any]:
    s = settings()
    feat = (
        snapshots.scoped_snapshot("merchant_features", s, user)
        .filter(pl.col("merchant_id") == merchant_id)
        .collect()
    )
    if feat.height == 0:
        return {}
    name_row = (
        access.scope_frame(_dimension("merchants", _key).lazy(), user)
        .filter(pl.col("merchant_id") == merchant_id)
        .collect()
    )
    seg = (
        snapshots.scoped_snapshot("merchant_segments", s, user)
        .filter(pl.col("merchant_id") == merchant_id)
        .collect()
    )
    daily = snapshots.scoped_snapshot("merchant_daily", s, user).filter(pl.col("merchant_id") == merchant_id)
    history_start = min(start, end - timedelta(days=90))
    trend = (
        metrics.with_metrics(
            kpis.merchant_totals(daily.filter(pl.col("date").is_between(history_start, end)), ["date"])
        )
        .sort("date")
        .collect()
    )
    in_range = daily.filter(pl.col("date").is_between(start, end))
    creators = (
        metrics.with_metrics(kpis.merchant_totals(in_range, ["creator_id"]))
        .select("creator_id", "gmv", "orders", "refund_rate", "ctr", "cvr", "commission")
        .sort("gmv", descending=True)
        .collect()
    )
    total = creators["gmv"].sum() or 0.0
    concentration = creators.with_columns(
        pl.int_range(1, pl.len() + 1).alias("creators"),
        (pl.col("gmv").cum_sum() / total if total else pl.lit(None, dtype=pl.Float64)).alias(
            "cumulative_share"
        ),
    ).select("creators", "cumulative_share")
    handles = _dimension("creators", _key).select("creator_id", "handle")
    creators = creators.join(handles, on="creator_id", how="left").select(
        "creator_id", "handle", *creators.columns[1:]
    )
    products = access.scope_frame(_dimension("products", _key).lazy(), user).filter(
        pl.col("merchant_id") == merchant_id
    )
    sold = metrics.with_metrics(
        snapshots.scoped_snapshot("product_daily", s, user)
        .filter((pl.col("merchant_id") == merchant_id) & pl.col("date").is_between(start, end))
        .group_by("product_id")
        .agg(*(pl.col(c).sum() for c in ("views", "clicks", "orders", "gmv", "refunded_gmv", "commission")))
    ).select("product_id", "gmv", "orders", "ctr", "cvr", "refund_rate")
    catalog = (
        products.join(sold, on="product_id", how="left")
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
    recs = (
        snapshots.scoped_snapshot("recommendations", s, user)
        .filter((pl.col("entity_kind") == "merchant") & (pl.col("entity_id") == merchant_id))
        .sort("rank")
        .collect()
    )
    drivers = (
        snapshots.scoped_snapshot("shap_drivers", s, user)
        .filter((pl.col("entity_kind") == "merchant") & (pl.col("entity_id") == merchant_id))
        .sort("strategy", "position")
        .collect()
    )
    recruits = pl.DataFrame()
    if has_snapshot("merchant_creator_recs"):
        recruits = (
            snapshots.scoped_snapshot("merchant_creator_recs", s, user)
            .filter(pl.col("merchant_id") == merchant_id)
            .collect()
        )
    return {
        "name": name_row["name"][0] if name_row.height else merchant_id,
        "features": feat,
        "segment": seg,
        "trend": trend,
        "creators": creators,
        "concentration": concentration,
        "catalog": catalog,
        "recommendations": recs,
        "drivers": drivers,
        "recruits": recruits,
    }


def merchant_profile(user: User, merchant_id: str, start: date, end: date) -> dict[str, Any]:
    """Everything the merchant page shows; ``{}`` when unknown or outside ``user``'s scope."""
    if not access.can_see_merchant(user, merchant_id):
        return {}
    return _merchant_profile(user, merchant_id, start, end, _build_key())


# ------------------------------------------------------------------------------------------------
# Strategy board
# ------------------------------------------------------------------------------------------------


def recommendations(user: User) -> pl.DataFrame:
    """The current run's recommendations with entity names and workflow status, scoped."""
    recs = snapshot("recommendations", user)
    acts = actions(user)
    names = pl.concat(
        [
            _dimension("creators", _build_key()).select(
                pl.lit("creator").alias("entity_kind"),
                pl.col("creator_id").alias("entity_id"),
                pl.col("handle").alias("entity_name"),
            ),
            _dimension("merchants", _build_key()).select(
                pl.lit("merchant").alias("entity_kind"),
                pl.col("merchant_id").alias("entity_id"),
                pl.col("name").alias("entity_name"),
            ),
        ]
    )
    status = (
        acts.select(
            "run_id",
            "entity_kind",
            "entity_id",
            "strategy",
            "status",
            "owner",
            "note",
            "started_on",
            "action_id",
        )
        if acts.height
        else pl.DataFrame(
            schema={
                "run_id": pl.String,
                "entity_kind": pl.String,
                "entity_id": pl.String,
                "strategy": pl.String,
                "status": pl.String,
                "owner": pl.String,
                "note": pl.String,
                "started_on": pl.Date,
                "action_id": pl.String,
            }
        )
    )
    return (
        recs.join(names, on=["entity_kind", "entity_id"], how="left")
        .join(status, on=["run_id", "entity_kind", "entity_id", "strategy"], how="left")
        .with_columns(pl.col("status").fill_null("proposed"))
    )


def actions(user: User) -> pl.DataFrame:
    """Every workflow action the user may see (not cached: it changes with every click)."""
    from strategies import store

    frame = store.read_actions(settings())
    if frame.height == 0:
        return frame
    frame = frame.with_columns(pl.col("started_on").cast(pl.Date, strict=False))
    return access.scope_frame(frame.lazy(), user, "actions").collect()


def history(user: User, action_id: str) -> pl.DataFrame:
    """The change history of one action the user may see."""
    from strategies import store

    visible = actions(user)
    if visible.height == 0 or action_id not in set(visible["action_id"].to_list()):
        return pl.DataFrame()
    return store.read_history(settings(), action_id)


def set_status(
    user: User,
    *,
    run_id: str,
    entity_kind: str,
    entity_id: str,
    strategy: str,
    status: str,
    owner: str | None = None,
    note: str | None = None,
) -> str:
    """Move a recommendation through the workflow as ``user`` (scope-checked)."""
    from strategies import store

    if entity_kind == "merchant" and not access.can_see_merchant(user, entity_id):
        raise PermissionError("not found")
    if entity_kind == "creator" and not user.is_ops:
        raise PermissionError("not found")
    return store.set_status(
        settings(),
        run_id=run_id,
        entity_kind=entity_kind,
        entity_id=entity_id,
        strategy=strategy,
        status=status,
        user=user.username,
        owner=owner,
        note=note,
    )


def allocation(
    user: User, candidates: pl.DataFrame, budget: float, capacity: Mapping[str, int]
) -> pl.DataFrame:
    """Run `strategies.allocation.allocate` on ``candidates`` under a budget and team capacities."""
    from strategies.allocation import AllocationConfig, allocate

    return allocate(candidates, AllocationConfig(budget=budget, team_capacity=dict(capacity)))


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _realized(
    user: User, rows: tuple[tuple[str, str, date], ...], last: date, _key: tuple[str, str]
) -> pl.DataFrame:
    s = settings()
    out = []
    for kind, entity_id, started in rows:
        if started + timedelta(days=28) > last + timedelta(days=1):
            out.append(
                {
                    "entity_kind": kind,
                    "entity_id": entity_id,
                    "started_on": started,
                    "realized_uplift": None,
                    "gmv_before": None,
                    "gmv_after": None,
                    "complete": False,
                }
            )
            continue
        name, key = (
            ("creator_daily", "creator_id") if kind == "creator" else ("merchant_daily", "merchant_id")
        )
        daily = snapshots.scoped_snapshot(name, s, user).filter(pl.col(key) == entity_id)
        sums = daily.select(
            pl.col("gmv")
            .filter(pl.col("date").is_between(started - timedelta(days=28), started - timedelta(days=1)))
            .sum()
            .alias("before"),
            pl.col("gmv")
            .filter(pl.col("date").is_between(started, started + timedelta(days=27)))
            .sum()
            .alias("after"),
        ).collect()
        before, after = float(sums["before"][0] or 0.0), float(sums["after"][0] or 0.0)
        out.append(
            {
                "entity_kind": kind,
                "entity_id": entity_id,
                "started_on": started,
                "realized_uplift": after - before,
                "gmv_before": before,
                "gmv_after": after,
                "complete": True,
            }
        )
    return pl.DataFrame(
        out,
        schema={
            "entity_kind": pl.String,
            "entity_id": pl.String,
            "started_on": pl.Date,
            "realized_uplift": pl.Float64,
            "gmv_before": pl.Float64,
            "gmv_after": pl.Float64,
            "complete": pl.Boolean,
        },
    )


def accepted_outcomes(user: User) -> pl.DataFrame:
    """Accepted (and later) actions with predicted vs realized uplift.

    Realized = GMV in the 28 days from ``started_on`` minus GMV in the 28 days before, from the daily
    facts; ``None`` ("in progress") until 28 days of data exist after the start.
    """
    acts = actions(user)
    if acts.height == 0:
        return pl.DataFrame()
    started = acts.filter(pl.col("started_on").is_not_null())
    if started.height == 0:
        return pl.DataFrame()
    keys = tuple(
        (r["entity_kind"], r["entity_id"], r["started_on"])
        for r in started.select("entity_kind", "entity_id", "started_on").unique().iter_rows(named=True)
    )
    realized = _realized(user, keys, last_day(), _build_key())
    return started.join(realized, on=["entity_kind", "entity_id", "started_on"], how="left").select(
        "action_id",
        "entity_kind",
        "entity_id",
        "strategy",
        "status",
        "owner",
        "started_on",
        "predicted_uplift",
        "uplift_low",
        "uplift_high",
        "realized_uplift",
        "gmv_before",
        "gmv_after",
        "complete",
        "note",
    )


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------


def evaluation_note() -> str:
    """The normalization note of `strategies.evaluation` (its module docstring)."""
    from strategies import evaluation

    return (evaluation.__doc__ or "").strip()


# ------------------------------------------------------------------------------------------------
# Data (ops only)
# ------------------------------------------------------------------------------------------------


def _require_ops(user: User) -> None:
    if not user.is_ops:
        raise PermissionError(f"{user.username} may not see the data administration")


def ingestion_runs(user: User, limit: int = 200) -> pl.DataFrame:
    """The newest ingestion runs with their row totals."""
    _require_ops(user)
    runs, loads = db.ingestion_runs, db.ingestion_loads
    query = (
        sa.select(
            runs.c.run_id,
            runs.c.started_at,
            runs.c.finished_at,
            runs.c.status,
            runs.c.user,
            runs.c.source,
            runs.c.error,
            sa.func.coalesce(sa.func.sum(loads.c.rows_read), 0).label("rows_read"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_loaded), 0).label("rows_loaded"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_quarantined), 0).label("rows_quarantined"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_duplicate), 0).label("rows_duplicate"),
        )
        .select_from(runs.outerjoin(loads, loads.c.run_id == runs.c.run_id))
        .group_by(runs.c.run_id)
        .order_by(runs.c.started_at.desc())
        .limit(limit)
    )
    db.ensure_db(settings())
    with db.connect(settings()) as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    schema: dict[str, pl.DataType] = {
        "run_id": pl.String(),
        "started_at": pl.Datetime("us", "UTC"),
        "finished_at": pl.Datetime("us", "UTC"),
        "status": pl.String(),
        "user": pl.String(),
        "source": pl.String(),
        "error": pl.String(),
        "rows_read": pl.Int64(),
        "rows_loaded": pl.Int64(),
        "rows_quarantined": pl.Int64(),
        "rows_duplicate": pl.Int64(),
    }
    return pl.DataFrame(rows, schema=schema, strict=False) if rows else pl.DataFrame(schema=schema)


def ingestion_loads(user: User, run_id: str) -> pl.DataFrame:
    """The per-file loads of one ingestion run."""
    _require_ops(user)
    loads = db.ingestion_loads
    with db.connect(settings()) as connection:
        rows = [
            dict(r._mapping) for r in connection.execute(sa.select(loads).where(loads.c.run_id == run_id))
        ]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def freshness(user: User) -> pl.DataFrame:
    """Per canonical table: where it lives, rows, last data day (facts) and last write."""
    _require_ops(user)
    from datastore import lake

    s = settings()
    out = []
    for name in TABLES:
        spec = table_spec(name)
        row: dict[str, Any] = {
            "table": name,
            "storage": spec.storage,
            "rows": None,
            "last_day": None,
            "last_written": None,
        }
        if spec.storage == "db":
            try:
                row["rows"] = db.count_rows(name, s)
            except sa.exc.SQLAlchemyError:
                row["rows"] = None
        else:
            files = lake.table_files(name, s)
            if files:
                frame = lake.scan_table(name, s)
                time_column = next(
                    (c for c in ("date", "ordered_at", "published_at") if c in frame.collect_schema()), None
                )
                stats = frame.select(
                    pl.len().alias("rows"),
                    (pl.col(time_column).max() if time_column else pl.lit(None)).alias("last"),
                ).collect()
                row["rows"] = int(stats["rows"][0])
                last = stats["last"][0]
                row["last_day"] = last.date() if isinstance(last, datetime) else last
                row["last_written"] = datetime.fromtimestamp(max(f.stat().st_mtime for f in files))
            else:
                row["rows"] = 0
        out.append(row)
    return pl.DataFrame(
        out,
        schema={
            "table": pl.String,
            "storage": pl.String,
            "rows": pl.Int64,
            "last_day": pl.Date,
            "last_written": pl.Datetime("us"),
        },
        strict=False,
    )


def quarantine_files(user: User) -> pl.DataFrame:
    """Every quarantine Parquet file with its row count."""
    _require_ops(user)
    root = settings().quarantine
    files = sorted(root.rglob("*.parquet")) if root.is_dir() else []
    rows = []
    for path in files:
        try:
            count = pl.scan_parquet(path).select(pl.len()).collect().item()
        except Exception:  # noqa: BLE001 - a broken file is listed with no count
            count = None
        rows.append(
            {
                "file": str(path.relative_to(root)),
                "rows": count,
                "written": datetime.fromtimestamp(path.stat().st_mtime),
            }
        )
    return pl.DataFrame(rows, schema={"file": pl.String, "rows": pl.Int64, "written": pl.Datetime("us")})


def quarantine_rows(user: User, relative: str, limit: int = 5_000) -> pl.DataFrame:
    """The rows of one quarantine file (path relative to the quarantine folder, no escaping it)."""
    _require_ops(user)
    root = settings().quarantine.resolve()
    path = (root / relative).resolve()
    if root not in path.parents or path.suffix != ".parquet" or not path.is_file():
        raise FileNotFoundError(relative)
    frame = pl.read_parquet(path, n_rows=limit)
    first = [c for c in ("_row", "_column", "_reason") if c in frame.columns]
    return frame.select(*first, *(c for c in frame.columns if c not in first))


def ingest_upload(user: User, name: str, content: bytes, table: str | None) -> Any:
    """Ingest one uploaded file through `datastore.ingest.ingest_files` (the CLI's path)."""
    _require_ops(user)
    from datastore.ingest import ingest_files

    s = settings()
    original = Path(Path(name).name)  # no directories from the browser
    # keep the table's name first (ingest infers the table from it, e.g. orders-001.csv)
    target = s.incoming / "uploads" / f"{original.stem}-{datetime.now():%Y%m%dT%H%M%S}{original.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return ingest_files([target], s, table=table, source=f"upload:{Path(name).name}", user=user.username)


# ------------------------------------------------------------------------------------------------
# Exports (built only when the user clicks: pass these as ``data=`` callables)
# ------------------------------------------------------------------------------------------------


def _export_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).cast(pl.String) for c, t in frame.schema.items() if isinstance(t, pl.Enum | pl.Categorical)
    )


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """All rows of ``frame`` as UTF-8 CSV."""
    return _export_frame(frame).write_csv().encode("utf-8")


def xlsx_bytes(sheets: Mapping[str, pl.DataFrame]) -> bytes:
    """One workbook (XlsxWriter), a sheet per frame, all rows, money and rate columns formatted."""
    buffer = io.BytesIO()
    import xlsxwriter

    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as workbook:
        used: set[str] = set()
        for title, frame in sheets.items():
            name = "".join(ch for ch in title if ch not in "[]:*?/\\")[:31] or "Sheet"
            base, n = name, 2
            while name.lower() in used:
                name = f"{base[:28]}_{n}"
                n += 1
            used.add(name.lower())
            formats = {}
            for column in frame.columns:
                fmt = _excel_format(column)
                if fmt:
                    formats[column] = fmt
            _export_frame(frame).write_excel(
                workbook,
                worksheet=name,
                column_formats=formats or None,  # type: ignore[arg-type]
                autofit=True,
                float_precision=2,
                dtype_formats={pl.Date: "yyyy-mm-dd", pl.Datetime: "yyyy-mm-dd hh:mm"},
            )
    return buffer.getvalue()


def _excel_format(column: str) -> str | None:
    base = column.removesuffix("_28d").removesuffix("_91d").removesuffix("_7d")
    if base in metrics.METRICS:
        return metrics.metric(base).excel_format
    return None


def dictionary() -> pl.DataFrame:
    """The metric dictionary (name, label, unit, definition)."""
    return metrics.describe_metrics().select("name", "label", "unit", "definition")


def users_frame(user: User) -> pl.DataFrame:
    """App users (ops only)."""
    _require_ops(user)
    return users.list_users(settings())


def manifest_json() -> str:
    """The current manifest, pretty-printed."""
    return json.dumps(manifest(), indent=2, default=str)
