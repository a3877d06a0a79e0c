"""What the pilots prove: each strategy's average effect with a confidence interval, and whether a
learner's heterogeneity beyond it is real.

The average effect is the relative change of 28-day net completed GMV (orders neither cancelled nor
refunded) that a strategy brings, estimated from its randomized rows as a ratio of totals between the
arms, each arm's 28 days after over its 28 days before (a pre-period adjustment: the arms' before
windows absorb most of the differences in size between the entities that landed in each arm). Totals
weigh entities by their sales, as the USD uplift adds up. Where a strategy has no randomized rows in both
arms, its effect comes from cross-fitted AIPW pseudo-outcomes over its targeted rows.

Heterogeneity is kept only where cross-fitted validation shows it: a learner fitted on the other folds of
entities predicts each randomized row's effect, and the best linear predictor of the rows' AIPW
pseudo-outcomes (USD) on the average-effect prediction and on the learner's departure from it says how
much of that departure is real (its coefficient, with a heteroskedasticity-robust standard error). The
departure is kept, scaled by that coefficient, only when the coefficient is positive at the 97.5% level
(one-sided) — a fixed statistical convention, not a threshold chosen on any one world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy.stats import norm
from sklearn.model_selection import GroupKFold

ESTABLISHED_LEVEL = 0.95
"""A strategy's effect is *established* when its two-sided 95% interval excludes zero."""
HETEROGENEITY_Z = float(norm.ppf(0.975))
"""One-sided 97.5% test of the learner's departure from the average effect."""
MIN_ARM_ROWS = 10


@dataclass(frozen=True)
class AverageEffect:
    """A strategy's relative effect on 28-day net GMV, with its intervals."""

    relative: float
    se: float
    low: float
    """Lower bound of the 95% interval (`ESTABLISHED_LEVEL`)."""
    high: float
    low_80: float
    high_80: float
    n_treated: int
    n_control: int
    method: str
    """``randomized`` (ratio of totals between the arms), ``aipw`` (targeted rows only) or ``none``."""

    @property
    def established(self) -> bool:
        """Whether the 95% interval excludes zero (the sign of the effect is known)."""
        return self.method != "none" and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return {
            "ate_relative": self.relative,
            "ate_se": self.se,
            "ate_low": self.low,
            "ate_high": self.high,
            "ate_n_treated": self.n_treated,
            "ate_n_control": self.n_control,
            "ate_method": self.method,
            "established": self.established,
        }


NO_EFFECT = AverageEffect(0.0, float("inf"), -np.inf, np.inf, -np.inf, np.inf, 0, 0, "none")


def _ratio(after: np.ndarray, before: np.ndarray, treated: np.ndarray) -> float:
    t, c = treated, ~treated
    rate_t = after[t].sum() / max(before[t].sum(), 1e-9)
    rate_c = after[c].sum() / max(before[c].sum(), 1e-9)
    return float(rate_t / rate_c - 1.0) if rate_c > 0 else 0.0


def _interval(point: float, se: float, level: float) -> tuple[float, float]:
    z = float(norm.ppf(0.5 + level / 2))
    return point - z * se, point + z * se


def average_effect(
    after: np.ndarray,
    before: np.ndarray,
    treated: np.ndarray,
    *,
    n_boot: int = 400,
    seed: int = 0,
) -> AverageEffect:
    """The ratio-of-totals effect of randomized rows: (Σ after / Σ before among the treated) ÷ (the same
    among the controls) − 1, with a bootstrap standard error (rows resampled within each arm) and normal
    intervals. Returns `NO_EFFECT` when an arm has fewer than `MIN_ARM_ROWS` rows or no sales before."""
    after, before = np.asarray(after, float), np.asarray(before, float)
    treated = np.asarray(treated).astype(bool)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    if n_t < MIN_ARM_ROWS or n_c < MIN_ARM_ROWS or before[treated].sum() <= 0 or before[~treated].sum() <= 0:
        return NO_EFFECT
    point = _ratio(after, before, treated)
    rng = np.random.default_rng(seed)
    t_idx, c_idx = np.flatnonzero(treated), np.flatnonzero(~treated)
    replicas = np.empty(n_boot)
    for b in range(n_boot):
        rows = np.concatenate([rng.choice(t_idx, n_t), rng.choice(c_idx, n_c)])
        replicas[b] = _ratio(after[rows], before[rows], treated[rows])
    se = float(np.std(replicas, ddof=1))
    low, high = _interval(point, se, ESTABLISHED_LEVEL)
    low_80, high_80 = _interval(point, se, 0.8)
    return AverageEffect(point, se, low, high, low_80, high_80, n_t, n_c, "randomized")


