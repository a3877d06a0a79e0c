"""T-learner: one outcome model for the control arm and one per strategy arm; uplift is the difference."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from strategies.learners.base import UpliftLearner, contributions


class TLearner(UpliftLearner):
    """τ_k(x) = μ_k(x) − μ_0(x), with μ fitted on each arm's rows; intervals from bootstrap refits."""

    name = "t_learner"

    def fit(
        self, x: np.ndarray, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> TLearner:
        x, arm, y, w = self._check(x, arm, y, sample_weight)
        self.models_: list[lgb.LGBMRegressor] = [
            self._model(k).fit(x[arm == k], y[arm == k], sample_weight=w[arm == k])
            for k in range(self.n_arms_ + 1)
        ]
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_models_: list[list[lgb.LGBMRegressor]] = []
        for b in range(self.n_bootstrap):
            replica = []
            for k in range(self.n_arms_ + 1):
                rows = np.flatnonzero(arm == k)
                pick = rows[self._bootstrap_index(len(rows), rng)]
                replica.append(
                    self._model(100 + b, n_estimators=max(self.n_estimators // 2, 20)).fit(x[pick], y[pick])
                )
            self.bootstrap_models_.append(replica)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        base = np.asarray(self.models_[0].predict(x))
        return np.column_stack([m.predict(x) - base for m in self.models_[1:]])

    def explain(self, x: np.ndarray, k: int) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return contributions(self.models_[k], x) - contributions(self.models_[0], x)

    def _predict_replica(self, x: np.ndarray, b: int) -> np.ndarray:
        models = self.bootstrap_models_[b]
        base = np.asarray(models[0].predict(x))
        return np.column_stack([m.predict(x) - base for m in models[1:]])
