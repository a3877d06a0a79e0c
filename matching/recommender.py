"""Creator → product recommendations and merchant → creator recruitment: recall, ranking, evaluation.

The pipeline, as of a date (everything computed from data strictly before it):

1. **Recall** — four sources each propose their top ``candidates_per_source`` products per creator,
   never one the creator already promoted (showcased, featured or sold):
   ``als`` (implicit-feedback ALS on creator × product interactions), ``item2vec`` (embedding
   neighbours of the creator's past products), ``interest`` (products gaining creators in the
   creator's current interest categories) and ``popular_in_category`` (best sellers of the creator's
   primary category).
2. **Features** for every candidate pair: every source's score (computed for every pair, not only the
   ones the source recalled) and rank, interest affinity at 1/7/30-day half-lives, product CVR, CTR,
   GPM, age and momentum, price fit with the creator's audience, commission rate (absolute and vs the
   category median), merchant rating, shipping time and refund rate, creator activity and size.
3. **Ranking** — LightGBM with ``lambdarank``, ``rank_xendcg`` and ``binary`` objectives is trained
   on stacked windows before the date with labels from the next ``label_days`` (the creator sold the
   product, completed orders, excluding products already promoted); the objective with the best
   validation NDCG@K is kept. A pointwise binary model gives P(sold) and a regression on the positives
   gives the GMV if sold (a mean: the regression is on ln(1 + GMV), turned back with Duan's smearing
   factor): expected GMV = P(sold) × GMV if sold, over the ``label_days`` after the date, as things are.
4. **Reasons** — LightGBM's per-feature contributions (``pred_contrib``) of the kept ranker are summed
   into reason groups; the top groups become sentences ("similar to Glow Serum you sell well").

Merchant recruitment scores the merchant's products against creators active in their categories with
the same models and aggregates per creator, excluding creators already partnered with the merchant.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl
import scipy.sparse as sp

from core.config import Settings
from matching.interests import InterestConfig, creator_interests
from matching.relations import (
    Item2VecConfig,
    ItemEmbeddings,
    MarketFrames,
    as_of_moment,
    embedding_neighbours,
    item2vec,
    product_sequences,
)

SOURCES = ("als", "item2vec", "interest", "popular_in_category")
OBJECTIVES = ("lambdarank", "rank_xendcg", "binary")
PAIR = ["creator_id", "product_id"]

Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called as each step of a long computation finishes."""
GMV_FOLDS = 5
"""Folds (by creator) of the out-of-fold residuals behind the GMV model's smearing factor."""
PREDICT_THREADS = min(4, os.cpu_count() or 1)
"""Threads of LightGBM's predictions (each row's score is the same with any number; training uses one)."""


@dataclass(frozen=True)
class MatchingConfig:
    """Windows, recall sizes and model settings of the matching pipeline."""

    label_days: int = 28
    train_windows: int = 5
    train_step_days: int = 7
    recent_days: int = 28
    adoption_days: float = 25.0
    candidates_per_source: int = 50
    top_n: int = 20
    eval_k: int = 20
    interest_categories: int = 2
    als_factors: int = 32
    als_iterations: int = 15
    als_regularization: float = 0.05
    als_alpha: float = 5.0
    item2vec: Item2VecConfig = field(
        default_factory=lambda: Item2VecConfig(sources=("creators",), epochs=50, window=20, vector_size=32)
    )
    interests: InterestConfig = field(default_factory=InterestConfig)
    neighbours: int = 30
    objectives: tuple[str, ...] = OBJECTIVES
    num_boost_round: int = 100
    learning_rate: float = 0.05
    num_leaves: int = 4
    min_data_in_leaf: int = 50
    negatives_per_positive: int = 30
    recruit_products_per_merchant: int = 10
    recruit_creators_per_category: int = 300
    recruit_top_n: int = 20
    seed: int = 42


# ---------------------------------------------------------------------------------------------------
# Labels and history
# ---------------------------------------------------------------------------------------------------


def promoted_pairs(history: MarketFrames) -> pl.LazyFrame:
    """(creator_id, product_id) the creator already showcased, featured or sold."""
    featured = history.engagement.select("content_id", "product_id").join(
        history.content.select("content_id", "creator_id"), on="content_id"
    )
    return pl.concat(
        [
            history.showcase.select(PAIR),
            history.orders.select(PAIR),
            featured.select(PAIR),
        ]
    ).unique()


def sales_labels(frames: MarketFrames, as_of: date, cfg: MatchingConfig) -> pl.LazyFrame:
    """(creator_id, product_id, label_gmv): new pairs sold (completed) in ``[as_of, as_of + label_days)``.

    Only creators who joined and products listed before ``as_of`` count (nobody can recommend to a
    creator or a product that does not exist yet), and pairs the creator had already promoted before
    ``as_of`` are excluded.
    """
    start, end = as_of_moment(as_of), as_of_moment(as_of + timedelta(days=cfg.label_days))
    history = frames.before(as_of)
    return (
        frames.orders.filter(
            (pl.col("ordered_at") >= start) & (pl.col("ordered_at") < end) & (pl.col("status") == "completed")
        )
        .group_by(PAIR)
        .agg(label_gmv=pl.col("gmv").sum())
        .join(history.products.select("product_id"), on="product_id", how="semi")
        .join(history.creators.select("creator_id"), on="creator_id", how="semi")
        .join(promoted_pairs(history), on=PAIR, how="anti")
        .sort(PAIR)
    )


# ---------------------------------------------------------------------------------------------------
# The recall context: every source, fitted as of a date
# ---------------------------------------------------------------------------------------------------


@dataclass
class RecallContext:
    """Everything fitted on the history before ``as_of`` that scores creator–product pairs."""

    as_of: date
    creators: pl.DataFrame
    products: pl.DataFrame
    promoted: pl.DataFrame
    past: pl.DataFrame
    affinity: pl.DataFrame
    neighbours: pl.DataFrame
    user_index: dict[str, int]
    item_index: dict[str, int]
    user_factors: np.ndarray
    item_factors: np.ndarray
    interactions: sp.csr_matrix
    drift: pl.DataFrame
    profiles: pl.DataFrame
    """Interest profiles (`matching.interests.creator_interests`) as of ``as_of``."""
    embeddings: ItemEmbeddings
    """The item2vec model's vectors (the next window can warm-start from them)."""
    item2vec_scores: pl.DataFrame
    """Every pair reachable from a past product through a neighbour (`_item2vec_scores`), computed once."""


def _als(
    interactions: pl.DataFrame, cfg: MatchingConfig
) -> tuple[dict[str, int], dict[str, int], np.ndarray, np.ndarray, sp.csr_matrix]:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    users = interactions["creator_id"].unique().sort().to_list()
    items = interactions["product_id"].unique().sort().to_list()
    user_index = {u: i for i, u in enumerate(users)}
    item_index = {p: i for i, p in enumerate(items)}
    rows = interactions["creator_id"].replace_strict(user_index, return_dtype=pl.Int64).to_numpy()
    cols = interactions["product_id"].replace_strict(item_index, return_dtype=pl.Int64).to_numpy()
    matrix = sp.csr_matrix(
        (interactions["strength"].to_numpy().astype(np.float32), (rows, cols)), shape=(len(users), len(items))
    )
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=cfg.als_factors,
            regularization=cfg.als_regularization,
            alpha=cfg.als_alpha,
            iterations=cfg.als_iterations,
            random_state=cfg.seed,
            num_threads=1,
        )
        if len(users) and len(items):
            model.fit(matrix, show_progress=False)
            user_factors, item_factors = np.asarray(model.user_factors), np.asarray(model.item_factors)
        else:
            user_factors = np.zeros((len(users), cfg.als_factors), np.float32)
            item_factors = np.zeros((len(items), cfg.als_factors), np.float32)
    return user_index, item_index, user_factors, item_factors, matrix


