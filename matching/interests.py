"""Real-time creator interests over categories and hashtags, with exponential time decay.

Every signal a creator gives is an *event* ``(creator_id, at, dimension, key, weight)``: each hashtag of
a caption (dimension ``hashtag``; captions also count for the categories their hashtags map to), each
product added to the showcase and each order (dimension ``category``, the product's category).

The interest of a creator in a key at time T, for half-life h days, is the decayed sum
``Σ weight · 2^(-(T - at) / h)``. The **state** stores these sums for every half-life together with the
time T they are decayed to. Because decay is multiplicative, a micro-batch updates the state exactly::

    S(T') = S(T) · 2^(-(T' - T) / h) + Σ_batch weight · 2^(-(T' - at) / h)

which equals the full recompute over all events up to float rounding (late events, with ``at < T``,
included). Profiles normalise the sums into shares per creator, dimension and half-life.

**Drift**: a creator is drifting when the top category of the short (7-day) profile differs from the
top category of the long (30-day) profile, or when the total-variation distance between the two
category share vectors is at least ``drift_distance`` — and the short profile has at least
``drift_min_mass`` of decayed evidence (a single stray event is not a drift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from core.schema import UTC_DATETIME
from matching.relations import MarketFrames

EVENT_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]
        "creator_id": pl.String,
        "at": UTC_DATETIME,
        "dimension": pl.String,
        "key": pl.String,
        "weight": pl.Float64,
    }
)
HASHTAG = r"#\w+"
_DAY_US = 86_400_000_000


@dataclass(frozen=True)
class InterestConfig:
    """Weights of the signals, half-lives and the drift rule."""

    half_lives: tuple[int, ...] = (1, 7, 30)
    caption_weight: float = 1.0
    showcase_weight: float = 2.0
    order_weight: float = 0.2
    order_statuses: tuple[str, ...] = ("completed", "refunded")
    hashtag_min_share: float = 0.5
    hashtag_min_content: int = 5
    drift_short: int = 7
    drift_long: int = 30
    drift_distance: float = 0.5
    drift_min_mass: float = 1.0

    def score_column(self, half_life: int) -> str:
        """The state column holding the sums decayed with ``half_life`` days."""
        return f"score_{half_life}d"

    @property
    def score_columns(self) -> list[str]:
        return [self.score_column(h) for h in self.half_lives]


@dataclass(frozen=True)
class InterestState:
    """Decayed sums per (creator_id, dimension, key), all decayed to ``as_of``."""

    as_of: datetime
    sums: pl.DataFrame = field(repr=False)


def hashtag_categories(frames: MarketFrames, cfg: InterestConfig = InterestConfig()) -> pl.LazyFrame:
    """(hashtag, category): hashtags whose content mostly features products of one category.

    Learned from the data (captions joined to the products the content featured), so generic tags
    (``#fyp``, ``#live``, style tags) map to nothing and real data needs no hand-made dictionary.
    """
    tags = frames.content.select(
        "content_id", hashtag=pl.col("caption").str.to_lowercase().str.extract_all(HASHTAG)
    ).explode("hashtag")
    featured = (
        frames.engagement.select("content_id", "product_id")
        .unique()
        .join(frames.products.select("product_id", "category"), on="product_id")
    )
    counts = (
        tags.drop_nulls("hashtag")
        .join(featured, on="content_id")
        .group_by("hashtag", "category")
        .agg(n=pl.len())
        .with_columns(total=pl.col("n").sum().over("hashtag"))
        .with_columns(share=pl.col("n") / pl.col("total"))
    )
    return (
        counts.filter(
            (pl.col("share") >= cfg.hashtag_min_share) & (pl.col("total") >= cfg.hashtag_min_content)
        )
        .select("hashtag", "category")
        .sort("hashtag")
    )


def interest_events(
    content: pl.LazyFrame,
    showcase: pl.LazyFrame,
    orders: pl.LazyFrame,
    products: pl.LazyFrame,
    tag_map: pl.LazyFrame,
    cfg: InterestConfig = InterestConfig(),
) -> pl.LazyFrame:
    """Interest events (``EVENT_SCHEMA``) from captions, showcase additions and orders."""
    tags = (
        content.select(
            "creator_id",
            at="published_at",
            key=pl.col("caption")
            .str.to_lowercase()
            .str.extract_all(HASHTAG)
            .list.unique(maintain_order=True),
            content_id="content_id",
        )
        .explode("key")
        .drop_nulls("key")
    )
    hashtag_events = tags.select(
        "creator_id", "at", dimension=pl.lit("hashtag"), key="key", weight=pl.lit(cfg.caption_weight)
    )
    mapped = tags.join(tag_map.rename({"hashtag": "key"}), on="key")
    caption_categories = mapped.with_columns(n=pl.len().over("content_id")).select(
        "creator_id",
        "at",
        dimension=pl.lit("category"),
        key="category",
        weight=pl.lit(cfg.caption_weight) / pl.col("n"),
    )
    category = products.select("product_id", "category")
    showcase_events = showcase.join(category, on="product_id").select(
        "creator_id",
        at=pl.col("added_on").cast(UTC_DATETIME),
        dimension=pl.lit("category"),
        key="category",
        weight=pl.lit(cfg.showcase_weight),
    )
    order_events = (
        orders.filter(pl.col("status").is_in(list(cfg.order_statuses)))
        .join(category, on="product_id")
        .select(
            "creator_id",
            at="ordered_at",
            dimension=pl.lit("category"),
            key="category",
            weight=pl.lit(cfg.order_weight),
        )
    )
    return pl.concat(
        [
            frame.cast(EVENT_SCHEMA)
            for frame in (hashtag_events, caption_categories, showcase_events, order_events)
        ]
    )


def _decayed(events: pl.LazyFrame, as_of: datetime, cfg: InterestConfig) -> pl.LazyFrame:
    age_days = (pl.lit(as_of, dtype=UTC_DATETIME) - pl.col("at")).dt.total_microseconds() / _DAY_US
    return events.group_by("creator_id", "dimension", "key").agg(
        (pl.col("weight") * (-math.log(2) * age_days / h).exp()).sum().alias(cfg.score_column(h))
        for h in cfg.half_lives
    )


def _check_not_after(events: pl.DataFrame, as_of: datetime) -> None:
    if events.height and events["at"].max() > as_of:  # type: ignore[operator]
        raise ValueError(f"events after as_of {as_of.isoformat()}: the state cannot be decayed backwards")


def interest_state(
    events: pl.LazyFrame, as_of: datetime, cfg: InterestConfig = InterestConfig()
) -> InterestState:
    """The full recompute: decayed sums of all events up to ``as_of`` (later events are ignored)."""
    known = events.filter(pl.col("at") <= pl.lit(as_of, dtype=UTC_DATETIME))
    sums = _decayed(known, as_of, cfg).sort("creator_id", "dimension", "key").collect()
    return InterestState(as_of=as_of, sums=sums)


def update_interest_state(
    state: InterestState,
    batch: pl.LazyFrame | pl.DataFrame,
    cfg: InterestConfig = InterestConfig(),
    as_of: datetime | None = None,
) -> InterestState:
    """Fold a micro-batch of events into the state (exactly equal to a full recompute).

    Args:
        state: sums decayed to ``state.as_of``.
        batch: new events (``EVENT_SCHEMA``); may be older than ``state.as_of`` (late arrivals).
        cfg: the half-lives (must match the state's).
        as_of: the new decay time; default: the later of ``state.as_of`` and the newest event.

    Raises:
        ValueError: when ``as_of`` is before ``state.as_of`` or before an event of the batch.
    """
    events = batch.lazy().collect()
    newest = events["at"].max() if events.height else None
    target = as_of if as_of is not None else state.as_of
    if as_of is None and isinstance(newest, datetime):
        target = max(state.as_of, newest)
    if target < state.as_of:
        raise ValueError(f"as_of {target.isoformat()} is before the state's {state.as_of.isoformat()}")
    _check_not_after(events, target)
    step_days = (target - state.as_of).total_seconds() / 86_400
    carried = state.sums.lazy().with_columns(
        (pl.col(cfg.score_column(h)) * math.exp(-math.log(2) * step_days / h)) for h in cfg.half_lives
    )
    added = _decayed(events.lazy(), target, cfg)
    sums = (
        pl.concat([carried, added.select(carried.collect_schema().names())])
        .group_by("creator_id", "dimension", "key")
        .agg(pl.col(cfg.score_columns).sum())
        .sort("creator_id", "dimension", "key")
        .collect()
    )
    return InterestState(as_of=target, sums=sums)


def interest_profiles(state: InterestState, cfg: InterestConfig = InterestConfig()) -> pl.LazyFrame:
    """Long profiles: creator_id, dimension, key, half_life_days, score, share, rank (1 = top)."""
    long = state.sums.lazy().unpivot(
        index=["creator_id", "dimension", "key"],
        on=cfg.score_columns,
        variable_name="column",
        value_name="score",
    )
    return (
        long.with_columns(half_life_days=pl.col("column").str.extract(r"score_(\d+)d").cast(pl.Int32))
        .drop("column")
        .filter(pl.col("score") > 0)
        .with_columns(
            share=pl.col("score") / pl.col("score").sum().over("creator_id", "dimension", "half_life_days")
        )
        .with_columns(
            # scores equal but for the last bits of their float sums tie, and ties go by key
            rank=pl.col("score")
            .round_sig_figs(9)
            .rank("ordinal", descending=True)
            .over("creator_id", "dimension", "half_life_days", order_by="key")
            .cast(pl.UInt32)
        )
        .select("creator_id", "dimension", "key", "half_life_days", "score", "share", "rank")
        .sort("creator_id", "dimension", "half_life_days", "rank")
    )


def interest_drift(profiles: pl.LazyFrame, cfg: InterestConfig = InterestConfig()) -> pl.LazyFrame:
    """Per creator: top category short vs long, their total-variation distance and the drift flag."""
    categories = profiles.filter(pl.col("dimension") == "category")
    short = categories.filter(pl.col("half_life_days") == cfg.drift_short)
    long = categories.filter(pl.col("half_life_days") == cfg.drift_long)
    shares = short.select("creator_id", "key", share_short="share", score_short="score").join(
        long.select("creator_id", "key", share_long="share"),
        on=["creator_id", "key"],
        how="full",
        coalesce=True,
    )
    distance = shares.group_by("creator_id").agg(
        distance=0.5
        * (pl.col("share_short").fill_null(0.0) - pl.col("share_long").fill_null(0.0)).abs().sum(),
        mass_short=pl.col("score_short").fill_null(0.0).sum(),
    )
    tops = (
        long.filter(pl.col("rank") == 1)
        .select("creator_id", top_category_long="key", top_share_long="share")
        .join(
            short.filter(pl.col("rank") == 1).select(
                "creator_id", top_category_short="key", top_share_short="share"
            ),
            on="creator_id",
            how="left",
        )
    )
    return (
        tops.join(distance, on="creator_id", how="left")
        .with_columns(
            drifting=(
                (pl.col("top_category_short") != pl.col("top_category_long"))
                | (pl.col("distance") >= cfg.drift_distance)
            )
            & (pl.col("mass_short") >= cfg.drift_min_mass)
        )
        .with_columns(pl.col("drifting").fill_null(False))
        .sort("creator_id")
    )


def profile_of(state: InterestState, creator_id: str, cfg: InterestConfig = InterestConfig()) -> pl.DataFrame:
    """One creator's long profile with its drift flag, as the build's ``creator_interests`` table holds it,
    from a (persisted, continuously folded) state: what the app shows between builds."""
    one = InterestState(as_of=state.as_of, sums=state.sums.filter(pl.col("creator_id") == creator_id))
    profiles = interest_profiles(one, cfg).collect()
    drift = interest_drift(profiles.lazy(), cfg).select("creator_id", "drifting").collect()
    return profiles.join(drift, on="creator_id", how="left")


def creator_interests(
    frames: MarketFrames, as_of: datetime, cfg: InterestConfig = InterestConfig()
) -> tuple[InterestState, pl.DataFrame, pl.DataFrame]:
    """Full computation from the tables: (state, long profiles, drift), all as of ``as_of``."""
    tag_map = hashtag_categories(frames, cfg)
    events = interest_events(frames.content, frames.showcase, frames.orders, frames.products, tag_map, cfg)
    state = interest_state(events, as_of, cfg)
    profiles = interest_profiles(state, cfg).collect()
    return state, profiles, interest_drift(profiles.lazy(), cfg).collect()
