"""How good is an uplift model? Qini, AUUC and uplift@k on randomized holdouts, scores against AIPW
pseudo-outcomes for targeted data, and — because the simulator knows the truth — rank correlation,
RMSE and policy value against the true effects.

Conventions (libraries disagree; these are ours, and the Models page prints them):

- Curves are evaluated on a grid of targeted fractions φ = 0, 1/G, …, 1 of the rows sorted by score,
  highest first.
- **Qini curve** (continuous outcome): Q(φ) = ΣY_t(φ) − ΣY_c(φ) · N_t(φ)/N_c(φ), the incremental GMV of
  the targeted treated rows over what their controls suggest, in USD (0 while no control is targeted).
  The **random** curve is the line φ·Q(1). The **perfect** curve is the empirical best ordering of the
  data: treated rows by descending outcome and control rows by ascending outcome, interleaved so every
  prefix keeps the overall treated/control ratio.
- **Qini area** = mean over the grid of Q_model − Q_random (USD); the **Qini coefficient** divides it by
  the same area of the perfect curve (1 = perfect, 0 = random, < 0 worse than random).
- **Uplift curve** (cumulative gain): U(φ) = (Ȳ_t(φ) − Ȳ_c(φ)) · N(φ); **AUUC** = mean over the grid of
  U(φ) − φ·U(1), divided by N: incremental USD per row above random targeting.
- **uplift@k** = Ȳ_t − Ȳ_c among the top k of rows.
- Intervals are percentile bootstrap intervals over rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl
from scipy.stats import spearmanr

GRID = 50


def _cumulative(score: np.ndarray, y: np.ndarray, treated: np.ndarray, grid: int) -> tuple[np.ndarray, ...]:
    order = np.argsort(-score, kind="stable")
    t = treated[order].astype(float)
    yo = y[order]
    n = len(y)
    cut = np.round(np.linspace(0, 1, grid + 1) * n).astype(int)
    cum = lambda v: np.concatenate([[0.0], np.cumsum(v)])[cut]  # noqa: E731
    return cum(t), cum(1 - t), cum(yo * t), cum(yo * (1 - t)), cut


def qini_curve(score: np.ndarray, y: np.ndarray, treated: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Q(φ) on the grid (length grid + 1)."""
    nt, nc, yt, yc, _ = _cumulative(score, y, treated, grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nc > 0, yt - yc * nt / np.where(nc > 0, nc, 1), 0.0)


