"""Multi-arm uplift meta-learners with LightGBM base models (scikit-learn estimator contract).

Arms are coded 0 (control: no strategy) and 1..K (one per strategy of the entity kind): the strategies
are arms of one problem sharing one control group and one propensity model, not unrelated binary
models. Every learner predicts an (n, K) matrix of uplifts (arm k versus control) and explains it with
exact tree SHAP contributions that sum to the prediction.
"""

from __future__ import annotations

from strategies.learners.average import AverageLearner
from strategies.learners.base import UpliftLearner
from strategies.learners.dr_learner import DRLearner
from strategies.learners.t_learner import TLearner
from strategies.learners.x_learner import XLearner

LEARNERS: dict[str, type[UpliftLearner]] = {
    "t_learner": TLearner,
    "x_learner": XLearner,
    "dr_learner": DRLearner,
    "average": AverageLearner,
}

__all__ = ["LEARNERS", "AverageLearner", "DRLearner", "TLearner", "UpliftLearner", "XLearner"]
