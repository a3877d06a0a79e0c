"""Product relationships: co-purchase and co-promotion pair statistics, item2vec, substitutes vs complements.

Two kinds of evidence, used each for what it finds (McAuley, Pandey & Leskovec, KDD 2015):

- **co-occurrence** (``product_pairs``): products in the same *basket* — a buyer's orders in one
  time bucket (co-purchase) or one creator's showcase and content (co-promotion). Support, confidence,
  lift and PMI say how much more often two products meet than chance. Cross-category pairs with lift
  above a threshold are **complements** (bought or promoted together, not instead of each other).
- **embedding similarity** (``item2vec`` + ``similar_products``): products that appear in the same
  *contexts* (sequences of buyers and creators) get close vectors even if never bought together;
  close neighbours of the same category are **substitutes** (they compete for the same slot).

Scaling: a basket of n products makes n(n-1)/2 pairs, so each basket is capped to its
``max_basket_items`` most recent products (ties by product id) before the self-join (heavy buyers and
huge showcases would otherwise dominate both the cost and the statistics). All statistics are computed
on the capped baskets.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from core.config import Settings
from core.schema import TABLES, UTC_DATETIME

MARKET_TABLES = ("creators", "merchants", "products", "showcase", "content", "engagement", "orders")


@dataclass(frozen=True)
class MarketFrames:
    """Lazy scans of the canonical tables matching needs (from the lake, from files, or from tests)."""

    creators: pl.LazyFrame
    merchants: pl.LazyFrame
    products: pl.LazyFrame
    showcase: pl.LazyFrame
    content: pl.LazyFrame
    engagement: pl.LazyFrame
    orders: pl.LazyFrame

    @classmethod
    def from_settings(cls, settings: Settings) -> MarketFrames:
        """Scan every table from the lake of an installation."""
        from datastore.lake import lake_version, scan_table

        version = lake_version(settings)  # one run's versions for every table
        return cls(**{name: scan_table(name, settings, version) for name in MARKET_TABLES})

    @classmethod
    def from_input_dir(cls, directory: Path) -> MarketFrames:
        """Scan simulator-style input files (``<table>.parquet`` or ``<table>-wNN.parquet``)."""
        frames = {}
        for name in MARKET_TABLES:
            files = sorted(directory.glob(f"{name}.parquet")) + sorted(directory.glob(f"{name}-w*.parquet"))
            schema = TABLES[name].schema
            frames[name] = pl.scan_parquet(files, schema=schema) if files else pl.LazyFrame(schema=schema)
        return cls(**frames)

    def in_memory(self) -> MarketFrames:
        """The same tables read once into memory (in parallel), for computations that filter them often."""
        names = list(MARKET_TABLES)
        collected = pl.collect_all([getattr(self, name) for name in names])
        return MarketFrames(**{name: frame.lazy() for name, frame in zip(names, collected, strict=True)})

    def before(self, as_of: date) -> MarketFrames:
        """Only what was known strictly before ``as_of`` (no leakage)."""
        moment = as_of_moment(as_of)
        return MarketFrames(
            creators=self.creators.filter(pl.col("joined_on") < as_of),
            merchants=self.merchants.filter(pl.col("joined_on") < as_of),
            products=self.products.filter(pl.col("listed_on") < as_of),
            showcase=self.showcase.filter(pl.col("added_on") < as_of),
            content=self.content.filter(pl.col("published_at") < moment),
            engagement=self.engagement.filter(pl.col("date") < as_of),
            orders=self.orders.filter(pl.col("ordered_at") < moment),
        )


def as_of_moment(as_of: date) -> datetime:
    """Midnight UTC at the start of ``as_of`` as a timezone-aware datetime."""
    return datetime.combine(as_of, time(0), tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------
# Pair statistics
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairsConfig:
    """How baskets are formed and which pairs are kept.

    Attributes:
        basket_days: co-purchase basket = one buyer's orders in one ``basket_days`` bucket.
        max_basket_items: a basket keeps at most this many (most recent) distinct products.
        min_pair_count: pairs seen in fewer baskets are dropped.
        complement_min_lift: a cross-category pair at or above this adjusted lift is a complement...
        complement_min_count: ...if it was seen in at least this many baskets (lift of rare pairs is noise)...
        complement_min_z: ...and its count exceeds the expected one by this many Poisson standard deviations.
        statuses: order statuses that count as a purchase.
    """

    basket_days: int = 7
    max_basket_items: int = 50
    min_pair_count: int = 2
    complement_min_lift: float = 1.5
    complement_min_count: int = 5
    complement_min_z: float = 5.0
    statuses: tuple[str, ...] = ("completed", "refunded")


PAIR_SCHEMA = pl.Schema(
    {
        "relation": pl.String,
        "product_a": pl.String,
        "product_b": pl.String,
        "pair_count": pl.UInt32,
        "count_a": pl.UInt32,
        "count_b": pl.UInt32,
        "baskets": pl.UInt32,
        "support": pl.Float64,
        "confidence": pl.Float64,
        "lift": pl.Float64,
        "pmi": pl.Float64,
        "expected_count": pl.Float64,
        "adjusted_lift": pl.Float64,
    }
)


PAIR_PRIOR_BASKETS = 5.0
"""Baskets of "no association" added to a pair's observed and expected counts before they are compared
(`pair_strength`)."""


def pair_strength(prior_baskets: float = PAIR_PRIOR_BASKETS) -> pl.Expr:
    """``pair_strength``: the adjusted lift of a pair shrunk toward 1, to order pairs by evidence and size.

    (pair_count + prior) / (expected_count + prior): a pair seen in 2 baskets where 0.001 were expected
    has an adjusted lift of 2,000 but a strength of 1.4, below a pair seen 60 times where 6 were expected
    (5.9). Reads the ``pair_count`` and ``expected_count`` columns of `pair_statistics`.
    """
    return (
        (pl.col("pair_count").cast(pl.Float64) + prior_baskets) / (pl.col("expected_count") + prior_baskets)
    ).alias("pair_strength")


def purchase_baskets(orders: pl.LazyFrame, cfg: PairsConfig) -> pl.LazyFrame:
    """(basket_id, product_id, at, stratum): a buyer's distinct products per ``basket_days`` bucket."""
    bucket = (pl.col("ordered_at").dt.epoch("d") // cfg.basket_days).cast(pl.Int64)
    return (
        orders.filter(pl.col("status").is_in(list(cfg.statuses)))
        .group_by(pl.col("buyer_id"), bucket.alias("bucket"), "product_id")
        .agg(at=pl.col("ordered_at").max())
        .select(
            basket_id=pl.format("{}|{}", "buyer_id", "bucket"),
            product_id="product_id",
            at="at",
            stratum="bucket",
        )
    )


def promotion_baskets(
    showcase: pl.LazyFrame, content: pl.LazyFrame, engagement: pl.LazyFrame
) -> pl.LazyFrame:
    """(basket_id, product_id, at): each creator's showcased and content-featured products."""
    shown = showcase.select(
        basket_id="creator_id", product_id="product_id", at=pl.col("added_on").cast(UTC_DATETIME)
    )
    featured = engagement.select("content_id", "product_id", "date").join(
        content.select("content_id", "creator_id"), on="content_id"
    )
    featured = featured.select(
        basket_id="creator_id", product_id="product_id", at=pl.col("date").cast(UTC_DATETIME)
    )
    return pl.concat([shown, featured]).group_by("basket_id", "product_id").agg(pl.col("at").min())


def pair_statistics(baskets: pl.LazyFrame, cfg: PairsConfig, relation: str) -> pl.LazyFrame:
    """Support, confidence (a→b), lift and PMI of every ordered product pair sharing a basket.

    Args:
        baskets: (basket_id, product_id, at) with distinct (basket_id, product_id).
        cfg: the cap on basket size and the minimum pair count.
        relation: the label written in the ``relation`` column.
    """
    if "stratum" not in baskets.collect_schema().names():
        baskets = baskets.with_columns(stratum=pl.lit(0, pl.Int64))
    capped = (
        # the most recent products, ties by product id: the same capped baskets in every build
        baskets.sort("basket_id", "at", "product_id", descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("basket_id"))
        .filter(pl.col("rank") <= cfg.max_basket_items)
        .select("basket_id", "product_id", "stratum")
        # collected here, and the pairs below too: five branches read the capped baskets and two the
        # pairs, and as one lazy plan the whole took 28.7 s and a 12.3 GiB peak for 1.7 M capped basket
        # rows at `demo` (co-purchase), against 0.8 s / 0.6 GiB for the capped baskets, 0.7 s for the
        # pairs and 0.8 s / 1.1 GiB for the expected counts collected one after the other
        .collect()
        .lazy()
    )
    sizes = capped.group_by("basket_id", "stratum").agg(size=pl.len().cast(pl.Float64))
    n_baskets = sizes.select(baskets=pl.len().cast(pl.UInt32))
    # weight of a stratum: pair slots Σ s(s-1) over (products dealt into it)²
    strata = sizes.group_by("stratum").agg(
        weight=(pl.col("size") * (pl.col("size") - 1)).sum() / pl.col("size").sum() ** 2
    )
    item_counts = capped.group_by("product_id").agg(count=pl.len().cast(pl.UInt32))
    item_strata = capped.group_by("stratum", "product_id").agg(n=pl.len().cast(pl.Float64))
    pairs = (
        capped.join(capped, on="basket_id", suffix="_b")
        .filter(pl.col("product_id") != pl.col("product_id_b"))
        .group_by(product_a="product_id", product_b="product_id_b")
        .agg(pair_count=pl.len().cast(pl.UInt32))
        .filter(pl.col("pair_count") >= cfg.min_pair_count)
        .collect()
        .lazy()
    )
    expected = (
        pairs.select("product_a", "product_b")
        .join(item_strata.rename({"product_id": "product_a", "n": "n_a"}), on="product_a")
        .join(item_strata.rename({"product_id": "product_b", "n": "n_b"}), on=["product_b", "stratum"])
        .join(strata, on="stratum")
        .group_by("product_a", "product_b")
        .agg(expected_count=(pl.col("n_a") * pl.col("n_b") * pl.col("weight")).sum())
    )
    n = pl.col("baskets").cast(pl.Float64)
    return (
        pairs.join(item_counts.rename({"product_id": "product_a", "count": "count_a"}), on="product_a")
        .join(item_counts.rename({"product_id": "product_b", "count": "count_b"}), on="product_b")
        .join(n_baskets, how="cross")
        .join(expected, on=["product_a", "product_b"], how="left")
        .with_columns(
            relation=pl.lit(relation),
            support=pl.col("pair_count") / n,
            confidence=pl.col("pair_count") / pl.col("count_a"),
            lift=pl.col("pair_count") * n / (pl.col("count_a").cast(pl.Float64) * pl.col("count_b")),
            # observed / expected if, within each stratum (co-purchase: week), products were dealt at
            # random into the baskets' pair slots: big baskets (heavy buyers) and busy weeks make pairs
            # common by size and timing alone, which inflates the plain lift
            adjusted_lift=pl.col("pair_count") / pl.col("expected_count"),
        )
        .with_columns(pmi=pl.col("lift").log())
        .select(PAIR_SCHEMA.names())
        .sort("relation", "product_a", "product_b")
    )


def product_pairs(frames: MarketFrames, cfg: PairsConfig = PairsConfig()) -> pl.LazyFrame:
    """Co-purchase and co-promotion pairs with their statistics and a complement flag.

    Columns: ``PAIR_SCHEMA`` plus ``category_a``, ``category_b``, ``cross_category`` and
    ``complement`` (cross-category, adjusted lift ≥ ``cfg.complement_min_lift``, seen in ≥
    ``complement_min_count`` baskets).
    """
    purchase = pair_statistics(purchase_baskets(frames.orders, cfg), cfg, "co_purchase")
    promotion = pair_statistics(
        promotion_baskets(frames.showcase, frames.content, frames.engagement), cfg, "co_promotion"
    )
    categories = frames.products.select("product_id", "category")
    return (
        pl.concat([purchase, promotion])
        .join(
            categories.rename({"product_id": "product_a", "category": "category_a"}),
            on="product_a",
            how="left",
        )
        .join(
            categories.rename({"product_id": "product_b", "category": "category_b"}),
            on="product_b",
            how="left",
        )
        .with_columns(cross_category=pl.col("category_a") != pl.col("category_b"))
        .with_columns(
            complement=pl.col("cross_category")
            & (pl.col("adjusted_lift") >= cfg.complement_min_lift)
            & (pl.col("pair_count") >= cfg.complement_min_count)
            # (observed − expected) / √expected: millions of pairs are tested, so only strong excesses
            & (
                (pl.col("pair_count") - pl.col("expected_count")) / pl.col("expected_count").sqrt()
                >= cfg.complement_min_z
            )
        )
    )


# ---------------------------------------------------------------------------------------------------
# item2vec
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item2VecConfig:
    """Word2Vec settings for product sequences (skip-gram with negative sampling)."""

    sources: tuple[Literal["creators", "buyers"], ...] = ("creators", "buyers")
    vector_size: int = 32
    window: int = 5
    min_count: int = 2
    negative: int = 5
    epochs: int = 10
    max_sequence: int = 200
    workers: int = 1
    seed: int = 42
    neighbours: int = 20
    warm_start_epochs: int = 10
    """Epochs when training continues from an earlier window's vectors (`item2vec`'s ``warm_start``)."""


def product_sequences(frames: MarketFrames, cfg: Item2VecConfig) -> pl.LazyFrame:
    """(sequence_id, products: list[str]) time-ordered product sequences of creators and buyers."""
    parts = []
    if "creators" in cfg.sources:
        parts.append(
            promotion_baskets(frames.showcase, frames.content, frames.engagement).select(
                sequence_id=pl.format("c:{}", "basket_id"), product_id="product_id", at="at"
            )
        )
    if "buyers" in cfg.sources:
        parts.append(
            frames.orders.group_by("buyer_id", "product_id")
            .agg(at=pl.col("ordered_at").min())
            .select(sequence_id=pl.format("b:{}", "buyer_id"), product_id="product_id", at="at")
        )
    if not parts:
        raise ValueError("Item2VecConfig.sources must name at least one of 'creators', 'buyers'")
    return (
        pl.concat(parts)
        .sort("sequence_id", "at", "product_id")
        .group_by("sequence_id", maintain_order=True)
        .agg(products=pl.col("product_id").tail(cfg.max_sequence))
        .filter(pl.col("products").list.len() >= 2)
    )


@dataclass(frozen=True)
class ItemEmbeddings:
    """Unit-normalised product vectors, row ``i`` for ``product_ids[i]``.

    ``input_vectors`` and ``output_vectors`` are the trained model's raw word and negative-sampling
    weights (same rows), kept so that a later window can continue training from them (`item2vec`'s
    ``warm_start``); they are ``None`` for embeddings made some other way.
    """

    product_ids: list[str]
    vectors: np.ndarray
    input_vectors: np.ndarray | None = field(default=None, repr=False)
    output_vectors: np.ndarray | None = field(default=None, repr=False)

    def frame(self) -> pl.DataFrame:
        """(product_id, embedding: array[f32])."""
        return pl.DataFrame(
            {"product_id": self.product_ids, "embedding": self.vectors},
            schema={"product_id": pl.String, "embedding": pl.Array(pl.Float32, self.vectors.shape[1])},
        )


def _stable_hash(text: str) -> int:
    """A hash that does not change between processes (gensim seeds each word's vector with it)."""
    return zlib.crc32(text.encode("utf-8"))


def item2vec(
    sequences: pl.DataFrame,
    cfg: Item2VecConfig = Item2VecConfig(),
    warm_start: ItemEmbeddings | None = None,
) -> ItemEmbeddings:
    """Train gensim Word2Vec on product sequences; return unit-normalised vectors.

    With ``warm_start`` (the embeddings of an earlier window, trained on data before that window only)
    the products both windows know start from their earlier weights and training runs
    ``cfg.warm_start_epochs`` instead of ``cfg.epochs``: the vectors a week later change little, and the
    build trains one model per window. Products new to this window start at random, as in a cold start.
    """
    from gensim.models import Word2Vec

    corpus = sequences["products"].to_list()
    if not corpus:
        return ItemEmbeddings([], np.zeros((0, cfg.vector_size), dtype=np.float32))
    warm = warm_start is not None and warm_start.input_vectors is not None and len(warm_start.product_ids) > 0
    epochs = cfg.warm_start_epochs if warm else cfg.epochs
    longest = max(len(sentence) for sentence in corpus)
    model = Word2Vec(
        vector_size=cfg.vector_size,
        window=cfg.window,
        min_count=cfg.min_count,
        sg=1,
        negative=cfg.negative,
        epochs=epochs,
        workers=cfg.workers,
        seed=cfg.seed,
        sample=0.0,
        max_final_vocab=None,
        batch_words=max(10_000, longest),
        hashfxn=_stable_hash,
    )
    model.build_vocab(corpus)
    if warm and warm_start is not None:
        _continue_from(model, warm_start)
    if model.wv.index_to_key:
        model.train(
            corpus,
            total_examples=model.corpus_count,
            total_words=model.corpus_total_words,
            epochs=epochs,
        )
    keys = list(model.wv.index_to_key)
    if not keys:
        return ItemEmbeddings([], np.zeros((0, cfg.vector_size), dtype=np.float32))
    vectors = model.wv.get_normed_vectors().astype(np.float32)
    return ItemEmbeddings(
        [str(key) for key in keys],
        vectors,
        input_vectors=np.array(model.wv.vectors, dtype=np.float32),
        output_vectors=np.array(model.syn1neg, dtype=np.float32),
    )


def _continue_from(model: object, earlier: ItemEmbeddings) -> None:
    """Copy the earlier window's weights into ``model`` (vocabulary built, untrained) for shared products."""
    assert earlier.input_vectors is not None
    assert earlier.output_vectors is not None
    position = {product: row for row, product in enumerate(earlier.product_ids)}
    pairs = [(row, position[key]) for row, key in enumerate(model.wv.index_to_key) if key in position]  # type: ignore[attr-defined]
    if not pairs:
        return
    rows, earlier_rows = (np.array(side) for side in zip(*pairs, strict=True))
    model.wv.vectors[rows] = earlier.input_vectors[earlier_rows]  # type: ignore[attr-defined]
    model.syn1neg[rows] = earlier.output_vectors[earlier_rows]  # type: ignore[attr-defined]


def embedding_neighbours(embeddings: ItemEmbeddings, k: int, chunk: int = 2048) -> pl.DataFrame:
    """(product_id, similar_product_id, similarity, rank): each product's ``k`` nearest by cosine."""
    n = len(embeddings.product_ids)
    schema = {
        "product_id": pl.String,
        "similar_product_id": pl.String,
        "similarity": pl.Float32,
        "rank": pl.UInt32,
    }
    if n < 2:
        return pl.DataFrame(schema=schema)
    k = min(k, n - 1)
    ids = np.array(embeddings.product_ids)
    vectors = embeddings.vectors
    sources, targets, sims = [], [], []
    for lo in range(0, n, chunk):
        block = vectors[lo : lo + chunk] @ vectors.T
        rows = np.arange(block.shape[0])
        block[rows, rows + lo] = -np.inf  # never a product's own neighbour
        top = np.argpartition(-block, k, axis=1)[:, :k]
        top_sims = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        top, top_sims = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)
        sources.append(np.repeat(np.arange(lo, lo + block.shape[0]), k))
        targets.append(top.ravel())
        sims.append(top_sims.ravel())
    source_idx, target_idx = np.concatenate(sources), np.concatenate(targets)
    return pl.DataFrame(
        {
            "product_id": ids[source_idx],
            "similar_product_id": ids[target_idx],
            "similarity": np.concatenate(sims).astype(np.float32),
            "rank": np.tile(np.arange(1, k + 1), n).astype(np.uint32),
        },
        schema=schema,
    )


