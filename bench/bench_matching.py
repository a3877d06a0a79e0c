"""Benchmark of matching on the ``demo`` marketplace: recall + rank vs single sources, and interest refresh.

Usage::

    .venv/bin/python bench/bench_matching.py [--home DIR] [--as-of 2026-10-26]

Generates ``demo`` (seed 42) into ``DIR`` unless its lake already holds orders, then

1. evaluates on a time split (train on windows before ``--as-of``, labels: new creator–product pairs
   sold in the 28 days from it, excluding products the creator already promoted): recall@20, NDCG@20
   and MAP@20 of popularity, each recall source alone and the full recall + rank pipeline;
2. times the refresh of creator interests after a 100,000-event micro-batch (orders after the state's
   time, turned into events and folded into the state) and checks it equals a full recompute.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from core.config import Settings
from datastore.db import upgrade_db
from datastore.lake import has_rows
from matching.interests import (
    InterestConfig,
    hashtag_categories,
    interest_events,
    interest_state,
    update_interest_state,
)
from matching.recommender import MatchingConfig, evaluate_matching
from matching.relations import MarketFrames
from sim.simulate import generate

BATCH_EVENTS = 100_000


def _ensure_demo(settings: Settings) -> None:
    if settings.lake.is_dir() and has_rows("orders", settings):
        return
    started = time.perf_counter()
    upgrade_db(settings)  # a new installation, as `liftboard demo` makes it
    generate("demo", 42, settings)
    print(f"generated demo in {time.perf_counter() - started:.1f} s")


def bench_ranking(frames: MarketFrames, as_of: date) -> None:
    started = time.perf_counter()
    evaluation = evaluate_matching(frames, as_of, MatchingConfig())
    elapsed = time.perf_counter() - started
    with pl.Config(tbl_rows=20, tbl_cols=10, tbl_width_chars=140, float_precision=4):
        print(evaluation.metrics)
        print(evaluation.source_recall)
    print("objective kept:", evaluation.objective)
    for objective, metrics in evaluation.validation.items():
        print(f"  validation {objective}: ndcg@20 {metrics['ndcg']:.4f} recall@20 {metrics['recall']:.4f}")
    metrics = evaluation.metrics
    full = metrics.filter(pl.col("method").str.starts_with("recall + rank")).row(0, named=True)
    popularity = metrics.filter(pl.col("method") == "popularity").row(0, named=True)
    singles = metrics.filter(pl.col("method").str.ends_with(" alone"))
    for metric in ("recall@20", "ndcg@20"):
        best = singles.sort(metric, descending=True).row(0, named=True)
        print(
            f"{metric}: pipeline {full[metric]:.4f} = {full[metric] / popularity[metric]:.2f}x popularity, "
            f"{full[metric] / best[metric]:.2f}x best single source ({best['method']})"
        )
    print(f"train + evaluate: {elapsed:.1f} s")


def bench_interests(frames: MarketFrames, as_of: date) -> None:
    cfg = InterestConfig()
    moment = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC)
    tag_map = hashtag_categories(frames.before(as_of), cfg).collect().lazy()
    history = frames.before(as_of)
    started = time.perf_counter()
    state = interest_state(
        interest_events(history.content, history.showcase, history.orders, history.products, tag_map, cfg),
        moment,
        cfg,
    )
    full_seconds = time.perf_counter() - started
    raw = (
        frames.orders.filter(pl.col("ordered_at") >= moment)
        .filter(pl.col("status").is_in(list(cfg.order_statuses)))
        .sort("ordered_at", "order_id")
        .head(BATCH_EVENTS)
        .collect()
    )
    products = frames.products.collect().lazy()
    empty = frames.content.head(0)
    started = time.perf_counter()
    batch = interest_events(empty, frames.showcase.head(0), raw.lazy(), products, tag_map, cfg).collect()
    updated = update_interest_state(state, batch, cfg)
    refresh_seconds = time.perf_counter() - started
    reference = interest_state(
        pl.concat(
            [
                interest_events(
                    history.content, history.showcase, history.orders, history.products, tag_map, cfg
                ),
                batch.lazy(),
            ]
        ),
        updated.as_of,
        cfg,
    )
    from polars.testing import assert_frame_equal

    assert_frame_equal(updated.sums, reference.sums, rel_tol=1e-9, abs_tol=1e-9)
    span = batch["at"].max() - batch["at"].min()  # type: ignore[operator]
    print(
        f"interest refresh: {batch.height:,} events spanning {span} folded into {state.sums.height:,} state "
        f"rows in {refresh_seconds:.3f} s (full recompute of the history: {full_seconds:.2f} s); "
        "equals the full recompute"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/liftboard-bench-matching"))
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 10, 26))
    args = parser.parse_args()
    settings = Settings.from_env(home=args.home)
    _ensure_demo(settings)
    print(f"machine: {platform.machine()}, python {platform.python_version()}, polars {pl.__version__}")
    frames = MarketFrames.from_settings(settings)
    bench_interests(frames, args.as_of)
    bench_ranking(frames, args.as_of)


if __name__ == "__main__":
    main()
