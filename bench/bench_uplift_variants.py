"""Uplift-model experiments: refit the strategy models under `ModelConfig` variants on several simulated
marketplaces and compare the policy value of top-20% targeting (÷ the oracle's) per strategy and seed.

    .venv/bin/python bench/bench_uplift_variants.py --kind merchant \\
        --home /tmp/lb_s42 --home /tmp/lb_s43 --variant '{}' --variant '{"boosting": "gbdt"}' --reference

Each ``--home`` holds a marketplace from ``liftboard demo --scale demo --seed S``. Its training set and
scoring features are computed once, as the pipeline does (`strategies.pipeline.FeatureStore`,
`strategies.training.training_set`), and cached under ``<home>/bench_cache/`` (delete it after
regenerating the marketplace); each variant then costs only the model fits (about 6 s a seed for
merchants, 20 s for creators on `demo`). A variant is a JSON object of `ModelConfig` fields; ``{}`` is
the pipeline's configuration. ``--model-seeds 7,8,9,10,11`` fits every variant under each
`ModelConfig.seed` (the holdout split and the trees): on `demo` the merchant figures move by up to 0.3
with it (docs/strategies.md "What limits the remaining four"), so compare merchant variants over several.

``--reference`` adds the *known-structure reference*: the entities are grouped by their true lift
(quintiles when it takes more than six values), each group's effect is estimated from the strategy's
randomized rows as the ratio between arms of GMV totals at the before window's clicks, and entities are
ranked by their group's effect × their GMV of the last 28 days. It knows which entities share an effect —
knowledge no learner has — so what it misses is what the data cannot tell (docs/strategies.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from analytics.sources import default_as_of, load_inputs
from core.config import Settings
from datastore.lake import scan_table
from strategies.evaluation import truth_scores
from strategies.modeling import ModelConfig, fit_kind, gmv_after_at_before_clicks
from strategies.pipeline import FeatureStore
from strategies.training import ARMS, training_set

MAX_LEVELS = 6


def cached_frames(home: str, kind: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pipeline's training set and scoring features of ``kind`` for the marketplace in ``home``."""
    settings = Settings.from_env(home=home)
    cache = Path(home) / "bench_cache"
    train_path, features_path = cache / f"{kind}_train.parquet", cache / f"{kind}_features.parquet"
    if not (train_path.exists() and features_path.exists()):
        inputs = load_inputs(settings)
        as_of = default_as_of(inputs.orders)
        if as_of is None:
            raise SystemExit(f"{home}: no orders in the lake (run `liftboard demo` into it first)")
        store = FeatureStore(inputs, as_of)
        interventions = scan_table("interventions", settings).filter(pl.col("assigned_on") < as_of).collect()
        cache.mkdir(exist_ok=True)
        training_set(
            interventions, inputs, kind, store, as_of - timedelta(days=1), daily=store.daily(kind)
        ).write_parquet(train_path)
        store(kind, as_of).write_parquet(features_path)
    return pl.read_parquet(train_path), pl.read_parquet(features_path)


