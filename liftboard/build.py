"""The analytics build: every stage composed once, published as Parquet snapshots and SQL tables.

``build(settings)`` reads the lake, computes the daily facts, KPIs, features, segments, cohorts and
movers as of a date, and publishes them:

- Parquet snapshots under ``settings.snapshots / <build_id> / <name>.parquet`` with a
  ``manifest.json`` (build id, as-of date, creation time, row counts, stage timings); the build is
  written under a hidden temporary name and renamed into place when complete;
- SQL tables ``analytics_<name>`` in the state DB (SQLAlchemy Core, replaced per build, with
  ``build_id`` and ``as_of`` columns) for every snapshot small enough for SQL (`SQL_SNAPSHOTS`);
- finally ``settings.snapshots / "LATEST"``, naming the current build, replaced atomically. Readers
  (`load_snapshot`, `latest_manifest`) only follow ``LATEST``, so they never see a half-written build.

The CLI (``liftboard build``), the app and the tests all call this one composition.

The matching stage, the slowest, needs only the lake: on a machine with two cores or more it runs in its
own process from the end of the daily facts, beside the analytics, strategies and product pairs stages
(``BuildConfig.parallel_matching``); the product pairs, mined in this process meanwhile, then label the
matching stage's item2vec neighbours (similar_products). ``progress(description, done, total)`` is
called when each stage starts and ends and after each step of the strategies and matching stages;
``done`` counts the stages finished.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.queues
import os
import queue
import shutil
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa

from analytics import cohorts, features, kpis, movers, partitions, segments, sources
from core.config import Settings
from core.snapshots import SQL_SNAPSHOTS
from datastore import lake
from datastore.db import engine_for
from datastore.snapshots import LATEST, MANIFEST
from liftboard.spawning import main_script_hidden

if TYPE_CHECKING:
    from dask.distributed import Future

    from liftboard.cluster import DaskTasks

Progress = Callable[[str, int, int], None]
Writer = Callable[[str, pl.LazyFrame | pl.DataFrame], pl.LazyFrame]

SQL_PREFIX = "analytics_"


@dataclass(frozen=True)
class BuildConfig:
    """Windows, thresholds and publishing options of a build."""

    features: features.FeatureConfig = field(default_factory=features.FeatureConfig)
    segments: segments.SegmentConfig = field(default_factory=segments.SegmentConfig)
    movers: movers.MoversConfig = field(default_factory=movers.MoversConfig)
    publish_sql: bool = True
    sql_snapshots: tuple[str, ...] = SQL_SNAPSHOTS
    keep_builds: int = 3
    """Builds kept on disk (the newest; older ones are deleted after LATEST moves)."""
    sql_chunk_rows: int = 50_000
    with_strategies: bool = True
    """Train, score and explain the uplift models and publish recommendations (strategies stage)."""
    with_matching: bool = True
    """Mine product relations, rank products for creators and creators for merchants, profile interests."""
    parallel_matching: bool = True
    """Run the matching stage in its own process beside the other stages (only with 2 or more cores)."""
    pieces_per_worker: int = 2
    """On a cluster: day ranges of the daily facts, entity buckets of the features and runs of entities
    scored and explained per worker."""


@dataclass(frozen=True)
class BuildResult:
    """What a build published."""

    build_id: str
    as_of: date
    created_at: datetime
    path: Path
    row_counts: Mapping[str, int]
    timings: Mapping[str, float]
    sql_tables: tuple[str, ...]
    lake: Mapping[str, Any] = field(default_factory=dict)  # the ingestion run and table versions read


def _new_build_id(as_of: date, now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-asof{as_of:%Y%m%d}-{uuid.uuid4().hex[:6]}"


class _Stages:
    """Progress reporting and per-stage timings (stages may overlap: see `_MatchingProcess`)."""

    def __init__(self, progress: Progress | None, total: int, rows: Mapping[str, int]) -> None:
        self.progress = progress
        self.total = total
        self.rows = rows
        self.done = 0
        self.timings: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def _report(self, description: str) -> None:
        if self.progress:
            self.progress(description, self.done, self.total)

    def begin(self, name: str, note: str = "") -> None:
        with self._lock:
            self._started[name] = time.perf_counter()
            self._report(name + note)

    def end(self, name: str, tables: Mapping[str, int] | None = None) -> None:
        with self._lock:
            seconds = time.perf_counter() - self._started[name]
            self.timings[name] = round(seconds, 3)
            self.done += 1
            written = ""
            if tables:
                written = f" ({len(tables)} snapshot(s), {sum(tables.values()):,} rows)"
            self._report(f"{name} done in {seconds:.1f}s{written}")

    def record(self, name: str, seconds: float, tables: Mapping[str, int]) -> None:
        """Stage ``name`` (begun) ended after ``seconds`` of work elsewhere (a task on a cluster)."""
        with self._lock:
            self.timings[name] = round(seconds, 3)
            self.done += 1
            self._report(
                f"{name} done in {seconds:.1f}s ({len(tables)} snapshot(s), {sum(tables.values()):,} rows)"
            )

    def step(self, name: str, text: str, done: int, total: int) -> None:
        """One finished step of stage ``name`` (its ``done``-th of ``total``)."""
        with self._lock:
            self._report(f"{name} {done}/{total}: {text}")

    def steps(self, name: str, timed: bool = False) -> Progress:
        """A library's ``progress`` callback reporting the steps of stage ``name``; with ``timed``, each
        step's description gets the time since the previous one."""
        last = [time.perf_counter()]

        def report(text: str, done: int, total: int) -> None:
            now = time.perf_counter()
            self.step(name, f"{text} in {now - last[0]:.1f}s" if timed else text, done, total)
            last[0] = now

        return report

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        before = set(self.rows)
        self.begin(name)
        yield
        self.end(name, {key: count for key, count in self.rows.items() if key not in before})


