"""Uplift learners recover known effects, explain themselves exactly and follow the sklearn contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone

from strategies.learners import LEARNERS, DRLearner, XLearner
from strategies.learners.base import BOOSTING, regressor
from strategies.learners.dr_learner import aipw_pseudo_outcomes
from tests.strategies.conftest import UpliftData, make_uplift_data

NAMES = sorted(LEARNERS)


@pytest.mark.parametrize("boosting", BOOSTING)
@pytest.mark.parametrize("name", NAMES)
def test_learner_recovers_heterogeneous_effects(name: str, boosting: str, randomized: UpliftData) -> None:
    """Spearman correlation with the true effect above 0.6 for both arms on fresh data; mean absolute
    error of the average effect within 0.5 (the effects span −2 … 4, noise sd 1.5); with random-forest
    and with boosted trees."""
    learner = LEARNERS[name](n_bootstrap=0, random_state=1, boosting=boosting).fit(
        randomized.x, randomized.arm, randomized.y
    )
    test = make_uplift_data(2000, seed=99)
    predicted = learner.predict(test.x)
    assert predicted.shape == (2000, 2)
    for k in range(2):
        rho = spearmanr(predicted[:, k], test.tau[:, k]).statistic
        assert rho > 0.6, f"{name} arm {k + 1}: Spearman {rho:.2f}"
        assert abs(predicted[:, k].mean() - test.tau[:, k].mean()) < 0.5


@pytest.mark.parametrize("boosting", BOOSTING)
@pytest.mark.parametrize("name", NAMES)
def test_shap_contributions_sum_to_the_prediction(name: str, boosting: str, randomized: UpliftData) -> None:
    """Also in random-forest mode, where LightGBM's own ``pred_contrib`` adds up to the sum of the trees
    rather than to their mean (LightGBM issue #6217)."""
    learner = LEARNERS[name](n_bootstrap=0, random_state=2, boosting=boosting).fit(
        randomized.x, randomized.arm, randomized.y
    )
    x = randomized.x[:200]
    predicted = learner.predict(x)
    for k in (1, 2):
        contributions = learner.explain(x, k)
        assert contributions.shape == (200, x.shape[1] + 1)
        np.testing.assert_allclose(contributions.sum(axis=1), predicted[:, k - 1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_contract_and_intervals(name: str, randomized: UpliftData) -> None:
    learner = LEARNERS[name](n_estimators=40, n_bootstrap=4, random_state=3)
    assert clone(learner).get_params() == learner.get_params()
    assert not hasattr(learner, "n_arms_"), "__init__ stores arguments and does nothing else"
    fitted = learner.fit(randomized.x, randomized.arm, randomized.y)
    assert fitted is learner
    assert learner.n_arms_ == 2
    interval = learner.predict_interval(randomized.x[:100])
    assert interval.low.shape == interval.high.shape == (100, 2)
    assert (interval.low <= interval.high).all()
    assert (interval.high - interval.low).mean() > 0


def test_unknown_tree_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="boosting must be one of"):
        regressor(0, boosting="dart")


def test_learners_refuse_data_without_controls(randomized: UpliftData) -> None:
    with pytest.raises(ValueError, match="control rows"):
        LEARNERS["t_learner"]().fit(randomized.x, np.ones_like(randomized.arm), randomized.y)


def test_propensity_handling_beats_the_naive_difference_on_confounded_data(confounded: UpliftData) -> None:
    """Treatment is likelier where the baseline is high: the naive difference in means overstates the
    average effect of each arm; the AIPW estimate (cross-fitted propensity and outcome models) and the
    X- and DR-learners land within 0.4 of the truth, and closer than the naive estimate."""
    d = confounded
    truth = d.tau.mean(axis=0)
    naive = np.array([d.y[d.arm == k].mean() - d.y[d.arm == 0].mean() for k in (1, 2)])
    psi = aipw_pseudo_outcomes(d.x, d.arm, d.y, 2, 3, 0, lambda s: regressor(s, 80, 4))
    aipw = psi.mean(axis=0)
    for k in range(2):
        assert abs(naive[k] - truth[k]) > 1.0, "the data must be confounded for this test to mean anything"
        assert abs(aipw[k] - truth[k]) < 0.4
        assert abs(aipw[k] - truth[k]) < abs(naive[k] - truth[k])
    for cls in (XLearner, DRLearner):
        learner = cls(n_bootstrap=0, random_state=4).fit(d.x, d.arm, d.y)
        mean_effect = learner.predict(d.x).mean(axis=0)
        assert np.all(np.abs(mean_effect - truth) < np.abs(naive - truth)), cls.__name__
