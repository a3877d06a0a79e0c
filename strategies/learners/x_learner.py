"""X-learner (Künzel et al. 2019), multi-arm: imputed effects on each side, blended by the propensity."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from strategies.learners.base import UpliftLearner, contributions, fit_propensity, propensities


class XLearner(UpliftLearner):
    """For arm k: D1 = y − μ_0(x) on its treated rows, D0 = μ_k(x) − y on the control rows; τ1_k and τ0_k
    regress them; τ_k(x) = g_k(x)·τ0_k(x) + (1 − g_k(x))·τ1_k(x) with g_k = e_k / (e_k + e_0)."""

    name = "x_learner"

    def fit(
        self, x: np.ndarray, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> XLearner:
        x, arm, y, w = self._check(x, arm, y, sample_weight)
        k_arms = self.n_arms_
        mu = [
            self._model(k).fit(x[arm == k], y[arm == k], sample_weight=w[arm == k]) for k in range(k_arms + 1)
        ]
        self.propensity_ = fit_propensity(x, arm, k_arms, self.random_state)
        control = arm == 0
        self.tau_treated_: list[lgb.LGBMRegressor] = []
        self.tau_control_: list[lgb.LGBMRegressor] = []
        targets = []
        for k in range(1, k_arms + 1):
            treated = arm == k
            d1 = y[treated] - mu[0].predict(x[treated])
            d0 = mu[k].predict(x[control]) - y[control]
            self.tau_treated_.append(self._model(10 + k).fit(x[treated], d1, sample_weight=w[treated]))
            self.tau_control_.append(self._model(20 + k).fit(x[control], d0, sample_weight=w[control]))
            targets.append((x[treated], d1, w[treated], x[control], d0, w[control]))
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_models_: list[list[tuple[lgb.LGBMRegressor, lgb.LGBMRegressor]]] = []
        small = max(self.n_estimators // 2, 20)
        for b in range(self.n_bootstrap):
            replica = []
            for xt, d1, wt, xc, d0, wc in targets:
                it, ic = self._bootstrap_index(len(d1), rng), self._bootstrap_index(len(d0), rng)
                replica.append(
                    (
                        self._model(100 + b, n_estimators=small).fit(xt[it], d1[it], sample_weight=wt[it]),
                        self._model(200 + b, n_estimators=small).fit(xc[ic], d0[ic], sample_weight=wc[ic]),
                    )
                )
            self.bootstrap_models_.append(replica)
        return self

    def _weights(self, x: np.ndarray) -> np.ndarray:
        e = propensities(self.propensity_, x, self.n_arms_)
        return e[:, 1:] / (e[:, 1:] + e[:, [0]])

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        g = self._weights(x)
        return np.column_stack(
            [
                g[:, k] * self.tau_control_[k].predict(x) + (1 - g[:, k]) * self.tau_treated_[k].predict(x)
                for k in range(self.n_arms_)
            ]
        )

    def explain(self, x: np.ndarray, k: int) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        g = self._weights(x)[:, [k - 1]]
        return g * contributions(self.tau_control_[k - 1], x) + (1 - g) * contributions(
            self.tau_treated_[k - 1], x
        )

    def _predict_replica(self, x: np.ndarray, b: int) -> np.ndarray:
        g = self._weights(x)
        return np.column_stack(
            [
                g[:, k] * tau_c.predict(x) + (1 - g[:, k]) * tau_t.predict(x)
                for k, (tau_t, tau_c) in enumerate(self.bootstrap_models_[b])
            ]
        )