class _MatchingProcess:
    """The matching stage in a child process (spawned: no inherited threads or locks) writing its
    snapshots into the staging folder; its steps are relayed to the build's progress by a thread."""

    name = "matching"

    def __init__(self, settings: Settings, as_of: date, staging: Path, stages: _Stages) -> None:
        context = multiprocessing.get_context("spawn")
        self.stages = stages
        self.messages: multiprocessing.queues.Queue[tuple[Any, ...]] = context.Queue()
        self.process = context.Process(
            target=_matching_in_process,
            args=(settings, as_of, staging, self.messages),
            name="liftboard-build-matching",
            daemon=True,
        )
        self.rows: dict[str, int] | None = None
        self.error: str | None = None
        self.relay = threading.Thread(target=self._relay, name="liftboard-build-matching-relay", daemon=True)

    def start(self) -> None:
        self.stages.begin(self.name, " (in its own process, beside the next stages)")
        with main_script_hidden():
            self.process.start()
        self.relay.start()

    def _relay(self) -> None:
        while True:
            try:
                message = self.messages.get(timeout=0.5)
            except queue.Empty:
                if not self.process.is_alive():
                    self.error = f"the matching process exited with code {self.process.exitcode}"
                    return
                continue
            kind, *payload = message
            if kind == "step":
                self.stages.step(self.name, *payload)
            elif kind == "done":
                self.rows = payload[0]
                return
            else:
                self.error = payload[0]
                return

    def result(self) -> dict[str, int]:
        """Wait for the process; its tables' row counts (raises if it failed)."""
        self.relay.join()
        self.process.join()
        if self.rows is None:
            raise RuntimeError(f"matching stage failed:\n{self.error}")
        return self.rows

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        if self.process.pid is not None:
            self.process.join(timeout=10)


def _matching_in_process(
    settings: Settings, as_of: date, staging: Path, messages: multiprocessing.queues.Queue[tuple[Any, ...]]
) -> None:
    """What `_MatchingProcess` runs: `_matching_tables`, reporting steps, the result or the traceback."""
    try:
        rows = _matching_tables(
            settings,
            as_of,
            staging,
            lambda text, done, total: messages.put(("step", text, done, total)),
        )
    except BaseException:
        messages.put(("failed", traceback.format_exc()))  # the build raises it, once
        sys.exit(1)
    messages.put(("done", rows))


NEIGHBOURS_FILE = ".item2vec_neighbours.parquet"
"""The matching stage's item2vec neighbours, handed to `_similar_products` in the staging folder."""


