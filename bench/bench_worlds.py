"""Strategies on many worlds: Liftboard's policy beside simple baselines and off-the-shelf learners, on
the simulator's development and held-out worlds (`sim.worlds`), several seeds each.

    .venv/bin/python bench/bench_worlds.py --split development --seeds 1,2 --scale demo
    .venv/bin/python bench/bench_worlds.py --split held_out --seeds 1,2 --scale demo --libs

Each world × seed is generated once into ``bench/out/worlds/<world>-<scale>-<seed>/`` (a Liftboard home;
delete it after changing the simulator) with its training set and scoring features cached, as the
pipeline computes them. Per strategy, every policy ranks the entities at the scoring date and treats the
top 20%; the table shows the true incremental GMV earned as a share of the oracle's top 20% (the mean
over the strategies of a kind). "Best strategy" gives each entity the strategy the policy ranks first for
it (Liftboard: among its established strategies with a positive prediction, else none) and compares the
true uplift earned with the oracle's (each entity's best strategy, or none where all would lose).
Coverage is the share of entity × strategy pairs whose true uplift lies in Liftboard's 80% interval.

Policies:

- ``random``: the expected value of treating a random 20% (and a random strategy per entity);
- ``biggest sellers``: the entities with the most GMV over the last 28 days first;
- ``average effect``: each strategy's pilot estimate (ratio of totals between the randomized arms) times
  the entity's net GMV over the last 28 days;
- ``liftboard (shipped)``: the shipped policy (`strategies.modeling.ModelConfig`, ``policy="learners"``);
- ``liftboard (evidence)``: the pilots' average effect plus validated heterogeneity (``policy="evidence"``,
  `strategies.evidence`), under evaluation;
- ``evidence, pooled (bench only)``: the evidence policy's average effects shrunk towards the kind's
  pooled effect (empirical Bayes over its strategies); best strategy among those more likely positive
  than not — an experiment for the best-strategy decision, not a shipped policy;
- ``feature ceiling (cheats)``: LightGBM fitted to the *true* uplift on the observed scoring features,
  out of fold (5 folds over entities): what any learner could reach with unlimited pilots and these
  features. Not a policy (it reads the truth); the bound a target must be set against;
- with ``--libs`` (bench extras: ``pip install -e '.[bench]'``): CausalML's X-learner and EconML's
  DR-learner with LightGBM models, untuned, on the same rows and outcome (28-day net GMV change).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
from bench_uplift_variants import cached_frames  # bench/ is on sys.path when a bench script runs
from scipy.stats import norm

from core.config import Settings
from strategies.evaluation import truth_scores
from strategies.evidence import net_baseline
from strategies.modeling import FeatureEncoder, KindModel, ModelConfig, fit_kind, pilot_effect, strategy_rows
from strategies.training import ARMS

ROOT = Path(__file__).resolve().parent / "out" / "worlds"
FRACTION = 0.2


def world_home(world: str, scale: str, seed: int) -> Path:
    """The cached marketplace of one world and seed (generated on first use)."""
    home = ROOT / f"{world}-{scale}-{seed}"
    if not (home / ".complete").exists():
        from datastore import db
        from sim.simulate import generate

        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")
        home.mkdir(parents=True, exist_ok=True)
        db.upgrade_db(settings)
        generate(scale=scale, seed=seed, settings=settings, world=world)
        (home / ".complete").write_text("ok\n")
    return home


def true_matrix(home: Path, features: pl.DataFrame, kind: str) -> np.ndarray:
    """(entities, strategies) true 28-day uplift at the scoring date, in the truth's net metric."""
    effects = pl.read_parquet(home / "truth" / "effects.parquet").filter(pl.col("entity_kind") == kind)
    column = "true_uplift_net_gmv_28d"
    wide = effects.pivot("strategy", index="entity_id", values=column)
    joined = features.select("entity_id").join(wide, on="entity_id", how="left")
    return joined.select(ARMS[kind]).fill_null(0.0).to_numpy().astype(float)