def aipw_average_effect(psi: np.ndarray, before: np.ndarray, treated: np.ndarray) -> AverageEffect:
    """The relative effect from AIPW pseudo-outcomes of the USD change (targeted rows): mean ψ over the
    mean before-window GMV, with the plug-in standard error of the mean."""
    psi, before = np.asarray(psi, float), np.asarray(before, float)
    treated = np.asarray(treated).astype(bool)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    scale = before.mean() if len(before) else 0.0
    if n_t < MIN_ARM_ROWS or n_c < MIN_ARM_ROWS or scale <= 0:
        return NO_EFFECT
    point = float(psi.mean() / scale)
    se = float(psi.std(ddof=1) / np.sqrt(len(psi)) / scale)
    low, high = _interval(point, se, ESTABLISHED_LEVEL)
    low_80, high_80 = _interval(point, se, 0.8)
    return AverageEffect(point, se, low, high, low_80, high_80, n_t, n_c, "aipw")


@dataclass(frozen=True)
class HeterogeneityTest:
    """The best linear predictor's coefficient on the learner's departure from the average effect."""

    slope: float
    se: float
    n: int

    @property
    def t(self) -> float:
        return self.slope / self.se if self.se > 0 else 0.0

    @property
    def real(self) -> bool:
        """Whether the departure predicts the pseudo-outcomes (one-sided, `HETEROGENEITY_Z`)."""
        return np.isfinite(self.t) and self.t > HETEROGENEITY_Z

    @property
    def kept(self) -> float:
        """How much of the departure is kept: the coefficient, within [0, 1], where real; else 0."""
        return float(np.clip(self.slope, 0.0, 1.0)) if self.real else 0.0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "heterogeneity_slope": self.slope,
            "heterogeneity_se": self.se,
            "heterogeneity_t": self.t,
            "heterogeneity_n": self.n,
            "heterogeneity_real": self.real,
            "heterogeneity_kept": self.kept,
        }


NO_HETEROGENEITY = HeterogeneityTest(0.0, float("inf"), 0)


def heterogeneity_test(base: np.ndarray, learner: np.ndarray, psi: np.ndarray) -> HeterogeneityTest:
    """OLS of the pseudo-outcomes ``psi`` on an intercept, the average-effect prediction ``base`` and the
    learner's departure from it (``learner − base``), all in USD, with HC1 standard errors."""
    base, learner, psi = (np.asarray(a, float) for a in (base, learner, psi))
    departure = learner - base
    if len(psi) < 20 or np.std(departure) <= 1e-12:
        return NO_HETEROGENEITY
    design = np.column_stack([np.ones(len(psi)), base, departure])
    fit = sm.OLS(psi, design).fit(cov_type="HC1")
    return HeterogeneityTest(float(fit.params[2]), float(fit.bse[2]), len(psi))


def cross_fitted(
    groups: np.ndarray,
    folds: int,
    seed: int,
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Out-of-fold predictions: for each fold of ``groups`` (entities: all of an entity's rows fall in
    one fold), ``fit_predict(train_rows, test_rows)`` fits on the other folds and predicts the fold."""
    out = np.full(len(groups), np.nan)
    codes = np.unique(groups, return_inverse=True)[1]
    shuffled = np.random.default_rng(seed).permutation(codes.max() + 1)[codes]
    for train, test in GroupKFold(n_splits=folds).split(np.zeros(len(groups)), groups=shuffled):
        out[test] = fit_predict(train, test)
    return out
