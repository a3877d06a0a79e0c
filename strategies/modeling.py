"""Fit, select and evaluate the uplift learners of one entity kind.

Selection: every learner is fitted on the training entities and scored on a randomized holdout of
entities (30% by default; all their rows are held out). Per strategy, the learner with the highest
holdout Qini area is chosen; chosen learners are then refitted on every row, with bootstrap replicas
for the intervals. Targeted (non-randomized) rows of the holdout entities are scored against
cross-fitted AIPW pseudo-outcomes; where the simulator's truth is given, predictions are also scored
against the true effects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from strategies import evaluation
from strategies.learners import LEARNERS, UpliftLearner
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
        "features_as_of",
        "gmv_after",
        "gmv_before",
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

    learners: tuple[str, ...] = ("t_learner", "x_learner", "dr_learner")
    holdout_share: float = 0.3
    n_estimators: int = 80
    max_depth: int = 4
    n_bootstrap: int = 10
    seed: int = 7
    # "relative": the learners model the relative change (after − before) / before, weighted by the
    # baseline, and the absolute uplift is that times the entity's GMV of the last 28 days: GMV is
    # heavy-tailed, and a relative target keeps the biggest sellers from drowning the effect's
    # heterogeneity. "change": after − before in USD. "level": GMV after, in USD.
    outcome: str = "relative"
    max_training_rows: int = 60_000  # larger training sets are sampled by entity (scores use everything)
    baseline_column: str = "gmv_28d"
    baseline_floor: float = 50.0
    relative_cap: float = 5.0


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


def _target(frame: pl.DataFrame, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The learners' training target and sample weights (see ``ModelConfig.outcome``)."""
    after = np.round(frame["gmv_after"].to_numpy().astype(float), 2)
    before = np.round(frame["gmv_before"].to_numpy().astype(float), 2)
    if cfg.outcome == "level":
        return after, np.ones(len(after))
    if cfg.outcome == "change":
        return after - before, np.ones(len(after))
    denominator = np.maximum(before, cfg.baseline_floor)
    y = np.clip((after - before) / denominator, -1.0, cfg.relative_cap)
    weight = np.clip(before, cfg.baseline_floor, max(np.quantile(before, 0.99), cfg.baseline_floor))
    return y, weight