def recall_context(
    frames: MarketFrames,
    as_of: date,
    cfg: MatchingConfig = MatchingConfig(),
    warm_start: ItemEmbeddings | None = None,
) -> RecallContext:
    """Fit ALS and item2vec and compute product, creator and interest statistics as of ``as_of``.

    ``warm_start``: item2vec embeddings of an earlier window to continue training from (`item2vec`).
    """
    history = frames.before(as_of)
    moment = as_of_moment(as_of)
    recent = as_of_moment(as_of - timedelta(days=cfg.recent_days))
    orders = history.orders.collect()
    completed = orders.filter(pl.col("status") == "completed")
    showcase = history.showcase.collect()
    promoted = promoted_pairs(history).collect()

    # products ---------------------------------------------------------------------------------------
    engagement = history.engagement.group_by("product_id").agg(
        views=pl.col("views").sum(), clicks=pl.col("clicks").sum()
    )
    product_sales = completed.group_by("product_id").agg(
        orders_total=pl.len(),
        gmv_total=pl.col("gmv").sum(),
        gmv_recent=pl.col("gmv").filter(pl.col("ordered_at") >= recent).sum(),
    )
    adds = showcase.group_by("product_id").agg(
        creators_total=pl.col("creator_id").n_unique(),
        adds_recent=(pl.col("added_on") >= as_of - timedelta(days=cfg.recent_days)).sum(),
        adds_week=(pl.col("added_on") >= as_of - timedelta(days=7)).sum(),
    )
    merchant_orders = orders.group_by("merchant_id").agg(
        merchant_refund_rate=(pl.col("status") == "refunded").sum()
        / (pl.col("status").is_in(["completed", "refunded"]).sum() + 1),
        merchant_gmv_recent=pl.col("gmv")
        .filter((pl.col("status") == "completed") & (pl.col("ordered_at") >= recent))
        .sum(),
    )
    catalog = history.products.collect()
    products = (
        catalog.join(engagement.collect(), on="product_id", how="left")
        .join(product_sales, on="product_id", how="left")
        .join(adds, on="product_id", how="left")
        .join(
            history.merchants.select("merchant_id", "rating", "ships_in_days").collect(),
            on="merchant_id",
            how="left",
        )
        .join(merchant_orders, on="merchant_id", how="left")
        .with_columns(
            pl.col("views", "clicks", "orders_total", "creators_total", "adds_recent", "adds_week").fill_null(
                0
            ),
            pl.col("gmv_total", "gmv_recent", "merchant_gmv_recent").fill_null(0.0),
        )
        .with_columns(
            age_days=(pl.lit(as_of) - pl.col("listed_on")).dt.total_days(),
            ctr=pl.col("clicks") / (pl.col("views") + 1),
            cvr=pl.col("orders_total") / (pl.col("clicks") + 1),
            gpm=1000 * pl.col("gmv_total") / (pl.col("views") + 1),
            commission_vs_category=pl.col("commission_rate")
            / pl.col("commission_rate").median().over("category"),
            merchant_products=pl.len().over("merchant_id"),
        )
        .with_columns(
            momentum=(pl.col("adds_recent") + 0.25 * pl.col("adds_week"))
            / (pl.col("age_days").clip(1) ** 0.25),
            popularity=pl.col("gmv_recent") + 0.2 * pl.col("gmv_total"),
            # creators so far, scaled to the adoption still to come if adoption decays with product age
            expected_adds=(pl.col("creators_total") + 1)
            * (-pl.col("age_days").clip(1) / cfg.adoption_days).exp()
            / (1 - (-pl.col("age_days").clip(1) / cfg.adoption_days).exp()),
        )
        .with_columns(
            momentum_norm=pl.col("expected_adds") / (pl.col("expected_adds").max().over("category") + 1e-9),
            popularity_norm=pl.col("popularity") / (pl.col("popularity").max().over("category") + 1e-9),
        )
    )

    # creators ---------------------------------------------------------------------------------------
    content = history.content.select("creator_id", "published_at").collect()
    activity = content.group_by("creator_id").agg(
        content_recent=(pl.col("published_at") >= recent).sum(),
        days_since_content=(pl.lit(moment) - pl.col("published_at").max()).dt.total_days(),
    )
    sold = completed.group_by("creator_id").agg(
        creator_gmv_recent=pl.col("gmv").filter(pl.col("ordered_at") >= recent).sum(),
        creator_gmv_total=pl.col("gmv").sum(),
    )
    shown = showcase.join(catalog.select("product_id", "price", "category"), on="product_id")
    creator_shelf = shown.group_by("creator_id").agg(
        showcase_size=pl.len(),
        creator_adds_recent=(pl.col("added_on") >= as_of - timedelta(days=cfg.recent_days)).sum(),
        typical_price=pl.col("price").median(),
        history_category=pl.col("category").mode().sort().first(),
    )
    creators = (
        history.creators.select("creator_id", "handle", "followers", "joined_on", "primary_category")
        .collect()
        .join(activity, on="creator_id", how="left")
        .join(sold, on="creator_id", how="left")
        .join(creator_shelf, on="creator_id", how="left")
        .with_columns(
            pl.col("content_recent", "showcase_size", "creator_adds_recent").fill_null(0),
            pl.col("creator_gmv_recent", "creator_gmv_total").fill_null(0.0),
            tenure_days=(pl.lit(as_of) - pl.col("joined_on")).dt.total_days(),
            main_category=pl.coalesce("history_category", "primary_category"),
        )
        .drop("history_category")
    )

    # interests --------------------------------------------------------------------------------------
    _, profiles, drift = creator_interests(history, moment, cfg.interests)
    affinity = (
        profiles.filter(pl.col("dimension") == "category")
        .pivot(on="half_life_days", index=["creator_id", "key"], values="share")
        .rename({"key": "category"})
    )
    affinity = affinity.rename(
        {str(h): f"affinity_{h}d" for h in cfg.interests.half_lives if str(h) in affinity.columns}
    )
    for h in cfg.interests.half_lives:
        if f"affinity_{h}d" not in affinity.columns:
            affinity = affinity.with_columns(pl.lit(0.0).alias(f"affinity_{h}d"))
    affinity = affinity.with_columns(
        pl.col(f"affinity_{h}d").fill_null(0.0) for h in cfg.interests.half_lives
    )

    # past products (weights) and ALS ------------------------------------------------------------------
    sold_pairs = completed.group_by(PAIR).agg(pair_gmv=pl.col("gmv").sum(), pair_orders=pl.len())
    past = (
        promoted.join(sold_pairs, on=PAIR, how="left")
        .with_columns(pl.col("pair_gmv").fill_null(0.0), pl.col("pair_orders").fill_null(0))
        .with_columns(strength=1.0 + pl.col("pair_orders").cast(pl.Float64).log1p())
    )
    user_index, item_index, user_factors, item_factors, matrix = _als(past, cfg)

    # item2vec -----------------------------------------------------------------------------------------
    sequences = product_sequences(history, cfg.item2vec).collect()
    embeddings = item2vec(sequences, cfg.item2vec, warm_start=warm_start)
    neighbours = embedding_neighbours(embeddings, cfg.neighbours)
    return RecallContext(
        as_of=as_of,
        creators=creators,
        products=products,
        promoted=promoted,
        past=past,
        affinity=affinity,
        neighbours=neighbours,
        user_index=user_index,
        item_index=item_index,
        user_factors=user_factors,
        item_factors=item_factors,
        interactions=matrix,
        drift=drift,
        profiles=profiles,
        embeddings=embeddings,
        item2vec_scores=_item2vec_scores(past, neighbours),
    )


def _top_k(frame: pl.DataFrame, score: str, k: int, source: str) -> pl.DataFrame:
    return (
        frame.sort("creator_id", score, "product_id", descending=[False, True, False])
        .group_by("creator_id", maintain_order=True)
        .head(k)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("creator_id").cast(pl.UInt32))
        .select("creator_id", "product_id", "rank", score=pl.col(score), source=pl.lit(source))
    )


