"""Product pair statistics on hand-computed baskets, and substitutes on the simulator's structure."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.schema import TABLES
from matching.relations import (
    PAIR_SCHEMA,
    Item2VecConfig,
    MarketFrames,
    PairsConfig,
    embedding_neighbours,
    item2vec,
    pair_statistics,
    pair_strength,
    product_pairs,
    product_sequences,
    purchase_baskets,
    similar_products,
)
from sim.simulate import write_inputs

SEED = 7
AS_OF = date(2026, 10, 26)


def _at(day: int) -> datetime:
    return datetime(2026, 6, day, tzinfo=UTC)


def _baskets(rows: list[tuple[str, str, int]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "basket_id": [r[0] for r in rows],
            "product_id": [r[1] for r in rows],
            "at": [_at(r[2]) for r in rows],
        },
        schema={"basket_id": pl.String, "product_id": pl.String, "at": pl.Datetime("us", "UTC")},
    )


def test_pair_statistics_match_hand_computed_values() -> None:
    # b1 = {A, B}, b2 = {A, B, C}, b3 = {A}: N = 3, count A = 3, B = 2, C = 1
    baskets = _baskets(
        [("b1", "A", 1), ("b1", "B", 1), ("b2", "A", 2), ("b2", "B", 2), ("b2", "C", 2), ("b3", "A", 3)]
    )
    result = pair_statistics(baskets, PairsConfig(min_pair_count=1), "co_purchase").collect()
    pairs = [("A", "B", 2, 3, 2), ("A", "C", 1, 3, 1), ("B", "A", 2, 2, 3), ("B", "C", 1, 2, 1)]
    pairs += [("C", "A", 1, 1, 3), ("C", "B", 1, 1, 2)]
    lifts = [n * 3 / (ca * cb) for _, _, n, ca, cb in pairs]
    expected = pl.DataFrame(
        {
            "relation": ["co_purchase"] * 6,
            "product_a": [p[0] for p in pairs],
            "product_b": [p[1] for p in pairs],
            "pair_count": [p[2] for p in pairs],
            "count_a": [p[3] for p in pairs],
            "count_b": [p[4] for p in pairs],
            "baskets": [3] * 6,
            "support": [p[2] / 3 for p in pairs],
            "confidence": [p[2] / p[3] for p in pairs],
            "lift": lifts,
            "pmi": [math.log(lift) for lift in lifts],
            # one stratum: pair slots Σ s(s-1) = 2 + 6 + 0 = 8, products dealt Σ s = 6
            "expected_count": [ca * cb * 8 / 36 for _, _, _, ca, cb in pairs],
            "adjusted_lift": [n * 36 / (ca * cb * 8) for _, _, n, ca, cb in pairs],
        },
        schema=PAIR_SCHEMA,
    )
    assert_frame_equal(result, expected)


def test_min_pair_count_drops_rare_pairs() -> None:
    baskets = _baskets([("b1", "A", 1), ("b1", "B", 1), ("b2", "A", 2), ("b2", "B", 2), ("b2", "C", 2)])
    result = pair_statistics(baskets, PairsConfig(min_pair_count=2), "co_purchase").collect()
    assert result.select("product_a", "product_b").rows() == [("A", "B"), ("B", "A")]


def test_basket_cap_keeps_the_most_recent_products() -> None:
    baskets = _baskets([("b1", p, day) for day, p in enumerate("ABCDE", start=1)])
    result = pair_statistics(baskets, PairsConfig(min_pair_count=1, max_basket_items=3), "x").collect()
    assert set(result["product_a"]) == {"C", "D", "E"}
    assert result.height == 3 * 2


@pytest.mark.parametrize("order", [list(range(6)), [5, 3, 1, 0, 2, 4], [4, 2, 0, 5, 1, 3]])
def test_basket_cap_breaks_ties_by_product_id_whatever_the_row_order(order: list[int]) -> None:
    # E is the most recent; A-D share a day; F is the oldest: the cap of 3 keeps E, then A and B
    rows = [("b1", "A", 5), ("b1", "B", 5), ("b1", "C", 5), ("b1", "D", 5), ("b1", "E", 9), ("b1", "F", 1)]
    baskets = _baskets([rows[i] for i in order])
    result = pair_statistics(baskets, PairsConfig(min_pair_count=1, max_basket_items=3), "x").collect()
    assert set(result["product_a"]) == {"A", "B", "E"}


def test_empty_baskets_give_an_empty_frame_with_the_schema() -> None:
    result = pair_statistics(_baskets([]), PairsConfig(), "co_purchase").collect()
    assert result.schema == PAIR_SCHEMA
    assert result.is_empty()


def test_purchase_baskets_bucket_by_buyer_and_week_and_skip_cancelled() -> None:
    orders = TABLES["orders"].empty().lazy()
    rows = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "ordered_at": [_at(1), _at(2), _at(20), _at(2)],
            "buyer_id": ["b1", "b1", "b1", "b1"],
            "creator_id": ["c1"] * 4,
            "content_id": [None] * 4,
            "product_id": ["A", "B", "C", "D"],
            "merchant_id": ["m1"] * 4,
            "quantity": [1] * 4,
            "gmv": [1.0] * 4,
            "commission": [0.1] * 4,
            "status": ["completed", "refunded", "completed", "cancelled"],
        },
        schema=TABLES["orders"].schema,
    )
    baskets = purchase_baskets(pl.concat([orders, rows.lazy()]), PairsConfig(basket_days=7)).collect()
    grouped = baskets.group_by("basket_id").agg(pl.col("product_id").sort()).sort("product_id")
    assert grouped["product_id"].to_list() == [["A", "B"], ["C"]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> MarketFrames:
    directory = tmp_path_factory.mktemp("tiny") / "inputs"
    write_inputs("tiny", SEED, directory)
    return MarketFrames.from_input_dir(directory)


def test_co_promotion_pairs_are_mostly_within_a_category(tiny: MarketFrames) -> None:
    pairs = product_pairs(tiny.before(AS_OF), PairsConfig()).collect()
    promotion = pairs.filter(pl.col("relation") == "co_promotion")
    # creators pick 80% of their showcase in one category: same-category pairs dominate and co-occur more
    assert promotion["cross_category"].mean() < 0.25  # type: ignore[operator]
    assert set(pairs["relation"]) == {"co_purchase", "co_promotion"}
    assert pairs["confidence"].is_between(0, 1).all()


def test_item2vec_neighbours_are_substitutes_of_the_same_category(tiny: MarketFrames) -> None:
    history = tiny.before(AS_OF)
    cfg = Item2VecConfig(sources=("creators",), epochs=30, window=20, vector_size=16)
    embeddings = item2vec(product_sequences(history, cfg).collect(), cfg)
    neighbours = embedding_neighbours(embeddings, 10)
    categories = history.products.select("product_id", "category").collect()
    labelled = neighbours.join(categories, on="product_id").join(
        categories.rename({"product_id": "similar_product_id", "category": "similar_category"}),
        on="similar_product_id",
    )
    same = (labelled["category"] == labelled["similar_category"]).mean()
    # 12 categories: chance is about 0.1; the planted structure puts most neighbours in the same category
    assert same is not None
    assert same > 0.5
    nearest = labelled.filter(pl.col("rank") == 1)
    assert (nearest["category"] == nearest["similar_category"]).mean() > 0.55  # type: ignore[operator]

    pairs = product_pairs(history, PairsConfig()).collect()
    similar = similar_products(neighbours.lazy(), history.products, pairs.lazy()).collect()
    substitutes = similar.filter(pl.col("relation") == "substitute")
    assert substitutes.height > 0
    assert substitutes["same_category"].all()


def test_item2vec_on_no_sequences_is_empty() -> None:
    schema = {"sequence_id": pl.String, "products": pl.List(pl.String)}
    embeddings = item2vec(pl.DataFrame(schema=schema))
    assert embeddings.product_ids == []
    assert embedding_neighbours(embeddings, 5).is_empty()


def test_from_input_dir_without_files_gives_empty_tables(tmp_path: Path) -> None:
    frames = MarketFrames.from_input_dir(tmp_path)
    assert frames.orders.collect().schema == TABLES["orders"].schema


def test_adjusted_lift_expects_pairs_stratum_by_stratum() -> None:
    # stratum 1: {A, B}; stratum 2: {A, C}, {B, D}. Expected A–B meetings: 1·1·(2/2²) + 1·1·(4/4²) = 0.75
    baskets = _baskets(
        [("b1", "A", 1), ("b1", "B", 1), ("b2", "A", 8), ("b2", "C", 8), ("b3", "B", 9), ("b3", "D", 9)]
    )
    baskets = baskets.with_columns(stratum=pl.when(pl.col("basket_id") == "b1").then(1).otherwise(2))
    result = pair_statistics(baskets, PairsConfig(min_pair_count=1), "co_purchase").collect()
    ab = result.filter((pl.col("product_a") == "A") & (pl.col("product_b") == "B")).row(0, named=True)
    assert ab["expected_count"] == pytest.approx(0.75)
    assert ab["adjusted_lift"] == pytest.approx(1 / 0.75)
    assert ab["lift"] == pytest.approx(1 * 3 / (2 * 2))


def test_pair_strength_shrinks_rare_pairs_toward_one() -> None:
    """A pair seen twice where 0.001 were expected (adjusted lift 2,000) ranks below one seen 60 times
    where 6 were expected (10): (seen + 5) / (expected + 5)."""
    pairs = pl.DataFrame(
        {"pair_count": [2, 60, 0], "expected_count": [0.001, 6.0, 0.0]},
        schema={"pair_count": pl.UInt32, "expected_count": pl.Float64},
    )
    strength = pairs.select(pair_strength())["pair_strength"].to_list()
    assert strength == pytest.approx([7 / 5.001, 65 / 11, 1.0])
    assert pairs.select(pair_strength(prior_baskets=0.0))["pair_strength"][1] == pytest.approx(10.0)
