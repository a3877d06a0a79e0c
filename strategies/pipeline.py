"""The strategies stage, composed once: training sets → learners → evaluation → scores → explanations →
recommendations, allocation and cost curve; model runs and recommendations persisted in the state DB.

`run_strategies` is what ``liftboard recommend`` and ``liftboard build`` call; it returns every table
the app and the reports show, for the build to publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from analytics.features import creator_features, merchant_features
from analytics.sources import Inputs, creator_daily, default_as_of, load_inputs, merchant_daily
from core.config import Settings
from core.tasks import TaskMap, in_process
from datastore.lake import scan_table
from strategies import store
from strategies.allocation import AllocationConfig, allocate, cost_curve
from strategies.catalog import Catalog, load_catalog
from strategies.evaluation import TRUTH_SCORE_NAMES, truth_scores
from strategies.modeling import KindModel, ModelConfig, fit_kind
from strategies.pilots import EVIDENCE_SCHEMA, pilot_evidence
from strategies.recommend import score_and_explain
from strategies.training import ENTITY_ID, data_window, training_set

Progress = Callable[[str, int, int], None]
KINDS = ("creator", "merchant")
PREDICTION_COLUMNS = (
    "entity_kind",
    "entity_id",
    "strategy",
    "eligible",
    "expected_uplift",
    "uplift_low",
    "uplift_high",
    "established",
    "learner",
)
"""What the ``uplift_predictions`` snapshot keeps of `predict_uplift` (plus the run id)."""


@dataclass
class StrategyRun:
    """Everything one strategies run produced (frames ready to publish)."""

    training_id: str
    run_id: str
    as_of: date
    recommendations: pl.DataFrame
    predictions: pl.DataFrame  # every entity × strategy of its kind, eligible or not (`predict_uplift`)
    allocation: pl.DataFrame
    cost_curve: pl.DataFrame
    metrics: pl.DataFrame
    curves: pl.DataFrame
    calibration: pl.DataFrame
    drivers: pl.DataFrame
    importance: pl.DataFrame
    dependence: pl.DataFrame
    rules: pl.DataFrame
    catalog: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, KindModel] = field(default_factory=dict)
    # per strategy: its average effect from the pilots so far and what sizes a new one (`strategies.pilots`)
    pilot_evidence: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EVIDENCE_SCHEMA))

    def tables(self) -> dict[str, pl.DataFrame]:
        """The frames to publish, by snapshot name (the catalog's ``strategies`` stage, `core.snapshots`)."""
        return {
            "recommendations": self.recommendations,
            "uplift_predictions": self.predictions,
            "allocation": self.allocation,
            "cost_curve": self.cost_curve,
            "model_metrics": self.metrics,
            "qini_curves": self.curves,
            "calibration": self.calibration,
            "shap_drivers": self.drivers,
            "shap_importance": self.importance,
            "shap_dependence": self.dependence,
            "segment_rules": self.rules,
            "strategy_catalog": self.catalog,
            "pilot_evidence": self.pilot_evidence,
        }


class FeatureStore:
    """Creator and merchant features for any as-of date, from daily facts computed once (or handed over
    by the build, which has them already)."""

    def __init__(
        self,
        inputs: Inputs,
        as_of: date | None = None,
        creator_daily_facts: pl.LazyFrame | None = None,
        merchant_daily_facts: pl.LazyFrame | None = None,
    ):
        self.inputs = inputs
        self.creator_daily = (
            creator_daily_facts
            if creator_daily_facts is not None
            else creator_daily(inputs, as_of).collect().lazy()
        )
        self.merchant_daily = (
            merchant_daily_facts
            if merchant_daily_facts is not None
            else merchant_daily(inputs, as_of).collect().lazy()
        )
        self._cache: dict[tuple[str, date], pl.DataFrame] = {}

    def daily(self, kind: str) -> pl.LazyFrame:
        """The kind's daily fact (creator or merchant activity per day)."""
        return self.creator_daily if kind == "creator" else self.merchant_daily

    def __call__(self, kind: str, as_of: date) -> pl.DataFrame:
        key = (kind, as_of)
        if key not in self._cache:
            inp = self.inputs
            if kind == "creator":
                lf = creator_features(
                    self.creator_daily,
                    inp.creators,
                    inp.showcase,
                    inp.products,
                    as_of,
                    merchant_daily=self.merchant_daily,
                )
            else:
                lf = merchant_features(self.merchant_daily, inp.merchants, inp.products, as_of)
            self._cache[key] = lf.collect().rename({ENTITY_ID[kind]: "entity_id"}).sort("entity_id")
        return self._cache[key]


def _truth(settings: Settings, name: str) -> pl.DataFrame | None:
    path = settings.truth / f"{name}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def with_truth_columns(metrics: pl.DataFrame) -> pl.DataFrame:
    """The metrics with every truth-based column (``holdout_*`` on the randomized holdout, ``truth_*`` at
    the scoring date), null where there is no truth: only a simulated marketplace has one, and the
    snapshot's columns — which the Models page reads — must not depend on it."""
    if metrics.width == 0:
        return metrics
    names = [f"{prefix}_{key}" for prefix in ("holdout", "truth") for key in TRUTH_SCORE_NAMES]
    return metrics.with_columns(pl.lit(None, pl.Float64).alias(n) for n in names if n not in metrics.columns)


def default_budget(candidates: pl.DataFrame, catalog: Catalog) -> float:
    """A default budget: what treating every team's capacity with its median cost would take."""
    median = candidates["cost"].median() if candidates.height else None
    if not isinstance(median, int | float):
        return 0.0
    return float(median) * sum(catalog.team_capacity.values())


def _truth_metrics(model: KindModel, features: pl.DataFrame, truth_effects: pl.DataFrame) -> pl.DataFrame:
    """Each strategy's chosen learner scored against the simulator's true effects at the scoring date
    (strategy, learner, ``truth_*``); entities without a true effect have none (0)."""
    predicted = model.predict(features)
    rows = []
    for k, arm in enumerate(model.arms):
        true = (
            features.select("entity_id")
            .join(
                truth_effects.filter((pl.col("entity_kind") == model.kind) & (pl.col("strategy") == arm)),
                on="entity_id",
                how="left",
            )["true_uplift_gmv_28d"]
            .fill_null(0.0)
        )
        scores = truth_scores(predicted[:, k], true.to_numpy())
        rows.append({"strategy": arm, **{f"truth_{key}": v for key, v in scores.as_dict().items()}})
    return pl.DataFrame(rows).with_columns(learner=pl.col("strategy").replace_strict(model.chosen))


def _model_run_rows(
    kind_metrics: pl.DataFrame, model: KindModel, training_id: str, first: date, last: date
) -> list[dict[str, object]]:
    """The model-run records (`store.record_model_runs`) of one kind: one per strategy and learner."""
    return [
        {
            "model_run_id": store.new_id("model"),
            "training_id": training_id,
            "entity_kind": model.kind,
            "strategy": row["strategy"],
            "learner": row["learner"],
            "chosen": bool(row["chosen"]),
            "data_start": first,
            "data_end": last,
            "n_train": model.n_train,
            "n_holdout": model.n_holdout,
            "metrics": {k: v for k, v in row.items() if isinstance(v, int | float) and k != "chosen"},
        }
        for row in kind_metrics.iter_rows(named=True)
    ]


def run_strategies(
    settings: Settings,
    as_of: date | None = None,
    cfg: ModelConfig | None = None,
    catalog: Catalog | None = None,
    budget: float | None = None,
    progress: Progress | None = None,
    persist: bool = True,
    feature_store: FeatureStore | None = None,
    map_tasks: TaskMap = in_process,
    scoring_pieces: int = 1,
) -> StrategyRun:
    """Train, evaluate, score, explain and recommend for creators and merchants as of ``as_of`` (default:
    the day after the last order). Learns only from interventions whose 28-day outcome window ended
    before ``as_of``. ``map_tasks`` runs the per-strategy model fits (`fit_kind`) and the scoring and
    explaining of ``scoring_pieces`` runs of entities per kind (`score_and_explain`): in this process by
    default, as tasks on a cluster from the shell."""
    cfg = cfg or ModelConfig()
    catalog = catalog or load_catalog()
    inputs = load_inputs(settings)
    as_of = as_of or default_as_of(inputs.orders)
    if as_of is None:
        raise ValueError("no orders in the lake: nothing to learn from (run `liftboard demo` or ingest data)")
    step = 0
    total = 2 * len(KINDS) + 3
    timings: dict[str, float] = {}

    def tick(stage: str) -> None:
        nonlocal step
        step += 1
        if progress:
            progress(stage, step, total)

    started = time.perf_counter()
    store_ = feature_store or FeatureStore(inputs, as_of)
    interventions = scan_table("interventions", settings).filter(pl.col("assigned_on") < as_of).collect()
    truth_interventions = _truth(settings, "interventions")
    truth_effects = _truth(settings, "effects")
    training_id = store.new_id("train")
    timings["features"] = time.perf_counter() - started
    tick("features")

    models: dict[str, KindModel] = {}
    scored: list[pl.DataFrame] = []
    predictions: list[pl.DataFrame] = []
    metrics: list[pl.DataFrame] = []
    curves: list[pl.DataFrame] = []
    calibration: list[pl.DataFrame] = []
    drivers, importance, dep, rules, rationales = [], [], [], [], []
    evidence: list[pl.DataFrame] = []
    model_rows = []
    for kind in KINDS:
        t0 = time.perf_counter()
        train = training_set(
            interventions, inputs, kind, store_, as_of - timedelta(days=1), daily=store_.daily(kind)
        )
        if train.height == 0 or train.filter(pl.col("arm_index") == 0).height < 10:
            tick(f"{kind} models (no data)")
            tick(f"{kind} scores (no data)")
            continue
        model = fit_kind(train, kind, cfg, truth=truth_interventions, map_tasks=map_tasks)
        models[kind] = model
        timings[f"{kind}_fit"] = time.perf_counter() - t0
        tick(f"{kind} models")

        t0 = time.perf_counter()
        features = store_(kind, as_of)
        kind_predictions, kind_scores, explanations = score_and_explain(
            model, features, catalog, map_tasks, scoring_pieces
        )
        timings[f"{kind}_score_explain"] = time.perf_counter() - t0
        tick(f"{kind} scores")

        kind_metrics = model.metrics.with_columns(entity_kind=pl.lit(kind))
        if truth_effects is not None:
            kind_metrics = kind_metrics.join(
                _truth_metrics(model, features, truth_effects),
                on=["strategy", "learner"],
                how="left",
            )
        first, last = data_window(train)
        model_rows += _model_run_rows(kind_metrics, model, training_id, first, last)
        scored.append(kind_scores)
        predictions.append(kind_predictions.select(PREDICTION_COLUMNS))
        metrics.append(
            kind_metrics.with_columns(
                data_start=pl.lit(first), data_end=pl.lit(last), n_train=pl.lit(model.n_train)
            )
        )
        for frame, target in ((model.curves, curves), (model.calibration, calibration)):
            if frame.height:
                target.append(frame.with_columns(entity_kind=pl.lit(kind)))
        rationales.append(explanations.rationales)
        drivers.append(explanations.drivers)
        importance.append(explanations.importance.with_columns(entity_kind=pl.lit(kind)))
        dep.append(explanations.dependence.with_columns(entity_kind=pl.lit(kind)))
        rules.append(explanations.rules.with_columns(entity_kind=pl.lit(kind)))
        evidence.append(pilot_evidence(train, kind, model, explanations.importance))

    recommendations = (
        pl.concat(scored).join(pl.concat(rationales), on=["entity_kind", "entity_id", "strategy"], how="left")
        if scored
        else pl.DataFrame()
    )
    t0 = time.perf_counter()
    budget = default_budget(recommendations, catalog) if budget is None else budget
    allocation = (
        allocate(recommendations, AllocationConfig(budget=budget, team_capacity=catalog.team_capacity))
        if recommendations.height
        else pl.DataFrame()
    )
    curve = (
        cost_curve(recommendations.filter(pl.col("expected_uplift") > 0))
        if recommendations.height
        else pl.DataFrame()
    )
    timings["allocation"] = time.perf_counter() - t0
    tick("allocation")

    run_id = ""
    if persist and recommendations.height:
        store.record_model_runs(settings, model_rows)
        run_id = store.save_recommendations(
            settings, recommendations, training_id=training_id, as_of=as_of
        ).run_id
    timings["total"] = time.perf_counter() - started
    tick("saved")
    concat = lambda frames: pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()  # noqa: E731
    return StrategyRun(
        training_id=training_id,
        run_id=run_id,
        as_of=as_of,
        recommendations=recommendations.with_columns(run_id=pl.lit(run_id))
        if recommendations.height
        else recommendations,
        predictions=pl.concat(predictions).with_columns(run_id=pl.lit(run_id))
        if predictions
        else pl.DataFrame(),
        allocation=allocation,
        cost_curve=curve,
        metrics=with_truth_columns(concat(metrics)),
        curves=concat(curves),
        calibration=concat(calibration),
        drivers=concat(drivers),
        importance=concat(importance),
        dependence=concat(dep),
        rules=concat(rules),
        catalog=catalog.frame(),
        timings=timings,
        models=models,
        pilot_evidence=pl.concat(evidence) if evidence else pl.DataFrame(schema=EVIDENCE_SCHEMA),
    )
