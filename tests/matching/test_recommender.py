"""Creator–product matching: metrics by hand, labels, and recall + rank on a time split of ``tiny``."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from core.schema import TABLES
from matching.recommender import (
    REC_COLUMNS,
    RECRUIT_COLUMNS,
    SOURCES,
    MatchingConfig,
    MatchingEvaluation,
    candidate_set,
    evaluate_matching,
    fit_ranker,
    fit_ranker_and_item2vec,
    promoted_pairs,
    ranking_metrics,
    recommend_products,
    recruit_creators,
    sales_labels,
)
from matching.relations import Item2VecConfig, MarketFrames
from sim.simulate import write_inputs

SEED = 7
EVAL_AS_OF = date(2026, 10, 12)
# small models so that the whole module runs in well under a minute on two cores
TEST_CFG = MatchingConfig(
    label_days=42,
    train_windows=5,
    candidates_per_source=40,
    item2vec=Item2VecConfig(sources=("creators",), epochs=20, window=20, vector_size=16),
)


def test_ranking_metrics_match_hand_computed_values() -> None:
    recs = pl.DataFrame(
        {"creator_id": ["c1", "c1", "c1"], "product_id": ["A", "X", "B"], "rank": [1, 2, 3]},
        schema={"creator_id": pl.String, "product_id": pl.String, "rank": pl.UInt32},
    )
    positives = pl.DataFrame({"creator_id": ["c1", "c1", "c2"], "product_id": ["A", "B", "C"]})
    metrics = ranking_metrics(recs, positives, k=3)
    ndcg_c1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert metrics["recall"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["ndcg"] == pytest.approx(ndcg_c1 / 2)
    assert metrics["map"] == pytest.approx(((1 / 1 + 2 / 3) / 2) / 2)
    assert metrics["creators"] == 2


def test_ranking_metrics_without_positives_are_zero() -> None:
    empty = pl.DataFrame(schema={"creator_id": pl.String, "product_id": pl.String, "rank": pl.UInt32})
    assert ranking_metrics(empty, empty.drop("rank"), 20)["recall"] == 0.0


def _frames_with_orders(orders: list[tuple[str, str, str, datetime, str]]) -> MarketFrames:
    empty = {name: TABLES[name].empty().lazy() for name in TABLES}
    creators = pl.DataFrame(
        {
            "creator_id": ["c1", "c2"],
            "handle": ["@a", "@b"],
            "joined_on": [date(2026, 1, 1), date(2026, 12, 1)],
            "region": ["US", "US"],
            "followers": [10, 10],
            "primary_category": ["beauty", "beauty"],
            "bio": [None, None],
        },
        schema=TABLES["creators"].schema,
    )
    products = pl.DataFrame(
        {
            "product_id": ["p1", "p2", "p3"],
            "merchant_id": ["m1"] * 3,
            "title": ["A", "B", "C"],
            "category": ["beauty"] * 3,
            "price": [10.0] * 3,
            "commission_rate": [0.1] * 3,
            "listed_on": [date(2026, 1, 1), date(2026, 1, 1), date(2026, 7, 2)],
        },
        schema=TABLES["products"].schema,
    )
    rows = pl.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(orders))],
            "ordered_at": [o[3] for o in orders],
            "buyer_id": ["b1"] * len(orders),
            "creator_id": [o[0] for o in orders],
            "content_id": [None] * len(orders),
            "product_id": [o[1] for o in orders],
            "merchant_id": ["m1"] * len(orders),
            "quantity": [1] * len(orders),
            "gmv": [float(o[2]) for o in orders],
            "commission": [1.0] * len(orders),
            "status": [o[4] for o in orders],
        },
        schema=TABLES["orders"].schema,
    )
    return MarketFrames(
        creators=creators.lazy(),
        merchants=empty["merchants"],
        products=products.lazy(),
        showcase=empty["showcase"],
        content=empty["content"],
        engagement=empty["engagement"],
        orders=rows.lazy(),
    )


def test_sales_labels_keep_only_new_pairs_of_known_creators_and_products() -> None:
    june = datetime(2026, 6, 10, tzinfo=UTC)
    july = datetime(2026, 7, 5, tzinfo=UTC)
    frames = _frames_with_orders(
        [
            ("c1", "p1", "10", june, "completed"),  # promoted before: p1 is not new for c1
            ("c1", "p1", "20", july, "completed"),
            ("c1", "p2", "30", july, "completed"),  # new: labelled
            ("c1", "p2", "5", july, "completed"),
            ("c1", "p2", "99", july, "refunded"),  # not GMV
            ("c1", "p3", "40", july, "completed"),  # listed after as_of
            ("c2", "p2", "50", july, "completed"),  # creator joined after as_of
        ]
    )
    labels = sales_labels(frames, date(2026, 7, 1), MatchingConfig(label_days=28)).collect()
    assert labels.rows() == [("c1", "p2", 35.0)]
    assert promoted_pairs(frames.before(date(2026, 7, 1))).collect().rows() == [("c1", "p1")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> MarketFrames:
    directory = tmp_path_factory.mktemp("tiny") / "inputs"
    write_inputs("tiny", SEED, directory)
    return MarketFrames.from_input_dir(directory)


@pytest.fixture(scope="module")
def evaluation(tiny: MarketFrames) -> MatchingEvaluation:
    return evaluate_matching(tiny, EVAL_AS_OF, TEST_CFG)


def test_ranker_beats_every_single_source_and_popularity(evaluation: MatchingEvaluation) -> None:
    metrics = {row["method"]: row for row in evaluation.metrics.iter_rows(named=True)}
    full = next(row for name, row in metrics.items() if name.startswith("recall + rank"))
    assert full["creators"] > 100
    for source in SOURCES:
        single = metrics[f"{source} alone"]
        assert full["recall@20"] > single["recall@20"], source
        assert full["ndcg@20"] > single["ndcg@20"], source
    assert full["recall@20"] > 3 * metrics["popularity"]["recall@20"]
    assert full["ndcg@20"] > 3 * metrics["popularity"]["ndcg@20"]
    assert evaluation.objective in TEST_CFG.objectives
    assert set(evaluation.validation) == set(TEST_CFG.objectives)


def test_per_source_recall_adds_up(evaluation: MatchingEvaluation) -> None:
    recall = dict(evaluation.source_recall.select("source", "recall").iter_rows())
    assert set(recall) == {*SOURCES, "union"}
    assert max(recall[s] for s in SOURCES) <= recall["union"] <= sum(recall[s] for s in SOURCES) + 1e-12


def test_recommendations_and_recruits_are_new_explained_and_valued(tiny: MarketFrames) -> None:
    as_of = date(2026, 11, 9)
    cfg = MatchingConfig(
        label_days=28,
        train_windows=2,
        candidates_per_source=20,
        top_n=5,
        objectives=("lambdarank",),
        recruit_top_n=5,
        item2vec=TEST_CFG.item2vec,
    )
    ranker = fit_ranker(tiny, as_of, cfg)
    candidates = candidate_set(tiny, as_of, cfg, with_labels=False)
    recs = recommend_products(tiny, as_of, cfg, ranker=ranker, candidates=candidates)
    assert recs.columns == REC_COLUMNS
    assert recs.group_by("creator_id").len()["len"].max() == 5
    promoted = promoted_pairs(tiny.before(as_of)).collect()
    assert recs.join(promoted, on=["creator_id", "product_id"], how="semi").is_empty()
    assert (recs["expected_gmv"] >= 0).all()
    assert recs["p_sold"].is_between(0, 1).all()
    assert (recs["reasons"].list.len() > 0).mean() > 0.95  # type: ignore[operator]
    assert recs["sources"].list.len().min() >= 1  # type: ignore[operator]

    merchant = recs["merchant_id"].mode().sort()[0]
    recruits = recruit_creators(merchant, tiny, as_of, cfg, ranker=ranker, ctx=candidates.context)
    assert recruits.columns == RECRUIT_COLUMNS
    assert recruits.height > 0
    assert set(recruits["merchant_id"]) == {merchant}
    partnered = (
        promoted.join(tiny.products.select("product_id", "merchant_id").collect(), on="product_id")
        .filter(pl.col("merchant_id") == merchant)
        .select("creator_id")
    )
    assert recruits.join(partnered, on="creator_id", how="semi").is_empty()
    assert recruits["expected_gmv"].is_sorted(descending=True)


# ---------------------------------------------------------------------------------------------------
# Calibration: what the models say against what happened in the window that followed
# ---------------------------------------------------------------------------------------------------

CALIBRATION_WORLDS = (("demo", 7), ("traffic_latent_harm", 11))
"""A development world and a held-out one (``sim/worlds.toml``), each with its own seed."""
CALIBRATION_DATES = (date(2026, 10, 11), date(2026, 10, 25))
CALIBRATION_CFG = MatchingConfig(
    label_days=28,
    train_windows=3,
    candidates_per_source=20,
    objectives=("lambdarank",),
    item2vec=Item2VecConfig(sources=("creators",), epochs=20, window=20, vector_size=16),
)


@dataclass(frozen=True)
class Calibration:
    """Predictions for the candidates of the scoring windows, and what they did in the next 28 days."""

    p_sold: float
    """Σ P(sold) over every candidate pair."""
    sold: int
    """Candidate pairs that sold (completed orders) in the window."""
    predicted_gmv_if_sold: float
    """Mean predicted GMV-if-sold over the pairs that sold."""
    realized_gmv: float
    """Their mean realized GMV in the window."""


@pytest.fixture(scope="module", params=CALIBRATION_WORLDS, ids=[w for w, _ in CALIBRATION_WORLDS])
def calibration(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    world, seed = request.param
    directory = tmp_path_factory.mktemp(world) / "inputs"
    write_inputs("tiny", seed, directory, world=world)
    frames = MarketFrames.from_input_dir(directory).in_memory()
    p_sold, sold, predicted, realized = 0.0, 0, [], []
    for as_of in CALIBRATION_DATES:
        ranker, embeddings = fit_ranker_and_item2vec(frames, as_of, CALIBRATION_CFG)
        test = candidate_set(frames, as_of, CALIBRATION_CFG, warm_start=embeddings)
        positives = test.features.filter(pl.col("label") == 1)
        p_sold += float(ranker.p_sold(test.features).sum())
        sold += positives.height
        predicted.append(ranker.gmv_if_sold(positives))
        realized.append(positives["label_gmv"].to_numpy())
        restored = pickle.loads(pickle.dumps(ranker))  # everything fitted survives a round trip
        np.testing.assert_array_equal(restored.gmv_if_sold(positives), predicted[-1])
    return Calibration(
        p_sold, sold, float(np.concatenate(predicted).mean()), float(np.concatenate(realized).mean())
    )


def test_p_sold_adds_up_to_the_pairs_that_sold(calibration: Calibration) -> None:
    """Σ P(sold) over the candidates of two 28-day windows against the ~70–100 candidate pairs that sold:
    within 40% (three Poisson standard deviations of that count, plus the drift of a market a month on).
    Undoing the negative downsampling matters here: the binary model saw 2–3% of the negatives."""
    assert calibration.sold > 50
    assert calibration.p_sold == pytest.approx(calibration.sold, rel=0.4)


def test_gmv_if_sold_is_a_mean_not_a_median(calibration: Calibration) -> None:
    """The mean predicted GMV-if-sold of the pairs that sold against their mean realized GMV, within a
    factor of 2: GMV per pair is heavy-tailed (a few pairs sell thousands), so the realized mean of ~90
    pairs is itself uncertain by about a fifth. exp of the predicted ln(1 + GMV) alone was a geometric
    mean, a third of the realized mean on both worlds."""
    ratio = calibration.predicted_gmv_if_sold / calibration.realized_gmv
    assert 0.5 < ratio < 2.0, (calibration.predicted_gmv_if_sold, calibration.realized_gmv)


def test_top_scores_block_by_block_are_the_whole_matrix_top_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Creators × products scores are taken a block of creators at a time (the whole matrix is 185 GiB at
    `large`): the same products and scores as from the whole matrix, whatever the block size."""
    from matching import recommender

    rng = np.random.default_rng(3)
    users, items = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    whole = users @ items.T
    expected = np.sort(whole, axis=1)[:, ::-1][:, :5]
    for block_bytes in (4 * 40 * 7, 4 * 40, 1, 10**9):  # 7 users, 1 user, 1 user, all at once
        monkeypatch.setattr(recommender, "SCORE_BLOCK_BYTES", block_bytes)
        top, best = recommender._top_scores(users, items, 5)
        assert top.shape == best.shape == (50, 5)
        np.testing.assert_allclose(np.take_along_axis(whole, top, axis=1), best, rtol=1e-6)
        np.testing.assert_allclose(np.sort(best, axis=1)[:, ::-1], expected, rtol=1e-6)