def _matching_tables(settings: Settings, as_of: date, staging: Path, progress: Progress) -> dict[str, int]:
    """Build the matching tables but the product relations and write them into ``staging``; their row
    counts. The item2vec neighbours go to ``NEIGHBOURS_FILE`` for `_similar_products`."""
    from matching.recommender import build_matching

    rows = {}
    for name, frame in build_matching(settings, as_of, progress=progress, relations=False).items():
        if name == "item2vec_neighbours":
            frame.write_parquet(staging / NEIGHBOURS_FILE)
        else:
            rows[name] = _write(frame, staging / f"{name}.parquet")
    return rows


def _similar_products(settings: Settings, as_of: date, staging: Path, pairs: pl.DataFrame) -> pl.DataFrame:
    """similar_products from the matching stage's neighbours and the product pairs (`relation_tables`)."""
    from matching.recommender import relation_tables
    from matching.relations import MarketFrames

    path = staging / NEIGHBOURS_FILE
    neighbours = pl.read_parquet(path)
    path.unlink()
    frames = MarketFrames.from_settings(settings)
    return relation_tables(frames, as_of, neighbours, pairs)["similar_products"]


def _write(frame: pl.LazyFrame | pl.DataFrame, path: Path) -> int:
    """Write a snapshot (streaming a lazy plan straight to Parquet) and return its row count."""
    if isinstance(frame, pl.LazyFrame):
        frame.sink_parquet(path, engine="streaming", statistics=True)
    else:
        frame.write_parquet(path, statistics=True)
    return pl.scan_parquet(path).select(pl.len()).collect().item()


