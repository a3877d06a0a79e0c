"""Per-strategy training rows, shrinkage of predictions and its exact explanations."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from strategies.learners import TLearner
from strategies.modeling import FeatureEncoder, KindModel, ModelConfig, _arm_rows
from tests.strategies.conftest import make_uplift_data

D1, D2 = date(2026, 6, 1), date(2026, 8, 3)


def test_arm_rows_pool_pure_controls_and_never_entities_treated_with_something_else() -> None:
    """Own rows of the strategy, plus control rows of entities that got nothing in that wave; an entity
    treated with another strategy in the same wave (a factorial pilot) is no control."""
    frame = pl.DataFrame(
        {
            "intervention_id": ["i1", "i2", "i3", "i4", "i5", "i6", "i7"],
            "entity_id": ["a", "b", "c", "d", "d", "e", "e"],
            "assigned_on": [D1, D1, D1, D2, D2, D2, D2],
            "strategy": ["s1", "s2", "s2", "s1", "s2", "s2", "s3"],
            "arm": ["treatment", "control", "treatment", "control", "treatment", "control", "treatment"],
        }
    )
    result = _arm_rows(frame, "s1").select("intervention_id", "treated")
    # i1, i4: own rows; i2: b got nothing in its wave; i3 treated; i5 is d's other row (d has an s1 row
    # already); e's control row i6 is not pure (e was treated with s3 in that wave)
    expected = pl.DataFrame({"intervention_id": ["i1", "i2", "i4"], "treated": [1, 0, 0]})
    assert_frame_equal(result, expected)
    empty = _arm_rows(frame.clear(), "s1")
    assert empty.height == 0 and "treated" in empty.columns


def _model(shrinkage: dict[str, tuple[float, float]]) -> tuple[KindModel, pl.DataFrame]:
    d = make_uplift_data(1500, seed=21)
    keep = d.arm <= 1
    x, arm, y = d.x[keep], d.arm[keep], d.y[keep]
    frame = pl.DataFrame(x, schema=[f"f{i}" for i in range(x.shape[1])]).with_columns(
        gmv_28d=pl.Series(np.linspace(100.0, 1000.0, len(y)))
    )
    learner = TLearner(n_estimators=30, n_bootstrap=3, random_state=0).fit(x, arm, y)
    model = KindModel(
        kind="creator",
        arms=("s1", "s2"),
        encoder=FeatureEncoder(numeric=[f"f{i}" for i in range(x.shape[1])]),
        learners={"s1": learner},  # s2: too few rows, no model
        chosen={"s1": "t_learner", "s2": "average"},
        metrics=pl.DataFrame(),
        curves=pl.DataFrame(),
        calibration=pl.DataFrame(),
        n_train=len(y),
        n_holdout=0,
        config=ModelConfig(),
        shrinkage=shrinkage,
    )
    return model, frame


def test_shrunk_predictions_and_their_explanations() -> None:
    plain, frame = _model({})
    shrunk, _ = _model({"s1": (2.0, 0.25)})
    scale = frame["gmv_28d"].to_numpy()
    raw = plain.predict(frame)[:, 0] / scale
    np.testing.assert_allclose(shrunk.predict(frame)[:, 0], (2.0 + 0.25 * (raw - 2.0)) * scale, rtol=1e-9)
    assert (shrunk.predict(frame)[:, 1] == 0).all(), "a strategy without a model predicts no uplift"
    contributions = shrunk.explain(frame, "s1")
    np.testing.assert_allclose(contributions.sum(axis=1), shrunk.predict(frame)[:, 0], rtol=1e-6)
    assert (shrunk.explain(frame, "s2") == 0).all()
    low, high = shrunk.predict_interval(frame)
    assert (low <= high).all() and (high[:, 0] - low[:, 0]).mean() > 0
    point = shrunk.predict(frame)
    assert (low[:, 0] <= point[:, 0] + 1e-9).all() and (point[:, 0] <= high[:, 0] + 1e-9).all()
    # shrinking moves the interval with the prediction but keeps the bootstrap's width: a slope of 0
    # (no heterogeneity found) must not claim certainty
    flat, _ = _model({"s1": (2.0, 0.0)})
    plain_low, plain_high = plain.predict_interval(frame)
    flat_low, flat_high = flat.predict_interval(frame)
    assert ((flat_high - flat_low)[:, 0] >= (plain_high - plain_low)[:, 0] - 1e-6).all()
    assert ((flat_high - flat_low)[:, 0] > 0).mean() > 0.9
    # shrinking keeps the order of the learner's predictions (slope ≥ 0)
    np.testing.assert_array_equal(np.argsort(shrunk.predict(frame)[:, 0] / scale), np.argsort(raw))
