"""Per-strategy training rows, shrinkage of predictions and its exact explanations."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from strategies.learners import TLearner
from strategies.modeling import FeatureEncoder, KindModel, ModelConfig, _target, strategy_rows, traffic_effect
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
    result = strategy_rows(frame, "s1").select("intervention_id", "treated")
    # i1, i4: own rows; i2: b got nothing in its wave; i3 treated; i5 is d's other row (d has an s1 row
    # already); e's control row i6 is not pure (e was treated with s3 in that wave)
    expected = pl.DataFrame({"intervention_id": ["i1", "i2", "i4"], "treated": [1, 0, 0]})
    assert_frame_equal(result, expected)
    empty = strategy_rows(frame.clear(), "s1")
    assert empty.height == 0
    assert "treated" in empty.columns


def _model(
    shrinkage: dict[str, tuple[float, float]], traffic: dict[str, float] | None = None
) -> tuple[KindModel, pl.DataFrame]:
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
        traffic=traffic or {},
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
    assert (low <= high).all()
    assert (high[:, 0] - low[:, 0]).mean() > 0
    point = shrunk.predict(frame)
    assert (low[:, 0] <= point[:, 0] + 1e-9).all()
    assert (point[:, 0] <= high[:, 0] + 1e-9).all()
    # shrinking moves the interval with the prediction but keeps the bootstrap's width: a slope of 0
    # (no heterogeneity found) must not claim certainty
    flat, _ = _model({"s1": (2.0, 0.0)})
    plain_low, plain_high = plain.predict_interval(frame)
    flat_low, flat_high = flat.predict_interval(frame)
    assert ((flat_high - flat_low)[:, 0] >= (plain_high - plain_low)[:, 0] - 1e-6).all()
    assert ((flat_high - flat_low)[:, 0] > 0).mean() > 0.9
    # shrinking keeps the order of the learner's predictions (slope ≥ 0)
    np.testing.assert_array_equal(np.argsort(shrunk.predict(frame)[:, 0] / scale), np.argsort(raw))


def test_no_interval_touches_its_estimate_unless_its_width_is_zero() -> None:
    """Intervals are centred on the estimate shown, never clipped to it: "$82,350 (80% interval $82,350 –
    $198,803)" must not happen, shrunk or not, with or without a traffic effect."""
    for shrinkage, traffic in (({}, None), ({"s1": (2.0, 0.25)}, None), ({"s1": (2.0, 0.0)}, {"s1": 0.2})):
        model, frame = _model(shrinkage, traffic)
        point = model.predict(frame)
        low, high = model.predict_interval(frame)
        zero_width = high == low
        assert ((low < point) & (point < high) | zero_width).all(), shrinkage
        np.testing.assert_allclose(point - low, high - point, rtol=1e-9, atol=1e-9)
        assert (zero_width[:, 1] & (point[:, 1] == 0)).all(), "no model: no uplift, no width"
        assert not zero_width[:, 0].any(), "the bootstrap replicas disagree: a real width"


def test_conversion_target_holds_traffic_at_the_before_window() -> None:
    """The "conversion" target is the relative change of GMV at the before window's clicks; without
    clicks in a window there is no conversion signal (no change); equal weights by default."""
    frame = pl.DataFrame(
        {
            "gmv_before": [100.0, 100.0, 100.0, 100.0, 10.0],
            "gmv_after": [200.0, 150.0, 0.0, 80.0, 30.0],
            "clicks_before": [20, 20, 20, 0, 10],
            "clicks_after": [40, 20, 0, 10, 10],
        }
    )
    y, weight = _target(frame, ModelConfig())
    # twice the GMV on twice the clicks: no change; 1.5× on the same clicks: +50%; no clicks after or
    # before: 0; a small baseline is floored at $50: (30 − 10) / 50
    np.testing.assert_allclose(y, [0.0, 0.5, 0.0, 0.0, 0.4])
    np.testing.assert_allclose(weight, 1.0)
    y_relative, _ = _target(frame, ModelConfig(outcome="relative"))
    np.testing.assert_allclose(y_relative, [1.0, 0.5, -1.0, -0.2, 0.4])


def _traffic_rows(lift: float, n: int = 400, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    treated = np.arange(n) % 2
    before = rng.poisson(200, n)
    after = rng.poisson(200 * (1 + lift * treated))
    return pl.DataFrame(
        {"treated": treated, "assignment": "randomized", "clicks_before": before, "clicks_after": after}
    )


def test_traffic_effect_is_recovered_and_applied_only_when_clear() -> None:
    cfg = ModelConfig()
    doubled = traffic_effect(_traffic_rows(1.0), cfg)
    assert abs(doubled["traffic_effect_raw"] - 1.0) < 0.05
    assert doubled["traffic_effect"] == doubled["traffic_effect_raw"]
    assert 0 < doubled["traffic_effect_se"] < 0.05
    none = traffic_effect(_traffic_rows(0.0), cfg)
    assert abs(none["traffic_effect_raw"]) < 3 * none["traffic_effect_se"]
    assert none["traffic_effect"] == 0.0
    assert traffic_effect(_traffic_rows(1.0), ModelConfig(outcome="relative"))["traffic_effect"] == 0.0


def test_traffic_effect_combines_with_the_conversion_effect_and_its_explanation() -> None:
    """Relative uplift (1 + traffic)(1 + conversion) − 1; SHAP values still sum to the prediction and
    the interval still holds it."""
    base, frame = _model({"s1": (2.0, 0.5)})
    model, _ = _model({"s1": (2.0, 0.5)}, {"s1": 0.2})
    scale = frame["gmv_28d"].to_numpy()
    conversion = base.predict(frame)[:, 0] / scale
    np.testing.assert_allclose(model.predict(frame)[:, 0], (1.2 * (1 + conversion) - 1) * scale, rtol=1e-9)
    np.testing.assert_allclose(model.explain(frame, "s1").sum(axis=1), model.predict(frame)[:, 0], rtol=1e-6)
    low, high = model.predict_interval(frame)
    point = model.predict(frame)
    assert (low[:, 0] <= point[:, 0] + 1e-9).all()
    assert (point[:, 0] <= high[:, 0] + 1e-9).all()
    base_low, base_high = base.predict_interval(frame)
    np.testing.assert_allclose((high - low)[:, 0], 1.2 * (base_high - base_low)[:, 0], rtol=1e-6, atol=1e-6)