def _scale(frame: pl.DataFrame, cfg: ModelConfig) -> np.ndarray:
    """What turns a learner's prediction into USD of uplift: the baseline GMV for relative targets."""
    if cfg.outcome != "relative":
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
    """The fitted models of one entity kind, with their evaluation."""

    kind: str
    arms: tuple[str, ...]
    encoder: FeatureEncoder
    learners: dict[str, UpliftLearner]
    chosen: dict[str, str]
    metrics: pl.DataFrame  # one row per (strategy, learner)
    curves: pl.DataFrame  # Qini curves of the chosen learner on the randomized holdout
    calibration: pl.DataFrame
    n_train: int
    n_holdout: int
    config: ModelConfig = field(default_factory=ModelConfig)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """(n, K) expected 28-day incremental GMV (USD) of every arm, each from its chosen learner."""
        x = self.encoder.transform(frame)
        by_learner = {name: self.learners[name].predict(x) for name in set(self.chosen.values())}
        raw = np.column_stack([by_learner[self.chosen[arm]][:, k] for k, arm in enumerate(self.arms)])
        return raw * _scale(frame, self.config)[:, None]

    def predict_interval(self, frame: pl.DataFrame, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap interval of :meth:`predict` (USD)."""
        x = self.encoder.transform(frame)
        scale = _scale(frame, self.config)[:, None]
        bounds = {
            name: self.learners[name].predict_interval(x, coverage) for name in set(self.chosen.values())
        }
        low = np.column_stack([bounds[self.chosen[a]].low[:, k] for k, a in enumerate(self.arms)]) * scale
        high = np.column_stack([bounds[self.chosen[a]].high[:, k] for k, a in enumerate(self.arms)]) * scale
        return low, high

    def explain(self, frame: pl.DataFrame, arm: str) -> np.ndarray:
        """Tree SHAP contributions (USD) of one arm's uplift, (n, features + 1); rows sum to predict()."""
        k = self.arms.index(arm) + 1
        raw = self.learners[self.chosen[arm]].explain(self.encoder.transform(frame), k)
        return raw * _scale(frame, self.config)[:, None]


def _make(name: str, cfg: ModelConfig, n_bootstrap: int) -> UpliftLearner:
    return LEARNERS[name](
        n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, n_bootstrap=n_bootstrap, random_state=cfg.seed
    )


def fit_kind(
    train: pl.DataFrame, kind: str, cfg: ModelConfig | None = None, truth: pl.DataFrame | None = None
) -> KindModel:
    """Fit every learner, choose one per strategy on the randomized holdout, refit the chosen ones on all
    rows. ``truth`` (intervention_id, true_uplift_gmv_28d) adds truth-based metrics (simulator only)."""
    cfg = cfg or ModelConfig()
    arms = ARMS[kind]
    if train.height > cfg.max_training_rows:
        share = cfg.max_training_rows / train.height
        keep = train["entity_id"].unique().sort().sample(fraction=share, seed=cfg.seed)
        train = train.filter(pl.col("entity_id").is_in(keep.implode()))
    encoder = FeatureEncoder.fit(train)
    holdout_ids = holdout_entities(train, cfg.holdout_share, cfg.seed)
    in_holdout = pl.col("entity_id").is_in(holdout_ids.implode())
    fit_rows, held = train.filter(~in_holdout), train.filter(in_holdout)
    randomized = held.filter(pl.col("assignment") == "randomized")
    targeted = held.filter(pl.col("assignment") == "targeted")
    x_fit, arm_fit = encoder.transform(fit_rows), fit_rows["arm_index"].to_numpy()
    y_fit, w_fit = _target(fit_rows, cfg)

    # AIPW pseudo-outcomes of the USD change over every row (cross-fitted): targeted rows are scored on them
    x_all, arm_all = encoder.transform(train), train["arm_index"].to_numpy()
    y_all, w_all = _target(train, cfg)
    psi_all = aipw_pseudo_outcomes(
        x_all,
        arm_all,
        _change(train),
        len(arms),
        3,
        cfg.seed,
        lambda s: regressor(cfg.seed + s, cfg.n_estimators, cfg.max_depth),
    )
    psi_targeted = psi_all[
        train.with_row_index("_i").filter(in_holdout & (pl.col("assignment") == "targeted"))["_i"].to_numpy()
    ]
    truth_map = truth.select("intervention_id", "true_uplift_gmv_28d") if truth is not None else None

    rows = []
    predictions: dict[str, np.ndarray] = {}
    for name in cfg.learners:
        learner = _make(name, cfg, n_bootstrap=0).fit(x_fit, arm_fit, y_fit, sample_weight=w_fit)
        predictions[name] = learner.predict(encoder.transform(randomized)) * _scale(randomized, cfg)[:, None]
        pred_targeted = (
            learner.predict(encoder.transform(targeted)) * _scale(targeted, cfg)[:, None]
            if targeted.height
            else np.zeros((0, len(arms)))
        )
        for k, arm in enumerate(arms):
            mask = (randomized["strategy"] == arm).to_numpy()
            score, y = predictions[name][mask, k], _change(randomized)[mask]
            treated = (randomized["arm"] == "treatment").to_numpy()[mask]
            row: dict[str, object] = {"strategy": arm, "learner": name, "n_holdout": int(mask.sum())}
            if treated.sum() >= 5 and (~treated).sum() >= 5:
                row.update(evaluation.holdout_scores(score, y, treated).as_dict())
                for key, (lo, hi) in evaluation.bootstrap_intervals(
                    score, y, treated, n_boot=100, seed=cfg.seed
                ).items():
                    row[f"{key}_ci_low"], row[f"{key}_ci_high"] = lo, hi
            t_mask = (targeted["strategy"] == arm).to_numpy()
            if t_mask.sum() >= 10:
                row.update(
                    evaluation.pseudo_outcome_scores(pred_targeted[t_mask, k], psi_targeted[t_mask, k])
                )
            if truth_map is not None:
                true = randomized.filter(pl.Series(mask)).join(truth_map, on="intervention_id", how="left")[
                    "true_uplift_gmv_28d"
                ]
                if true.len() > 2:
                    row.update(
                        {
                            f"holdout_{key}": v
                            for key, v in evaluation.truth_scores(score, true.to_numpy()).as_dict().items()
                        }
                    )
            rows.append(row)
    metrics = pl.DataFrame(rows, infer_schema_length=None)
    if "qini_area" not in metrics.columns:
        metrics = metrics.with_columns(qini_area=pl.lit(None, pl.Float64))
    chosen = {}
    for arm in arms:
        candidates = metrics.filter((pl.col("strategy") == arm) & pl.col("qini_area").is_not_null())
        chosen[arm] = (
            candidates.sort("qini_area", descending=True)["learner"][0]
            if candidates.height
            else cfg.learners[-1]
        )
    metrics = metrics.with_columns(
        chosen=pl.struct("strategy", "learner").map_elements(
            lambda r: chosen[r["strategy"]] == r["learner"], return_dtype=pl.Boolean
        )
    )

    curves, calibration = [], []
    y_rand = _change(randomized)
    for k, arm in enumerate(arms):
        mask = (randomized["strategy"] == arm).to_numpy()
        treated = (randomized["arm"] == "treatment").to_numpy()[mask]
        if treated.sum() < 5 or (~treated).sum() < 5:
            continue
        score = predictions[chosen[arm]][mask, k]
        curves.append(
            evaluation.curves_frame(score, y_rand[mask], treated).with_columns(strategy=pl.lit(arm))
        )
        calibration.append(
            evaluation.calibration_by_decile(score, y_rand[mask], treated).with_columns(strategy=pl.lit(arm))
        )

    final = {
        name: _make(name, cfg, cfg.n_bootstrap).fit(x_all, arm_all, y_all, sample_weight=w_all)
        for name in set(chosen.values())
    }
    return KindModel(
        kind=kind,
        arms=arms,
        encoder=encoder,
        learners=final,
        chosen=chosen,
        metrics=metrics,
        curves=pl.concat(curves) if curves else pl.DataFrame(),
        calibration=pl.concat(calibration) if calibration else pl.DataFrame(),
        n_train=fit_rows.height,
        n_holdout=held.height,
        config=cfg,
    )