def _library_predictions(train: pl.DataFrame, features: pl.DataFrame, kind: str, library: str) -> np.ndarray:
    """CATE (USD, net GMV change) of every strategy from CausalML's X-learner or EconML's DR-learner."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    encoder = FeatureEncoder.fit(train)
    x_score = np.nan_to_num(encoder.transform(features))
    out = np.zeros((features.height, len(ARMS[kind])))
    for k, arm in enumerate(ARMS[kind]):
        data = strategy_rows(train, arm)
        x = np.nan_to_num(encoder.transform(data))
        t = data["treated"].to_numpy()
        y = (data["net_gmv_after"] - data["net_gmv_before"]).to_numpy().astype(float)
        if t.sum() < 10 or (1 - t).sum() < 10:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if library == "causalml":
                from causalml.inference.meta import BaseXRegressor

                model = BaseXRegressor(learner=LGBMRegressor(verbose=-1, random_state=0))
                model.fit(x, t, y, p=np.full(len(t), t.mean()))
                out[:, k] = np.asarray(model.predict(x_score, p=np.full(len(x_score), t.mean()))).ravel()
            else:
                from econml.dr import DRLearner

                model = DRLearner(
                    model_propensity=LGBMClassifier(verbose=-1, random_state=0),
                    model_regression=LGBMRegressor(verbose=-1, random_state=0),
                    model_final=LGBMRegressor(verbose=-1, random_state=0),
                    random_state=0,
                )
                model.fit(y, t, X=x)
                out[:, k] = np.asarray(model.effect(x_score)).ravel()
    return out


def _ceiling_predictions(features: pl.DataFrame, true: np.ndarray, kind: str) -> np.ndarray:
    """Out-of-fold LightGBM fit to the true uplift on the observed features (reads the truth)."""
    from lightgbm import LGBMRegressor

    encoder = FeatureEncoder.fit(features)
    x = encoder.transform(features)
    fold = np.random.default_rng(0).integers(0, 5, len(x))
    out = np.zeros_like(true)
    for k in range(len(ARMS[kind])):
        for f in range(5):
            model = LGBMRegressor(
                n_estimators=300, learning_rate=0.05, num_leaves=15, verbose=-1, random_state=0
            )
            model.fit(x[fold != f], true[fold != f, k])
            out[fold == f, k] = model.predict(x[fold == f])
    return out


def _average_effect_predictions(train: pl.DataFrame, features: pl.DataFrame, kind: str) -> np.ndarray:
    baseline = net_baseline(features)
    out = np.zeros((features.height, len(ARMS[kind])))
    for k, arm in enumerate(ARMS[kind]):
        effect = pilot_effect(train, arm, seed=0)
        out[:, k] = (effect.relative if effect.method != "none" else 0.0) * baseline
    return out


def policy_rows(
    name: str,
    predicted: np.ndarray | None,
    true: np.ndarray,
    kind: str,
    allowed: np.ndarray | None = None,
    baseline_score: np.ndarray | None = None,
) -> list[dict[str, object]]:
    """Per strategy: value / oracle of the top 20%, Spearman; plus the best-strategy-per-entity row."""
    rows: list[dict[str, object]] = []
    for k, arm in enumerate(ARMS[kind]):
        score = (
            baseline_score
            if baseline_score is not None
            else predicted[:, k]
            if predicted is not None
            else None
        )
        truth = true[:, k]
        oracle = truth_scores(truth, truth, FRACTION).oracle_top20
        if score is None:  # random
            value, rho = FRACTION * truth.sum(), float("nan")
        else:
            scores = truth_scores(score, truth, FRACTION)
            value, rho = scores.policy_value_top20, scores.spearman
        rows.append(
            {
                "policy": name,
                "strategy": arm,
                "measure": "top 20%",
                "value_vs_oracle": value / oracle if oracle > 0 else float("nan"),
                "spearman": rho,
            }
        )
    best_oracle = np.maximum(true.max(axis=1), 0.0).sum()
    if predicted is None and baseline_score is None:
        earned = true.mean(axis=1).sum()
    elif predicted is not None:
        masked = np.where(allowed[None, :], predicted, -np.inf) if allowed is not None else predicted
        choice = masked.argmax(axis=1)
        best = masked[np.arange(len(choice)), choice]
        earned = np.where(best > 0, true[np.arange(len(choice)), choice], 0.0).sum()
    else:
        earned = float("nan")
    rows.append(
        {
            "policy": name,
            "strategy": "(best per entity)",
            "measure": "best strategy",
            "value_vs_oracle": earned / best_oracle if best_oracle > 0 else float("nan"),
            "spearman": float("nan"),
        }
    )
    return rows


def _pooled_effects(model: KindModel, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Each strategy's average effect shrunk towards the kind's pooled mean (normal-normal empirical
    Bayes over the kind's strategies: between-strategy variance by the method of moments), and the
    posterior probability that it is positive."""
    effects = [model.average_effect(arm) for arm in ARMS[kind]]
    known = [e for e in effects if e.method != "none" and np.isfinite(e.se) and e.se > 0]
    if not known:
        return np.zeros(len(effects)), np.full(len(effects), 0.5)
    estimate = np.array([e.relative for e in known])
    variance = np.array([e.se**2 for e in known])
    weights = 1.0 / variance
    pooled = float(np.sum(weights * estimate) / np.sum(weights))
    between = max(0.0, float(np.var(estimate, ddof=1) - variance.mean())) if len(known) > 1 else 0.0
    means, positive = [], []
    for e in effects:
        if e.method == "none" or not (np.isfinite(e.se) and e.se > 0):
            means.append(pooled)
            positive.append(0.5)
            continue
        share = between / (between + e.se**2) if between > 0 else 0.0
        mean = pooled + share * (e.relative - pooled)
        sd = float(np.sqrt(share * e.se**2)) if between > 0 else 0.0
        means.append(mean)
        positive.append(float(norm.cdf(mean / sd)) if sd > 0 else float(mean > 0))
    return np.array(means), np.array(positive)


