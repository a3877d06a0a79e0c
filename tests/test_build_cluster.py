"""The build on a Dask cluster (`liftboard.cluster`): the same snapshots as the single-process build, and a
build that loses a worker mid-way still completes with them.

The cluster is a `LocalCluster` of two worker *processes* (one thread each), as ``--scheduler local:2``
starts: tasks and their arguments really cross process boundaries (pickling, files on shared storage).

What "the same" means: every snapshot has the same rows (compared sorted, the run id aside, since each
build saves its own recommendation run). Snapshots holding float sums (the daily facts, KPIs, features,
cohorts, leaderboards, product pairs, interest scores, the feature values beside SHAP drivers and
dependence) are equal within 1e-9 relative: a float sum depends on the order of its terms, which a
parallel group-by does not fix — two single-process builds differ by as much. Everything downstream
of them — segments, movers, the uplift models, predictions, recommendations, allocation, SHAP
contributions, similar products — is compared exactly, but for the matching stage's ranker: its
products for creators and creators to recruit are compared by the pairs they hold (as many rows within
0.1%, at least 95% of the pairs shared), because it is not reproducible from one single-process build
to the next: the last bits of the ranker's features' float sums decide, now and then, a LightGBM bin
(docs/scale.md).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dask.distributed import Client, get_task_stream
from dask.utils import key_split
from polars.testing import assert_frame_equal

from core.config import Settings
from datastore.db import dispose_engine
from liftboard.build import BuildConfig, BuildResult, build
from liftboard.cluster import (
    FLOAT_SUMS,
    MODELLED,
    SHARED_PAIRS,
    DaskTasks,
    SchedulerSpec,
    SchedulerSpecError,
    connect,
    snapshot_rows,
)
from tests.test_build import _copy_home, tiny_home  # noqa: F401 - the shared tiny marketplace fixture

pytestmark = pytest.mark.slow

CONFIG = BuildConfig(publish_sql=False)


def assert_same_snapshots(expected: BuildResult, result: BuildResult) -> None:
    assert sorted(result.row_counts) == sorted(expected.row_counts)
    for name in expected.row_counts:
        left, right = (
            snapshot_rows(expected.path / f"{name}.parquet"),
            snapshot_rows(result.path / f"{name}.parquet"),
        )
        if name in MODELLED:
            keys = list(MODELLED[name])
            assert abs(right.height - left.height) <= 0.001 * left.height, name
            assert right.join(left, on=keys, how="semi").height >= SHARED_PAIRS * left.height, name
        elif name in FLOAT_SUMS:
            assert_frame_equal(right, left, rel_tol=1e-9, abs_tol=1e-9, check_row_order=True)
        else:
            assert_frame_equal(right, left, check_exact=True)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with connect(SchedulerSpec(workers=2, processes=True)) as connected:  # what --scheduler local:2 starts
        yield connected


@pytest.fixture(scope="module")
def single_process(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildResult]:  # noqa: F811
    settings = _copy_home(tiny_home, tmp_path_factory.mktemp("single") / "home")
    yield build(settings, config=CONFIG)
    dispose_engine(settings)


def test_cluster_build_publishes_the_single_process_snapshots(
    tiny_home: Path,  # noqa: F811
    tmp_path: Path,
    client: Client,
    single_process: BuildResult,
) -> None:
    settings = _copy_home(tiny_home, tmp_path / "home")
    events: list[str] = []
    with get_task_stream(client) as stream:
        result = build(
            settings,
            config=CONFIG,
            tasks=DaskTasks(client),
            progress=lambda text, done, total: events.append(text),
        )
    dispose_engine(settings)
    assert_same_snapshots(single_process, result)
    # the pieces are gone, the stages all reported, the manifest names the cluster
    assert not list(result.path.glob(".pieces*"))
    assert {"daily facts", "features", "KPIs", "cohorts", "movers", "strategies", "matching"} <= set(
        result.timings
    )
    assert any(text.startswith("matching done") for text in events)
    # the pieces ran as tasks: 2 day ranges per worker for each of the 3 daily facts, and so on
    prefixes = [key_split(task["key"]) for task in stream.data]
    assert prefixes.count("daily_fact_piece") == 3 * 2 * 2
    assert prefixes.count("feature_piece") == 2 * 2 * 2
    assert prefixes.count("fit_arm_task") == 8  # one per strategy, creators' and merchants'
    assert prefixes.count("score_piece") == 2 * 2 * 2  # scoring and explaining: 2 kinds × 2 per worker
    assert {"KPIs", "cohorts", "movers", "matching", "product-pairs"} <= set(prefixes)


def _kill_a_busy_worker(client: Client, prefix: str, killed: list[int], stop: threading.Event) -> None:
    """As soon as a task whose key starts with ``prefix`` runs, SIGKILL the worker process running it
    (its nanny starts a new one; the scheduler reschedules the task)."""
    pids = client.run(os.getpid)
    while not stop.is_set() and not killed:
        for worker, keys in client.processing().items():
            if any(str(key).startswith(prefix) for key in keys):
                time.sleep(1.0)  # well inside the task
                os.kill(pids[worker], signal.SIGKILL)
                killed.append(pids[worker])
                return
        time.sleep(0.1)


def test_a_build_that_loses_a_worker_completes_with_the_same_snapshots(
    tiny_home: Path,  # noqa: F811
    tmp_path: Path,
    client: Client,
    single_process: BuildResult,
) -> None:
    settings = _copy_home(tiny_home, tmp_path / "home")
    killed: list[int] = []
    stop = threading.Event()
    # the matching stage is the longest task: the worker running it dies in the middle of it
    killer = threading.Thread(
        target=_kill_a_busy_worker, args=(client, "matching", killed, stop), daemon=True
    )
    killer.start()
    try:
        result = build(settings, config=CONFIG, tasks=DaskTasks(client))
    finally:
        stop.set()
        killer.join()
        dispose_engine(settings)
    assert killed, "no worker was killed: the matching task never ran"
    assert_same_snapshots(single_process, result)
    client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed worker


def test_a_build_through_the_scheduler_address_publishes_the_same_snapshots(
    tiny_home: Path,  # noqa: F811
    tmp_path: Path,
    client: Client,
    single_process: BuildResult,
) -> None:
    """``--scheduler tcp://HOST:PORT``: a client connected to a running scheduler by its address (here
    the module's cluster's), not a cluster the command starts."""
    address = client.scheduler.address
    assert address.startswith("tcp://127.0.0.1:")
    settings = _copy_home(tiny_home, tmp_path / "home")
    with connect(SchedulerSpec.parse(address)) as remote, get_task_stream(remote) as stream:
        assert remote is not client
        result = build(settings, config=CONFIG, tasks=DaskTasks(remote))
    dispose_engine(settings)
    assert_same_snapshots(single_process, result)
    assert {"daily_fact_piece", "feature_piece", "fit_arm_task"} <= {key_split(t["key"]) for t in stream.data}
    client.wait_for_workers(2, timeout=60)  # the cluster outlives the client that connected to it


def test_cli_recommend_fits_the_models_on_the_scheduler(
    tiny_home: Path,  # noqa: F811
    tmp_path: Path,
    client: Client,
) -> None:
    from typer.testing import CliRunner

    from liftboard.cli import app

    settings = _copy_home(tiny_home, tmp_path / "home")
    env = {"LIFTBOARD_HOME": str(settings.home), "COLUMNS": "200"}
    address = client.scheduler.address
    with get_task_stream(client) as stream:
        result = CliRunner().invoke(app, ["recommend", "--scheduler", address], env=env)
    assert result.exit_code == 0, result.output
    assert f"running on the scheduler at {address}" in result.output
    assert "Recommendation run" in result.output
    assert [key_split(t["key"]) for t in stream.data].count("fit_arm_task") == 8


def test_a_build_of_an_empty_lake_on_the_cluster_is_the_single_process_one(
    tmp_path: Path, client: Client
) -> None:
    from datastore.db import upgrade_db

    counts = []
    for name, tasks in (("single", None), ("cluster", DaskTasks(client))):
        settings = Settings.from_env(home=tmp_path / name)
        upgrade_db(settings)
        result = build(settings, date(2026, 1, 5), config=CONFIG, tasks=tasks)
        dispose_engine(settings)
        counts.append(result.row_counts)
    assert counts[0] == counts[1]
    assert {n for name, n in counts[1].items() if name != "strategy_catalog"} == {0}


def test_scheduler_spec() -> None:
    assert SchedulerSpec.parse("local") == SchedulerSpec(workers=2)
    assert SchedulerSpec.parse("local:3") == SchedulerSpec(workers=3)
    assert SchedulerSpec.parse("tcp://10.0.0.5:8786") == SchedulerSpec(address="tcp://10.0.0.5:8786")
    for bad in ("local:0", "cluster", "tcp://host", "local:x"):
        with pytest.raises(SchedulerSpecError, match="local"):
            SchedulerSpec.parse(bad)


def test_cli_build_with_a_bad_scheduler_exits_2(tiny_home: Path, tmp_path: Path) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from liftboard.cli import app

    settings: Settings = _copy_home(tiny_home, tmp_path / "home")
    result = CliRunner().invoke(
        app, ["build", "--scheduler", "yarn"], env={"LIFTBOARD_HOME": str(settings.home)}
    )
    assert result.exit_code == 2, result.output
    assert "neither local[:N] nor a scheduler address" in result.output


def test_a_reduced_xlarge_slice_is_generated_in_shards_on_the_cluster(tmp_path: Path, client: Client) -> None:
    from datastore.db import upgrade_db
    from datastore.lake import scan_table
    from liftboard.cluster import generate_sharded
    from sim.shards import SHARDED_SCALES, ShardedScale
    from sim.simulate import SCALES

    xlarge = SHARDED_SCALES["xlarge"]
    assert (xlarge.creators, xlarge.shard.merchants * xlarge.shards) == (2_000_000, 200_000)
    # the slice: 2 of xlarge's shards, each the size of tiny instead of large
    settings = Settings.from_env(home=tmp_path / "home")
    upgrade_db(settings)
    rows, _ = generate_sharded(
        ShardedScale("xlarge", SCALES["tiny"], xlarge.shards), 42, settings, DaskTasks(client), shards=2
    )
    creators = scan_table("creators", settings).collect()
    orders = scan_table("orders", settings).select("order_id", "creator_id", "merchant_id").collect()
    dispose_engine(settings)
    assert creators.height == 2 * SCALES["tiny"].creators == rows["creators"]
    assert creators["creator_id"].is_unique().all()
    assert set(creators["creator_id"].str.slice(0, 3)) == {"c00", "c01"}  # shard 0 and shard 1
    assert orders.height == rows["orders"] > 0
    assert orders["order_id"].is_unique().all()
    assert orders.join(creators, on="creator_id", how="anti").height == 0
    # a shard's creators sell its own merchants' products only
    assert (orders["creator_id"].str.slice(1, 2) == orders["merchant_id"].str.slice(1, 2)).all()
    assert (settings.truth / "effects.parquet").exists()


def _piece(seconds: float) -> tuple[float, float]:
    started = time.time()
    while time.time() - started < seconds:  # busy, as a piece's compute is
        pass
    return started, time.time()


def _whole_stage(seconds: float) -> tuple[float, float]:
    return _piece(seconds)


def test_pieces_run_before_a_whole_stage_task_submitted_after_them() -> None:
    """The build submits a stage's pieces, then the long whole-stage tasks, and waits for the pieces: on a
    one-worker cluster the pieces must all run before the long task, not one before it and the rest
    after (what the scheduler's root-task queuing did: `liftboard.cluster.SCHEDULER_CONFIG`)."""
    with connect(SchedulerSpec(workers=1, processes=True)) as one_worker:
        tasks = DaskTasks(one_worker)
        pieces = tasks.start(_piece, [0.4] * 4)
        time.sleep(0.2)  # the first piece is running when the long task arrives
        long_task = tasks.submit(_whole_stage, 3.0, name="matching")
        tasks.wait(pieces)
        long_started, _ = long_task.result()
        finished = [stop for _, stop in tasks.gather(pieces)]
    assert max(finished) <= long_started, (finished, long_started)