def _interest_categories(ctx: RecallContext, cfg: MatchingConfig) -> pl.DataFrame:
    long = f"affinity_{cfg.interests.drift_long}d"
    short = f"affinity_{cfg.interests.drift_short}d"
    ranked = ctx.affinity.with_columns(interest=0.5 * pl.col(long) + 0.5 * pl.col(short))
    top = (
        ranked.sort("creator_id", "interest", "category", descending=[False, True, False])
        .group_by("creator_id", maintain_order=True)
        .head(cfg.interest_categories)
        .select("creator_id", "category", "interest")
    )
    cold = ctx.creators.join(top, on="creator_id", how="anti").select(
        "creator_id", category="main_category", interest=pl.lit(1.0)
    )
    return pl.concat([top, cold.drop_nulls("category")])


SCORE_BLOCK_BYTES = 256 * 2**20
"""Memory of one block of user × item scores in `_top_scores`: the whole matrix is creators × products
(185 GiB of float32 at `large`: 170,936 × 290,324), so it is scored a block of users at a time."""


def _top_scores(users: np.ndarray, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``users``: the indices of its ``n`` best-scoring rows of ``items`` (dot product) and
    their scores, computed a block of users at a time (`SCORE_BLOCK_BYTES`)."""
    block = max(1, SCORE_BLOCK_BYTES // (4 * max(items.shape[0], 1)))
    tops, bests = [], []
    for start in range(0, users.shape[0], block):
        scores = users[start : start + block] @ items.T
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        tops.append(top)
        bests.append(np.take_along_axis(scores, top, axis=1))
    if not tops:
        return np.empty((0, n), dtype=np.int64), np.empty((0, n), dtype=np.float32)
    return np.concatenate(tops), np.concatenate(bests)


def source_candidates(ctx: RecallContext, cfg: MatchingConfig = MatchingConfig()) -> pl.DataFrame:
    """Each source's top ``candidates_per_source`` unpromoted products per creator.

    Columns: creator_id, product_id, rank, score, source.
    """
    k = cfg.candidates_per_source
    creators = ctx.creators.select("creator_id")
    extra = k + 60

    # ALS
    parts = []
    users = [u for u in creators["creator_id"].to_list() if u in ctx.user_index]
    if users and ctx.item_factors.shape[0]:
        user_rows = np.array([ctx.user_index[u] for u in users])
        n = min(extra, ctx.item_factors.shape[0])
        top, best = _top_scores(ctx.user_factors[user_rows], ctx.item_factors, n)
        items = np.array(list(ctx.item_index))
        parts.append(
            pl.DataFrame(
                {
                    "creator_id": np.repeat(users, n),
                    "product_id": items[top.ravel()],
                    "s": best.ravel().astype(np.float64),
                }
            )
            .join(ctx.promoted, on=PAIR, how="anti")
            .join(ctx.products.select("product_id"), on="product_id", how="semi")
            .pipe(_top_k, "s", k, "als")
        )

    # item2vec: max similarity to a past product
    parts.append(
        ctx.item2vec_scores.join(ctx.promoted, on=PAIR, how="anti")
        .join(ctx.products.select("product_id"), on="product_id", how="semi")
        .pipe(_top_k, "item2vec_score", k, "item2vec")
    )

    # interest: trending products in the creator's top interest categories
    categories = _interest_categories(ctx, cfg)
    trending = (
        ctx.products.sort(
            "category", "expected_adds", "popularity", "product_id", descending=[False, True, True, False]
        )
        .group_by("category", maintain_order=True)
        .head(extra)
        .select("product_id", "category", "momentum_norm")
    )
    parts.append(
        categories.join(trending, on="category")
        .with_columns(s=pl.col("interest") * (pl.col("momentum_norm") + 1e-3))
        .join(ctx.promoted, on=PAIR, how="anti")
        .pipe(_top_k, "s", k, "interest")
    )

    # popular in the creator's main category
    popular = (
        ctx.products.sort("category", "popularity", "product_id", descending=[False, True, False])
        .group_by("category", maintain_order=True)
        .head(extra)
        .select("product_id", "category", "popularity_norm")
    )
    parts.append(
        ctx.creators.select("creator_id", category="main_category")
        .join(popular, on="category")
        .join(ctx.promoted, on=PAIR, how="anti")
        .pipe(_top_k, "popularity_norm", k, "popular_in_category")
    )
    return pl.concat(parts)


def popularity_baseline(ctx: RecallContext, k: int) -> pl.DataFrame:
    """Global best sellers of the last ``recent_days`` per creator, minus what they promoted."""
    top = ctx.products.sort("gmv_recent", "product_id", descending=[True, False]).head(k + 200)
    return (
        ctx.creators.select("creator_id")
        .join(top.select("product_id", "gmv_recent"), how="cross")
        .join(ctx.promoted, on=PAIR, how="anti")
        .pipe(_top_k, "gmv_recent", k, "popularity")
    )


def _item2vec_scores(past: pl.DataFrame, neighbours: pl.DataFrame) -> pl.DataFrame:
    """Max embedding similarity of each pair to the creator's past products, and that anchor product.

    Every (creator, product) reachable from one of the creator's past products through a neighbour: the
    recall source ranks them all, and the features of any pair join them (absent: no similarity).
    """
    linked = past.select("creator_id", anchor_product_id="product_id", anchor_gmv="pair_gmv").join(
        neighbours.select(anchor_product_id="product_id", product_id="similar_product_id", sim="similarity"),
        on="anchor_product_id",
    )
    return (
        linked.sort("creator_id", "product_id", "sim", "anchor_gmv", descending=[False, False, True, True])
        .group_by(PAIR, maintain_order=True)
        .agg(
            item2vec_score=pl.col("sim").first().cast(pl.Float64),
            anchor_product_id=pl.col("anchor_product_id").first(),
            anchor_gmv=pl.col("anchor_gmv").first(),
        )
    )


# ---------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------

PRODUCT_FEATURES = [
    "price",
    "commission_rate",
    "commission_vs_category",
    "age_days",
    "creators_total",
    "adds_recent",
    "adds_week",
    "momentum",
    "expected_adds",
    "gmv_recent",
    "gmv_total",
    "ctr",
    "cvr",
    "gpm",
    "rating",
    "ships_in_days",
    "merchant_refund_rate",
    "merchant_products",
    "merchant_gmv_recent",
]
CREATOR_FEATURES = [
    "followers",
    "tenure_days",
    "content_recent",
    "days_since_content",
    "creator_gmv_recent",
    "showcase_size",
    "creator_adds_recent",
]
PAIR_FEATURES = [
    "affinity_1d",
    "affinity_7d",
    "affinity_30d",
    "main_category_match",
    "price_fit",
    "als_score",
    "item2vec_score",
    "interest_score",
    "popular_score",
    "als_rank",
    "item2vec_rank",
    "interest_rank",
    "popular_in_category_rank",
    "n_sources",
]
FEATURES = PRODUCT_FEATURES + CREATOR_FEATURES + PAIR_FEATURES


def pair_features(
    pairs: pl.DataFrame, ctx: RecallContext, sources: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Features of creator–product pairs (``FEATURES`` plus title, category, merchant and anchor columns).

    Args:
        pairs: (creator_id, product_id) to describe.
        ctx: the fitted recall context.
        sources: the recall lists, for per-source ranks (a pair outside a source's list has a null rank).
    """
    pairs = pairs.select(PAIR).unique().sort(PAIR)
    if sources is not None and sources.height:
        ranks = sources.pivot(on="source", index=PAIR, values="rank")
        for source in SOURCES:
            if source not in ranks.columns:
                ranks = ranks.with_columns(pl.lit(None, pl.UInt32).alias(source))
        ranks = ranks.select(*PAIR, *(pl.col(s).cast(pl.Float64).alias(f"{s}_rank") for s in SOURCES))
    else:
        ranks = pairs.select(*PAIR, *(pl.lit(None, pl.Float64).alias(f"{s}_rank") for s in SOURCES))
    users = pairs["creator_id"].replace_strict(ctx.user_index, default=-1, return_dtype=pl.Int64).to_numpy()
    items = pairs["product_id"].replace_strict(ctx.item_index, default=-1, return_dtype=pl.Int64).to_numpy()
    known = (users >= 0) & (items >= 0)
    als = np.full(len(pairs), np.nan)
    if known.any():
        als[known] = np.einsum("ij,ij->i", ctx.user_factors[users[known]], ctx.item_factors[items[known]])
    product_cols = [
        "product_id",
        "title",
        "category",
        "merchant_id",
        "momentum_norm",
        "popularity_norm",
        *PRODUCT_FEATURES,
    ]
    creator_cols = ["creator_id", "main_category", "typical_price", *CREATOR_FEATURES]
    return (
        pairs.with_columns(als_score=pl.Series(als))
        .join(ctx.products.select(product_cols), on="product_id", how="left")
        .join(ctx.creators.select(creator_cols), on="creator_id", how="left")
        .join(ctx.affinity, on=["creator_id", "category"], how="left")
        .join(ctx.item2vec_scores, on=PAIR, how="left")
        .join(ranks, on=PAIR, how="left")
        .with_columns(
            pl.col("affinity_1d", "affinity_7d", "affinity_30d").fill_null(0.0),
            main_category_match=(pl.col("category") == pl.col("main_category"))
            .fill_null(False)
            .cast(pl.Int8),
            price_fit=-(pl.col("price") / pl.col("typical_price")).log().abs(),
        )
        .with_columns(
            interest_score=(0.5 * pl.col("affinity_7d") + 0.5 * pl.col("affinity_30d"))
            * (pl.col("momentum_norm") + 1e-3),
            popular_score=pl.col("popularity_norm") * pl.col("main_category_match"),
            n_sources=pl.sum_horizontal(pl.col(f"{s}_rank").is_not_null() for s in SOURCES).cast(pl.Int8),
        )
        .sort(PAIR)
    )


@dataclass(frozen=True)
class CandidateSet:
    """Candidates with features as of one date, the recall lists and (when known) the labels."""

    as_of: date
    context: RecallContext
    sources: pl.DataFrame
    features: pl.DataFrame
    labels: pl.DataFrame | None


def candidate_set(
    frames: MarketFrames,
    as_of: date,
    cfg: MatchingConfig = MatchingConfig(),
    with_labels: bool = True,
    warm_start: ItemEmbeddings | None = None,
) -> CandidateSet:
    """Recall candidates from every source and describe them (labels from the next window if asked).

    ``warm_start``: item2vec embeddings of an earlier window to continue training from (`item2vec`).
    """
    ctx = recall_context(frames, as_of, cfg, warm_start=warm_start)
    sources = source_candidates(ctx, cfg)
    features = pair_features(sources.select(PAIR), ctx, sources)
    labels = sales_labels(frames, as_of, cfg).collect() if with_labels else None
    if labels is not None:
        features = features.join(labels, on=PAIR, how="left").with_columns(
            label=pl.col("label_gmv").is_not_null().cast(pl.Int32),
            label_gmv=pl.col("label_gmv").fill_null(0.0),
        )
    return CandidateSet(as_of, ctx, sources, features, labels)


# ---------------------------------------------------------------------------------------------------
# The ranker
# ---------------------------------------------------------------------------------------------------


def _matrix(frame: pl.DataFrame) -> np.ndarray:
    """The features as float32: the trees' bins then do not follow the last bits of float sums, which
    depend on the order of their terms (a parallel group-by, or facts computed in pieces, does not fix
    it), so that the same data trains the same ranker."""
    return frame.select(pl.col(FEATURES).cast(pl.Float32)).to_numpy()


def _predict(booster: object, frame: pl.DataFrame, **params: object) -> np.ndarray:
    """``booster.predict`` on the frame's features with ``PREDICT_THREADS`` threads."""
    return np.asarray(booster.predict(_matrix(frame), num_threads=PREDICT_THREADS, **params))  # type: ignore[attr-defined]


def _groups(frame: pl.DataFrame) -> np.ndarray:
    return frame.group_by("creator_id", maintain_order=True).len()["len"].to_numpy()


class ProductRanker:
    """LightGBM ranker (objective chosen on validation NDCG) + P(sold) and GMV-if-sold models.

    Attributes:
        validation_: the validation ranking metrics of each objective tried (empty without ``valid``).
        objective_: the objective kept.
        ranker_: the booster of the chosen objective; its scores order one creator's candidates.
        sold_model_: the binary booster of P(the pair sells), fitted on negatives downsampled at
            ``sample_rate_`` (the ranker itself when the chosen objective is binary).
        sample_rate_: the share of negatives ``sold_model_`` saw, to undo the downsampling.
        gmv_model_: the regression of ln(1 + GMV) on the pairs that sold.
        gmv_smearing_: Duan's smearing factor, E[exp(residual)] of ``gmv_model_`` (out of fold), which
            turns its predictions back into mean GMV (`gmv_if_sold`).
    """

    def __init__(self, cfg: MatchingConfig = MatchingConfig()) -> None:
        """Store the config."""
        self.cfg = cfg

    def _params(self, objective: str) -> dict[str, object]:
        cfg = self.cfg
        params: dict[str, object] = {
            "objective": objective,
            "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.num_leaves,
            "min_data_in_leaf": cfg.min_data_in_leaf,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": cfg.seed,
            "deterministic": True,
            "num_threads": 1,
            "verbose": -1,
        }
        if objective in ("lambdarank", "rank_xendcg"):
            params["eval_at"] = [cfg.eval_k]
        return params

    def _train(self, objective: str, frame: pl.DataFrame) -> object:
        import lightgbm as lgb

        if objective == "binary":
            data = (
                frame.filter(pl.col("in_binary"))
                if "in_binary" in frame.columns
                else _downsample(frame, self.cfg)
            )
        elif "in_ranking" in frame.columns:
            data = frame.filter(pl.col("in_ranking"))
        else:
            data = frame.filter(pl.col("label").sum().over("creator_id") > 0)
        dataset = lgb.Dataset(
            _matrix(data), label=data["label"].to_numpy(), feature_name=FEATURES, free_raw_data=False
        )
        if objective != "binary":
            dataset.set_group(_groups(data))
        return lgb.train(self._params(objective), dataset, num_boost_round=self.cfg.num_boost_round)

    def fit(self, train: pl.DataFrame, valid: pl.DataFrame | None = None) -> ProductRanker:
        """Choose the objective on ``valid`` (NDCG@K), refit it on train + valid, fit the GMV models."""
        train = train.sort(PAIR)
        self.validation_ = {}
        if valid is not None and len(self.cfg.objectives) > 1:
            valid = valid.sort(PAIR)
            positives = valid.filter(pl.col("label") == 1).select(PAIR)
            for objective in self.cfg.objectives:
                booster = self._train(objective, train)
                scored = valid.select(PAIR).with_columns(score=_predict(booster, valid))
                metrics = ranking_metrics(top_k(scored, self.cfg.eval_k), positives, self.cfg.eval_k)
                self.validation_[objective] = metrics
            self.objective_ = max(self.validation_, key=lambda name: self.validation_[name]["ndcg"])
            full = pl.concat([train, valid]).sort(PAIR)
        else:
            self.objective_ = self.cfg.objectives[0]
            full = train
        self.ranker_ = self._train(self.objective_, full)
        self.sold_model_ = self.ranker_ if self.objective_ == "binary" else self._train("binary", full)
        self.sample_rate_ = _effective_rate(full, self.cfg)
        positives = full.filter(pl.col("label") == 1).sort(PAIR)
        self.gmv_model_ = self._train_gmv(positives)
        self.gmv_smearing_ = self._gmv_smearing(positives)
        return self

    def _train_gmv(self, positives: pl.DataFrame) -> object:
        """The regression of ln(1 + GMV) on pairs that sold."""
        import lightgbm as lgb

        params = {
            **self._params("regression"),
            "min_data_in_leaf": max(5, min(self.cfg.min_data_in_leaf, 20)),
        }
        params.pop("eval_at", None)
        dataset = lgb.Dataset(
            _matrix(positives),
            label=np.log1p(positives["label_gmv"].round(2).to_numpy()),
            feature_name=FEATURES,
        )
        return lgb.train(params, dataset, num_boost_round=max(30, self.cfg.num_boost_round // 2))

    def _gmv_smearing(self, positives: pl.DataFrame) -> float:
        """Duan's smearing factor of the GMV regression: the mean of exp(residual) on the log scale.

        The regression predicts E[ln(1 + GMV)]; exponentiating that gives a geometric mean, which is
        below the mean GMV by a factor that grows with the spread of GMV around the prediction (a pair
        of a creator who sometimes sells $50 and sometimes $5,000). E[1 + GMV] = exp(prediction) ×
        E[exp(residual)] when the residual does not depend on the features (Duan, JASA 1983). The
        residuals are taken out of fold (``GMV_FOLDS`` folds by creator): in-sample residuals of a
        boosted model are smaller than the errors it makes on pairs it has not seen.
        """
        log_gmv = np.log1p(positives["label_gmv"].to_numpy())
        if positives.height < 2 * GMV_FOLDS:
            return float(np.mean(np.exp(log_gmv - _predict(self.gmv_model_, positives))))
        fold = (positives["creator_id"].hash(self.cfg.seed) % GMV_FOLDS).to_numpy()
        predicted = np.empty(positives.height)
        for k in range(GMV_FOLDS):
            held = fold == k
            if not held.any():
                continue
            if held.all():  # one creator holds every positive: no fold to learn from
                return float(np.mean(np.exp(log_gmv - _predict(self.gmv_model_, positives))))
            model = self._train_gmv(positives.filter(pl.Series(~held)))
            predicted[held] = _predict(model, positives.filter(pl.Series(held)))
        return float(np.mean(np.exp(log_gmv - predicted)))

    def score(self, frame: pl.DataFrame) -> np.ndarray:
        """Ranking scores (comparable within a creator)."""
        return _predict(self.ranker_, frame)

    def p_sold(self, frame: pl.DataFrame) -> np.ndarray:
        """P(the creator sells the product, new to them, in the next ``label_days`` days, as things are).

        The binary model saw every positive but only a share ``r`` of the negatives, so its odds are the
        true odds divided by ``r``: p_true / (1 − p_true) = r · p / (1 − p).
        """
        p = _predict(self.sold_model_, frame)
        r = self.sample_rate_
        return p * r / (p * r + (1 - p) + 1e-12)

    def gmv_if_sold(self, frame: pl.DataFrame) -> np.ndarray:
        """Expected GMV of the pair's completed orders in the next ``label_days`` days, if it sells then.

        The mean, not the median: exp(predicted ln(1 + GMV)) × the smearing factor, minus 1.
        """
        return np.maximum(np.exp(_predict(self.gmv_model_, frame)) * self.gmv_smearing_ - 1.0, 0.0)

    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        """Per-feature contributions of the ranker (rows × features; the bias column dropped)."""
        return _predict(self.ranker_, frame, pred_contrib=True)[:, :-1]


def training_rows(features: pl.DataFrame, cfg: MatchingConfig) -> pl.DataFrame:
    """The rows of one window the models need, to keep memory flat over stacked windows.

    Ranking objectives use every candidate of creators with a positive (``in_ranking``); the binary
    one all positives and negatives hash-sampled at ``sample_rate`` (``in_binary``).
    """
    rate = _sample_rate(features, cfg)
    sampled = (pl.struct(PAIR).hash(cfg.seed) % 1_000_000).cast(pl.Float64) < rate * 1_000_000
    return (
        features.with_columns(
            in_ranking=pl.col("label").sum().over("creator_id") > 0,
            in_binary=(pl.col("label") == 1) | sampled,
            sample_rate=pl.lit(rate),
        )
        .filter(pl.col("in_ranking") | pl.col("in_binary"))
        .select(*PAIR, *FEATURES, "label", "label_gmv", "in_ranking", "in_binary", "sample_rate")
    )


def _effective_rate(frame: pl.DataFrame, cfg: MatchingConfig) -> float:
    """Share of negatives the binary model saw (over windows sampled at different rates)."""
    if "sample_rate" not in frame.columns:
        return _sample_rate(frame, cfg)
    negatives = frame.filter(pl.col("in_binary") & (pl.col("label") == 0))
    represented = float((1.0 / negatives["sample_rate"]).sum()) if negatives.height else 0.0
    return negatives.height / represented if represented else 1.0


def _sample_rate(frame: pl.DataFrame, cfg: MatchingConfig) -> float:
    positives = int(frame["label"].sum())
    negatives = frame.height - positives
    keep = min(negatives, max(positives, 1) * cfg.negatives_per_positive)
    return keep / negatives if negatives else 1.0


def _downsample(frame: pl.DataFrame, cfg: MatchingConfig) -> pl.DataFrame:
    rate = _sample_rate(frame, cfg)
    if rate >= 1.0:
        return frame
    keep = (pl.col("label") == 1) | (
        (pl.struct(PAIR).hash(cfg.seed) % 1_000_000).cast(pl.Float64) < rate * 1_000_000
    )
    return frame.filter(keep).sort(PAIR)


# ---------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------


def top_k(scored: pl.DataFrame, k: int, score: str = "score") -> pl.DataFrame:
    """(creator_id, product_id, rank) of the ``k`` best-scored products per creator."""
    return (
        scored.sort("creator_id", score, "product_id", descending=[False, True, False])
        .group_by("creator_id", maintain_order=True)
        .head(k)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("creator_id").cast(pl.UInt32))
        .select("creator_id", "product_id", "rank")
    )


def ranking_metrics(recs: pl.DataFrame, positives: pl.DataFrame, k: int) -> dict[str, float]:
    """Mean recall@K, NDCG@K and MAP@K over creators with at least one positive (binary relevance).

    ``recs`` is (creator_id, product_id, rank); creators with positives but no recommendations score 0.
    """
    truth = positives.select(PAIR).unique()
    n_pos = truth.group_by("creator_id").agg(n_pos=pl.len())
    if n_pos.height == 0:
        return {"recall": 0.0, "ndcg": 0.0, "map": 0.0, "creators": 0.0}
    hits = (
        recs.filter(pl.col("rank") <= k)
        .join(n_pos, on="creator_id")
        .join(truth.with_columns(hit=pl.lit(1)), on=PAIR, how="left")
        .with_columns(pl.col("hit").fill_null(0))
        .sort("creator_id", "rank")
        .with_columns(cum_hits=pl.col("hit").cum_sum().over("creator_id"))
    )
    per_creator = hits.group_by("creator_id").agg(
        hits=pl.col("hit").sum(),
        dcg=(pl.col("hit") / (pl.col("rank").cast(pl.Float64) + 1).log(2)).sum(),
        ap_sum=(pl.col("hit") * pl.col("cum_hits") / pl.col("rank").cast(pl.Float64)).sum(),
    )
    # ideal DCG of n positives = Σ_{i ≤ min(n, k)} 1 / log2(i + 1)
    ideal = pl.DataFrame(
        {"relevant": np.arange(1, k + 1, dtype=np.int64), "idcg": np.cumsum(1 / np.log2(np.arange(2, k + 2)))}
    )
    scored = (
        n_pos.join(per_creator, on="creator_id", how="left")
        .with_columns(pl.col("hits", "dcg", "ap_sum").fill_null(0))
        .with_columns(relevant=pl.min_horizontal(pl.col("n_pos"), pl.lit(k)).cast(pl.Int64))
        .join(ideal, on="relevant", how="left")
        .select(
            recall=pl.col("hits") / pl.col("n_pos"),
            ndcg=pl.col("dcg") / pl.col("idcg"),
            map=pl.col("ap_sum") / pl.min_horizontal(pl.col("n_pos"), pl.lit(k)),
        )
    )
    means = scored.mean().row(0, named=True)
    return {**{key: float(value) for key, value in means.items()}, "creators": float(n_pos.height)}


@dataclass(frozen=True)
class MatchingEvaluation:
    """Offline evaluation on a time split: metrics per method, recall per source, the chosen objective."""

    as_of: date
    metrics: pl.DataFrame
    source_recall: pl.DataFrame
    objective: str
    validation: dict[str, dict[str, float]]


def training_dates(as_of: date, cfg: MatchingConfig) -> list[date]:
    """As-of dates of the stacked training windows, newest first; their labels end by ``as_of``."""
    newest = as_of - timedelta(days=cfg.label_days)
    return [newest - timedelta(days=cfg.train_step_days * i) for i in range(cfg.train_windows)]


def fit_ranker_and_item2vec(
    frames: MarketFrames,
    as_of: date,
    cfg: MatchingConfig = MatchingConfig(),
    progress: Progress | None = None,
) -> tuple[ProductRanker, ItemEmbeddings | None]:
    """Train the ranker on windows before ``as_of`` (the newest one validates the objective choice).

    The windows are described oldest first, each window's item2vec continuing from the previous one's
    vectors (`item2vec`'s ``warm_start``): every window still sees only data before its own date, so the
    training features are what the models would have seen then. Returns the ranker and the newest
    window's embeddings, to warm-start the scoring window the same way. ``progress`` is called after
    each window and after the fit, with ``len(windows) + 1`` steps in all.
    """
    dates = sorted(training_dates(as_of, cfg))
    total = len(dates) + 1
    rows: dict[date, pl.DataFrame] = {}
    embeddings: ItemEmbeddings | None = None
    for done, day in enumerate(dates, start=1):
        started = time.perf_counter()
        candidates = candidate_set(frames, day, cfg, warm_start=embeddings)
        embeddings = candidates.context.embeddings
        rows[day] = training_rows(candidates.features, cfg)
        if progress:
            positives = int(candidates.features["label"].sum())
            progress(
                f"training window {done}/{len(dates)} (as of {day}): {candidates.features.height:,} "
                f"candidate pairs, {positives:,} sold, in {time.perf_counter() - started:.1f}s",
                done,
                total,
            )
    started = time.perf_counter()
    sets = [rows[day] for day in sorted(rows, reverse=True)]
    valid = sets[0]
    train = pl.concat(sets[1:]) if len(sets) > 1 else sets[0]
    ranker = ProductRanker(cfg).fit(train, valid if len(sets) > 1 else None)
    if progress:
        progress(
            f"ranker: {ranker.objective_} kept of {len(cfg.objectives)} objective(s), "
            f"{train.height + (valid.height if len(sets) > 1 else 0):,} rows, "
            f"in {time.perf_counter() - started:.1f}s",
            total,
            total,
        )
    return ranker, embeddings


def fit_ranker(frames: MarketFrames, as_of: date, cfg: MatchingConfig = MatchingConfig()) -> ProductRanker:
    """Train the ranker on windows before ``as_of`` (see `fit_ranker_and_item2vec`)."""
    return fit_ranker_and_item2vec(frames, as_of, cfg)[0]


def evaluate_matching(
    frames: MarketFrames, as_of: date, cfg: MatchingConfig = MatchingConfig()
) -> MatchingEvaluation:
    """Recall@K, NDCG@K, MAP@K at ``as_of`` of popularity, each source alone and recall + rank.

    The test window is described as the build describes its scoring window: item2vec warm-started from
    the newest training window (whose data all precede ``as_of``).
    """
    frames = frames.in_memory()
    ranker, embeddings = fit_ranker_and_item2vec(frames, as_of, cfg)
    test = candidate_set(frames, as_of, cfg, warm_start=embeddings)
    assert test.labels is not None
    positives = test.labels.select(PAIR)
    k = cfg.eval_k
    rows = []
    baseline = popularity_baseline(test.context, k)
    rows.append({"method": "popularity", **ranking_metrics(baseline, positives, k)})
    for source in SOURCES:
        recs = test.sources.filter(pl.col("source") == source).select("creator_id", "product_id", "rank")
        rows.append({"method": f"{source} alone", **ranking_metrics(recs, positives, k)})
    scored = test.features.select(PAIR).with_columns(score=ranker.score(test.features))
    rows.append(
        {"method": f"recall + rank ({ranker.objective_})", **ranking_metrics(top_k(scored, k), positives, k)}
    )
    metrics = pl.DataFrame(rows).rename({"recall": f"recall@{k}", "ndcg": f"ndcg@{k}", "map": f"map@{k}"})
    source_recall = per_source_recall(test.sources, positives)
    return MatchingEvaluation(as_of, metrics, source_recall, ranker.objective_, ranker.validation_)


def per_source_recall(sources: pl.DataFrame, positives: pl.DataFrame) -> pl.DataFrame:
    """Per source: candidate recall (share of positives it recalls) and unique recall (only it recalls)."""
    truth = positives.select(PAIR).unique()
    found = sources.select(*PAIR, "source").unique().join(truth, on=PAIR, how="semi")
    n_sources = found.group_by(PAIR).agg(n=pl.len())
    total = max(truth.height, 1)
    per = (
        found.join(n_sources, on=PAIR)
        .group_by("source")
        .agg(recall=pl.len() / total, unique_recall=(pl.col("n") == 1).sum() / total)
    )
    union = pl.DataFrame(
        {"source": ["union"], "recall": [n_sources.height / total], "unique_recall": [None]},
        schema={"source": pl.String, "recall": pl.Float64, "unique_recall": pl.Float64},
    )
    return pl.concat([per.sort("source"), union])


# ---------------------------------------------------------------------------------------------------
# Recommendations with reasons
# ---------------------------------------------------------------------------------------------------

REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "similar": ("item2vec_score", "item2vec_rank"),
    "interest": ("affinity_1d", "affinity_7d", "affinity_30d", "interest_score", "interest_rank"),
    "trending": ("adds_recent", "adds_week", "momentum", "expected_adds", "age_days", "creators_total"),
    "best_seller": (
        "popular_score",
        "popular_in_category_rank",
        "gmv_recent",
        "gmv_total",
        "main_category_match",
    ),
    "collaborative": ("als_score", "als_rank", "n_sources"),
    "price": ("price_fit", "price"),
    "commission": ("commission_rate", "commission_vs_category"),
    "merchant": (
        "rating",
        "ships_in_days",
        "merchant_refund_rate",
        "merchant_gmv_recent",
        "merchant_products",
    ),
    "converts": ("ctr", "cvr", "gpm"),
}


def _reason_text(group: pl.Expr) -> pl.Expr:
    money = pl.col("price").round(0).cast(pl.Int64).cast(pl.String)
    return (
        pl.when(group == "similar")
        .then(
            pl.when(pl.col("anchor_gmv") > 0)
            .then(pl.format("similar to {} you sell well", pl.col("anchor_title")))
            .otherwise(pl.format("similar to {} in your showcase", pl.col("anchor_title")))
        )
        .when(group == "interest")
        .then(
            pl.when(pl.col("affinity_7d") > pl.col("affinity_30d") + 0.05)
            .then(pl.format("{}: your growing interest", pl.col("category")))
            .otherwise(
                pl.format(
                    "{}: {}% of your recent interest",
                    pl.col("category"),
                    (100 * pl.col("affinity_30d")).round(0).cast(pl.Int64),
                )
            )
        )
        .when(group == "trending")
        .then(
            pl.format(
                "trending in {}: {} creators added it in the last 4 weeks",
                pl.col("category"),
                pl.col("adds_recent"),
            )
        )
        .when(group == "best_seller")
        .then(pl.format("a best-seller in {}, your main category", pl.col("category")))
        .when(group == "collaborative")
        .then(pl.lit("creators with a showcase like yours sell it"))
        .when(group == "price")
        .then(
            pl.format(
                "${} fits your audience (typical ${})",
                money,
                pl.col("typical_price").round(0).cast(pl.Int64).cast(pl.String),
            )
        )
        .when(group == "commission")
        .then(pl.format("commission {}%", (100 * pl.col("commission_rate")).round(0).cast(pl.Int64)))
        .when(group == "merchant")
        .then(pl.format("merchant rated {}", pl.col("rating").round(1)))
        .when(group == "converts")
        .then(pl.format("converts well ({}% of clicks buy)", (100 * pl.col("cvr")).round(1)))
        .otherwise(None)
    )


def _with_reasons(frame: pl.DataFrame, contributions: np.ndarray, n_reasons: int = 3) -> pl.DataFrame:
    names = list(REASON_GROUPS)
    index = {feature: i for i, feature in enumerate(FEATURES)}
    grouped = np.stack(
        [contributions[:, [index[f] for f in REASON_GROUPS[g]]].sum(axis=1) for g in names], axis=1
    )
    order = np.argsort(-grouped, axis=1, kind="stable")[:, :n_reasons]
    top_values = np.take_along_axis(grouped, order, axis=1)
    columns: dict[str, pl.Series] = {}
    for j in range(n_reasons):
        columns[f"_g{j}"] = pl.Series(np.array(names)[order[:, j]], dtype=pl.String)
        columns[f"_v{j}"] = pl.Series(top_values[:, j])
    out = frame.with_columns(**columns).with_columns(
        pl.when(pl.col(f"_v{j}") > 0).then(_reason_text(pl.col(f"_g{j}"))).alias(f"_r{j}")
        for j in range(n_reasons)
    )
    helpers = [f"_{kind}{j}" for kind in "gvr" for j in range(n_reasons)]
    return out.with_columns(
        reasons=pl.concat_list(f"_r{j}" for j in range(n_reasons)).list.drop_nulls()
    ).drop(helpers)


def _valued(frame: pl.DataFrame, ranker: ProductRanker) -> pl.DataFrame:
    """P(sold), GMV if sold and expected GMV of each pair."""
    return frame.with_columns(
        p_sold=pl.Series(ranker.p_sold(frame)),
        gmv_if_sold=pl.Series(ranker.gmv_if_sold(frame)),
    ).with_columns(expected_gmv=pl.col("p_sold") * pl.col("gmv_if_sold"))


def _scored(frame: pl.DataFrame, ranker: ProductRanker) -> pl.DataFrame:
    """Ranking score, P(sold), GMV if sold and expected GMV of each pair."""
    return _valued(frame.with_columns(score=pl.Series(ranker.score(frame))), ranker)


def _explained(frame: pl.DataFrame, ranker: ProductRanker, ctx: RecallContext) -> pl.DataFrame:
    """Reason sentences (TreeSHAP is costly: call it on the rows that are shown only)."""
    titles = ctx.products.select(anchor_product_id="product_id", anchor_title="title")
    with_titles = frame.join(titles, on="anchor_product_id", how="left", maintain_order="left")
    return _with_reasons(with_titles, ranker.contributions(frame))


FIGURE_DAYS = MatchingConfig().label_days
"""The window of the published model figures: the default config's ``label_days``."""
_D = FIGURE_DAYS
FIGURES: dict[str, dict[str, tuple[str, str]]] = {
    "creator_product_recs": {
        "p_sold": (
            f"P(sells it), next {_D} days",
            "Chance that the creator sells this product (at least one completed order through them) in "
            f"the {_D} days after the build date, if nothing changes: no outreach, no new commission. "
            f"Learnt from which new pairs sold in past {_D}-day windows.",
        ),
        "gmv_if_sold": (
            f"GMV if it sells, {_D} days",
            f"Mean GMV of the creator's completed orders of this product over those {_D} days, if they "
            "sell it at all (a mean, learnt from creators who took up a new product on their own).",
        ),
        "expected_gmv": (
            f"Expected GMV, next {_D} days, if nothing changes",
            f"P(sells it) × GMV if it sells: the GMV to expect from this pair over the next {_D} days as "
            "things are. Small: most recommended products are not picked up unprompted.",
        ),
    },
    "merchant_creator_recs": {
        "expected_gmv": (
            f"Expected GMV, next {_D} days, if nothing changes",
            "Sum over the creator's three best-fitting products of this merchant of P(sells it in the next "
            f"{_D} days) × GMV if it sells, with no outreach: small, because an unpartnered creator rarely "
            "picks a merchant's product up unprompted.",
        ),
        "gmv_if_sold": (
            f"GMV if they sell the best fit, {_D} days",
            f"Mean GMV of the creator's completed orders of the best-fitting product over {_D} days, if "
            "they sell it (a mean, learnt from creators who took up a new product on their own).",
        ),
    },
}
"""Label and help of each model figure of the published tables (built with ``MatchingConfig()``),
by table and column: what the number is, over which window, under which assumption."""


REC_COLUMNS = [
    "creator_id",
    "rank",
    "product_id",
    "title",
    "category",
    "merchant_id",
    "price",
    "commission_rate",
    "score",
    "p_sold",
    "gmv_if_sold",
    "expected_gmv",
    "sources",
    "reasons",
]


def recommend_products(
    frames: MarketFrames,
    as_of: date,
    cfg: MatchingConfig = MatchingConfig(),
    ranker: ProductRanker | None = None,
    candidates: CandidateSet | None = None,
) -> pl.DataFrame:
    """Top ``cfg.top_n`` new products per creator with expected GMV and reasons (``REC_COLUMNS``).

    ``p_sold``, ``gmv_if_sold`` and ``expected_gmv`` are about the ``cfg.label_days`` days from ``as_of``
    with nothing changed (`FIGURES`).
    """
    ranker = ranker or fit_ranker(frames, as_of, cfg)
    candidates = candidates or candidate_set(frames, as_of, cfg, with_labels=False)
    listed = candidates.sources.group_by(PAIR).agg(sources=pl.col("source").unique().sort())
    top = (
        _scored(candidates.features, ranker)
        .sort("creator_id", "score", "product_id", descending=[False, True, False])
        .group_by("creator_id", maintain_order=True)
        .head(cfg.top_n)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("creator_id").cast(pl.UInt32))
    )
    return _explained(top, ranker, candidates.context).join(listed, on=PAIR, how="left").select(REC_COLUMNS)


