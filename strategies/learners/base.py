"""What every uplift learner shares: LightGBM model factories, the propensity model, bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator

PROPENSITY_FLOOR = 0.05


BOOSTING = ("rf", "gbdt")


def regressor(
    seed: int, n_estimators: int = 80, max_depth: int = 4, boosting: str = "rf", **overrides: object
) -> lgb.LGBMRegressor:
    """A small, depth-limited LightGBM regressor: effect models stay fast to explain with tree SHAP.

    ``boosting="rf"`` (the default): LightGBM's random-forest mode, every tree grown on its own 63%
    subsample of the rows and the trees averaged. Uplift targets here are mostly noise (a merchant's
    28-day change of GMV per click has a standard deviation of 0.3–1.0 against effects of −0.1…+0.5), and
    boosted trees fit that noise tree after tree: their predictions for merchants with the same true
    effect spread by ±0.3. Averaging independent trees damps it (docs/strategies.md, "Effect models").
    ``"gbdt"``: gradient boosting (learning rate 0.08, 80% row subsample).
    """
    if boosting not in BOOSTING:
        raise ValueError(f"boosting must be one of {BOOSTING}, not {boosting!r}")
    params: dict[str, Any] = dict(
        n_estimators=n_estimators,
        max_bin=63,
        max_depth=max_depth,
        num_leaves=2**max_depth - 1,
        min_child_samples=20,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=seed,
        n_jobs=1,  # small data: threads cost more than they give, and badly so on a loaded 2-core machine
        verbose=-1,
    )
    if boosting == "rf":
        params.update(boosting_type="rf", subsample=0.632)
    else:
        params.update(boosting_type="gbdt", learning_rate=0.08, subsample=0.8)
    params.update(overrides)
    return lgb.LGBMRegressor(**params)


def fit_propensity(x: np.ndarray, arm: np.ndarray, n_arms: int, seed: int) -> lgb.LGBMClassifier:
    """Multinomial LightGBM propensity model P(arm = k | x) over control and every strategy arm."""
    model = lgb.LGBMClassifier(
        objective="multiclass",
        num_class=n_arms + 1,
        n_estimators=100,
        learning_rate=0.05,
        max_depth=3,
        num_leaves=7,
        min_child_samples=30,
        max_bin=63,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    return model.fit(x, arm)


def propensities(model: lgb.LGBMClassifier, x: np.ndarray, n_arms: int) -> np.ndarray:
    """(n, K + 1) probabilities in the arm order 0..K (an arm unseen in training gets the floor)."""
    raw = model.predict_proba(x)
    out = np.full((x.shape[0], n_arms + 1), PROPENSITY_FLOOR)
    out[:, model.classes_.astype(int)] = raw
    return np.clip(out, PROPENSITY_FLOOR, 1.0)


def contributions(model: lgb.LGBMRegressor, x: np.ndarray) -> np.ndarray:
    """Exact tree SHAP contributions (LightGBM ``pred_contrib``): (n, features + 1), last column the base.

    In random-forest mode LightGBM's prediction is the mean of the trees but ``pred_contrib`` returns the
    contributions of their sum (LightGBM issue #6217, open in 4.7): they are divided by the number of
    trees, so that they add up to the prediction in both modes (tested)."""
    contrib = np.asarray(model.predict(x, pred_contrib=True))
    if model.get_params().get("boosting_type") == "rf":
        contrib = contrib / model.booster_.num_trees()
    return contrib


@dataclass(frozen=True)
class Interval:
    """Lower and upper bounds of the predicted uplift, (n, K) each."""

    low: np.ndarray
    high: np.ndarray


class UpliftLearner(BaseEstimator):  # type: ignore[misc]
    """Base class: ``fit(x, arm, y)``, ``predict(x) -> (n, K)``, ``explain(x, k)``, ``predict_interval``."""

    n_arms_: int
    name: str = "uplift"

    def __init__(
        self,
        n_estimators: int = 80,
        max_depth: int = 4,
        n_bootstrap: int = 10,
        random_state: int = 0,
        boosting: str = "rf",
    ):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.boosting = boosting

    # subclasses implement these three -------------------------------------------------------------
    def fit(
        self, x: np.ndarray, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> UpliftLearner:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def explain(self, x: np.ndarray, k: int) -> np.ndarray:
        """SHAP contributions of the uplift of arm k (1-based) for each row; rows sum to ``predict``."""
        raise NotImplementedError

    # shared ----------------------------------------------------------------------------------------
    def _model(self, seed_offset: int = 0, **overrides: object) -> lgb.LGBMRegressor:
        n_estimators = int(overrides.pop("n_estimators", self.n_estimators))  # type: ignore[call-overload]
        return regressor(
            self.random_state + seed_offset, n_estimators, self.max_depth, self.boosting, **overrides
        )

    def _check(
        self, x: np.ndarray, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x, arm, y = np.asarray(x, dtype=float), np.asarray(arm, dtype=int), np.asarray(y, dtype=float)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if not (len(x) == len(arm) == len(y) == len(w)):
            raise ValueError(
                f"x, arm, y and weights differ in length: {len(x)}, {len(arm)}, {len(y)}, {len(w)}"
            )
        if (arm == 0).sum() < 2:
            raise ValueError("uplift learners need control rows (arm 0)")
        self.n_arms_ = int(arm.max())
        return x, arm, y, w

    def predict_interval(self, x: np.ndarray, coverage: float = 0.8) -> Interval:
        """Per-entity interval from the bootstrap replicas of the final-stage effect models."""
        replicas = np.stack([self._predict_replica(x, b) for b in range(self.n_bootstrap)])
        tail = (1 - coverage) / 2
        return Interval(np.quantile(replicas, tail, axis=0), np.quantile(replicas, 1 - tail, axis=0))

    def interval_half_width(self, x: np.ndarray, coverage: float = 0.8) -> np.ndarray:
        """Half the width of a ``coverage`` interval centred on each row's prediction, (n, K): the normal
        quantile times the standard deviation of the bootstrap replicas (0 with fewer than two). An
        interval built as prediction ± this holds its estimate strictly inside, whatever the prediction
        is moved to (shrinkage), unless the replicas agree exactly; percentiles of the replicas need not
        contain the full-data prediction at all."""
        n_arms = getattr(self, "n_arms_", 1)
        if self.n_bootstrap < 2:
            return np.zeros((len(x), n_arms))
        replicas = np.stack([self._predict_replica(x, b) for b in range(self.n_bootstrap)])
        z = NormalDist().inv_cdf(0.5 + coverage / 2)
        return np.asarray(z * replicas.std(axis=0, ddof=1))

    def _predict_replica(self, x: np.ndarray, b: int) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _bootstrap_index(n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, n, n)
