"""The uplift of one strategy as the pilots establish it: the average effect scaled by the entity's
sales, plus a learner's heterogeneity only where cross-fitted validation shows it is real
(`strategies.effects`).

Outcome: the change of 28-day net GMV (completed orders less refunds: the metric the true uplift is
stated in), no assumption about the channel a strategy works through (traffic, conversion, order value,
refunds). Prediction for an entity with net GMV ``b`` over its last 28 days::

    uplift = b × (average relative effect + kept × (learner's relative effect − learner's mean))

where ``kept`` is the cross-fitted best-linear-predictor coefficient of the learner's departure from the
average (0 when not significant). Its 80% interval is the average effect's, moved with the departure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from strategies.effects import (
    NO_EFFECT,
    NO_HETEROGENEITY,
    AverageEffect,
    HeterogeneityTest,
    aipw_average_effect,
    average_effect,
    cross_fitted,
    heterogeneity_test,
)
from strategies.learners.base import UpliftLearner, regressor
from strategies.learners.dr_learner import aipw_pseudo_outcomes

RELATIVE_FLOOR = 50.0
"""USD: relative changes are taken over at least this much before-window net GMV."""
RELATIVE_CAP = 5.0
FOLDS = 3

LearnerFactory = Callable[[int], UpliftLearner]
"""seed → an unfitted uplift learner."""


def net_baseline(frame: pl.DataFrame) -> np.ndarray:
    """Net GMV of the last 28 days (USD): gross GMV less the entity's 91-day refund share."""
    gross = frame["gmv_28d"].fill_null(0.0).clip(lower_bound=0.0).to_numpy().astype(float)
    if "refund_rate_91d" not in frame.columns:
        return gross
    refund = frame["refund_rate_91d"].fill_null(0.0).clip(0.0, 1.0).to_numpy().astype(float)
    return gross * (1.0 - refund)


def relative_change(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """(after − before) / max(before, floor), clipped to [−1, cap]: the learners' target."""
    return np.clip((after - before) / np.maximum(before, RELATIVE_FLOOR), -1.0, RELATIVE_CAP)


@dataclass
class ArmEvidence:
    """What one strategy's data establish, and the fitted learner if its heterogeneity is real."""

    effect: AverageEffect
    test: HeterogeneityTest
    learner: UpliftLearner | None = None
    learner_center: float = 0.0

    @property
    def kept(self) -> float:
        return self.test.kept if self.learner is not None else 0.0

    def relative(self, x: np.ndarray) -> np.ndarray:
        """Each row's predicted relative effect."""
        base = np.full(len(x), self.effect.relative if self.effect.method != "none" else 0.0)
        if self.kept <= 0 or self.learner is None:
            return base
        return base + self.kept * (self.learner.predict(x)[:, 0] - self.learner_center)

    def relative_interval(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """80% interval of each row's relative effect (the average effect's, moved with the departure)."""
        if self.effect.method == "none":
            return np.zeros(len(x)), np.zeros(len(x))
        shift = self.relative(x) - self.effect.relative
        return self.effect.low_80 + shift, self.effect.high_80 + shift

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Tree SHAP contributions of the relative effect, (n, features + 1); rows sum to `relative`."""
        out = np.zeros((len(x), x.shape[1] + 1))
        if self.kept > 0 and self.learner is not None:
            out = self.kept * self.learner.explain(x, 1)
            out[:, -1] -= self.kept * self.learner_center
        out[:, -1] += self.effect.relative if self.effect.method != "none" else 0.0
        return out


def fit_arm_evidence(
    x: np.ndarray,
    treated: np.ndarray,
    after: np.ndarray,
    before: np.ndarray,
    entity: np.ndarray,
    randomized: np.ndarray,
    make_learner: LearnerFactory,
    seed: int,
    n_estimators: int = 80,
    max_depth: int = 4,
) -> tuple[ArmEvidence, dict[str, np.ndarray]]:
    """Fit one strategy from its rows (treated 1/0, net GMV after and before, the entity of each row and
    whether it was randomized). Returns the evidence and, for evaluation, the randomized rows'
    out-of-fold predictions (USD) of the average effect (``base``) and of the learner (``learner``) and
    their AIPW pseudo-outcomes (``psi``), with the rows' index (``rows``)."""
    treated = np.asarray(treated).astype(bool)
    randomized = np.asarray(randomized).astype(bool)
    rand_rows = np.flatnonzero(randomized)
    both_arms = randomized.any() and treated[randomized].any() and (~treated[randomized]).any()
    change = after - before

    def pseudo_outcomes(rows: np.ndarray) -> np.ndarray:
        return aipw_pseudo_outcomes(
            x[rows],
            treated[rows].astype(int),
            change[rows],
            1,
            FOLDS,
            seed,
            lambda s: regressor(seed + s, n_estimators, max_depth),
        )[:, 0]

    if both_arms:
        effect = average_effect(after[rand_rows], before[rand_rows], treated[rand_rows], seed=seed)
    elif treated.any() and (~treated).any() and len(treated) >= 2 * FOLDS:
        effect = aipw_average_effect(pseudo_outcomes(np.arange(len(treated))), before, treated)
    else:
        effect = NO_EFFECT
    empty = {"rows": rand_rows[:0], "base": np.zeros(0), "learner": np.zeros(0), "psi": np.zeros(0)}
    if effect.method == "none":
        return ArmEvidence(effect, NO_HETEROGENEITY), empty

    y = relative_change(after, before)

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        if treated[train].sum() < 5 or (~treated[train]).sum() < 5:
            return np.full(len(test), effect.relative)
        learner = make_learner(seed).fit(x[train], treated[train].astype(int), y[train])
        return learner.predict(x[test])[:, 0]

    if len(rand_rows) < 20 or not both_arms:
        return ArmEvidence(effect, NO_HETEROGENEITY), empty
    out_of_fold = cross_fitted(entity, FOLDS, seed, fit_predict)
    scale = np.maximum(before, 0.0)
    centered = out_of_fold - np.mean(out_of_fold)
    base_usd = effect.relative * scale[rand_rows]
    learner_usd = (effect.relative + centered[rand_rows]) * scale[rand_rows]
    psi = pseudo_outcomes(rand_rows)
    test = heterogeneity_test(base_usd, learner_usd, psi)
    evaluation = {"rows": rand_rows, "base": base_usd, "learner": learner_usd, "psi": psi}
    if not test.real:
        return ArmEvidence(effect, test), evaluation
    learner = make_learner(seed).fit(x, treated.astype(int), y)
    center = float(np.mean(learner.predict(x)[:, 0]))
    return ArmEvidence(effect, test, learner, center), evaluation