RECRUIT_COLUMNS = [
    "merchant_id",
    "rank",
    "creator_id",
    "handle",
    "followers",
    "expected_gmv",
    "gmv_if_sold",
    "best_product_id",
    "best_product_title",
    "products_matched",
    "reasons",
]


def recruitment_candidates(
    ctx: RecallContext, merchant_ids: list[str] | None, cfg: MatchingConfig
) -> pl.DataFrame:
    """(creator_id, product_id): each merchant's leading products × active creators of their category."""
    products = ctx.products
    if merchant_ids is not None:
        products = products.filter(pl.col("merchant_id").is_in(merchant_ids))
    leading = (
        products.sort(
            "merchant_id", "expected_adds", "popularity", "product_id", descending=[False, True, True, False]
        )
        .group_by("merchant_id", maintain_order=True)
        .head(cfg.recruit_products_per_merchant)
        .select("product_id", "merchant_id", "category")
    )
    active = ctx.creators.filter(pl.col("content_recent") > 0).select("creator_id", "creator_gmv_recent")
    category_creators = (
        _interest_categories(ctx, cfg)
        .join(active, on="creator_id")
        .with_columns(strength=pl.col("interest") * (pl.col("creator_gmv_recent") + 1.0).log())
        .sort("category", "strength", "creator_id", descending=[False, True, False])
        .group_by("category", maintain_order=True)
        .head(cfg.recruit_creators_per_category)
        .select("creator_id", "category")
    )
    partnered = (
        ctx.promoted.join(ctx.products.select("product_id", "merchant_id"), on="product_id")
        .select("creator_id", "merchant_id")
        .unique()
    )
    return (
        leading.join(category_creators, on="category")
        .join(partnered, on=["creator_id", "merchant_id"], how="anti")
        .select(PAIR)
    )


