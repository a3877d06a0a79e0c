"""Pilots where the evidence is thin: for each strategy whose average effect is not established, the
randomized pilot that would settle it — who, how many per arm, for how long and at what cost.

Evidence (`pilot_evidence`, a stage of the strategies pipeline, published as ``pilot_evidence``): per
strategy, its average effect on 28-day net GMV with a 95% interval (`strategies.effects`; under the
"evidence" policy the fitted model's own, otherwise recomputed from the strategy's randomized rows of the
training set), the spread of the outcome that sizes a pilot, and the drivers to stratify by (the
strategy's top SHAP features; tier and category when the model found none).

Sizing: the average effect is a ratio of totals (Σ after / Σ before of the treated over the same of the
controls), so its noise is that of each row's net GMV after, at its arm's after/before ratio, less its
net GMV before, over the rows' mean before — the relative change of net GMV weighted by the row's share
of the sales (delta method: with ``n`` rows per arm the effect's standard error is ``sd · √(2/n)``).
That standard deviation is measured on the strategy's randomized rows; the per-arm size is statsmodels'
``NormalIndPower().solve_power(effect_size=mde / sd, power=0.8, alpha=0.05)`` (two-sided). The unweighted
standard deviation of the relative change does not predict the bootstrap standard error of that
estimator (on `tiny` it was off by a factor of 2 in either direction: heavy-tailed sales), which would
state a power the pilot does not have.

Design (`propose_pilot`, pure): eligible entities per the catalog's rule, less those still inside
another intervention's 28-day window when the pilot starts; strata by size (quartiles of 28-day GMV)
and the drivers; a proportional, seeded random draw within strata, and the arms alternated within each
stratum (a stratum's arms differ by at most one entity). It starts on the first Monday on or after the
build's as-of date (features are as of an assignment week's Monday); the outcome is the 28 days from
assignment, so a build on or after start + 28 days can read it.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from statsmodels.stats.power import NormalIndPower

from core.access import User
from core.config import Settings
from core.schema import table_spec
from datastore import db
from datastore.snapshots import SnapshotNotFound, latest_manifest, load_snapshot, scoped_snapshot
from strategies.catalog import Catalog, Strategy, load_catalog
from strategies.effects import MIN_ARM_ROWS, NO_EFFECT, AverageEffect
from strategies.modeling import KindModel, pilot_effect, strategy_rows
from strategies.training import ARMS, ENTITY_ID, HORIZON_DAYS
from strategies.wording import feature_label, format_value

DEFAULT_MDE = 0.10
SIZE_COLUMN = "gmv_28d"
FALLBACK_DRIVERS: dict[str, tuple[str, ...]] = {
    "creator": ("tier", "primary_category"),
    "merchant": ("category",),
}
"""Drivers to stratify by when the strategy's model found none (all SHAP contributions zero)."""

_EVIDENCE_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "entity_kind": pl.String,
    "strategy": pl.String,
    "ate_relative": pl.Float64,
    "ate_se": pl.Float64,
    "ate_low": pl.Float64,
    "ate_high": pl.Float64,
    "ate_n_treated": pl.Int64,
    "ate_n_control": pl.Int64,
    "ate_method": pl.String,
    "established": pl.Boolean,
    "outcome_sd": pl.Float64,
    "outcome_sd_rows": pl.Int64,
    "outcome_sd_source": pl.String,
    "drivers": pl.List(pl.String),
    "drivers_source": pl.String,
}
EVIDENCE_SCHEMA = pl.Schema(_EVIDENCE_COLUMNS)


@dataclass(frozen=True)
class PilotConfig:
    """What a pilot must detect and how it is drawn."""

    mde: float = DEFAULT_MDE
    """Minimum detectable effect: the relative change of 28-day net GMV (0.1 = 10%)."""
    power: float = 0.8
    alpha: float = 0.05
    """Two-sided significance level."""
    horizon_days: int = HORIZON_DAYS
    seed: int = 7
    size_bands: int = 4
    max_drivers: int = 2
    max_levels: int = 3
    """A categorical driver's most common levels kept as strata (the rest is "other")."""

    def __post_init__(self) -> None:
        if not 0.0 < self.mde <= 5.0:
            raise ValueError(f"the minimum detectable effect must be in (0, 5] (0.1 = 10%), not {self.mde}")
        if not 0.0 < self.power < 1.0 or not 0.0 < self.alpha < 1.0:
            raise ValueError("power and alpha must be in (0, 1)")