def truth(home: str, kind: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """True effects at the scoring date, and per intervention (evaluation only)."""
    root = Settings.from_env(home=home).truth
    effects = pl.read_parquet(root / "effects.parquet").filter(pl.col("entity_kind") == kind)
    return effects, pl.read_parquet(root / "interventions.parquet")


def true_uplift(features: pl.DataFrame, effects: pl.DataFrame, arm: str) -> pl.DataFrame:
    return features.select("entity_id", "gmv_28d").join(
        effects.filter(pl.col("strategy") == arm).select("entity_id", "true_lift", "true_uplift_gmv_28d"),
        on="entity_id",
        how="left",
    )


def known_structure(train: pl.DataFrame, features: pl.DataFrame, effects: pl.DataFrame, arm: str) -> float:
    """Policy value / oracle of the known-structure reference (see the module docstring)."""
    target = true_uplift(features, effects, arm).fill_null(0.0)
    lifts = target["true_lift"].to_numpy()
    levels = np.unique(np.round(lifts, 3))
    edges = (
        np.quantile(lifts, [0.2, 0.4, 0.6, 0.8])
        if len(levels) > MAX_LEVELS
        else (levels[:-1] + levels[1:]) / 2
    )
    rows = (
        train.filter((pl.col("strategy") == arm) & (pl.col("assignment") == "randomized"))
        .join(effects.filter(pl.col("strategy") == arm).select("entity_id", "true_lift"), on="entity_id")
        .with_columns(
            treated=pl.col("arm") == "treatment",
            after=gmv_after_at_before_clicks(),  # the learners' conversion outcome
        )
    )
    rows = rows.with_columns(group=pl.Series(np.searchsorted(edges, rows["true_lift"].to_numpy())))

    def gmv_ratio(arm_: pl.Expr) -> pl.Expr:  # after ÷ before, totals of one arm
        return pl.col("after").filter(arm_).sum() / pl.col("gmv_before").filter(arm_).sum()

    effect = rows.group_by("group").agg(
        effect=gmv_ratio(pl.col("treated")) / gmv_ratio(~pl.col("treated")) - 1.0
    )
    by_group = dict(
        zip(effect["group"].to_list(), effect["effect"].fill_nan(0.0).fill_null(0.0).to_list(), strict=True)
    )
    predicted = (
        np.array([by_group.get(g, 0.0) for g in np.searchsorted(edges, lifts)]) * target["gmv_28d"].to_numpy()
    )
    return truth_scores(predicted, target["true_uplift_gmv_28d"].to_numpy()).policy_vs_oracle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", action="append", required=True, help="a marketplace (repeat for seeds)")
    parser.add_argument("--kind", choices=sorted(ARMS), default="merchant")
    parser.add_argument("--variant", action="append", default=None, help="JSON of ModelConfig fields")
    parser.add_argument("--reference", action="store_true", help="add the known-structure reference")
    parser.add_argument(
        "--model-seeds",
        default=None,
        help="comma-separated ModelConfig seeds (holdout split and trees): every variant is fitted under "
        "each, the table shows the mean over them and a second table their spread",
    )
    args = parser.parse_args()
    variants = args.variant or ["{}"]
    model_seeds: list[int | None] = (
        [int(x) for x in args.model_seeds.split(",")] if args.model_seeds else [None]
    )
    rows = []
    for home in args.home:
        train, features = cached_frames(home, args.kind)
        effects, per_intervention = truth(home, args.kind)
        seed = Path(home).name
        for variant, model_seed in itertools.product(variants, model_seeds):
            fields = json.loads(variant)
            if model_seed is not None:
                if "seed" in fields:
                    raise SystemExit(f"{variant}: give the seed by --model-seeds or in the variant, not both")
                fields["seed"] = model_seed
            cfg = replace(ModelConfig(), **fields)
            started = time.perf_counter()
            model = fit_kind(train, args.kind, cfg, truth=per_intervention)
            predicted = model.predict(features)
            for k, arm in enumerate(model.arms):
                target = true_uplift(features, effects, arm)["true_uplift_gmv_28d"].fill_null(0.0).to_numpy()
                value = truth_scores(predicted[:, k], target).policy_vs_oracle
                row = {"variant": variant, "strategy": arm, "home": seed, "model_seed": cfg.seed}
                rows.append({**row, "value": value})
            print(f"{seed} {variant} seed {cfg.seed}: {time.perf_counter() - started:.1f} s", flush=True)
        if args.reference:
            for arm in ARMS[args.kind]:
                value = known_structure(train, features, effects, arm)
                row = {"variant": "known structure", "strategy": arm, "home": seed, "model_seed": 0}
                rows.append({**row, "value": value})
    results = pl.DataFrame(rows)
    table = (
        results.group_by("variant", "strategy", "home", maintain_order=True)
        .agg(pl.col("value").mean())  # over the model seeds
        .pivot("home", index=["variant", "strategy"], values="value")
        .with_columns(mean=pl.mean_horizontal(pl.exclude("variant", "strategy")))
        .with_columns(pl.exclude("variant", "strategy").round(3))
    )
    with pl.Config(
        tbl_rows=200,
        tbl_cols=20,
        tbl_width_chars=200,
        tbl_formatting="MARKDOWN",
        fmt_str_lengths=60,
        tbl_hide_dataframe_shape=True,
    ):
        print(table)
        if len(model_seeds) > 1:
            spread = (
                results.filter(pl.col("variant") != "known structure")
                .group_by("variant", "strategy", "model_seed", maintain_order=True)
                .agg(pl.col("value").mean())  # over the marketplaces
                .group_by("variant", "strategy", maintain_order=True)
                .agg(
                    pl.col("value").mean().alias("mean"),
                    pl.col("value").min().alias("worst model seed"),
                    pl.col("value").max().alias("best model seed"),
                )
                .with_columns(pl.exclude("variant", "strategy").round(3))
            )
            print(f"Mean over the marketplaces, spread over model seeds {model_seeds}:")
            print(spread)


if __name__ == "__main__":
    main()