def recruit_creators(
    merchant_ids: str | list[str] | None,
    frames: MarketFrames,
    as_of: date,
    cfg: MatchingConfig = MatchingConfig(),
    ranker: ProductRanker | None = None,
    ctx: RecallContext | None = None,
) -> pl.DataFrame:
    """Creators likely to sell a merchant's products well and not yet partnered (``RECRUIT_COLUMNS``).

    ``expected_gmv`` sums the creator's three best-fitting products of the merchant, ``gmv_if_sold`` is
    the best one's (`FIGURES`); both over the ``cfg.label_days`` days from ``as_of``.

    ``merchant_ids``: one merchant, several, or None for every merchant.
    """
    if isinstance(merchant_ids, str):
        merchant_ids = [merchant_ids]
    ranker = ranker or fit_ranker(frames, as_of, cfg)
    ctx = ctx or recall_context(frames, as_of, cfg)
    pairs = recruitment_candidates(ctx, merchant_ids, cfg)
    if pairs.height == 0:
        return pl.DataFrame(schema={c: pl.String for c in RECRUIT_COLUMNS}).cast(
            {
                "rank": pl.UInt32,
                "followers": pl.Int64,
                "expected_gmv": pl.Float64,
                "gmv_if_sold": pl.Float64,
                "products_matched": pl.UInt32,
                "reasons": pl.List(pl.String),
            }
        )
    features = pair_features(pairs, ctx)
    scored = _valued(features, ranker)  # the ranking score orders one creator's products: not needed here
    per_creator = (
        scored.sort("expected_gmv", descending=True)
        .group_by("merchant_id", "creator_id")
        .agg(
            expected_gmv=pl.col("expected_gmv").head(3).sum(),
            gmv_if_sold=pl.col("gmv_if_sold").first(),
            best_product_id=pl.col("product_id").first(),
            best_product_title=pl.col("title").first(),
            category=pl.col("category").first(),
            products_matched=pl.len().cast(pl.UInt32),
            affinity=pl.col("affinity_30d").first(),
        )
        .join(
            ctx.creators.select("creator_id", "handle", "followers", "creator_gmv_recent"),
            on="creator_id",
            how="left",
        )
    )
    sells = pl.format(
        "sold ${} in the last 4 weeks",
        pl.col("creator_gmv_recent").round(0).cast(pl.Int64).cast(pl.String),
    )
    interest = pl.format(
        "{}% of recent interest in {}", (100 * pl.col("affinity")).round(0).cast(pl.Int64), pl.col("category")
    )
    best = pl.format("best fit: {}", pl.col("best_product_title"))
    return (
        per_creator.with_columns(
            reasons=pl.concat_list(
                pl.when(pl.col("affinity") > 0).then(interest).otherwise(None),
                pl.when(pl.col("creator_gmv_recent") > 0).then(sells).otherwise(None),
                best,
            ).list.drop_nulls()
        )
        .sort("merchant_id", "expected_gmv", "creator_id", descending=[False, True, False])
        .group_by("merchant_id", maintain_order=True)
        .head(cfg.recruit_top_n)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("merchant_id").cast(pl.UInt32))
        .select(RECRUIT_COLUMNS)
    )