# ------------------------------------------------------------------------------------------------
# Evidence: what the pilots so far establish (a pipeline stage)
# ------------------------------------------------------------------------------------------------


def _linearized(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """One arm's rows as the ratio of totals sees them: (after / the arm's ratio − before) / mean before."""
    total_before, total_after = before.sum(), after.sum()
    if len(after) < 2 or total_before <= 0 or total_after <= 0:
        return np.zeros(0)
    return (after / (total_after / total_before) - before) / before.mean()


def outcome_sd(after: np.ndarray, before: np.ndarray, treated: np.ndarray) -> float:
    """Per-row standard deviation of the ratio-of-totals effect's noise (see the module docstring),
    pooled over the arms present; NaN with fewer than two rows with sales in every arm."""
    after, before = np.asarray(after, float), np.asarray(before, float)
    treated = np.asarray(treated).astype(bool)
    parts = [_linearized(after[arm], before[arm]) for arm in (treated, ~treated) if arm.any()]
    variances = [float(np.var(p, ddof=1)) for p in parts if len(p) >= 2]
    return float(np.sqrt(np.mean(variances))) if variances else math.nan


def _arrays(rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        rows["net_gmv_after"].to_numpy().astype(float),
        rows["net_gmv_before"].to_numpy().astype(float),
        (rows["arm"] == "treatment").to_numpy(),
    )


def _spread(rows: pl.DataFrame, kind_controls: pl.DataFrame, kind: str) -> tuple[float, int, str]:
    """The outcome's spread from the strategy's randomized rows, else from the kind's randomized controls."""
    after, before, treated = _arrays(rows)
    if treated.sum() >= MIN_ARM_ROWS and (~treated).sum() >= MIN_ARM_ROWS:
        return outcome_sd(after, before, treated), rows.height, "the strategy's randomized rows"
    if kind_controls.height >= MIN_ARM_ROWS:
        after, before, treated = _arrays(kind_controls)
        return (
            outcome_sd(after, before, treated),
            kind_controls.height,
            f"the randomized controls of every {kind} strategy",
        )
    return math.nan, 0, "no randomized rows"


def top_drivers(
    importance: pl.DataFrame | None, kind: str, strategy: str, max_drivers: int = 2
) -> tuple[tuple[str, ...], str]:
    """The feature columns with the largest mean |SHAP| of ``strategy`` (one-hot dummies ``column=level``
    count for their column; size is stratified anyway), and where they come from (``SHAP`` or
    ``fallback``: tier and category)."""
    if importance is not None and importance.height and "mean_abs_shap" in importance.columns:
        part = importance.filter(pl.col("strategy") == strategy, pl.col("mean_abs_shap") > 1e-9)
        if "entity_kind" in part.columns:
            part = part.filter(pl.col("entity_kind") == kind)
        columns: list[str] = []
        for feature in part.sort("mean_abs_shap", descending=True)["feature"].to_list():
            column = str(feature).split("=", 1)[0]
            if column != SIZE_COLUMN and column not in columns:
                columns.append(column)
        if columns:
            return tuple(columns[:max_drivers]), "SHAP"
    return FALLBACK_DRIVERS.get(kind, ()), "fallback"


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def pilot_evidence(
    train: pl.DataFrame,
    kind: str,
    model: KindModel | None = None,
    importance: pl.DataFrame | None = None,
    cfg: PilotConfig | None = None,
) -> pl.DataFrame:
    """One row per strategy of ``kind`` (`EVIDENCE_SCHEMA`): its average effect on 28-day net GMV with
    the 95% interval (the model's under the "evidence" policy, else from the strategy's randomized rows of
    ``train``, the training set), whether it is established, the outcome's spread for sizing a pilot and
    the drivers to stratify by (from ``importance``, mean |SHAP| per strategy and feature)."""
    cfg = cfg or PilotConfig()
    randomized = pl.col("assignment") == "randomized"
    kind_controls = train.filter(randomized & (pl.col("arm") == "control"))
    rows: list[dict[str, Any]] = []
    for strategy in ARMS[kind]:
        data = strategy_rows(train, strategy).filter(randomized) if train.height else train
        effect: AverageEffect = NO_EFFECT
        if model is not None:
            effect = model.average_effect(strategy)  # the model's own: one definition of "established"
        elif data.height:
            effect = pilot_effect(train, strategy, cfg.seed)
        sd, sd_rows, sd_source = _spread(data, kind_controls, kind)
        drivers, drivers_source = top_drivers(importance, kind, strategy, cfg.max_drivers)
        rows.append(
            {
                "entity_kind": kind,
                "strategy": strategy,
                "ate_relative": effect.relative if effect.method != "none" else None,
                "ate_se": _finite(effect.se),
                "ate_low": _finite(effect.low),
                "ate_high": _finite(effect.high),
                "ate_n_treated": effect.n_treated,
                "ate_n_control": effect.n_control,
                "ate_method": effect.method,
                "established": effect.established,
                "outcome_sd": _finite(sd),
                "outcome_sd_rows": sd_rows,
                "outcome_sd_source": sd_source,
                "drivers": list(drivers),
                "drivers_source": drivers_source,
            }
        )
    return pl.DataFrame(rows, schema=EVIDENCE_SCHEMA)


# ------------------------------------------------------------------------------------------------
# Sizing
# ------------------------------------------------------------------------------------------------


def sample_size_per_arm(sd: float, mde: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """Rows per arm (equal arms) for a two-sided test of ``alpha`` to detect a relative effect ``mde``
    with ``power``, when the per-row standard deviation of the effect's noise is ``sd``."""
    if not (sd > 0 and np.isfinite(sd)):
        raise ValueError(f"the outcome's standard deviation must be positive, not {sd}")
    n = NormalIndPower().solve_power(
        effect_size=mde / sd, nobs1=None, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
    )
    return math.ceil(float(n))


def detectable_effect(sd: float, per_arm: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest relative effect ``per_arm`` rows per arm detect with ``power`` (the inverse of
    `sample_size_per_arm`)."""
    effect_size = NormalIndPower().solve_power(
        effect_size=None, nobs1=per_arm, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
    )
    return float(effect_size) * sd


# ------------------------------------------------------------------------------------------------
# Design: strata and a seeded, stratified random draw
# ------------------------------------------------------------------------------------------------


def _size_band(frame: pl.DataFrame, bands: int) -> pl.Expr:
    gmv = pl.col(SIZE_COLUMN).fill_null(0.0) if SIZE_COLUMN in frame.columns else pl.lit(0.0)
    band = ((gmv.rank("min") - 1) * bands / max(frame.height, 1)).floor().cast(pl.Int64).clip(0, bands - 1)
    return pl.format("GMV 28d Q{}", band + 1)


def _driver_band(frame: pl.DataFrame, column: str, max_levels: int) -> pl.Expr | None:
    label = feature_label(column)
    values = frame[column]
    if values.dtype.is_numeric():
        median = values.cast(pl.Float64).median()
        if not isinstance(median, float):
            return None
        cut = format_value(column, median)
        return (
            pl.when(pl.col(column).is_null())
            .then(pl.lit(f"{label} n/a"))
            .when(pl.col(column) <= median)
            .then(pl.lit(f"{label} ≤ {cut}"))
            .otherwise(pl.lit(f"{label} > {cut}"))
        )
    text = pl.col(column).cast(pl.String)
    common = values.cast(pl.String).drop_nulls().value_counts(sort=True).head(max_levels)[column].to_list()
    if not common:
        return None
    return pl.when(text.is_in(common)).then(text).otherwise(pl.lit(f"other {label}"))


def strata(frame: pl.DataFrame, drivers: Sequence[str], cfg: PilotConfig | None = None) -> pl.Series:
    """Each row's stratum: its 28-day GMV quartile among ``frame``'s rows, then each driver's band (a
    numeric driver above or below its median, a categorical one's most common levels or "other")."""
    cfg = cfg or PilotConfig()
    parts = [_size_band(frame, cfg.size_bands)]
    for column in drivers:
        if column in frame.columns and column != SIZE_COLUMN:
            band = _driver_band(frame, column, cfg.max_levels)
            if band is not None:
                parts.append(band)
    return frame.select(pl.concat_str(parts, separator=" · ").alias("stratum")).to_series()


def _quotas(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Proportional allocation of ``total`` over strata of ``counts`` (largest remainders, ties at random)."""
    if total >= counts.sum():
        return counts.copy()
    exact = counts * total / counts.sum()
    quota = np.floor(exact).astype(int)
    order = np.lexsort((rng.random(len(counts)), -(exact - quota)))
    quota[order[: total - quota.sum()]] += 1
    return quota


def stratified_draw(
    stratum: np.ndarray, total: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``total`` rows in proportion to their strata and split each stratum's draw between the arms:
    (row indices, treated flags). A stratum's arms differ by at most one row; the odd rows alternate
    between the arms (starting at random), so the totals differ by at most one too."""
    labels, codes = np.unique(stratum, return_inverse=True)
    quota = _quotas(np.bincount(codes, minlength=len(labels)), total, rng)
    rows: list[np.ndarray] = []
    arms: list[np.ndarray] = []
    odd_to_treatment = bool(rng.integers(2))
    for k in range(len(labels)):
        members = np.flatnonzero(codes == k)
        rng.shuffle(members)
        taken = members[: quota[k]]
        half = len(taken) // 2
        arm = np.array([True] * half + [False] * half + ([odd_to_treatment] if len(taken) % 2 else []))
        if len(taken) % 2:
            odd_to_treatment = not odd_to_treatment
        rows.append(taken)
        arms.append(arm.astype(bool))
    if not rows:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=bool)
    return np.concatenate(rows).astype(int), np.concatenate(arms)


# ------------------------------------------------------------------------------------------------
# One proposal
# ------------------------------------------------------------------------------------------------


def pilot_start(as_of: date) -> date:
    """The first Monday on or after ``as_of``."""
    return as_of + timedelta(days=(7 - as_of.weekday()) % 7)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0%}"


@dataclass(frozen=True)
class PilotProposal:
    """A randomized pilot for one strategy: why, how many per arm, who, when and at what cost."""

    entity_kind: str
    strategy: str
    strategy_name: str
    established: bool
    effect: float | None
    effect_low: float | None
    effect_high: float | None
    n_treated: int
    n_control: int
    mde: float
    power: float
    alpha: float
    outcome_sd: float | None
    outcome_sd_source: str
    required_per_arm: int | None
    """Rows per arm the power formula asks for (None: no outcome history to size it)."""
    per_arm: int
    """Rows per arm proposed: the required size, at least 10, at most half the eligible entities."""
    detectable_effect: float | None
    """The relative effect ``per_arm`` detects at the stated power (the MDE unless capped)."""
    eligible: int
    start: date
    read_on: date
    horizon_days: int
    eligibility: str
    cost_rule: str
    expected_cost: float
    drivers: tuple[str, ...]
    drivers_source: str
    strata: int
    shared_with: int = 0
    """Other pilots of the same kind that share the eligible entities (each takes a fair part)."""

    @property
    def capped(self) -> bool:
        """Whether too few entities are eligible for the size the MDE needs."""
        return self.required_per_arm is not None and self.per_arm < self.required_per_arm

    def why(self) -> str:
        if self.effect is None:
            return "Why: no randomized pilot has measured its effect yet."
        interval = f"{_pct(self.effect_low)} to {_pct(self.effect_high)}"
        rows = f"{self.n_treated:,} treated and {self.n_control:,} control rows so far"
        if self.established:
            return (
                f"Why: its average effect on 28-day net GMV, {_pct(self.effect)} (95% interval "
                f"{interval}), is established ({rows}); a pilot would narrow it."
            )
        return (
            f"Why: its average effect on 28-day net GMV, {_pct(self.effect)}, is unproven: the 95% interval "
            f"{interval} includes zero ({rows})."
        )

    def size(self) -> str:
        kinds = f"{self.entity_kind}s"
        test = f"{self.power:.0%} power at {self.alpha:.0%} significance (two-sided)"
        if self.per_arm == 0:
            return f"No pilot possible: {self.eligible:,} eligible {kinds} left (it takes two at least)."
        if self.required_per_arm is None or self.outcome_sd is None:
            return (
                f"Size: {self.per_arm:,} {kinds} per arm, as many as are free: no randomized rows "
                "measure the outcome's spread yet, so no size can be computed."
            )
        spread = (
            f" The outcome's spread, {self.outcome_sd:.2f} (per-row SD of the sales-weighted relative change "
            f"of net GMV), is measured on {self.outcome_sd_source}."
        )
        if self.capped:
            shared = f", shared with {self.shared_with} other pilot(s)" if self.shared_with else ""
            return (
                f"Size: {self.per_arm:,} {kinds} per arm, the most the {self.eligible:,} eligible {kinds} "
                f"allow{shared}. That detects a {self.detectable_effect or 0:.0%} change of 28-day net GMV "
                f"with {test}; a {self.mde:.0%} change would need {self.required_per_arm:,} per arm." + spread
            )
        return (
            f"Size: {self.per_arm:,} {kinds} per arm ({2 * self.per_arm:,} in all) to detect a "
            f"{self.mde:.0%} change of 28-day net GMV with {test}." + spread
        )

    def who(self) -> str:
        drivers = ", ".join(feature_label(d) for d in self.drivers)
        source = "its top SHAP drivers" if self.drivers_source == "SHAP" else "tier and category"
        by = f"28-day GMV quartile and {source} ({drivers})" if drivers else "28-day GMV quartile"
        return (
            f"Who: a seeded random draw of the {self.eligible:,} eligible {self.entity_kind}s "
            f"({self.eligibility}), stratified by {by}: {self.strata} strata, arms within one entity of "
            "each other in every stratum."
        )

    def when(self) -> str:
        last = self.read_on - timedelta(days=1)
        return (
            f"When: assign on Monday {self.start:%Y-%m-%d}; the outcome is the {self.horizon_days} days to "
            f"{last:%Y-%m-%d}, so results can be read in a build on or after {self.read_on:%Y-%m-%d}."
        )

    def cost(self) -> str:
        return f"Cost: ${self.expected_cost:,.0f} expected, {self.cost_rule} × {self.per_arm:,} treated."

    def lines(self) -> tuple[str, ...]:
        """The proposal in plain sentences (the CLI and the Strategy board show the same)."""
        if self.per_arm == 0:
            return (self.why(), self.size())
        return (self.why(), self.size(), self.who(), self.when(), self.cost())

    def as_row(self) -> dict[str, Any]:
        return {
            "entity_kind": self.entity_kind,
            "strategy": self.strategy,
            "pilot_per_arm": self.per_arm,
            "pilot_required_per_arm": self.required_per_arm,
            "pilot_detectable_effect": self.detectable_effect,
            "pilot_eligible": self.eligible,
            "pilot_strata": self.strata,
            "pilot_cost": self.expected_cost,
            "pilot_start": self.start,
            "results_from": self.read_on,
        }


def intervention_id(start: date, strategy: str, entity_id: str) -> str:
    """A stable id (re-running the same proposal gives the same ids, so a second ingest adds nothing)."""
    digest = hashlib.sha256(f"{strategy}\x1f{entity_id}".encode()).hexdigest()[:12]
    return f"pilot-{start:%Y%m%d}-{digest}"


def _eligible(features: pl.DataFrame, strategy: Strategy, exclude: Collection[str]) -> pl.DataFrame:
    id_column = ENTITY_ID[strategy.target]
    if "entity_id" not in features.columns and id_column in features.columns:
        features = features.rename({id_column: "entity_id"})
    missing = {c.feature for c in strategy.eligibility} - set(features.columns)
    if missing:
        raise ValueError(f"{strategy.id}: the features lack the eligibility columns {sorted(missing)}")
    return (
        features.filter(strategy.eligible(), ~pl.col("entity_id").is_in(list(exclude)))
        .unique("entity_id")
        .sort("entity_id")
    )


def _cost(treated: pl.DataFrame, strategy: Strategy, mde: float) -> float:
    """The catalog's cost of treating these entities; a share-of-GMV cost at their 28-day GMV raised by
    the MDE (what the strategy is expected to bring at least)."""
    if treated.height == 0:
        return 0.0
    gmv = pl.col(SIZE_COLUMN).fill_null(0.0) if SIZE_COLUMN in treated.columns else pl.lit(0.0)
    return float(treated.with_columns(cost=strategy.cost.expr(gmv * (1.0 + mde)))["cost"].sum())


def _cost_rule(strategy: Strategy, mde: float) -> str:
    if strategy.cost.kind == "fixed":
        return f"${strategy.cost.amount:,.0f} per {strategy.target}"
    return f"{strategy.cost.rate:.0%} of each one's 28-day GMV (+{mde:.0%})"


def _sizes(sd: float | None, available: int, cfg: PilotConfig) -> tuple[int | None, int, float | None]:
    """(required per arm, proposed per arm, detectable effect at the proposed size), with ``available``
    entities to draw from."""
    most = available // 2
    if sd is None or not sd > 0:
        return None, most, None
    required = sample_size_per_arm(sd, cfg.mde, cfg.power, cfg.alpha)
    per_arm = min(max(required, MIN_ARM_ROWS), most)
    detectable = detectable_effect(sd, per_arm, cfg.power, cfg.alpha) if per_arm >= 2 else None
    return required, per_arm, detectable


def propose_pilot(
    evidence: Mapping[str, Any],
    features: pl.DataFrame,
    strategy: Strategy,
    as_of: date,
    cfg: PilotConfig | None = None,
    exclude: Collection[str] = (),
    shared_with: int = 0,
) -> tuple[PilotProposal, pl.DataFrame]:
    """The randomized pilot of ``strategy`` from its evidence row (`EVIDENCE_SCHEMA`) and the entities'
    features as of the scoring date: the proposal and its entities, one row each with the columns of the
    ``interventions`` table (``assignment`` "randomized", ``assigned_on`` the start: the first Monday on or
    after ``as_of``, the scoring date) and ``stratum``.
    Entities in ``exclude`` are left out (busy with another intervention, or in another pilot); with
    ``shared_with`` other pilots still to draw from the same entities, it takes at most its fair part of
    them (1 / (shared_with + 1))."""
    cfg = cfg or PilotConfig()
    start = pilot_start(as_of)
    eligible = _eligible(features, strategy, exclude)
    sd = evidence.get("outcome_sd")
    required, per_arm, detectable = _sizes(sd, eligible.height // (shared_with + 1), cfg)
    drivers = tuple(d for d in (evidence.get("drivers") or ()) if d in eligible.columns)
    eligible = eligible.with_columns(stratum=strata(eligible, drivers, cfg))
    rng = np.random.default_rng([cfg.seed, zlib.crc32(strategy.id.encode())])
    rows, treated = stratified_draw(eligible["stratum"].to_numpy(), 2 * per_arm, rng)
    drawn = eligible[rows].with_columns(arm=pl.Series(np.where(treated, "treatment", "control")))
    ids = [intervention_id(start, strategy.id, entity) for entity in drawn["entity_id"].to_list()]
    entities = drawn.select(
        pl.Series("intervention_id", ids, dtype=pl.String),
        pl.lit(strategy.target).alias("entity_kind"),
        "entity_id",
        pl.lit(strategy.id).alias("strategy"),
        pl.lit(start).alias("assigned_on"),
        "arm",
        pl.lit("randomized").alias("assignment"),
        "stratum",
    ).sort("stratum", "arm", "entity_id")
    proposal = PilotProposal(
        entity_kind=strategy.target,
        strategy=strategy.id,
        strategy_name=strategy.name,
        established=bool(evidence.get("established")),
        effect=evidence.get("ate_relative"),
        effect_low=evidence.get("ate_low"),
        effect_high=evidence.get("ate_high"),
        n_treated=int(evidence.get("ate_n_treated") or 0),
        n_control=int(evidence.get("ate_n_control") or 0),
        mde=cfg.mde,
        power=cfg.power,
        alpha=cfg.alpha,
        outcome_sd=sd,
        outcome_sd_source=str(evidence.get("outcome_sd_source") or ""),
        required_per_arm=required,
        per_arm=int(treated.sum()),
        detectable_effect=detectable,
        eligible=eligible.height,
        start=start,
        read_on=start + timedelta(days=cfg.horizon_days),
        horizon_days=cfg.horizon_days,
        eligibility=" and ".join(c.text() for c in strategy.eligibility) or "all",
        cost_rule=_cost_rule(strategy, cfg.mde),
        expected_cost=_cost(drawn.filter(pl.col("arm") == "treatment"), strategy, cfg.mde),
        drivers=drivers,
        drivers_source=str(evidence.get("drivers_source") or ""),
        strata=int(entities["stratum"].n_unique()),
        shared_with=shared_with if required is not None and per_arm < required else 0,
    )
    return proposal, entities


# ------------------------------------------------------------------------------------------------
# Every pilot to run
# ------------------------------------------------------------------------------------------------


def busy_entities(interventions: pl.DataFrame | None, start: date, horizon_days: int) -> dict[str, set[str]]:
    """Per kind, the entities whose intervention's outcome window is still open on ``start`` (or that
    are assigned later): a pilot row there would measure two strategies at once."""
    if interventions is None or interventions.height == 0:
        return {}
    open_rows = interventions.filter(
        pl.col("assigned_on") + pl.duration(days=horizon_days) > pl.lit(start)
    ).select("entity_kind", "entity_id")
    busy: dict[str, set[str]] = {}
    for kind, entity in open_rows.iter_rows():
        busy.setdefault(kind, set()).add(entity)
    return busy


def interventions_frame(entities: pl.DataFrame) -> pl.DataFrame:
    """The pilots' entities as rows of the ``interventions`` table (its columns and types only)."""
    schema = table_spec("interventions").schema
    return entities.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


@dataclass(frozen=True)
class PilotPlans:
    """Every strategy's current precision and the pilots proposed for the unproven ones."""

    as_of: date
    start: date
    config: PilotConfig
    precision: pl.DataFrame
    """One row per strategy: its average effect, 95% interval, status and the proposed pilot's size."""
    proposals: tuple[PilotProposal, ...]
    entities: pl.DataFrame
    """The proposed pilots' entities: the interventions columns and ``stratum``."""

    @property
    def headline(self) -> str:
        if self.precision.height == 0:
            return "No strategy has randomized rows yet: run a build on data with interventions first."
        if not self.proposals:
            return (
                "No pilot to propose: every strategy's 95% interval of its average effect on 28-day net "
                "GMV excludes zero."
            )
        names = ", ".join(p.strategy_name for p in self.proposals)
        return f"{len(self.proposals)} pilot(s) to run: {names}."

    def interventions(self) -> pl.DataFrame:
        return interventions_frame(self.entities)


def _status(row: Mapping[str, Any]) -> str:
    if row["ate_relative"] is None:
        return "unproven: no randomized pilot yet"
    if row["established"]:
        return "established: interval excludes zero"
    return "unproven: interval includes zero"


def _precision(evidence: pl.DataFrame, catalog: Catalog, proposals: Sequence[PilotProposal]) -> pl.DataFrame:
    names = {s.id: s.name for s in catalog.strategies}
    rows = []
    for row in evidence.iter_rows(named=True):
        rows.append(
            {
                "entity_kind": row["entity_kind"],
                "strategy": row["strategy"],
                "strategy_name": names.get(row["strategy"], row["strategy"]),
                "average_effect": row["ate_relative"],
                "effect_low_95": row["ate_low"],
                "effect_high_95": row["ate_high"],
                "treated_rows": row["ate_n_treated"],
                "control_rows": row["ate_n_control"],
                "status": _status(row),
            }
        )
    schema_proposal = {
        "entity_kind": pl.String,
        "strategy": pl.String,
        "pilot_per_arm": pl.Int64,
        "pilot_required_per_arm": pl.Int64,
        "pilot_detectable_effect": pl.Float64,
        "pilot_eligible": pl.Int64,
        "pilot_strata": pl.Int64,
        "pilot_cost": pl.Float64,
        "pilot_start": pl.Date,
        "results_from": pl.Date,
    }
    planned = pl.DataFrame([p.as_row() for p in proposals], schema=schema_proposal)
    frame = pl.DataFrame(
        rows,
        schema={
            "entity_kind": pl.String,
            "strategy": pl.String,
            "strategy_name": pl.String,
            "average_effect": pl.Float64,
            "effect_low_95": pl.Float64,
            "effect_high_95": pl.Float64,
            "treated_rows": pl.Int64,
            "control_rows": pl.Int64,
            "status": pl.String,
        },
    )
    return frame.join(planned, on=["entity_kind", "strategy"], how="left", maintain_order="left")


def pilot_plans(
    evidence: pl.DataFrame,
    features: Mapping[str, pl.DataFrame],
    catalog: Catalog,
    as_of: date,
    cfg: PilotConfig | None = None,
    interventions: pl.DataFrame | None = None,
    strategies: Sequence[str] | None = None,
) -> PilotPlans:
    """A pilot for every strategy whose effect is not established (or for each of ``strategies``,
    established or not), from the evidence (`pilot_evidence`) and each kind's features as of ``as_of``.
    Pilots of one kind never share an entity, and leave out entities still under another intervention
    (``interventions``, the table) when they start."""
    cfg = cfg or PilotConfig()
    known = {s.id for s in catalog.strategies}
    unknown = sorted(set(strategies or ()) - known)
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    start = pilot_start(as_of)
    taken = busy_entities(interventions, start, cfg.horizon_days)
    order = {s.id: k for k, s in enumerate(catalog.strategies)}
    evidence = evidence.filter(pl.col("strategy").is_in(list(known))).sort(
        pl.col("strategy").replace_strict(order, return_dtype=pl.Int64)
    )
    wanted = [
        row
        for row in evidence.iter_rows(named=True)
        if (row["strategy"] in strategies if strategies else not row["established"])
        and row["entity_kind"] in features
    ]
    proposals: list[PilotProposal] = []
    frames: list[pl.DataFrame] = []
    for k, row in enumerate(wanted):
        kind = row["entity_kind"]
        exclude = taken.setdefault(kind, set())
        later = sum(1 for other in wanted[k + 1 :] if other["entity_kind"] == kind)
        proposal, entities = propose_pilot(
            row, features[kind], catalog.get(row["strategy"]), as_of, cfg, exclude, shared_with=later
        )
        exclude.update(entities["entity_id"].to_list())
        proposals.append(proposal)
        frames.append(entities)
    empty = pl.DataFrame(schema={**table_spec("interventions").schema, "stratum": pl.String})
    return PilotPlans(
        as_of=as_of,
        start=start,
        config=cfg,
        precision=_precision(evidence, catalog, proposals),
        proposals=tuple(proposals),
        entities=pl.concat([empty, *frames], how="vertical_relaxed") if frames else empty,
    )


def published_pilot_plans(
    settings: Settings,
    cfg: PilotConfig | None = None,
    strategies: Sequence[str] | None = None,
    user: User | None = None,
) -> PilotPlans:
    """`pilot_plans` over the current build (its ``pilot_evidence`` and feature snapshots, as of its
    date) and the state DB's interventions; read as ``user`` sees them when given."""
    manifest = latest_manifest(settings)
    if manifest is None:
        raise SnapshotNotFound(f"no analytics build in {settings.snapshots}; run `liftboard build` first")

    def read(name: str) -> pl.DataFrame:
        scan = scoped_snapshot(name, settings, user) if user is not None else load_snapshot(name, settings)
        return scan.collect()

    return pilot_plans(
        read("pilot_evidence"),
        {kind: read(f"{kind}_features") for kind in ENTITY_ID},
        load_catalog(),
        date.fromisoformat(manifest["as_of"]),
        cfg,
        db.read_table("interventions", settings),
        strategies,
    )


def write_pilot_file(plans: PilotPlans, path: Path) -> int:
    """Write the pilots' entities as ``interventions`` rows to ``path`` (``.csv`` or ``.parquet``), ready
    for ``liftboard ingest --table interventions``; returns the row count."""
    frame = plans.interventions()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: write the pilot's entities to a .csv or .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return frame.height
