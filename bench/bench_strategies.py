"""Benchmark: the uplift models on a simulated marketplace — quality against the planted truth and the
time to score and explain every entity for every eligible strategy.

    .venv/bin/python bench/bench_strategies.py --home /tmp/lb_demo        # after `liftboard demo`

Prints, per strategy, the chosen learner's randomized-holdout Qini coefficient and AUUC, the Spearman
correlation of predicted and true uplift at the scoring date, and the policy value of treating the top
20% by prediction as a fraction of the oracle's top 20% (target ≥ 0.85); then the stage timings
(target: score + explain under 60 s on `demo`, under 10 minutes on `large`).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import polars as pl

from core.config import Settings
from strategies.pipeline import run_strategies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="a LIFTBOARD_HOME holding an ingested marketplace")
    args = parser.parse_args()
    settings = Settings.from_env(home=args.home)
    started = time.perf_counter()
    run = run_strategies(settings, persist=False)
    wall = time.perf_counter() - started
    chosen = run.metrics.filter(pl.col("chosen")).select(
        "entity_kind",
        "strategy",
        "learner",
        "n_holdout",
        pl.col("qini_coefficient").round(3),
        pl.col("auuc").round(1),
        pl.col("uplift_at_20").round(1),
        pl.col("truth_spearman").round(3),
        pl.col("truth_policy_vs_oracle").round(3),
    )
    with pl.Config(
        tbl_rows=40,
        tbl_cols=20,
        tbl_width_chars=200,
        tbl_formatting="MARKDOWN",
        tbl_hide_dataframe_shape=True,
    ):
        print(chosen)
    score_explain = sum(v for k, v in run.timings.items() if k.endswith("score_explain"))
    print(
        json.dumps(
            {
                "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
                "score_and_explain_s": round(score_explain, 1),
                "entities_scored": run.recommendations["entity_id"].n_unique(),
                "recommendation_rows": run.recommendations.height,
                "wall_s": round(wall, 1),
                "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
