"""Fit, select, calibrate and evaluate the uplift learners of one entity kind.

One learner per strategy, fitted on that strategy's treated and control rows plus the pure controls of
the other strategies (entities that got no strategy in that wave). Every candidate learner is fitted on
the training entities and scored on a randomized holdout of entities (30% by default; all their rows
are held out).

- Outcome: the learners model the relative change of GMV per click (GMV at the before window's
  clicks); a strategy's effect on clicks is one number, applied when clearly non-zero (see
  `ModelConfig.outcome` and `traffic_effect`).
- Calibration: the holdout's best linear predictor says how much of a learner's predicted
  heterogeneity is real; predictions are shrunk towards the learner's mean effect by that slope
  (clipped to [0, 1]). GMV is heavy-tailed and the holdouts small, so most of what an unshrunk
  learner predicts beyond the mean is noise, and the ranking of entities (relative effect × GMV) gets
  scrambled by it.
- Selection: the default learner (the average of the T-, X- and DR-learners, which varies less than any
  of them) is kept unless another beats its holdout Qini area in 95% of paired bootstrap resamples.

The chosen learner is refitted on every row of the strategy, with bootstrap replicas for the intervals.
Targeted (non-randomized) rows of the holdout entities are scored against cross-fitted AIPW
pseudo-outcomes; where the simulator's truth is given, predictions are also scored against the true
effects.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core.tasks import TaskMap, in_process
from strategies import evaluation
from strategies.effects import NO_EFFECT, NO_HETEROGENEITY, AverageEffect, average_effect
from strategies.evidence import ArmEvidence, fit_arm_evidence, net_baseline
from strategies.learners import LEARNERS, AverageLearner, UpliftLearner
from strategies.learners.average import MEMBERS as AVERAGE_MEMBERS
from strategies.learners.base import regressor
from strategies.learners.dr_learner import aipw_pseudo_outcomes
from strategies.training import ARMS

# Columns that are identifiers, free text or bookkeeping, never model inputs.
NOT_FEATURES = frozenset(
    {
        "entity_id",
        "creator_id",
        "merchant_id",
        "handle",
        "name",
        "bio",
        "intervention_id",
        "entity_kind",
        "strategy",
        "assigned_on",
        "arm",
        "assignment",
        "arm_index",
        "treated",
        "features_as_of",
        "gmv_after",
        "gmv_before",
        "net_gmv_after",
        "net_gmv_before",
        "clicks_after",
        "clicks_before",
        "as_of",
        "joined_on",
        "first_sale_on",
        "last_active_on",
        "build_id",
    }
)
MAX_LEVELS = 30


@dataclass(frozen=True)
class ModelConfig:
    """How the uplift models are fitted and chosen."""

    learners: tuple[str, ...] = ("t_learner", "x_learner", "dr_learner", "average")
    # Selection: the default learner is kept unless another beats its holdout Qini area in at least
    # `switch_share` of paired bootstrap resamples (small holdouts make the plain best-Qini choice noise;
    # with three challengers, 0.99 keeps a lucky switch near 3% (Bonferroni) — at 0.95 a DR learner that
    # "won" 95% of resamples replaced the average and turned a policy value of 0.00 into −1.14, see
    # docs/strategies.md "Selection").
    default_learner: str = "average"
    switch_share: float = 0.99
    holdout_share: float = 0.3
    n_estimators: int = 80
    max_depth: int = 4
    # the LightGBM trees of every outcome and effect model: "rf" (averaged trees, each on a 63% subsample:
    # on `demo` it lifted the merchants' policy value over "gbdt", boosting, which fits the noise; see
    # `strategies.learners.base.regressor`)
    boosting: str = "rf"
    n_bootstrap: int = 10
    seed: int = 7
    # "conversion" (GMV = clicks × GMV per click): the learners model the relative change of GMV per
    # click, (after at the before window's clicks − before) / before, and each strategy's effect on
    # clicks is one mean effect (see `traffic_effect`); the relative uplift is (1 + traffic) × (1 +
    # conversion) − 1, and the USD uplift that times the entity's GMV of the last 28 days. Reach is the
    # noisiest part of GMV: on `demo` per-click changes vary half as much as GMV changes.
    # "relative": the relative change of GMV itself, (after − before) / before. "change": after −
    # before in USD. "level": GMV after, in USD.
    outcome: str = "conversion"
    max_training_rows: int = 60_000  # larger training sets are sampled by entity (scores use everything)
    baseline_column: str = "gmv_28d"
    baseline_floor: float = 50.0
    # relative targets: rows weigh baseline ** weight_power (0: equal weights, which keeps the effective
    # sample size; 1 lets the few biggest sellers dominate)
    weight_power: float = 0.0
    # "conversion": a strategy's traffic effect is applied only this many standard errors from zero
    # (3 ≈ a 1% two-sided test after a Bonferroni correction over a kind's four strategies)
    traffic_z: float = 3.0
    traffic_bootstrap: int = 200
    relative_cap: float = 5.0
    # Shrink each strategy's predicted heterogeneity towards its mean effect by the slope of the best
    # linear predictor on the randomized holdout (clipped to [0, 1]): with noisy outcomes most of what a
    # learner predicts beyond the mean is noise, and the holdout says how much of it is not.
    shrink: bool = True
    # "learners" (the default): the per-strategy learner selection above. "evidence": each strategy's
    # average effect on net GMV from its randomized pilots, scaled by the entity's net GMV, plus a
    # learner's heterogeneity only where cross-fitted validation shows it (`strategies.evidence`); under
    # evaluation on the simulator's worlds (bench/bench_worlds.py), not yet the default.
    policy: str = "learners"


@dataclass
class FeatureEncoder:
    """Numeric features as they are; categorical ones one-hot encoded (``column=level``)."""

    numeric: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pl.DataFrame) -> FeatureEncoder:
        numeric, categorical = [], {}
        for name, dtype in frame.schema.items():
            if name in NOT_FEATURES:
                continue
            if dtype.is_numeric() or dtype == pl.Boolean:
                numeric.append(name)
            elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
                levels = frame[name].cast(pl.String).drop_nulls().unique().sort().to_list()
                if 1 < len(levels) <= MAX_LEVELS:
                    categorical[name] = levels
        return cls(numeric, categorical)

    @property
    def names(self) -> list[str]:
        return self.numeric + [f"{c}={level}" for c, levels in self.categorical.items() for level in levels]

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        numeric = frame.select(
            pl.col(c).cast(pl.Float64) if c in frame.columns else pl.lit(None, pl.Float64).alias(c)
            for c in self.numeric
        )
        dummies = frame.select(
            (pl.col(c).cast(pl.String) == level).fill_null(False).cast(pl.Float64).alias(f"{c}={level}")
            for c, levels in self.categorical.items()
            for level in levels
        )
        matrix = pl.concat([numeric, dummies], how="horizontal").fill_nan(None).to_numpy().astype(float)
        # Multithreaded sums upstream differ in their last bits from run to run; rounding keeps the
        # trees (and so every figure derived from them) the same on the same data.
        return np.round(matrix, 6)

    def values(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The encoded features as a frame (dummies as 0/1), for explanations."""
        return pl.DataFrame(self.transform(frame), schema=self.names, orient="row")