@dataclass
class _Run:
    """What the stages of one build share: where they read and write, and what they published."""

    settings: Settings
    as_of: date
    inputs: sources.Inputs
    staging: Path
    config: BuildConfig
    stages: _Stages
    rows: dict[str, int]

    def parts(self) -> tuple[Settings, date, sources.Inputs, Path, BuildConfig, _Stages]:
        """settings, as_of, inputs, staging, config, stages: what both stage runners unpack."""
        return self.settings, self.as_of, self.inputs, self.staging, self.config, self.stages

    def write(self, name: str, frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        path = self.staging / f"{name}.parquet"
        self.rows[name] = _write(frame, path)
        return pl.scan_parquet(path)


@dataclass(frozen=True)
class _Frames:
    """The dimensions and the daily facts every analytics stage after the daily facts reads."""

    creators: pl.LazyFrame
    merchants: pl.LazyFrame
    products: pl.LazyFrame
    showcase: pl.LazyFrame
    creator_daily: pl.LazyFrame
    merchant_daily: pl.LazyFrame
    product_daily: pl.LazyFrame


def build(
    settings: Settings,
    as_of: date | None = None,
    progress: Progress | None = None,
    config: BuildConfig | None = None,
    lake_run: str | None = None,
    tasks: DaskTasks | None = None,
) -> BuildResult:
    """Run every analytics stage as of ``as_of`` and publish the results (see the module docstring).

    ``as_of`` defaults to the day after the last order date (today, UTC, on an empty lake); all
    results use data strictly before it. Every stage reads the lake at the versions of one ingestion run
    (``lake_run``, default: the last committed one), recorded in the manifest as ``lake``. With
    ``tasks`` (a Dask cluster's runner, `liftboard.cluster`), the stages run as tasks on the cluster
    (`_cluster_stages`); the snapshots are the same.

    Raises:
        lake.UnknownLakeVersion: ``lake_run`` is not a committed run.
    """
    config = config or BuildConfig()
    settings = lake.pinned(settings, lake_run or settings.lake_run)
    lake_read = lake.lake_version(settings)
    inputs = sources.load_inputs(settings)
    as_of = as_of or sources.default_as_of(inputs.orders) or datetime.now(UTC).date()
    created_at = datetime.now(UTC).replace(microsecond=0)
    build_id = _new_build_id(as_of, created_at)
    settings.snapshots.mkdir(parents=True, exist_ok=True)
    staging = settings.snapshots / f".{build_id}.tmp"
    final = settings.snapshots / build_id
    staging.mkdir()
    rows: dict[str, int] = {}
    stages = _Stages(
        progress,
        total=8 + int(config.publish_sql) + int(config.with_strategies) + 2 * int(config.with_matching),
        rows=rows,
    )
    run = _Run(settings, as_of, inputs, staging, config, stages, rows)
    matching: list[_MatchingProcess] = []
    cluster: dict[str, Any] = {}
    try:
        if tasks is None:
            _single_process_stages(run, matching)
        else:
            cluster = _cluster_stages(run, tasks)
        with stages.stage("snapshot"):
            manifest = {
                "build_id": build_id,
                "as_of": as_of.isoformat(),
                "created_at": created_at.isoformat(),
                "lake": lake_read.as_dict(),
                "row_counts": rows,
                "snapshots": list(rows),
                "sql_tables": [SQL_PREFIX + name for name in config.sql_snapshots]
                if config.publish_sql
                else [],
                "timings": stages.timings,
            }
            if cluster:
                manifest["cluster"] = cluster
            shutil.rmtree(staging / PIECES, ignore_errors=True)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            os.replace(staging, final)
        if config.publish_sql:
            with stages.stage("SQL tables"):
                publish_sql(final, settings, build_id, as_of, config.sql_snapshots, config.sql_chunk_rows)
    except BaseException:
        for process in matching:
            process.stop()
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    manifest["timings"] = stages.timings
    (final / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _point_latest(settings, build_id)
    _prune(settings, keep=config.keep_builds, current=build_id)
    return BuildResult(
        build_id=build_id,
        as_of=as_of,
        created_at=created_at,
        path=final,
        row_counts=dict(rows),
        timings=dict(stages.timings),
        sql_tables=tuple(manifest["sql_tables"]),
        lake=lake_read.as_dict(),
    )


def _single_process_stages(run: _Run, matching_processes: list[_MatchingProcess]) -> None:
    """The stages in this process (the matching stage in a child process beside them, with 2+ cores)."""
    settings, as_of, inputs, staging, config, stages = run.parts()
    write, rows = run.write, run.rows
    matching: _MatchingProcess | None = None
    with stages.stage("dimensions"):
        creators = inputs.creators.collect().lazy()
        merchants = inputs.merchants.collect().lazy()
        products = inputs.products.collect().lazy()
        showcase = inputs.showcase.collect().lazy()
    with stages.stage("daily facts"):
        product_daily = write("product_daily", sources.product_daily(inputs, as_of))
        merchant_daily = write("merchant_daily", sources.merchant_daily(inputs, as_of))
        creator_daily = write("creator_daily", sources.creator_daily(inputs, as_of))
    run_matching = config.with_matching and rows.get("creator_daily", 0) > 0
    if run_matching and config.parallel_matching and (os.cpu_count() or 1) > 1:
        matching = _MatchingProcess(settings, as_of, staging, stages)
        matching_processes.append(matching)
        matching.start()
    elif config.with_matching and not run_matching:
        stages.total -= 2
    frames = _Frames(creators, merchants, products, showcase, creator_daily, merchant_daily, product_daily)
    with stages.stage("KPIs"):
        _kpi_tables(write, frames, as_of)
    with stages.stage("features"):
        creator_features = write(
            "creator_features",
            features.creator_features(
                creator_daily,
                creators,
                showcase,
                products,
                as_of,
                config.features,
                merchant_daily=merchant_daily,
            ),
        )
        merchant_features = write(
            "merchant_features",
            features.merchant_features(merchant_daily, merchants, products, as_of, config.features),
        )
    with stages.stage("segments"):
        _segment_tables(write, creator_features, merchant_features, config)
    with stages.stage("cohorts"):
        _cohort_tables(write, frames, as_of)
    with stages.stage("movers"):
        _write_movers(write, frames, as_of, config)
    if config.with_strategies:
        with stages.stage("strategies"):
            strategy_steps = stages.steps("strategies", timed=True)  # the first step counts the import
            from strategies.pipeline import FeatureStore, run_strategies

            feature_store = FeatureStore(inputs, as_of, creator_daily, merchant_daily)
            strategy_run = run_strategies(
                settings, as_of, feature_store=feature_store, progress=strategy_steps
            )
            for name, frame in strategy_run.tables().items():
                write(name, frame)
    if run_matching:
        _publish_matching(settings, as_of, staging, stages, matching, rows)


def _kpi_tables(write: Writer, frames: _Frames, as_of: date) -> None:
    """kpi_daily, kpi_weekly (by every breakdown but merchant) and merchant_kpi_weekly."""
    creator_daily, merchant_daily, product_daily = (
        frames.creator_daily,
        frames.merchant_daily,
        frames.product_daily,
    )
    traits = sources.creator_traits(frames.creators)
    write("kpi_daily", kpis.kpi_daily(creator_daily, merchant_daily, product_daily, as_of, traits))
    write(
        "kpi_weekly",
        kpis.kpi_table(
            creator_daily,
            merchant_daily,
            "week",
            [name for name in kpis.WEEKLY_BREAKDOWNS if name != "merchant"],
            as_of,
            product_daily=product_daily,
            traits=traits,
        ),
    )
    write("merchant_kpi_weekly", kpis.kpi_table(creator_daily, merchant_daily, "week", ["merchant"], as_of))


def _segment_tables(
    write: Writer, creator_features: pl.LazyFrame, merchant_features: pl.LazyFrame, config: BuildConfig
) -> None:
    write("creator_segments", segments.creator_segments(creator_features, config.segments))
    write("merchant_segments", segments.merchant_segments(merchant_features, config.segments))


def _cohort_tables(write: Writer, frames: _Frames, as_of: date) -> None:
    write("creator_cohorts", cohorts.creator_cohorts(frames.creator_daily, frames.creators, as_of))
    write("merchant_cohorts", cohorts.merchant_cohorts(frames.merchant_daily, frames.merchants, as_of))


# ------------------------------------------------------------------------------------------------
# On a Dask cluster
# ------------------------------------------------------------------------------------------------

PIECES = ".pieces"
"""The staging folder's subfolder of the pieces the cluster's tasks write (removed before publishing)."""


def _cluster_stages(run: _Run, tasks: DaskTasks) -> dict[str, Any]:
    """The stages as tasks on a Dask cluster, same snapshots as `_single_process_stages`.

    - daily facts: one task per fact and day range (`analytics.partitions`), concatenated here;
    - KPIs, cohorts, movers, the product pairs and the matching stage: one task each, side by side,
      reading the daily facts from the staging folder (storage the workers share);
    - features: one task per entity bucket, concatenated and sorted here; segments here (small);
    - strategies: here, with one task per strategy and entity kind for the model fits and one per run of
      entities for scoring and explaining them.

    Returns what the manifest records of the cluster: its workers and the bytes of the pieces written
    per stage (the data the tasks exchange through the shared storage).
    """
    settings, as_of, inputs, staging, config, stages = run.parts()
    pieces = staging / PIECES
    workers = tasks.workers
    with stages.stage("dimensions"):
        inputs.creators.select(pl.len()).collect()  # the dimensions are read by each task
    with stages.stage("daily facts"):
        span = partitions.activity_span(inputs, as_of)
        ranges = partitions.day_ranges(*span, config.pieces_per_worker * workers) if span else []
        daily = [
            partitions.DailyFactPiece(settings, name, start, stop, pieces / name / f"{k:04d}.parquet")
            for name in partitions.DAILY_FACTS
            for k, (start, stop) in enumerate(ranges)
        ]
        tasks.wait(tasks.start(partitions.daily_fact_piece, daily))
        pieces_bytes = {"daily facts": sum(piece.path.stat().st_size for piece in daily)}
        for name, fact in partitions.DAILY_FACTS.items():
            paths = [piece.path for piece in daily if piece.name == name]
            run.write(name, partitions.combined(paths) if paths else fact(inputs, as_of))
    run_matching = config.with_matching and run.rows.get("creator_daily", 0) > 0
    if config.with_matching and not run_matching:
        stages.total -= 2
    # the feature pieces first (the build waits for them), then the longest whole-stage task first
    stages.begin("features")
    feature_work = _feature_pieces(run, workers)
    feature_futures = tasks.start(partitions.feature_piece, feature_work)
    submitted: dict[str, Future] = {}
    if run_matching:
        stages.begin("matching", " (a task on the cluster)")
        submitted["matching"] = tasks.submit(_matching_task, settings, as_of, staging, name="matching")
        stages.begin("product pairs", " (a task on the cluster)")
        submitted["product pairs"] = tasks.submit(
            _product_pairs_task, settings, as_of, staging, name="product-pairs"
        )
    for name in ("KPIs", "cohorts", "movers"):
        stages.begin(name, " (a task on the cluster)")
        submitted[name] = tasks.submit(_stage_task, name, settings, staging, as_of, config, name=name)
    try:
        tasks.wait(feature_futures)
        feature_paths = _combine_features(run, feature_work)
        pieces_bytes["features"] = sum(piece.path.stat().st_size for piece in feature_work)
        stages.end("features", {name: run.rows[name] for name in feature_paths})
        with stages.stage("segments"):
            _segment_tables(
                run.write,
                pl.scan_parquet(feature_paths["creator_features"]),
                pl.scan_parquet(feature_paths["merchant_features"]),
                config,
            )
        if config.with_strategies:
            _cluster_strategies(run, tasks)
        for name, future in submitted.items():
            tables, seconds = future.result()
            run.rows.update(tables)
            if name != "matching":
                stages.record(name, seconds, tables)
        if run_matching:
            similar = _similar_products(
                settings, as_of, staging, pl.read_parquet(staging / "product_pairs.parquet")
            )
            run.rows["similar_products"] = _write(similar, staging / "similar_products.parquet")
            tables, seconds = submitted["matching"].result()
            stages.record("matching", seconds, {**tables, "similar_products": run.rows["similar_products"]})
    except BaseException:
        tasks.cancel([*feature_futures, *submitted.values()])  # nothing writes into a failed build
        raise
    return {"workers": workers, "pieces_per_worker": config.pieces_per_worker, "pieces_bytes": pieces_bytes}


def _cluster_strategies(run: _Run, tasks: DaskTasks) -> None:
    """The strategies stage in the build's process, its per-strategy model fits as tasks."""
    with run.stages.stage("strategies"):
        strategy_steps = run.stages.steps("strategies", timed=True)
        from strategies.pipeline import FeatureStore, run_strategies

        feature_store = FeatureStore(
            run.inputs,
            run.as_of,
            pl.scan_parquet(run.staging / "creator_daily.parquet"),
            pl.scan_parquet(run.staging / "merchant_daily.parquet"),
        )
        strategy_run = run_strategies(
            run.settings,
            run.as_of,
            feature_store=feature_store,
            progress=strategy_steps,
            map_tasks=tasks,
            scoring_pieces=run.config.pieces_per_worker * tasks.workers,
        )
        for name, frame in strategy_run.tables().items():
            run.write(name, frame)


def _feature_pieces(run: _Run, workers: int) -> list[partitions.FeaturePiece]:
    """creator_features and merchant_features cut into entity buckets (`analytics.partitions`)."""
    pieces = run.staging / PIECES
    creator_daily = run.staging / "creator_daily.parquet"
    start = partitions.data_start(pl.scan_parquet(creator_daily), run.as_of)
    buckets = run.config.pieces_per_worker * workers
    return [
        partitions.FeaturePiece(
            run.settings,
            name,
            bucket,
            buckets,
            run.as_of,
            creator_daily,
            run.staging / "merchant_daily.parquet",
            start,
            pieces / name / f"{bucket:04d}.parquet",
            run.config.features,
        )
        for name in partitions.FEATURE_KEYS
        for bucket in range(buckets)
    ]


def _combine_features(run: _Run, work: list[partitions.FeaturePiece]) -> dict[str, Path]:
    """The feature snapshots from their written pieces (concatenated, sorted by id); their paths."""
    written = {}
    for name, key in partitions.FEATURE_KEYS.items():
        paths = [piece.path for piece in work if piece.name == name]
        run.write(name, partitions.combined(paths, sort_by=key))
        written[name] = run.staging / f"{name}.parquet"
    return written


def _task_frames(settings: Settings, staging: Path) -> _Frames:
    """`_Frames` in a task: the dimensions from the (pinned) lake, the daily facts from the staging folder."""
    inputs = sources.load_inputs(settings)
    return _Frames(
        inputs.creators.collect().lazy(),
        inputs.merchants.collect().lazy(),
        inputs.products.collect().lazy(),
        inputs.showcase.collect().lazy(),
        pl.scan_parquet(staging / "creator_daily.parquet"),
        pl.scan_parquet(staging / "merchant_daily.parquet"),
        pl.scan_parquet(staging / "product_daily.parquet"),
    )


def _stage_task(
    name: str, settings: Settings, staging: Path, as_of: date, config: BuildConfig
) -> tuple[dict[str, int], float]:
    """One whole stage (KPIs, cohorts or movers) in a task, written into ``staging``: its tables' row
    counts and its seconds."""
    started = time.perf_counter()
    rows: dict[str, int] = {}

    def write(table: str, frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        path = staging / f"{table}.parquet"
        rows[table] = _write(frame, path)
        return pl.scan_parquet(path)

    frames = _task_frames(settings, staging)
    if name == "KPIs":
        _kpi_tables(write, frames, as_of)
    elif name == "cohorts":
        _cohort_tables(write, frames, as_of)
    else:
        _write_movers(write, frames, as_of, config)
    return rows, time.perf_counter() - started


def _product_pairs_task(settings: Settings, as_of: date, staging: Path) -> tuple[dict[str, int], float]:
    """The product pairs stage in a task (`_publish_matching` runs it in the build's process)."""
    started = time.perf_counter()
    pairs = _product_pairs(settings, as_of)
    count = _write(pairs, staging / "product_pairs.parquet")
    return {"product_pairs": count}, time.perf_counter() - started


def _product_pairs(settings: Settings, as_of: date) -> pl.DataFrame:
    """The product pairs of the lake's history before ``as_of`` (both paths' product pairs stage)."""
    from matching.relations import MarketFrames, PairsConfig, product_pairs

    history = MarketFrames.from_settings(settings).before(as_of)
    return product_pairs(history, PairsConfig()).collect()


def _matching_task(settings: Settings, as_of: date, staging: Path) -> tuple[dict[str, int], float]:
    """The matching stage (`_matching_tables`) in a task: one model set, not partitioned (docs/scale.md)."""
    started = time.perf_counter()
    tables = _matching_tables(settings, as_of, staging, _no_progress)
    return tables, time.perf_counter() - started


def _no_progress(text: str, done: int, total: int) -> None:
    """Steps inside a task are not relayed (the stage reports when its task is done)."""


def _publish_matching(
    settings: Settings,
    as_of: date,
    staging: Path,
    stages: _Stages,
    matching: _MatchingProcess | None,
    rows: dict[str, int],
) -> None:
    """The product pairs stage, then the matching stage's tables: from its process when one runs (it
    started after the daily facts), computed here otherwise; similar_products joins the two."""
    with stages.stage("product pairs"):
        pairs = _product_pairs(settings, as_of)
        rows["product_pairs"] = _write(pairs, staging / "product_pairs.parquet")
    if matching is not None:
        published = matching.result()
    else:
        stages.begin("matching")
        published = _matching_tables(settings, as_of, staging, stages.steps("matching"))
    similar = _similar_products(settings, as_of, staging, pairs)
    published["similar_products"] = _write(similar, staging / "similar_products.parquet")
    rows.update(published)
    stages.end("matching", published)


def _write_movers(write: Writer, frames: _Frames, as_of: date, config: BuildConfig) -> None:
    """Leaderboards, movers and contributions for the last complete ISO week before ``as_of``."""
    creator_daily, merchant_daily, product_daily = (
        frames.creator_daily,
        frames.merchant_daily,
        frames.product_daily,
    )
    creators, merchants, products = frames.creators, frames.merchants, frames.products
    start = cohorts.last_complete_week(as_of)
    end = start + timedelta(days=6)
    cfg = config.movers
    creator_attributes = creators.select(
        "creator_id",
        "handle",
        "region",
        "primary_category",
        segments.tier_expr(pl.col("followers")).alias("tier"),
    )
    merchant_attributes = merchants.select("merchant_id", "name", "region", "category")
    product_attributes = products.select("product_id", "title", "merchant_id", "category", "price")
    per_product = product_daily.drop("merchant_id", "category")
    write(
        "top_creators",
        movers.leaderboard(creator_daily, "creator_id", start, end, cfg.top_n, creator_attributes),
    )
    write(
        "top_merchants",
        movers.leaderboard(merchant_daily, "merchant_id", start, end, cfg.top_n, merchant_attributes),
    )
    write(
        "top_products",
        movers.leaderboard(per_product, "product_id", start, end, cfg.top_n, product_attributes),
    )
    for direction in ("rising", "declining"):
        write(
            f"{direction}_creators",
            movers.movers(
                creator_daily,
                "creator_id",
                start,
                end,
                direction,
                cfg.movers_n,
                cfg.min_base_gmv,
                creator_attributes,
            ),
        )
        write(
            f"{direction}_merchants",
            movers.movers(
                merchant_daily,
                "merchant_id",
                start,
                end,
                direction,
                cfg.movers_n,
                cfg.min_base_gmv,
                merchant_attributes,
            ),
        )
    write(
        "gmv_change_contributions",
        movers.gmv_change_contributions(creator_daily, start, end, top_n=cfg.contributors_n),
    )


# ------------------------------------------------------------------------------------------------
# SQL publishing
# ------------------------------------------------------------------------------------------------


def _sql_type(dtype: pl.DataType) -> sa.types.TypeEngine[Any]:
    if dtype == pl.Boolean:
        return sa.Boolean()
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_float():
        return sa.Double()
    if dtype == pl.Date:
        return sa.Date()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=dtype.time_zone is not None)
    return sa.Text()


def _sql_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns SQL can hold: enums and categoricals as text, NaN as NULL."""
    return frame.with_columns(
        *(
            pl.col(name).cast(pl.String)
            for name, dtype in frame.schema.items()
            if isinstance(dtype, pl.Enum | pl.Categorical)
        ),
        *(pl.col(name).fill_nan(None) for name, dtype in frame.schema.items() if dtype.is_float()),
    )


def _insert(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame, chunk_rows: int) -> None:
    """Bulk-insert ``frame`` with the driver's ``executemany`` (bound parameters, no per-row ORM work).

    SQLAlchemy's per-row type processing dominates for wide frames, so rows go to the DBAPI directly
    in the shape SQLAlchemy itself would send: SQLite gets ISO text for dates (its ``Date`` storage).
    """
    compiled = table.insert().compile(dialect=connection.dialect)
    if connection.dialect.name == "sqlite":
        frame = frame.with_columns(
            pl.col(name).dt.strftime("%Y-%m-%d") for name, dtype in frame.schema.items() if dtype == pl.Date
        ).with_columns(
            pl.col(name).dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
            for name, dtype in frame.schema.items()
            if isinstance(dtype, pl.Datetime)
        )
    positional = connection.dialect.positional and compiled.positiontup is not None
    for chunk in frame.iter_slices(chunk_rows):
        rows: list[Any] = chunk.select(compiled.positiontup).rows() if positional else chunk.to_dicts()
        if rows:
            connection.exec_driver_sql(str(compiled), rows)


def publish_sql(
    build_dir: Path,
    settings: Settings,
    build_id: str,
    as_of: date,
    names: tuple[str, ...] = SQL_SNAPSHOTS,
    chunk_rows: int = 50_000,
) -> list[str]:
    """Replace the tables ``analytics_<name>`` with the snapshots of ``build_dir`` in one transaction."""
    engine = engine_for(settings)
    published = []
    with engine.begin() as connection:
        for name in names:
            frame = _sql_frame(pl.read_parquet(build_dir / f"{name}.parquet"))
            stamped = frame.select(
                pl.lit(build_id).alias("build_id"),
                pl.lit(as_of).alias("as_of"),
                *(column for column in frame.columns if column not in ("build_id", "as_of")),
            )
            table = sa.Table(
                SQL_PREFIX + name,
                sa.MetaData(),
                sa.Column("build_id", sa.String(64), nullable=False),
                sa.Column("as_of", sa.Date(), nullable=False),
                *(
                    sa.Column(column, _sql_type(dtype))
                    for column, dtype in stamped.schema.items()
                    if column not in ("build_id", "as_of")
                ),
            )
            table.drop(connection, checkfirst=True)
            table.create(connection)
            _insert(connection, table, stamped, chunk_rows)
            published.append(table.name)
    return published


# ------------------------------------------------------------------------------------------------
# Publishing
# ------------------------------------------------------------------------------------------------


def _point_latest(settings: Settings, build_id: str) -> None:
    temporary = settings.snapshots / f".{LATEST}.{uuid.uuid4().hex}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(build_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, settings.snapshots / LATEST)


def _prune(settings: Settings, keep: int, current: str) -> None:
    builds = sorted(
        (path for path in settings.snapshots.iterdir() if path.is_dir() and not path.name.startswith(".")),
        key=lambda path: path.name,
    )
    for path in builds[: max(0, len(builds) - max(keep, 1))]:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)