def uplift_curve(score: np.ndarray, y: np.ndarray, treated: np.ndarray, grid: int = GRID) -> np.ndarray:
    """U(φ) = (Ȳ_t − Ȳ_c)·N on the grid."""
    nt, nc, yt, yc, cut = _cumulative(score, y, treated, grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where((nt > 0) & (nc > 0), yt / np.maximum(nt, 1) - yc / np.maximum(nc, 1), 0.0)
    return gap * cut


def perfect_score(y: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """The empirical best ordering: treated rows by descending outcome and control rows by ascending
    outcome, interleaved so that every prefix keeps the overall treated/control ratio."""
    score = np.zeros(len(y))
    for mask, sign in ((treated, -1.0), (~treated, 1.0)):
        idx = np.flatnonzero(mask)
        if len(idx):
            order = idx[np.argsort(sign * y[idx], kind="stable")]
            score[order] = 1.0 - np.arange(len(idx)) / len(idx)
    return score


@dataclass(frozen=True)
class HoldoutScores:
    """Randomized-holdout metrics of one model for one strategy."""

    qini_area: float
    qini_coefficient: float
    auuc: float
    uplift_at_10: float
    uplift_at_20: float
    uplift_at_30: float
    n_treated: int
    n_control: int

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def uplift_at(score: np.ndarray, y: np.ndarray, treated: np.ndarray, fraction: float) -> float:
    """Ȳ_t − Ȳ_c among the top ``fraction`` of rows by score (nan when an arm is missing there)."""
    top = np.argsort(-score, kind="stable")[: max(int(round(fraction * len(y))), 1)]
    t, c = treated[top], ~treated[top]
    if t.sum() == 0 or c.sum() == 0:
        return float("nan")
    return float(y[top][t].mean() - y[top][c].mean())


def holdout_scores(score: np.ndarray, y: np.ndarray, treated: np.ndarray, grid: int = GRID) -> HoldoutScores:
    """Qini area and coefficient, AUUC and uplift@10/20/30% of a score on a randomized holdout."""
    score, y, treated = np.asarray(score, float), np.asarray(y, float), np.asarray(treated, bool)
    phi = np.linspace(0, 1, grid + 1)
    q = qini_curve(score, y, treated, grid)
    q_perfect = qini_curve(perfect_score(y, treated), y, treated, grid)
    area = float(np.mean(q - phi * q[-1]))
    perfect_area = float(np.mean(q_perfect - phi * q_perfect[-1]))
    u = uplift_curve(score, y, treated, grid)
    return HoldoutScores(
        qini_area=area,
        qini_coefficient=area / perfect_area if perfect_area > 0 else float("nan"),
        auuc=float(np.mean(u - phi * u[-1]) / max(len(y), 1)),
        uplift_at_10=uplift_at(score, y, treated, 0.1),
        uplift_at_20=uplift_at(score, y, treated, 0.2),
        uplift_at_30=uplift_at(score, y, treated, 0.3),
        n_treated=int(treated.sum()),
        n_control=int((~treated).sum()),
    )


def bootstrap_intervals(
    score: np.ndarray,
    y: np.ndarray,
    treated: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    coverage: float = 0.9,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the holdout metrics (rows resampled with replacement)."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    n = len(y)
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        for key, value in holdout_scores(score[pick], y[pick], treated[pick]).as_dict().items():
            draws.setdefault(key, []).append(value)
    tail = (1 - coverage) / 2
    out = {}
    for key, values in draws.items():
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        if key.startswith("n_") or len(finite) == 0:
            continue
        out[key] = (float(np.quantile(finite, tail)), float(np.quantile(finite, 1 - tail)))
    return out


def curves_frame(score: np.ndarray, y: np.ndarray, treated: np.ndarray, grid: int = GRID) -> pl.DataFrame:
    """Model, random and perfect Qini curves, long format (for charts)."""
    phi = np.linspace(0, 1, grid + 1)
    q = qini_curve(score, y, treated, grid)
    perfect = qini_curve(perfect_score(y, treated), y, treated, grid)
    return pl.concat(
        [
            pl.DataFrame({"fraction": phi, "curve": name, "incremental_gmv": values})
            for name, values in (("model", q), ("random", phi * q[-1]), ("perfect", perfect))
        ]
    )


def pseudo_outcome_scores(score: np.ndarray, psi: np.ndarray, grid: int = GRID) -> dict[str, float]:
    """For targeted (non-randomized) data: scores against AIPW pseudo-outcomes ψ, whose mean over a set of
    rows estimates the average effect there. Returns the estimated effect among the top 20% and overall,
    and the area between the cumulative-ψ curve and the random line per row."""
    order = np.argsort(-np.asarray(score), kind="stable")
    n = len(psi)
    cut = np.round(np.linspace(0, 1, grid + 1) * n).astype(int)
    gain = np.concatenate([[0.0], np.cumsum(psi[order])])[cut]
    phi = np.linspace(0, 1, grid + 1)
    top = order[: max(int(round(0.2 * n)), 1)]
    return {
        "aipw_uplift_top20": float(psi[top].mean()),
        "aipw_uplift_all": float(psi.mean()),
        "aipw_gain_area": float(np.mean(gain - phi * gain[-1]) / max(n, 1)),
    }


@dataclass(frozen=True)
class TruthScores:
    """Predicted against true uplift (simulator only)."""

    spearman: float
    rmse: float
    policy_value_top20: float
    random_top20: float
    treat_everyone: float
    oracle_top20: float

    @property
    def policy_vs_oracle(self) -> float:
        return self.policy_value_top20 / self.oracle_top20 if self.oracle_top20 > 0 else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {**self.__dict__, "policy_vs_oracle": self.policy_vs_oracle}


TRUTH_SCORE_NAMES: tuple[str, ...] = (*(f.name for f in fields(TruthScores)), "policy_vs_oracle")
"""The keys of `TruthScores.as_dict` (what the truth-based metrics are called, with a prefix)."""


def truth_scores(predicted: np.ndarray, true: np.ndarray, fraction: float = 0.2) -> TruthScores:
    """Rank correlation and RMSE with the truth, and the policy value of treating the top ``fraction`` by
    prediction — the true incremental GMV earned — against random targeting, everyone and the oracle."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    k = max(int(round(fraction * len(true))), 1)
    by_model = np.argsort(-predicted, kind="stable")[:k]
    by_truth = np.argsort(-true, kind="stable")[:k]
    rho = spearmanr(predicted, true).statistic if len(true) > 2 else float("nan")
    return TruthScores(
        spearman=float(rho),
        rmse=float(np.sqrt(np.mean((predicted - true) ** 2))),
        policy_value_top20=float(true[by_model].sum()),
        random_top20=float(fraction * true.sum()),
        treat_everyone=float(true.sum()),
        oracle_top20=float(true[by_truth].sum()),
    )


def calibration_by_decile(
    score: np.ndarray, y: np.ndarray, treated: np.ndarray, bins: int = 10
) -> pl.DataFrame:
    """Mean predicted uplift against the observed difference in means, by decile of the prediction."""
    frame = pl.DataFrame({"score": score, "y": y, "treated": treated}).with_columns(
        decile=(pl.col("score").rank("ordinal") * bins / (pl.len() + 1)).floor().cast(pl.Int32) + 1
    )
    return (
        frame.group_by("decile")
        .agg(
            predicted=pl.col("score").mean(),
            observed=pl.col("y").filter(pl.col("treated")).mean()
            - pl.col("y").filter(~pl.col("treated")).mean(),
            n_treated=pl.col("treated").sum(),
            n_control=(~pl.col("treated")).sum(),
        )
        .sort("decile")
    )


@dataclass(frozen=True)
class Calibration:
    """Best linear predictor of the effect on a randomized holdout (Chernozhukov, Demirer, Duflo and
    Fernández-Val): ``ate`` is the average effect and ``slope`` how much of the predicted heterogeneity
    is real (1 = as predicted, 0 = none), with its standard error."""

    ate: float
    ate_se: float
    slope: float
    slope_se: float

    def as_dict(self) -> dict[str, float]:
        return {
            "blp_ate": self.ate,
            "blp_ate_se": self.ate_se,
            "blp_slope": self.slope,
            "blp_slope_se": self.slope_se,
        }


def best_linear_predictor(
    y: np.ndarray,
    treated: np.ndarray,
    propensity: np.ndarray,
    predicted: np.ndarray,
    baseline: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> Calibration:
    """Weighted least squares of y on [1, baseline, T − p, (T − p)(τ̂ − mean τ̂)] with weights
    w / (p(1 − p)); heteroskedasticity-robust (HC0) standard errors. ``baseline``
    (a prediction of y without treatment) is optional: it only takes noise out."""
    y, p = np.asarray(y, float), np.asarray(propensity, float)
    t = np.asarray(treated, float)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, float)
    centered = predicted - np.average(predicted, weights=w)
    covariates = [] if baseline is None or np.ptp(baseline) == 0 else [np.asarray(baseline, float)]
    design = np.column_stack([np.ones(len(y)), *covariates, t - p, (t - p) * centered])
    weights = w / (p * (1 - p))
    gram = (design.T * weights) @ design
    if len(y) < 8 or np.linalg.matrix_rank(gram) < design.shape[1]:
        return Calibration(float("nan"), float("nan"), float("nan"), float("nan"))
    bread = np.linalg.inv(gram)
    beta = bread @ ((design.T * weights) @ y)
    residual = y - design @ beta
    meat = (design.T * (weights * residual) ** 2) @ design
    cov = bread @ meat @ bread
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    return Calibration(float(beta[-2]), float(se[-2]), float(beta[-1]), float(se[-1]))


def paired_qini_gain(
    scores: dict[str, np.ndarray],
    y: np.ndarray,
    treated: np.ndarray,
    baseline: str,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """For every score, the share of paired bootstrap resamples of the holdout rows in which its Qini area
    beats ``baseline``'s (the same resample for all scores, so the comparison is not swamped by the
    resampling noise they share)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    wins = dict.fromkeys(scores, 0)
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        areas = {
            name: holdout_scores(s[pick], y[pick], treated[pick]).qini_area for name, s in scores.items()
        }
        for name, area in areas.items():
            wins[name] += area > areas[baseline]
    return {name: count / n_boot for name, count in wins.items()}
