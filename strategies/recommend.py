"""From fitted uplift models to ranked, costed, explained recommendations — one pure function per step.

For every entity and every strategy of its kind that the catalog's eligibility rule allows:
expected incremental GMV over the horizon with an interval, cost, and net value to the platform
(take rate × expected incremental GMV − cost); strategies ranked per entity by net value; the first one
explained by its SHAP drivers against the entity's cohort (creators: same tier; merchants: same
category).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from core.tasks import TaskMap, in_process
from strategies.catalog import Catalog
from strategies.explain import (
    attributions,
    cohort_medians,
    dependence,
    global_importance,
    rationale,
    segment_rules,
)
from strategies.modeling import KindModel

COHORT = {"creator": "tier", "merchant": "category"}
PEERS = {"creator": "creators", "merchant": "merchants"}


def learner_label(model: KindModel, arm: str) -> str:
    """What produced a strategy's predictions: the chosen learner's name, or "none" when the strategy had
    too few rows for a model (its uplift is predicted 0)."""
    if not model.evidence and arm not in model.learners:
        return "none"
    return model.chosen.get(arm, "none")


def predict_uplift(model: KindModel, features: pl.DataFrame, catalog: Catalog) -> pl.DataFrame:
    """One row per entity and strategy of its kind, eligible or not: expected_uplift with its 80% interval
    (uplift_low/high, centred on it by `KindModel.predict_interval`), ``eligible`` (the catalog's rule),
    ``established`` (the pilots establish the sign of the strategy's effect), the ``learner`` that
    predicted it, the strategy's team and cost, and the entity's baseline GMV. `rank_strategies` turns the
    eligible rows into recommendations, so the two never differ in a figure."""
    kind = model.kind
    established = model.established()
    predicted = model.predict(features)
    low, high = model.predict_interval(features)
    baseline = pl.col(model.config.baseline_column).fill_null(0.0)
    frames = []
    for k, arm in enumerate(model.arms):
        strategy = catalog.get(arm)
        frames.append(
            features.select(
                pl.lit(kind).alias("entity_kind"),
                "entity_id",
                pl.lit(arm).alias("strategy"),
                pl.lit(strategy.team).alias("team"),
                baseline.alias("baseline_gmv_28d"),
                pl.Series("expected_uplift", predicted[:, k]),
                pl.Series("uplift_low", low[:, k]),
                pl.Series("uplift_high", high[:, k]),
                strategy.eligible().fill_null(False).alias("eligible"),
                pl.lit(established[arm]).alias("established"),
                pl.lit(learner_label(model, arm)).alias("learner"),
            ).with_columns(cost=strategy.cost.expr(pl.col("baseline_gmv_28d") + pl.col("expected_uplift")))
        )
    return pl.concat(frames)


def rank_strategies(
    predictions: pl.DataFrame, catalog: Catalog, *, require_established: bool
) -> pl.DataFrame:
    """The eligible rows of `predict_uplift`, ranked: net_value (take rate × expected uplift − cost), rank
    and is_best (rank 1 with a positive net value). With ``require_established`` (the "evidence"
    policy), established strategies rank first and an unproven one is never the best: its pilot is
    proposed instead (`strategies.pilots`). Without it (the "learners" policy, today's default) the rank
    follows net value alone and the ``established`` column only labels the evidence."""
    gate = pl.col("established") if require_established else pl.lit(True)
    return (
        predictions.filter(pl.col("eligible"))
        .drop("eligible", "learner")
        .with_columns(net_value=catalog.take_rate * pl.col("expected_uplift") - pl.col("cost"), _gate=gate)
        .sort("entity_id", "_gate", "net_value", descending=[False, True, True], maintain_order=True)
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("entity_id").cast(pl.Int32))
        .with_columns(is_best=(pl.col("rank") == 1) & pl.col("_gate") & (pl.col("net_value") > 0))
        .drop("_gate")
    )


def score_entities(model: KindModel, features: pl.DataFrame, catalog: Catalog) -> pl.DataFrame:
    """The ranked recommendations of one kind (`rank_strategies` of `predict_uplift`)."""
    return rank_strategies(
        predict_uplift(model, features, catalog),
        catalog,
        require_established=model.config.policy == "evidence",
    )


UPLIFT_EXPORT_SCHEMA = pl.Schema(
    {
        "entity_kind": pl.String,
        "entity_id": pl.String,
        "strategy": pl.String,
        "eligible": pl.Boolean,
        "predicted_uplift_28d": pl.Float64,
        "low": pl.Float64,
        "high": pl.Float64,
        "established": pl.Boolean,
        "learner": pl.String,
        "run_id": pl.String,
        "as_of": pl.Date,
    }
)
"""The columns of ``liftboard export uplift`` (documented in the README)."""


def uplift_export(predictions: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The ``uplift_predictions`` snapshot as users export it: one row per entity × strategy of its kind,
    the recommendations' figures under plain names (low/high: the 80% interval), with the scoring date."""
    return (
        predictions.select(
            "entity_kind",
            "entity_id",
            "strategy",
            "eligible",
            pl.col("expected_uplift").alias("predicted_uplift_28d"),
            pl.col("uplift_low").alias("low"),
            pl.col("uplift_high").alias("high"),
            "established",
            "learner",
            "run_id",
            pl.lit(as_of, pl.Date).alias("as_of"),
        )
        .cast(UPLIFT_EXPORT_SCHEMA)
        .sort("entity_kind", "entity_id", "strategy")
    )


@dataclass(frozen=True)
class Explanations:
    """Rationales of the first-ranked strategy of each entity, and the models' global view."""

    rationales: pl.DataFrame  # entity_kind, entity_id, strategy, rationale
    # entity_kind, entity_id, strategy, position, part, feature, value, cohort_median, contribution: per
    # explained prediction, the base value (part "base", position 0), the top drivers (part "driver") and
    # the rest (part "other", last); the contributions add up to the expected uplift
    drivers: pl.DataFrame
    importance: pl.DataFrame  # strategy, feature, label, mean_abs_shap
    dependence: pl.DataFrame  # strategy, feature, value, shap
    rules: pl.DataFrame  # strategy, rule, entities, mean_predicted_uplift, mean_predicted_lift


DRIVER_SCHEMA = pl.Schema(
    {
        "entity_kind": pl.String,
        "entity_id": pl.String,
        "strategy": pl.String,
        "position": pl.Int32,
        "part": pl.String,
        "feature": pl.String,
        "value": pl.Float64,
        "cohort_median": pl.Float64,
        "contribution": pl.Float64,
    }
)
RATIONALE_SCHEMA = pl.Schema(
    {"entity_kind": pl.String, "entity_id": pl.String, "strategy": pl.String, "rationale": pl.String}
)


def driver_medians(model: KindModel, features: pl.DataFrame) -> pl.DataFrame:
    """Each entity's cohort median of every model feature (null where a feature has none), row by row
    with ``features``: computed over all of a kind's entities, then cut with them into pieces."""
    raw_numeric = [c for c in model.encoder.numeric if c in features.columns]
    medians = cohort_medians(features, raw_numeric, COHORT[model.kind])
    return medians.with_columns(
        pl.lit(None, pl.Float64).alias(n) for n in model.encoder.names if n not in raw_numeric
    ).select(model.encoder.names)


def entity_explanations(
    model: KindModel, features: pl.DataFrame, scored: pl.DataFrame, catalog: Catalog, medians: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rationale and the drivers (base value, top drivers, other factors: they add up to the
    expected uplift) of each entity's first-ranked strategy in ``scored``; ``medians`` row by row with
    ``features`` (`driver_medians`). Per entity: a piece of the entities gives its part of the result."""
    kind = model.kind
    values = model.encoder.values(features)
    names = model.encoder.names
    first = scored.filter(pl.col("rank") == 1).select("entity_id", "strategy", "expected_uplift")
    position = features.select("entity_id").with_row_index("_row")
    base = features[model.config.baseline_column].fill_null(0.0).to_numpy()
    rationale_rows: list[tuple[str, str, str, str]] = []
    driver_rows: list[tuple[str, str, str, int, str, str | None, float | None, float | None, float]] = []
    for arm in model.arms:
        rows = first.filter(pl.col("strategy") == arm).join(position, on="entity_id")
        if not rows.height:
            continue
        strategy = catalog.get(arm)
        idx = rows["_row"].to_numpy()
        contrib = model.explain(features[idx], arm)
        parts = attributions(contrib, names, values[idx], medians[idx], rows["expected_uplift"].to_numpy())
        for entity_id, expected, attribution, entity_base in zip(
            rows["entity_id"], rows["expected_uplift"], parts, base[idx], strict=True
        ):
            text = rationale(strategy.name, expected, attribution, PEERS[kind], float(entity_base))
            rationale_rows.append((kind, entity_id, arm, text))
            driver_rows.append((kind, entity_id, arm, 0, "base", None, None, None, attribution.base))
            for pos, d in enumerate(attribution.drivers, start=1):
                driver_rows.append(
                    (
                        kind,
                        entity_id,
                        arm,
                        pos,
                        "driver",
                        d.feature,
                        _num(d.value),
                        _num(d.cohort_median),
                        d.contribution,
                    )
                )
            last = len(attribution.drivers) + 1
            driver_rows.append((kind, entity_id, arm, last, "other", None, None, None, attribution.other))
    return (
        pl.DataFrame(rationale_rows, schema=RATIONALE_SCHEMA, orient="row"),
        pl.DataFrame(driver_rows, schema=DRIVER_SCHEMA, orient="row"),
    )


def global_explanations(
    model: KindModel,
    features: pl.DataFrame,
    predictions: pl.DataFrame,
    sample: int = 3000,
    rule_sample: int = 20_000,
    seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Per strategy, over all of a kind's entities: global importance and dependence (on a sample of at
    most ``sample`` entities) and segment rules of the predicted lift (at most ``rule_sample``);
    ``predictions`` is `predict_uplift` of ``features``, in its row order."""
    kind = model.kind
    values = model.encoder.values(features)
    names = model.encoder.names
    raw_numeric = [c for c in model.encoder.numeric if c in features.columns]
    categorical = [c for c in model.encoder.categorical if c in features.columns]
    rng = np.random.default_rng(seed)
    base = features[model.config.baseline_column].fill_null(0.0).to_numpy()
    rule_rows = rng.choice(features.height, size=min(rule_sample, features.height), replace=False)
    importance, dependence_frames, rule_frames = [], [], []
    for arm in model.arms:
        pick = rng.choice(features.height, size=min(sample, features.height), replace=False)
        contrib = model.explain(features[pick], arm)
        imp = global_importance(contrib, names).with_columns(strategy=pl.lit(arm))
        importance.append(imp)
        top = [f for f in imp["feature"].head(4).to_list() if f in raw_numeric]
        dependence_frames.append(
            dependence(contrib, names, values[pick], top).with_columns(strategy=pl.lit(arm))
        )
        predicted = predictions.filter(pl.col("strategy") == arm)["expected_uplift"].to_numpy()[rule_rows]
        lift = np.where(
            base[rule_rows] > model.config.baseline_floor, predicted / np.maximum(base[rule_rows], 1e-9), 0.0
        )
        rules = segment_rules(features[rule_rows], lift, raw_numeric, categorical, PEERS[kind])
        rule_frames.append(
            rules.rename({"mean_predicted_uplift": "mean_predicted_lift"}).with_columns(strategy=pl.lit(arm))
        )
    return pl.concat(importance), pl.concat(dependence_frames), pl.concat(rule_frames)


@dataclass(frozen=True)
class ScoringPiece:
    """A piece of one kind's entities to score and explain on its own (`score_piece`): the fitted model,
    the entities' features and their cohort medians (`driver_medians`, over all of the kind)."""

    model: KindModel
    features: pl.DataFrame
    medians: pl.DataFrame
    catalog: Catalog


@dataclass(frozen=True)
class ScoredPiece:
    predictions: pl.DataFrame  # `predict_uplift`
    scored: pl.DataFrame  # `rank_strategies`
    rationales: pl.DataFrame
    drivers: pl.DataFrame


def score_piece(piece: ScoringPiece) -> ScoredPiece:
    """Predictions, ranked recommendations, rationales and drivers of a piece's entities (a task)."""
    model, features, catalog = piece.model, piece.features, piece.catalog
    predictions = predict_uplift(model, features, catalog)
    scored = rank_strategies(predictions, catalog, require_established=model.config.policy == "evidence")
    rationales, drivers = entity_explanations(model, features, scored, catalog, piece.medians)
    return ScoredPiece(predictions, scored, rationales, drivers)


def score_and_explain(
    model: KindModel,
    features: pl.DataFrame,
    catalog: Catalog,
    map_tasks: TaskMap = in_process,
    pieces: int = 1,
) -> tuple[pl.DataFrame, pl.DataFrame, Explanations]:
    """Predictions (`predict_uplift`), ranked recommendations (`rank_strategies`) and explanations of one
    kind's entities: ``pieces`` runs of entities scored and explained by ``map_tasks`` (tasks on a
    cluster), the global explanations here. The same frames for any number of pieces (the predictions in
    the same row order)."""
    medians = driver_medians(model, features)
    bounds = np.linspace(0, features.height, max(pieces, 1) + 1).astype(int)
    work = [
        ScoringPiece(model, features[int(a) : int(b)], medians[int(a) : int(b)], catalog)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if b > a
    ] or [ScoringPiece(model, features, medians, catalog)]
    done = map_tasks(score_piece, work)
    order = {arm: k for k, arm in enumerate(model.arms)}
    predictions = (
        pl.concat([p.predictions.with_columns(_piece=pl.lit(i)) for i, p in enumerate(done)])
        .with_columns(_arm=pl.col("strategy").replace_strict(order, return_dtype=pl.Int32))
        .sort("_arm", "_piece", maintain_order=True)  # predict_uplift's order: by strategy, then entity
        .drop("_arm", "_piece")
    )
    scored = pl.concat([p.scored for p in done]).sort("entity_id", "rank")
    rationales = pl.concat([p.rationales for p in done])
    drivers = pl.concat([p.drivers for p in done])
    importance, dependence_frame, rules = global_explanations(model, features, predictions)
    return predictions, scored, Explanations(rationales, drivers, importance, dependence_frame, rules)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and value is not None else None
