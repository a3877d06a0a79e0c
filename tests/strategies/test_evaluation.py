"""Qini, AUUC, uplift@k and truth metrics: hand-computed cases and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import evaluation as ev
from tests.strategies.conftest import make_uplift_data


def test_qini_curve_by_hand() -> None:
    score = np.array([4.0, 3.0, 2.0, 1.0])
    y = np.array([10.0, 2.0, 6.0, 1.0])
    treated = np.array([True, False, True, False])
    # φ = 0, ½, 1: targeted rows (none), (t 10, c 2), all: ΣYt − ΣYc·Nt/Nc
    np.testing.assert_allclose(
        ev.qini_curve(score, y, treated, grid=2), [0.0, 10 - 2 * 1 / 1, 16 - 3 * 2 / 2]
    )
    np.testing.assert_allclose(ev.uplift_curve(score, y, treated, grid=2), [0.0, (10 - 2) * 2, (8 - 1.5) * 4])
    assert ev.uplift_at(score, y, treated, 0.5) == pytest.approx(8.0)


def test_perfect_ordering_scores_one_and_noise_scores_about_zero() -> None:
    d = make_uplift_data(4000)
    treated = d.arm == 1
    keep = (d.arm == 0) | treated
    y, t = d.y[keep], treated[keep]
    perfect = ev.holdout_scores(ev.perfect_score(y, t), y, t)
    assert perfect.qini_coefficient == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = [ev.holdout_scores(rng.random(len(y)), y, t).qini_coefficient for _ in range(20)]
    assert abs(np.mean(noise)) < 0.05
    oracle = ev.holdout_scores(d.tau[keep, 0], y, t)
    assert 0.05 < oracle.qini_coefficient < 1.0
    assert oracle.uplift_at_20 > 2.5  # the top 20% by true effect gain 4


def test_bootstrap_intervals_contain_the_point_estimate() -> None:
    d = make_uplift_data(1500, seed=5)
    keep = d.arm < 2
    score, y, t = d.tau[keep, 0], d.y[keep], d.arm[keep] == 1
    point = ev.holdout_scores(score, y, t)
    intervals = ev.bootstrap_intervals(score, y, t, n_boot=100)
    low, high = intervals["qini_area"]
    assert low <= point.qini_area <= high
    assert high > low


def test_truth_scores_policy_value() -> None:
    true = np.array([5.0, -1.0, 3.0, 0.0, 10.0])
    scores = ev.truth_scores(true, true, fraction=0.4)
    assert scores.spearman == pytest.approx(1.0)
    assert scores.rmse == 0.0
    assert scores.policy_value_top20 == scores.oracle_top20 == 15.0
    assert scores.treat_everyone == 17.0
    assert scores.random_top20 == pytest.approx(0.4 * 17.0)
    worst = ev.truth_scores(-true, true, fraction=0.4)
    assert worst.policy_value_top20 == -1.0
    assert worst.policy_vs_oracle < 0


def test_calibration_deciles_and_pseudo_outcomes() -> None:
    d = make_uplift_data(3000, seed=8)
    keep = d.arm < 2
    table = ev.calibration_by_decile(d.tau[keep, 0], d.y[keep], d.arm[keep] == 1)
    assert table["decile"].to_list() == list(range(1, 11))
    assert table["observed"][-1] > table["observed"][0] + 2  # top deciles really gain more
    psi = np.where(d.arm == 1, 1.0, 0.0) * 0 + d.tau[:, 0]
    pseudo = ev.pseudo_outcome_scores(d.tau[:, 0], psi)
    assert pseudo["aipw_uplift_top20"] == pytest.approx(4.0)


def test_best_linear_predictor_measures_how_much_heterogeneity_is_real() -> None:
    """Arm 1 against control, 50/50: a prediction equal to the true effect has slope ≈ 1, twice the true
    effect ≈ 0.5, pure noise ≈ 0 (each within 0.25; the effect spans 0 … 4, noise sd 1.5); the average
    effect is recovered within 0.3 (true 2)."""
    d = make_uplift_data(6000, seed=11)
    keep = d.arm <= 1
    y, t, tau = d.y[keep], d.arm[keep] == 1, d.tau[keep, 0]
    p = np.full(len(y), t.mean())
    baseline = d.x[keep, 0]  # what drives the untreated outcome (partly)
    exact = ev.best_linear_predictor(y, t, p, tau, baseline)
    assert ev.best_linear_predictor(y, t, p, tau).slope == pytest.approx(1.0, abs=0.25)
    assert exact.slope == pytest.approx(1.0, abs=0.25)
    assert exact.ate == pytest.approx(tau.mean(), abs=0.3)
    assert ev.best_linear_predictor(y, t, p, 2 * tau, baseline).slope == pytest.approx(0.5, abs=0.25)
    noise = ev.best_linear_predictor(y, t, p, np.random.default_rng(1).random(len(y)), baseline)
    assert abs(noise.slope) < 0.25 * 4  # noise on [0, 1] has a quarter of the effect's spread
    assert abs(noise.slope) < 3 * noise.slope_se
    assert exact.slope_se > 0


def test_best_linear_predictor_needs_rows() -> None:
    result = ev.best_linear_predictor(
        np.ones(3), np.array([True, False, True]), np.full(3, 0.5), np.arange(3.0)
    )
    assert np.isnan(result.slope)


def test_paired_bootstrap_prefers_the_better_score() -> None:
    d = make_uplift_data(2000, seed=12)
    keep = d.arm <= 1
    y, t, tau = d.y[keep], d.arm[keep] == 1, d.tau[keep, 0]
    noise = np.random.default_rng(2).random(len(y))
    wins = ev.paired_qini_gain({"truth": tau, "noise": noise}, y, t, baseline="noise", n_boot=100, seed=3)
    assert wins["truth"] > 0.95
    assert wins["noise"] == 0.0  # never strictly better than itself