# ---------------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------------


def build_matching(
    settings: Settings,
    as_of: date,
    cfg: MatchingConfig = MatchingConfig(),
    frames: MarketFrames | None = None,
    progress: Progress | None = None,
    relations: bool = True,
) -> dict[str, pl.DataFrame]:
    """Every matching table, for the build to publish as snapshots.

    Tables: product_pairs, similar_products, creator_product_recs, merchant_creator_recs,
    creator_interests (long profiles with each creator's drift flag). Models are trained on windows
    whose labels end by ``as_of``; recommendations use everything before ``as_of``. The tables are read
    into memory once (every window filters them). ``progress(step, done, total)`` is called as each step
    finishes (the training windows, the ranker, the scoring window, pairs, recommendations, recruits).

    With ``relations=False`` product_pairs and similar_products are left to the caller, who can mine the
    pairs at the same time elsewhere (`relation_tables`); the scoring window's item2vec neighbours, which
    similar_products needs, are returned as ``item2vec_neighbours`` instead.
    """
    scans = frames or MarketFrames.from_settings(settings)
    frames = scans.in_memory()
    steps = _Steps(progress, cfg.train_windows + 4 + int(relations))

    def window_progress(step: str, done: int, _total: int) -> None:
        steps.report(step, done)

    ranker, embeddings = fit_ranker_and_item2vec(frames, as_of, cfg, progress=window_progress)
    candidates = candidate_set(frames, as_of, cfg, with_labels=False, warm_start=embeddings)
    ctx = candidates.context
    steps.finish(f"scoring window (as of {as_of}): {candidates.features.height:,} candidate pairs")
    tables: dict[str, pl.DataFrame] = {}
    if relations:
        # from the scans: the same plan over in-memory tables ran 4× slower (Polars 2.1, demo scale)
        tables = relation_tables(scans, as_of, ctx.neighbours)
        steps.finish(
            f"product pairs: {tables['product_pairs'].height:,}, "
            f"similar products: {tables['similar_products'].height:,}"
        )
    else:
        tables["item2vec_neighbours"] = ctx.neighbours
    recs = recommend_products(frames, as_of, cfg, ranker=ranker, candidates=candidates)
    tables["creator_product_recs"] = recs
    steps.finish(f"products for creators: {recs.height:,} recommendations with reasons")
    recruits = recruit_creators(None, frames, as_of, cfg, ranker=ranker, ctx=ctx)
    interests = ctx.profiles.join(ctx.drift.select("creator_id", "drifting"), on="creator_id", how="left")
    tables["merchant_creator_recs"] = recruits
    tables["creator_interests"] = interests
    steps.finish(f"creators to recruit: {recruits.height:,}; interest profiles: {interests.height:,} rows")
    return tables


def relation_tables(
    frames: MarketFrames,
    as_of: date,
    neighbours: pl.DataFrame,
    pairs: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """product_pairs (mined from ``frames`` before ``as_of`` unless given) and similar_products (the
    item2vec ``neighbours`` labelled with them)."""
    from matching.relations import PairsConfig, product_pairs, similar_products

    history = frames.before(as_of)
    if pairs is None:
        pairs = product_pairs(history, PairsConfig()).collect()
    similar = similar_products(neighbours.lazy(), history.products, pairs.lazy()).collect()
    return {"product_pairs": pairs, "similar_products": similar}


class _Steps:
    """Numbered steps of `build_matching` for its ``progress`` callback, each with its duration."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self.started = time.perf_counter()

    def report(self, text: str, done: int) -> None:
        self.done = done
        self.started = time.perf_counter()
        if self.progress:
            self.progress(text, done, self.total)

    def finish(self, text: str) -> None:
        self.report(f"{text}, in {time.perf_counter() - self.started:.1f}s", self.done + 1)
