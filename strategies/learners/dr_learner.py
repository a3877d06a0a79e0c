"""Doubly-robust (DR) learner (Kennedy 2023), multi-arm, with cross-fitted nuisance models."""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import KFold

from strategies.learners.base import UpliftLearner, contributions, fit_propensity, propensities


def aipw_pseudo_outcomes(
    x: np.ndarray,
    arm: np.ndarray,
    y: np.ndarray,
    n_arms: int,
    folds: int,
    seed: int,
    model: Callable[[int], lgb.LGBMRegressor],
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-fitted AIPW pseudo-outcomes ψ_k for every row and arm k (n, K):
    ψ_k = μ_k(x) − μ_0(x) + 1[a=k](y − μ_k(x))/e_k(x) − 1[a=0](y − μ_0(x))/e_0(x),
    with μ and e fitted on the other folds. Their mean over rows estimates the average effect, and they
    are the targets a DR learner regresses (and what targeted, non-randomized data is scored against)."""
    psi = np.zeros((len(y), n_arms))
    w = np.ones(len(y)) if sample_weight is None else sample_weight
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(x)):
        a_tr = arm[train]
        mu: list[lgb.LGBMRegressor | None] = []
        for k in range(n_arms + 1):
            rows = train[a_tr == k]
            mu.append(
                model(fold * 10 + k).fit(x[rows], y[rows], sample_weight=w[rows]) if len(rows) >= 5 else None
            )
        e = propensities(fit_propensity(x[train], a_tr, n_arms, seed + fold), x[test], n_arms)
        if mu[0] is None:
            continue
        mu0 = np.asarray(mu[0].predict(x[test]))
        a, yt = arm[test], y[test]
        for k in range(1, n_arms + 1):
            model_k = mu[k]
            if model_k is None:
                continue
            muk = np.asarray(model_k.predict(x[test]))
            psi[test, k - 1] = muk - mu0 + (a == k) * (yt - muk) / e[:, k] - (a == 0) * (yt - mu0) / e[:, 0]
    return psi


class DRLearner(UpliftLearner):
    """Regresses cross-fitted AIPW pseudo-outcomes on x, one effect model per arm."""

    name = "dr_learner"

    def __init__(
        self,
        n_estimators: int = 80,
        max_depth: int = 4,
        n_bootstrap: int = 10,
        random_state: int = 0,
        boosting: str = "rf",
        folds: int = 3,
    ):
        super().__init__(n_estimators, max_depth, n_bootstrap, random_state, boosting)
        self.folds = folds

    def fit(
        self, x: np.ndarray, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> DRLearner:
        x, arm, y, w = self._check(x, arm, y, sample_weight)
        self.pseudo_outcomes_ = aipw_pseudo_outcomes(
            x, arm, y, self.n_arms_, self.folds, self.random_state, self._model, sample_weight=w
        )
        # pseudo-outcomes are noisy (divided by propensities): a larger leaf minimum keeps the fit smooth
        self.effect_models_: list[lgb.LGBMRegressor] = [
            self._model(30 + k, min_child_samples=40).fit(x, self.pseudo_outcomes_[:, k], sample_weight=w)
            for k in range(self.n_arms_)
        ]
        rng = np.random.default_rng(self.random_state)
        small = max(self.n_estimators // 2, 20)
        self.bootstrap_models_: list[list[lgb.LGBMRegressor]] = []
        for b in range(self.n_bootstrap):
            pick = self._bootstrap_index(len(y), rng)
            self.bootstrap_models_.append(
                [
                    self._model(100 + b, n_estimators=small, min_child_samples=40).fit(
                        x[pick], self.pseudo_outcomes_[pick, k], sample_weight=w[pick]
                    )
                    for k in range(self.n_arms_)
                ]
            )
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.column_stack([m.predict(x) for m in self.effect_models_])

    def explain(self, x: np.ndarray, k: int) -> np.ndarray:
        return contributions(self.effect_models_[k - 1], np.asarray(x, dtype=float))

    def _predict_replica(self, x: np.ndarray, b: int) -> np.ndarray:
        return np.column_stack([m.predict(x) for m in self.bootstrap_models_[b]])
