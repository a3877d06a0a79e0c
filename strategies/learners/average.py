"""Average of the T-, X- and DR-learners: three noisy estimates of the same effect, whose errors are
partly independent, so their mean varies less than any one of them."""

from __future__ import annotations

import numpy as np

from strategies.learners.base import UpliftLearner
from strategies.learners.dr_learner import DRLearner
from strategies.learners.t_learner import TLearner
from strategies.learners.x_learner import XLearner

MEMBERS: tuple[type[UpliftLearner], ...] = (TLearner, XLearner, DRLearner)


class AverageLearner(UpliftLearner):
    """τ_k(x) = mean of the members' τ_k(x); SHAP contributions are the mean of theirs (still exact)."""

    name = "average"

    def fit(
        self, x: np.ndarray, arm: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> AverageLearner:
        x, arm, y, w = self._check(x, arm, y, sample_weight)
        self.members_: list[UpliftLearner] = [
            cls(self.n_estimators, self.max_depth, self.n_bootstrap, self.random_state, self.boosting).fit(
                x, arm, y, w
            )
            for cls in MEMBERS
        ]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(x) for m in self.members_], axis=0)

    def explain(self, x: np.ndarray, k: int) -> np.ndarray:
        return np.mean([m.explain(x, k) for m in self.members_], axis=0)

    def _predict_replica(self, x: np.ndarray, b: int) -> np.ndarray:
        return np.mean([m._predict_replica(x, b) for m in self.members_], axis=0)
