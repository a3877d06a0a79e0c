"""The strategies stage end to end on the `tiny` simulator: recommendations, explanations, persistence,
no leakage, and planted effects recovered within stated tolerances."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.config import Settings
from datastore.db import upgrade_db
from sim.simulate import generate
from strategies import store
from strategies.evaluation import TRUTH_SCORE_NAMES
from strategies.modeling import ModelConfig
from strategies.pipeline import FeatureStore, StrategyRun, run_strategies
from strategies.training import HORIZON_DAYS, training_set

CONFIG = ModelConfig(n_estimators=60, n_bootstrap=4)


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("tiny_strategies")
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")
    upgrade_db(settings)
    generate("tiny", 42, settings)
    return settings


@pytest.fixture(scope="module")
def run(tiny_home: Settings) -> StrategyRun:
    return run_strategies(tiny_home, cfg=CONFIG)


def test_every_active_entity_gets_ranked_costed_recommendations(run: StrategyRun) -> None:
    recs = run.recommendations
    assert set(recs["entity_kind"]) == {"creator", "merchant"}
    assert recs.select("entity_id", "strategy").is_duplicated().sum() == 0
    ranks = recs.group_by("entity_id").agg(pl.col("rank").sort(), pl.len())
    assert all(r == list(range(1, n + 1)) for r, n in ranks.select("rank", "len").rows())
    assert (recs.filter(pl.col("is_best"))["rank"] == 1).all()
    assert (recs.filter(pl.col("is_best"))["net_value"] > 0).all()
    assert (recs["uplift_low"] <= recs["expected_uplift"]).all()
    assert (recs["expected_uplift"] <= recs["uplift_high"]).all()
    assert (recs["cost"] >= 0).all()
    first = recs.filter(pl.col("rank") == 1)
    assert first["rationale"].null_count() == 0
    assert first.filter(pl.col("expected_uplift").abs() > 50)["rationale"].str.contains("similar").all()


def test_no_interval_touches_its_estimate_unless_its_width_is_zero(run: StrategyRun) -> None:
    """Intervals are centred on the estimate (`KindModel.predict_interval`), never clipped to it."""
    recs = run.recommendations
    inside = (pl.col("uplift_low") < pl.col("expected_uplift")) & (
        pl.col("expected_uplift") < pl.col("uplift_high")
    )
    zero_width = pl.col("uplift_low") == pl.col("uplift_high")
    assert recs.filter(~(inside | zero_width)).height == 0
    # zero width only where there is nothing to scale: no sales in the last 28 days (no uplift either)
    flat = recs.filter(zero_width)
    assert (flat["baseline_gmv_28d"] == 0).all()
    assert (flat["expected_uplift"] == 0).all()
    assert recs.filter(inside).height > 0
    centred = (pl.col("uplift_high") - pl.col("expected_uplift")) - (
        pl.col("expected_uplift") - pl.col("uplift_low")
    )
    assert recs.select(centred.abs().max()).item() < 1e-6


def test_explained_parts_add_up_to_the_expected_uplift(run: StrategyRun) -> None:
    """Every explained prediction is published as its base value, its top drivers and "other factors",
    which add up to the expected uplift the board shows; its rationale adds up in whole dollars."""
    keys = ["entity_kind", "entity_id", "strategy"]
    parts = run.drivers.group_by(keys).agg(
        pl.col("contribution").sum(),
        pl.col("part").sort_by("position"),
        pl.col("position").sort(),
    )
    first = run.recommendations.filter(pl.col("rank") == 1)
    joined = first.join(parts, on=keys, how="left")
    assert joined["contribution"].null_count() == 0, "every first-ranked prediction is explained"
    np.testing.assert_allclose(joined["contribution"], joined["expected_uplift"], rtol=1e-9, atol=1e-6)
    for row in joined.select("part", "position").iter_rows(named=True):
        assert row["part"][0] == "base"
        assert row["part"][-1] == "other"
        assert set(row["part"][1:-1]) <= {"driver"}
        assert row["position"] == list(range(len(row["position"])))
    for text, expected in joined.select("rationale", "expected_uplift").iter_rows():
        amounts = [
            (-1 if sign == "−" else 1) * int(digits.replace(",", ""))
            for sign, digits in re.findall(r"([+−])\$([\d,]+)", text)
        ]
        headline, *rest = amounts
        assert headline == round(expected), text
        if "Of this" in text:
            assert sum(rest) == headline, text


def test_eligibility_rules_are_applied(run: StrategyRun) -> None:
    merchants = run.recommendations.filter(pl.col("strategy") == "commission_to_category_median")
    assert merchants.height > 0
    # only merchants paying less than their category's median commission may get this strategy
    assert run.recommendations.filter(pl.col("strategy") == "fulfilment_fix").height > 0


def test_shap_contributions_sum_to_every_prediction(tiny_home: Settings, run: StrategyRun) -> None:
    features = FeatureStore.__new__(FeatureStore)  # reuse the run's model on fresh features
    store_ = FeatureStore(
        __import__("analytics.sources", fromlist=["load_inputs"]).load_inputs(tiny_home), run.as_of
    )
    del features
    for kind, model in run.models.items():
        frame = store_(kind, run.as_of)
        predicted = model.predict(frame)
        for k, arm in enumerate(model.arms):
            contributions = model.explain(frame, arm)
            np.testing.assert_allclose(contributions.sum(axis=1), predicted[:, k], rtol=1e-6, atol=1e-4)


def test_no_leakage_training_only_sees_finished_outcomes(tiny_home: Settings) -> None:
    from analytics.sources import load_inputs
    from datastore.lake import scan_table

    inputs = load_inputs(tiny_home)
    cutoff = date(2026, 9, 1)
    interventions = scan_table("interventions", tiny_home).collect()
    store_ = FeatureStore(inputs, cutoff)
    train = training_set(interventions, inputs, "creator", store_, cutoff - timedelta(days=1))
    assert train.height > 0
    assert (train["assigned_on"] + timedelta(days=HORIZON_DAYS - 1) <= cutoff - timedelta(days=1)).all()
    assert (train["features_as_of"] <= train["assigned_on"]).all()
    assert (train["as_of"] == train["features_as_of"]).all(), (
        "features are computed as of the assignment week"
    )


def test_models_and_recommendations_are_persisted(tiny_home: Settings, run: StrategyRun) -> None:
    runs = store.read_model_runs(tiny_home, training_id=run.training_id)
    assert runs.height == len(run.metrics)
    assert runs["chosen"].sum() == 8
    latest = store.latest_run(tiny_home)
    assert latest is not None
    assert latest["run_id"] == run.run_id
    saved = store.read_recommendations(tiny_home, run.run_id)
    assert saved.height == run.recommendations.height


def test_allocation_and_cost_curve(run: StrategyRun) -> None:
    alloc = run.allocation
    assert alloc.height > 0
    assert alloc["entity_id"].is_unique().all()
    curve = run.cost_curve["expected_uplift"].to_numpy()
    assert np.all(np.diff(curve) >= 0)


def test_planted_effects_are_recovered(run: StrategyRun) -> None:
    """Against the simulator's truth at the scoring date. `tiny` has ~1,200 creators and ~230 randomized
    holdout rows per creator strategy (its own rows and the pure controls). Predictions are shrunk towards
    each strategy's mean effect by the holdout's calibration slope, so where the holdout finds little real
    heterogeneity the ranking is mostly by GMV, in the direction of the estimated mean effect. For live
    coaching, commission boost and matched-product showcase the chosen learner's predictions rank-correlate
    with the true uplift (Spearman > 0.25) and the top 20% by prediction earn at least 60% of what the
    oracle's top 20% earns. Posting-schedule advice has the smallest planted mean effect (≈ +0.1); on
    `tiny` its estimated mean is negative, the shrunk ranking is reversed, and it is not asserted here
    (at `demo` scale: bench/RESULTS.md). All creator strategies together beat random targeting. Merchant
    arms have ~15 holdout rows each on `tiny`: only that the run scores them."""
    chosen = run.metrics.filter(pl.col("chosen"))
    creators = chosen.filter(pl.col("entity_kind") == "creator")
    assert creators.height == 4
    for strategy in ("live_coaching", "commission_boost", "matched_product_showcase"):
        row = creators.filter(pl.col("strategy") == strategy).row(0, named=True)
        assert row["truth_spearman"] > 0.25, row
        assert row["truth_policy_vs_oracle"] > 0.6, row
    assert creators["truth_policy_value_top20"].sum() > creators["truth_random_top20"].sum()
    merchants = chosen.filter(pl.col("entity_kind") == "merchant")
    assert merchants.height == 4
    assert merchants["truth_policy_value_top20"].is_finite().all()


def test_workflow_on_a_real_recommendation(tiny_home: Settings, run: StrategyRun) -> None:
    best = run.recommendations.filter(pl.col("is_best")).row(0, named=True)
    action = store.set_status(
        tiny_home,
        run_id=run.run_id,
        entity_kind=best["entity_kind"],
        entity_id=best["entity_id"],
        strategy=best["strategy"],
        status="accepted",
        user="ops",
        owner="ops",
        note="go",
    )
    assert store.read_history(tiny_home, action)["to_status"].to_list() == ["accepted"]
    assert Path(tiny_home.home).exists()


def test_real_data_without_truth_still_gets_every_metric_column(
    tiny_home: Settings, run: StrategyRun, tmp_path: Path
) -> None:
    """A real marketplace has no simulator truth: the same lake without `truth/` gives the same models and
    recommendations, and the metrics keep their truth-based columns (what the Models page reads), null."""
    home = tmp_path / "real"
    home.mkdir()
    (home / "lake").symlink_to(tiny_home.home / "lake", target_is_directory=True)
    # the lake's committed versions are recorded in its state DB: the DB comes along with the lake
    with (
        closing(sqlite3.connect(tiny_home.home / "liftboard.db")) as source,
        closing(sqlite3.connect(home / "liftboard.db")) as target,
    ):
        source.backup(target)
    real = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")
    assert not real.truth.exists()
    without = run_strategies(real, cfg=CONFIG, persist=False)
    truth_columns = [c for c in run.metrics.columns if c.startswith(("truth_", "holdout_"))]
    assert len(truth_columns) == 2 * len(TRUTH_SCORE_NAMES)
    assert set(truth_columns) <= set(without.metrics.columns)
    nulls = without.metrics.select(truth_columns).null_count().row(0)
    assert nulls == (without.metrics.height,) * len(truth_columns)
    assert run.metrics["truth_policy_vs_oracle"].null_count() < run.metrics.height
    # the truth is never read to fit or choose: the same predictions (to float noise, which also differs
    # between two runs on the same lake: sums in LightGBM's histograms)
    key = ["entity_id", "strategy"]
    both = run.recommendations.join(without.recommendations, on=key, how="full", coalesce=True)
    assert both.height == run.recommendations.height == without.recommendations.height
    assert (both["expected_uplift"] - both["expected_uplift_right"]).abs().max() < 1e-6


def test_one_definition_of_established(run: StrategyRun) -> None:
    """The board's flag, the pilot evidence and the model agree on which strategies the pilots prove,
    and under the default policy the flag labels recommendations without removing them."""
    evidence = dict(
        zip(
            run.pilot_evidence["strategy"].to_list(), run.pilot_evidence["established"].to_list(), strict=True
        )
    )
    flags = run.recommendations.group_by("strategy").agg(pl.col("established").unique())
    for strategy, values in flags.iter_rows():
        assert values == [evidence[strategy]], strategy
    assert run.recommendations.filter(pl.col("is_best")).height > 0


@pytest.mark.parametrize("pieces", [3, 1000])
def test_scoring_in_pieces_gives_the_same_frames_as_in_one(
    tiny_home: Settings, run: StrategyRun, pieces: int
) -> None:
    """Scored and explained in runs of entities (tasks on a cluster) or all at once, the same predictions
    (in the same row order), recommendations, drivers, rationales and global explanations; 1000 pieces
    is more pieces than tiny has entities."""
    from analytics.sources import load_inputs
    from strategies.catalog import load_catalog
    from strategies.recommend import score_and_explain

    store_ = FeatureStore(load_inputs(tiny_home), run.as_of)
    catalog = load_catalog()
    calls: list[int] = []

    def counting(function, items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return [function(item) for item in items]

    for kind, model in run.models.items():
        features = store_(kind, run.as_of)
        whole = score_and_explain(model, features, catalog)
        cut = score_and_explain(model, features, catalog, counting, pieces)
        assert calls[-1] == min(pieces, features.height) > 1
        assert_frame_equal(cut[0], whole[0])  # predictions, row for row
        assert_frame_equal(cut[1], whole[1])
        for name in ("rationales", "drivers", "importance", "dependence", "rules"):
            left, right = getattr(whole[2], name), getattr(cut[2], name)
            keys = [c for c in left.columns if left[c].dtype != pl.Float64]
            assert_frame_equal(right.sort(keys), left.sort(keys), check_exact=True)