def evaluate(
    home: Path, kind: str, libs: bool, model_seed: int, shipped: bool = True
) -> tuple[list[dict[str, object]], dict[str, float]]:
    train, features = cached_frames(str(home), kind)  # bench/bench_uplift_variants.py, same cache
    true = true_matrix(home, features, kind)
    rows = policy_rows("random", None, true, kind)
    rows += policy_rows(
        "biggest sellers", None, true, kind, baseline_score=features["gmv_28d"].fill_null(0.0).to_numpy()
    )
    rows += policy_rows("average effect", _average_effect_predictions(train, features, kind), true, kind)
    rows += policy_rows("feature ceiling (cheats)", _ceiling_predictions(features, true, kind), true, kind)
    model = fit_kind(train, kind, replace(ModelConfig(), policy="evidence", seed=model_seed))
    predicted = model.predict(features)
    established = model.established()
    allowed = np.array([established[arm] for arm in ARMS[kind]])
    rows += policy_rows("liftboard (evidence)", predicted, true, kind, allowed=allowed)
    low, high = model.predict_interval(features)
    inside = (true >= low - 1e-9) & (true <= high + 1e-9)
    extra = {"coverage_80": float(inside.mean()), "established": float(allowed.mean())}
    means, positive = _pooled_effects(model, kind)
    pooled = means[None, :] * net_baseline(features)[:, None]
    rows += policy_rows("evidence, pooled (bench only)", pooled, true, kind, allowed=positive > 0.5)
    if shipped:
        learners = fit_kind(train, kind, replace(ModelConfig(), policy="learners", seed=model_seed))
        rows += policy_rows("liftboard (shipped)", learners.predict(features), true, kind)
    if libs:
        rows += policy_rows(
            "X-learner (CausalML)", _library_predictions(train, features, kind, "causalml"), true, kind
        )
        rows += policy_rows(
            "DR-learner (EconML)", _library_predictions(train, features, kind, "econml"), true, kind
        )
    return rows, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["development", "held_out", "all"], default="development")
    parser.add_argument("--world", action="append", default=None, help="only these worlds (repeatable)")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--model-seed", type=int, default=7)
    parser.add_argument(
        "--libs", action="store_true", help="add CausalML's X-learner and EconML's DR-learner"
    )
    parser.add_argument("--out", default=str(ROOT.parent / "worlds.parquet"))
    parser.add_argument("--no-shipped", action="store_true", help="skip the shipped policy (the slowest fit)")
    args = parser.parse_args()
    from sim.worlds import world_names, world_split

    split = world_split()

    def split_of(world: str) -> str:
        return split.get(world, "unsplit")

    worlds = args.world or world_names(None if args.split == "all" else args.split)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, object]] = []
    for world in worlds:
        for seed in seeds:
            started = time.perf_counter()
            home = world_home(world, args.scale, seed)
            for kind in ARMS:
                found, extra = evaluate(home, kind, args.libs, args.model_seed, shipped=not args.no_shipped)
                for row in found:
                    rows.append({"world": world, "split": split_of(world), "seed": seed, "kind": kind, **row})
                rows.append(
                    {
                        "world": world,
                        "split": split_of(world),
                        "seed": seed,
                        "kind": kind,
                        "policy": "liftboard (evidence)",
                        "strategy": "(intervals)",
                        "measure": "coverage 80%",
                        "value_vs_oracle": extra["coverage_80"],
                        "spearman": extra["established"],
                    }
                )
            print(f"{world} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    results = pl.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results.write_parquet(args.out)
    summarize(results)


def summarize(results: pl.DataFrame) -> None:
    """Print the tables RESULTS.md quotes: per world and policy, mean over strategies and seeds."""
    config = pl.Config(
        tbl_rows=400,
        tbl_cols=30,
        tbl_width_chars=250,
        tbl_formatting="MARKDOWN",
        fmt_str_lengths=40,
        tbl_hide_dataframe_shape=True,
    )
    with config:
        for measure in ("top 20%", "best strategy", "coverage 80%"):
            table = (
                results.filter(pl.col("measure") == measure)
                .group_by("split", "kind", "policy", "world", maintain_order=True)
                .agg(pl.col("value_vs_oracle").mean())
                .pivot("world", index=["split", "kind", "policy"], values="value_vs_oracle")
                .with_columns(mean=pl.mean_horizontal(pl.exclude("split", "kind", "policy")))
                .with_columns(pl.exclude("split", "kind", "policy").round(2))
            )
            print(f"\n{measure} (value / oracle; coverage: share inside the 80% interval)")
            print(table)


if __name__ == "__main__":
    main()