def similar_products(
    neighbours: pl.LazyFrame,
    products: pl.LazyFrame,
    pairs: pl.LazyFrame,
    min_similarity: float = 0.5,
) -> pl.LazyFrame:
    """Embedding neighbours labelled substitute (same category, similar enough) or complement.

    A neighbour is a **substitute** when it shares the product's category and its cosine similarity is
    at least ``min_similarity``; it is a **complement** when the co-purchase/co-promotion statistics
    flag the pair as one (cross-category, high lift). Other neighbours are ``similar``.
    """
    info = products.select("product_id", "title", "category", "price")
    complements = (
        pairs.filter(pl.col("complement"))
        .group_by(product_id="product_a", similar_product_id="product_b")
        .agg(co_lift=pl.col("lift").max())
    )
    return (
        neighbours.join(info, on="product_id", how="left")
        .join(
            info.rename(
                {
                    "product_id": "similar_product_id",
                    "title": "similar_title",
                    "category": "similar_category",
                    "price": "similar_price",
                }
            ),
            on="similar_product_id",
            how="left",
        )
        .join(complements, on=["product_id", "similar_product_id"], how="left")
        .with_columns(same_category=pl.col("category") == pl.col("similar_category"))
        .with_columns(
            relation=pl.when(pl.col("co_lift").is_not_null())
            .then(pl.lit("complement"))
            .when(pl.col("same_category") & (pl.col("similarity") >= min_similarity))
            .then(pl.lit("substitute"))
            .otherwise(pl.lit("similar"))
        )
        .select(
            "product_id",
            "similar_product_id",
            "rank",
            "similarity",
            "relation",
            "same_category",
            "title",
            "similar_title",
            "category",
            "similar_category",
        )
    )