def _change(frame: pl.DataFrame) -> np.ndarray:
    """After − before, in USD: what the holdout metrics score (whatever the training target)."""
    return np.round((frame["gmv_after"] - frame["gmv_before"]).to_numpy().astype(float), 2)


def gmv_after_at_before_clicks() -> pl.Expr:
    """GMV in the 28 days after assignment at the before window's clicks (GMV in cents, as the targets
    read it): the outcome of the conversion target. An entity without clicks in either window carries no
    conversion signal and keeps its before GMV (no change)."""
    seen = (pl.col("clicks_after") > 0) & (pl.col("clicks_before") > 0)
    after = pl.col("gmv_after").cast(pl.Float64).round(2)
    return (
        pl.when(seen)
        .then(after * pl.col("clicks_before") / pl.col("clicks_after"))
        .otherwise(pl.col("gmv_before").cast(pl.Float64).round(2))
        .alias("gmv_after_at_before_clicks")
    )


def _target(frame: pl.DataFrame, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The learners' training target and sample weights (see ``ModelConfig.outcome``)."""
    after = np.round(frame["gmv_after"].to_numpy().astype(float), 2)
    before = np.round(frame["gmv_before"].to_numpy().astype(float), 2)
    if cfg.outcome == "level":
        return after, np.ones(len(after))
    if cfg.outcome == "change":
        return after - before, np.ones(len(after))
    weight = np.clip(before, cfg.baseline_floor, max(np.quantile(before, 0.99), cfg.baseline_floor))
    weight = weight**cfg.weight_power
    if cfg.outcome == "log_ratio":
        return np.log((after + cfg.baseline_floor) / (before + cfg.baseline_floor)), weight
    if cfg.outcome == "conversion":
        after = frame.select(gmv_after_at_before_clicks()).to_series().to_numpy()
    denominator = np.maximum(before, cfg.baseline_floor)
    y = np.clip((after - before) / denominator, -1.0, cfg.relative_cap)
    return y, weight


def traffic_effect(frame: pl.DataFrame, cfg: ModelConfig) -> dict[str, float]:
    """A strategy's mean relative effect on clicks, from its randomized rows (all rows if none): the
    ratio of total clicks after to before among the treated, over the same ratio among the controls,
    minus 1 (totals, as the USD uplift adds up, so big sellers weigh most), with a bootstrap standard
    error. Applied to predictions only when it is ``cfg.traffic_z`` standard errors from zero: on
    `demo` the estimate's noise (SE 0.05–0.08 for merchants) is as large as the conversion effects, and
    an unfounded traffic effect moves every entity's uplift by the same share of its GMV, which
    reorders the entities by size. ``frame`` has the strategy's rows (``treated`` 1/0)."""
    none = {"traffic_effect": 0.0, "traffic_effect_raw": 0.0, "traffic_effect_se": 0.0}
    if cfg.outcome != "conversion" or frame.height == 0:
        return none
    rows = frame.filter(pl.col("assignment") == "randomized")
    rows = rows if rows["treated"].n_unique() == 2 else frame
    treated = rows["treated"].to_numpy() == 1
    if treated.sum() < 2 or (~treated).sum() < 2:
        return none
    after, before = (rows[c].to_numpy().astype(float) for c in ("clicks_after", "clicks_before"))

    def estimate(t: np.ndarray, c: np.ndarray) -> float:
        ratio_t = after[t].sum() / max(before[t].sum(), 1.0)
        ratio_c = after[c].sum() / max(before[c].sum(), 1.0)
        return float(ratio_t / ratio_c - 1.0) if ratio_c > 0 else 0.0

    t_idx, c_idx = np.flatnonzero(treated), np.flatnonzero(~treated)
    point = estimate(t_idx, c_idx)
    rng = np.random.default_rng(cfg.seed)
    replicas = [
        estimate(rng.choice(t_idx, len(t_idx)), rng.choice(c_idx, len(c_idx)))
        for _ in range(cfg.traffic_bootstrap)
    ]
    se = float(np.std(replicas))
    applied = point if se > 0 and abs(point) >= cfg.traffic_z * se else 0.0
    return {"traffic_effect": applied, "traffic_effect_raw": point, "traffic_effect_se": se}


def combine(traffic: float, conversion: np.ndarray) -> np.ndarray:
    """The relative GMV uplift of a traffic and a conversion effect: (1 + traffic)(1 + conversion) − 1."""
    return (1.0 + traffic) * (1.0 + conversion) - 1.0


def _scale(frame: pl.DataFrame, cfg: ModelConfig) -> np.ndarray:
    """What turns a learner's prediction into USD of uplift: the baseline GMV for relative targets."""
    if cfg.outcome not in ("relative", "log_ratio", "conversion"):
        return np.ones(frame.height)
    return frame[cfg.baseline_column].fill_null(0.0).clip(lower_bound=0.0).to_numpy().astype(float)


def holdout_entities(frame: pl.DataFrame, share: float, seed: int) -> pl.Series:
    """A stable pseudo-random share of the entities with randomized rows (hash of id and seed)."""
    ids = frame.filter(pl.col("assignment") == "randomized")["entity_id"].unique().sort()
    picked = [
        i
        for i in ids.to_list()
        if int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share
    ]
    return pl.Series("entity_id", picked, dtype=pl.String)


@dataclass
class KindModel:
    """The fitted models of one entity kind, with their evaluation: one uplift learner per strategy,
    fitted on that strategy's own treated and control rows."""

    kind: str
    arms: tuple[str, ...]
    encoder: FeatureEncoder
    learners: dict[str, UpliftLearner]  # by strategy (absent: too few rows, predicted 0)
    chosen: dict[str, str]  # strategy → learner name
    metrics: pl.DataFrame  # one row per (strategy, learner)
    curves: pl.DataFrame  # Qini curves of the chosen learner on the randomized holdout
    calibration: pl.DataFrame
    n_train: int
    n_holdout: int
    config: ModelConfig = field(default_factory=ModelConfig)
    # strategy → (center, slope): prediction = center + slope · (learner's prediction − center)
    shrinkage: dict[str, tuple[float, float]] = field(default_factory=dict)
    # strategy → its mean relative effect on clicks ("conversion" outcome; see `traffic_effect`)
    traffic: dict[str, float] = field(default_factory=dict)
    # strategy → what its pilots establish ("evidence" policy; empty for "learners")
    evidence: dict[str, ArmEvidence] = field(default_factory=dict)

    # strategy → its pilots' average effect ("learners" policy; the "evidence" policy keeps it in
    # `evidence`): one definition of "established" for the board, the export and the pilot proposals
    pilot_effects: dict[str, AverageEffect] = field(default_factory=dict)

    def average_effect(self, arm: str) -> AverageEffect:
        """The strategy's average effect on 28-day net GMV from its randomized pilots."""
        if arm in self.evidence:
            return self.evidence[arm].effect
        return self.pilot_effects.get(arm, NO_EFFECT)

    def established(self) -> dict[str, bool]:
        """Strategy → whether its pilots establish the sign of its average effect (95% interval)."""
        return {arm: self.average_effect(arm).established for arm in self.arms}

    def _conversion(self, arm: str, raw: np.ndarray) -> np.ndarray:
        """The learner's prediction shrunk towards its mean effect."""
        center, slope = self.shrinkage.get(arm, (0.0, 1.0))
        return center + slope * (raw - center)

    def _shrink(self, arm: str, raw: np.ndarray) -> np.ndarray:
        """The relative uplift: the shrunk prediction combined with the strategy's traffic effect."""
        return combine(self.traffic.get(arm, 0.0), self._conversion(arm, raw))

    def _raw(self, x: np.ndarray, arm: str) -> np.ndarray:
        learner = self.learners.get(arm)
        return self._shrink(arm, learner.predict(x)[:, 0]) if learner is not None else np.zeros(len(x))

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """(n, K) expected 28-day incremental GMV (USD) of every arm, each from its strategy's learner."""
        x = self.encoder.transform(frame)
        if self.evidence:
            relative = np.column_stack([self._evidence(arm).relative(x) for arm in self.arms])
            return relative * net_baseline(frame)[:, None]
        raw = np.column_stack([self._raw(x, arm) for arm in self.arms])
        return raw * _scale(frame, self.config)[:, None]

    def _evidence(self, arm: str) -> ArmEvidence:
        return self.evidence.get(arm) or ArmEvidence(NO_EFFECT, NO_HETEROGENEITY)

    def predict_interval(self, frame: pl.DataFrame, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """Interval of :meth:`predict` (USD), centred on it: the prediction ± the normal quantile times
        the bootstrap replicas' spread (`UpliftLearner.interval_half_width`), scaled as the prediction
        is. By construction an interval touches its estimate only when its width is zero (the replicas
        agree, or the strategy has no model), so nothing is clipped: percentiles of the replicas, moved
        with the shrunk prediction, had left the estimate outside and were widened to touch it (19% of
        the recommendations read "$82,350 (80% interval $82,350 – $198,803)").

        The spread is not shrunk: it holds the uncertainty of the strategy's mean effect, which shrinking
        towards that mean does not remove (shrinking it as well gave zero-width intervals exactly where
        the holdout found no heterogeneity, i.e. where the model knows least).
        """
        x = self.encoder.transform(frame)
        if self.evidence:  # the average effect's normal interval, moved with the departure: centred
            relative = [self._evidence(arm).relative_interval(x) for arm in self.arms]
            baseline = net_baseline(frame)[:, None]
            return (
                np.column_stack([b[0] for b in relative]) * baseline,
                np.column_stack([b[1] for b in relative]) * baseline,
            )
        point = self.predict(frame)
        scale = _scale(frame, self.config)
        half = np.zeros_like(point)
        for k, arm in enumerate(self.arms):
            learner = self.learners.get(arm)
            if learner is not None:
                # (1 + traffic) scales the conversion effect and so its spread (see `combine`)
                spread = learner.interval_half_width(x, coverage)[:, 0]
                half[:, k] = abs(1.0 + self.traffic.get(arm, 0.0)) * spread * scale
        return point - half, point + half

    def explain(self, frame: pl.DataFrame, arm: str) -> np.ndarray:
        """Tree SHAP contributions (USD) of one arm's uplift, (n, features + 1); rows sum to predict()."""
        x = self.encoder.transform(frame)
        if self.evidence:
            return self._evidence(arm).contributions(x) * net_baseline(frame)[:, None]
        learner = self.learners.get(arm)
        if learner is None:
            return np.zeros((len(x), x.shape[1] + 1))
        center, slope = self.shrinkage.get(arm, (0.0, 1.0))
        traffic = self.traffic.get(arm, 0.0)
        contributions = slope * learner.explain(x, 1)
        contributions[:, -1] += (1 - slope) * center  # the shrunk part belongs to the base value
        # (1 + traffic) scales the conversion effect; the traffic effect itself is the same for everyone
        contributions *= 1.0 + traffic
        contributions[:, -1] += traffic
        return contributions * _scale(frame, self.config)[:, None]


def _make(name: str, cfg: ModelConfig, n_bootstrap: int) -> UpliftLearner:
    return LEARNERS[name](
        n_estimators=cfg.n_estimators,
        max_depth=cfg.max_depth,
        n_bootstrap=n_bootstrap,
        random_state=cfg.seed,
        boosting=cfg.boosting,
    )


def _fit_for_selection(
    name: str,
    cfg: ModelConfig,
    fitted: dict[str, UpliftLearner],
    x: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
) -> UpliftLearner:
    """A learner fitted without bootstrap replicas; the average reuses members fitted already (the same
    arguments give the same models)."""
    members = [cls.name for cls in AVERAGE_MEMBERS]
    if name == AverageLearner.name and all(m in fitted for m in members):
        average = _make(name, cfg, n_bootstrap=0)
        assert isinstance(average, AverageLearner)
        average.members_, average.n_arms_ = [fitted[m] for m in members], fitted[members[0]].n_arms_
        return average
    return _make(name, cfg, n_bootstrap=0).fit(x, treated, y, sample_weight=weight)


def _default(cfg: ModelConfig) -> str:
    return cfg.default_learner if cfg.default_learner in cfg.learners else cfg.learners[-1]


def _select(
    scores: dict[str, np.ndarray], y: np.ndarray, treated: np.ndarray, cfg: ModelConfig
) -> tuple[str, dict[str, float]]:
    """The default learner, unless another beats its holdout Qini area in ``cfg.switch_share`` of paired
    bootstrap resamples (then the one that does so most often); also every learner's share."""
    default = _default(cfg)
    wins = evaluation.paired_qini_gain(scores, y, treated, default, seed=cfg.seed)
    best = max(wins, key=lambda name: wins[name])
    return (best if wins[best] >= cfg.switch_share else default), wins


MIN_ARM_ROWS = 10  # a strategy needs this many treated and control rows to get a model


def strategy_rows(frame: pl.DataFrame, arm: str) -> pl.DataFrame:
    """A strategy's rows: its own treated and control rows, plus the control rows of other strategies
    whose entity got no strategy at all in that wave (pure controls: in a one-strategy-per-wave design
    every control row is one; in a factorial pilot the strategy's own rows hold them already).
    ``treated`` is 1/0."""
    wave = ["entity_id", "assigned_on"]
    untreated_waves = (
        frame.group_by(wave)
        .agg(
            pure=(pl.col("arm") != "treatment").all(),
            has_arm=(pl.col("strategy") == arm).any(),
        )
        .filter(pl.col("pure") & ~pl.col("has_arm"))
        .select(wave)
    )
    own = frame.filter(pl.col("strategy") == arm)
    pooled = frame.join(untreated_waves, on=wave, how="semi").unique(wave, keep="first", maintain_order=True)
    return (
        pl.concat([own, pooled])
        .sort("intervention_id")
        .with_columns(treated=(pl.col("arm") == "treatment").cast(pl.Int64))
    )


def _enough(frame: pl.DataFrame, minimum: int) -> bool:
    treated = int(frame["treated"].sum()) if frame.height else 0
    return treated >= minimum and frame.height - treated >= minimum


@dataclass(frozen=True)
class _Design:
    """Some rows as the learners see them: features, treated (1/0), weighted target."""

    x: np.ndarray
    treated: np.ndarray
    y: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, frame: pl.DataFrame, encoder: FeatureEncoder, cfg: ModelConfig) -> _Design:
        y, weight = _target(frame, cfg)
        return cls(encoder.transform(frame), frame["treated"].to_numpy(), y, weight)


@dataclass(frozen=True)
class _Holdout:
    """What one strategy's learners are scored on: the randomized rows of the holdout entities (scores,
    calibration, truth) and their targeted rows (against cross-fitted AIPW pseudo-outcomes)."""

    randomized: pl.DataFrame
    x: np.ndarray
    change: np.ndarray
    treated: np.ndarray  # bool
    scorable: bool  # enough treated and control rows to score
    calibration: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # target, weight, expected untreated
    targeted: pl.DataFrame
    x_targeted: np.ndarray | None  # None: too few targeted rows to score
    psi_targeted: np.ndarray


def _targeted_pseudo_outcomes(
    data: pl.DataFrame, encoder: FeatureEncoder, in_holdout: pl.Expr, cfg: ModelConfig
) -> np.ndarray:
    """AIPW pseudo-outcomes of the USD change, cross-fitted over all the strategy's rows, of its targeted
    holdout rows."""
    psi_all = aipw_pseudo_outcomes(
        encoder.transform(data),
        data["treated"].to_numpy(),
        _change(data),
        1,
        3,
        cfg.seed,
        lambda s: regressor(cfg.seed + s, cfg.n_estimators, cfg.max_depth, cfg.boosting),
    )[:, 0]
    return psi_all[
        data.with_row_index("_i").filter(in_holdout & (pl.col("assignment") == "targeted"))["_i"].to_numpy()
    ]


def _holdout(
    randomized: pl.DataFrame,
    targeted: pl.DataFrame,
    psi_targeted: np.ndarray,
    encoder: FeatureEncoder,
    fit: _Design,
    cfg: ModelConfig,
) -> _Holdout:
    treated = randomized["treated"].to_numpy().astype(bool)
    scorable = bool(treated.sum() >= 5 and (~treated).sum() >= 5)
    x = encoder.transform(randomized)
    calibration = None
    if scorable and cfg.shrink:
        # what the holdout outcome would be without the strategy (a covariate of the calibration)
        y_held, w_held = _target(randomized, cfg)
        outcome_model = regressor(cfg.seed + 50, cfg.n_estimators, cfg.max_depth, cfg.boosting).fit(
            fit.x, fit.y, sample_weight=fit.weight
        )
        calibration = (y_held, w_held, np.asarray(outcome_model.predict(x)))
    return _Holdout(
        randomized=randomized,
        x=x,
        change=_change(randomized),
        treated=treated,
        scorable=scorable,
        calibration=calibration,
        targeted=targeted,
        x_targeted=encoder.transform(targeted) if targeted.height >= 10 else None,
        psi_targeted=psi_targeted,
    )


def _truth_row(
    arm: str, score: np.ndarray, randomized: pl.DataFrame, truth: pl.DataFrame
) -> dict[str, object]:
    """Scores against the simulator's true effects of the strategy's own holdout rows (pooled controls
    carry another strategy's truth); empty with too few rows."""
    own = (randomized["strategy"] == arm).to_numpy()
    if own.sum() <= 2:
        return {}
    true = randomized.filter(pl.Series(own)).join(truth, on="intervention_id", how="left")
    scores = evaluation.truth_scores(score[own], true["true_uplift_gmv_28d"].to_numpy())
    return {f"holdout_{key}": v for key, v in scores.as_dict().items()}


def _learner_row(
    arm: str,
    name: str,
    learner: UpliftLearner,
    holdout: _Holdout,
    fit: _Design,
    fit_traffic: float,
    truth: pl.DataFrame | None,
    cfg: ModelConfig,
) -> tuple[dict[str, object], np.ndarray, float]:
    """One learner on the holdout: its metrics row, its (calibrated) holdout scores, its shrink slope."""
    raw = learner.predict(holdout.x)[:, 0]
    row: dict[str, object] = {"strategy": arm, "learner": name, "n_holdout": holdout.randomized.height}
    slope = 1.0
    if holdout.calibration is not None:
        y_held, w_held, expected_held = holdout.calibration
        treated = holdout.treated
        calibration = evaluation.best_linear_predictor(
            y_held, treated, np.full(len(raw), treated.mean()), raw, expected_held, w_held
        )
        row.update(calibration.as_dict())
        if np.isfinite(calibration.slope):
            slope = float(np.clip(calibration.slope, 0.0, 1.0))
        center = float(np.average(learner.predict(fit.x)[:, 0], weights=fit.weight))
        raw = center + slope * (raw - center)
    row["shrink_slope"] = slope
    score = combine(fit_traffic, raw) * _scale(holdout.randomized, cfg)
    if holdout.scorable:
        row.update(evaluation.holdout_scores(score, holdout.change, holdout.treated).as_dict())
        intervals = evaluation.bootstrap_intervals(
            score, holdout.change, holdout.treated, n_boot=100, seed=cfg.seed
        )
        for key, (lo, hi) in intervals.items():
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = lo, hi
    if holdout.x_targeted is not None:
        pred_targeted = combine(fit_traffic, learner.predict(holdout.x_targeted)[:, 0]) * _scale(
            holdout.targeted, cfg
        )
        row.update(evaluation.pseudo_outcome_scores(pred_targeted, holdout.psi_targeted))
    if truth is not None:
        row.update(_truth_row(arm, score, holdout.randomized, truth))
    return row, score, slope


@dataclass
class _ArmFit:
    """One strategy's share of a `KindModel` (no learner when the strategy has too few rows)."""

    rows: list[dict[str, object]]
    chosen: str
    learner: UpliftLearner | None = None
    shrinkage: tuple[float, float] = (0.0, 1.0)
    traffic: float = 0.0
    curves: pl.DataFrame | None = None
    calibration: pl.DataFrame | None = None


def _fit_arm(
    train: pl.DataFrame,
    arm: str,
    encoder: FeatureEncoder,
    in_holdout: pl.Expr,
    truth: pl.DataFrame | None,
    cfg: ModelConfig,
) -> _ArmFit:
    """Fit every learner on the strategy's training rows, calibrate and score them on the holdout, choose
    one, refit it on all the strategy's rows."""
    data = strategy_rows(train, arm)
    fit_rows, held = data.filter(~in_holdout), data.filter(in_holdout)
    randomized = held.filter(pl.col("assignment") == "randomized")
    targeted = held.filter(pl.col("assignment") == "targeted")
    if not _enough(fit_rows, MIN_ARM_ROWS):
        return _ArmFit(
            rows=[{"strategy": arm, "learner": _default(cfg), "n_holdout": randomized.height}],
            chosen=_default(cfg),
        )

    psi_targeted = _targeted_pseudo_outcomes(data, encoder, in_holdout, cfg)
    fit_traffic = traffic_effect(fit_rows, cfg)["traffic_effect"]  # the holdout is scored on this
    fit = _Design.of(fit_rows, encoder, cfg)
    holdout = _holdout(randomized, targeted, psi_targeted, encoder, fit, cfg)
    rows: list[dict[str, object]] = []
    scores: dict[str, np.ndarray] = {}
    slopes: dict[str, float] = {}
    fitted: dict[str, UpliftLearner] = {}
    for name in cfg.learners:
        learner = fitted[name] = _fit_for_selection(name, cfg, fitted, fit.x, fit.treated, fit.y, fit.weight)
        row, scores[name], slopes[name] = _learner_row(
            arm, name, learner, holdout, fit, fit_traffic, truth, cfg
        )
        rows.append(row)

    result = _ArmFit(rows=rows, chosen=_default(cfg))
    if holdout.scorable:
        result.chosen, wins = _select(scores, holdout.change, holdout.treated, cfg)
        for row in rows:
            row["beats_default_share"] = wins[str(row["learner"])]
        score = scores[result.chosen]
        strategy = pl.lit(arm)
        result.curves = evaluation.curves_frame(score, holdout.change, holdout.treated).with_columns(
            strategy=strategy
        )
        result.calibration = evaluation.calibration_by_decile(
            score, holdout.change, holdout.treated
        ).with_columns(strategy=strategy)
    everything = _Design.of(data, encoder, cfg)
    result.learner = _make(result.chosen, cfg, cfg.n_bootstrap).fit(
        everything.x, everything.treated, everything.y, sample_weight=everything.weight
    )
    center = float(np.average(result.learner.predict(everything.x)[:, 0], weights=everything.weight))
    result.shrinkage = (center, slopes[result.chosen])
    effect = traffic_effect(data, cfg)
    result.traffic = effect["traffic_effect"]
    for row in rows:
        row.update(effect)
    return result


def _fit_arm_task(
    arm: str,
    *,
    train: pl.DataFrame,
    encoder: FeatureEncoder,
    in_holdout: pl.Expr,
    truth: pl.DataFrame | None,
    cfg: ModelConfig,
) -> _ArmFit:
    """`_fit_arm` with the strategy first: the piece `fit_kind` hands to its ``map_tasks``."""
    return _fit_arm(train, arm, encoder, in_holdout, truth, cfg)


def _subsample_entities(train: pl.DataFrame, cfg: ModelConfig) -> pl.DataFrame:
    """At most about ``cfg.max_training_rows`` rows: a seeded sample of entities, all their rows kept."""
    if train.height <= cfg.max_training_rows:
        return train
    share = cfg.max_training_rows / train.height
    keep = train["entity_id"].unique().sort().sample(fraction=share, seed=cfg.seed)
    return train.filter(pl.col("entity_id").is_in(keep.implode()))


def fit_kind(
    train: pl.DataFrame,
    kind: str,
    cfg: ModelConfig | None = None,
    truth: pl.DataFrame | None = None,
    map_tasks: TaskMap = in_process,
) -> KindModel:
    """Per strategy: fit every learner on the strategy's rows (see `strategy_rows`) of the training entities,
    calibrate and choose one on the randomized holdout, refit it on all the strategy's rows. Controls are
    the strategy's own and other strategies' pure controls, never an entity treated with something else.
    ``truth`` (intervention_id, true_uplift_gmv_28d) adds truth-based metrics (simulator only, never used
    to fit or choose). The strategies are independent fits: ``map_tasks`` runs them (one task each on a
    cluster; in this process, in order, by default), and each is seeded alike either way."""
    cfg = cfg or ModelConfig()
    if cfg.policy == "evidence":
        return fit_kind_evidence(train, kind, cfg, truth)
    arms = ARMS[kind]
    train = _subsample_entities(train, cfg)
    encoder = FeatureEncoder.fit(train)
    holdout_ids = holdout_entities(train, cfg.holdout_share, cfg.seed)
    in_holdout = pl.col("entity_id").is_in(holdout_ids.implode())
    truth_map = truth.select("intervention_id", "true_uplift_gmv_28d") if truth is not None else None
    fit_one = functools.partial(
        _fit_arm_task, train=train, encoder=encoder, in_holdout=in_holdout, truth=truth_map, cfg=cfg
    )
    fits = dict(zip(arms, map_tasks(fit_one, list(arms)), strict=True))

    chosen = {arm: fit.chosen for arm, fit in fits.items()}
    final = {arm: fit.learner for arm, fit in fits.items() if fit.learner is not None}
    curves = [fit.curves for fit in fits.values() if fit.curves is not None]
    calibration = [fit.calibration for fit in fits.values() if fit.calibration is not None]
    rows = [row for fit in fits.values() for row in fit.rows]
    metrics = pl.DataFrame(rows, infer_schema_length=None)
    if "qini_area" not in metrics.columns:
        metrics = metrics.with_columns(qini_area=pl.lit(None, pl.Float64))
    metrics = metrics.with_columns(
        chosen=pl.struct("strategy", "learner").map_elements(
            lambda r: chosen[r["strategy"]] == r["learner"], return_dtype=pl.Boolean
        )
    )
    return KindModel(
        kind=kind,
        arms=arms,
        encoder=encoder,
        learners=final,
        chosen=chosen,
        metrics=metrics,
        curves=pl.concat(curves) if curves else pl.DataFrame(),
        calibration=pl.concat(calibration) if calibration else pl.DataFrame(),
        n_train=train.filter(~in_holdout).height,  # distinct rows (pooled controls serve several strategies)
        n_holdout=train.filter(in_holdout).height,
        config=cfg,
        shrinkage={arm: fit.shrinkage for arm, fit in fits.items() if fit.learner is not None},
        traffic={arm: fit.traffic for arm, fit in fits.items() if fit.learner is not None},
        pilot_effects={arm: pilot_effect(train, arm, cfg.seed) for arm in arms},
    )


def pilot_effect(train: pl.DataFrame, arm: str, seed: int) -> AverageEffect:
    """The average effect of ``arm`` on 28-day net GMV from its randomized rows (`effects.average_effect`)."""
    if "net_gmv_after" not in train.columns:  # a training set cached before net GMV was recorded
        return NO_EFFECT
    rows = strategy_rows(train, arm).filter(pl.col("assignment") == "randomized")
    if rows.height == 0:
        return NO_EFFECT
    return average_effect(
        rows["net_gmv_after"].to_numpy().astype(float),
        rows["net_gmv_before"].to_numpy().astype(float),
        rows["treated"].to_numpy(),
        seed=seed,
    )


def fit_kind_evidence(
    train: pl.DataFrame, kind: str, cfg: ModelConfig | None = None, truth: pl.DataFrame | None = None
) -> KindModel:
    """The "evidence" policy (`strategies.evidence`): per strategy, the average effect of its pilots on
    net GMV and, where cross-fitted validation shows it, the default learner's heterogeneity. Metrics,
    Qini curves and calibration are those of the randomized rows' out-of-fold predictions. ``truth``
    (intervention_id, true_uplift_gmv_28d) adds truth-based metrics (never used to fit or choose)."""
    cfg = cfg or ModelConfig()
    arms = ARMS[kind]
    encoder = FeatureEncoder.fit(train)
    truth_map = truth.select("intervention_id", "true_uplift_gmv_28d") if truth is not None else None
    learner_name = _default(cfg)
    rows: list[dict[str, object]] = []
    evidence: dict[str, ArmEvidence] = {}
    curves, calibration = [], []
    for arm in arms:
        data = strategy_rows(train, arm)
        if data.height == 0:
            continue
        after = data["net_gmv_after"].to_numpy().astype(float)
        before = data["net_gmv_before"].to_numpy().astype(float)
        ev, held = fit_arm_evidence(
            encoder.transform(data),
            data["treated"].to_numpy(),
            after,
            before,
            data["entity_id"].to_numpy(),
            (data["assignment"] == "randomized").to_numpy(),
            lambda seed: _make(learner_name, cfg, 0),
            cfg.seed,
            cfg.n_estimators,
            cfg.max_depth,
        )
        evidence[arm] = ev
        label = f"average_effect+{learner_name}" if ev.kept > 0 else "average_effect"
        row: dict[str, object] = {
            "strategy": arm,
            "learner": label,
            "n_holdout": len(held["rows"]),
            **ev.effect.as_dict(),
            **ev.test.as_dict(),
        }
        rows_idx = held["rows"]
        if len(rows_idx):
            randomized = data[rows_idx]
            score = held["base"] + ev.test.kept * (held["learner"] - held["base"])
            y_rand, treated = (
                after[rows_idx] - before[rows_idx],
                randomized["treated"].to_numpy().astype(bool),
            )
            if treated.sum() >= 5 and (~treated).sum() >= 5:
                row.update(evaluation.holdout_scores(score, y_rand, treated).as_dict())
                row.update(evaluation.pseudo_outcome_scores(score, held["psi"]))
                curves.append(
                    evaluation.curves_frame(score, y_rand, treated).with_columns(strategy=pl.lit(arm))
                )
                calibration.append(
                    evaluation.calibration_by_decile(score, y_rand, treated).with_columns(
                        strategy=pl.lit(arm)
                    )
                )
            if truth_map is not None:
                row.update(_truth_row(arm, score, randomized, truth_map))
        rows.append(row)
    metrics = (
        pl.DataFrame(rows, infer_schema_length=None)
        if rows
        else pl.DataFrame({"strategy": [], "learner": []})
    )
    if "qini_area" not in metrics.columns:
        metrics = metrics.with_columns(qini_area=pl.lit(None, pl.Float64))
    metrics = metrics.with_columns(chosen=pl.lit(True))
    return KindModel(
        kind=kind,
        arms=arms,
        encoder=encoder,
        learners={arm: ev.learner for arm, ev in evidence.items() if ev.learner is not None and ev.kept > 0},
        chosen={arm: str(metrics.filter(pl.col("strategy") == arm)["learner"][0]) for arm in evidence},
        metrics=metrics,
        curves=pl.concat(curves) if curves else pl.DataFrame(),
        calibration=pl.concat(calibration) if calibration else pl.DataFrame(),
        n_train=train.height,
        n_holdout=0,
        config=cfg,
        evidence=evidence,
    )
