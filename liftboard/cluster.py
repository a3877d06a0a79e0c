"""Running the build's pieces on Dask distributed: the ``--scheduler`` option and the task runner.

``--scheduler local[:N]`` starts a `distributed.LocalCluster` of N worker processes (default 2, one
thread each) for the command's duration; ``--scheduler tcp://HOST:PORT`` connects to a running
scheduler (``dask scheduler`` and ``dask worker`` on the cluster's machines; docs/scale.md). Every
task is submitted with ``retries`` (a task whose code raised is run again) and Dask reschedules the
tasks of a worker that died on the others (up to ``distributed.scheduler.allowed-failures`` deaths per
task), so a build survives losing a worker.

`DaskTasks` is the cluster's `core.tasks.TaskMap`: the stages that take one run their pieces through it
unchanged. Workers need the same Liftboard version, the lake and the snapshots folder at the same
paths (shared storage or an object store) and the state DB's URL (PostgreSQL on a cluster).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.config import Settings
from core.tasks import TaskMap, in_process
from liftboard.spawning import main_script_hidden
from sim.shards import ShardedScale, write_shard

if TYPE_CHECKING:
    import polars as pl
    from dask.distributed import Client, Future

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_WORKERS = 2
RETRIES = 3
_LOCAL = re.compile(r"^local(?::(\d+))?$")
_REMOTE = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/]+:\d+$")


STAGE_SECONDS = {"matching": "60s", "product-pairs": "10s", "KPIs": "5s", "cohorts": "2s", "movers": "2s"}
"""What the scheduler assumes a whole-stage task takes before it has timed one (its default is 0.5 s): it
then counts a worker running the matching stage as busy when it places the next tasks (`SCHEDULER_CONFIG`)."""
PIECE_PRIORITY = 10
"""Pieces (`DaskTasks.__call__`) run before whole-stage tasks: the build waits for them."""
SCHEDULER_CONFIG = {
    "distributed.scheduler.default-task-durations": STAGE_SECONDS,
    "distributed.scheduler.worker-saturation": float("inf"),
}
"""The scheduler settings the build relies on (a local cluster's scheduler gets them; a cluster's own
scheduler reads them from its configuration, docs/scale.md). ``worker-saturation: inf`` turns off the
scheduler's queuing of root tasks: with it on, the scheduler hands a worker the next piece only when the
previous one is done, while a whole-stage task (not queued: a single task) is on the worker already, so
the worker starts the long task between two pieces and the build waits for the rest of the pieces behind
it (measured: four 0.5 s pieces and a 20 s task on one worker, the pieces done after 22 s with queuing,
after 2 s without). Without queuing every task goes to a worker at once and the worker runs the
higher-priority pieces first. The pieces return row counts (their data is on storage), so holding many
on a worker costs no memory."""

CLIENT_CONFIG = {"distributed.admin.large-graph-warning-threshold": "256MiB"}
"""The scoring pieces carry the fitted models of their kind (a few MiB each, the same for every piece):
they go to the workers in the task graph, which Dask warns about from 10 MiB. Scattering the models to
the workers instead would keep them only there: a worker's death could lose them, where tasks whose
arguments are in the graph are simply run again elsewhere."""


class SchedulerSpecError(ValueError):
    """A ``--scheduler`` value that is neither ``local[:N]`` nor a scheduler address."""


@dataclass(frozen=True)
class SchedulerSpec:
    """Where the tasks run: a local cluster of ``workers`` processes, or the scheduler at ``address``."""

    address: str | None = None
    workers: int = DEFAULT_WORKERS
    processes: bool = True  # a local cluster's workers as processes (threads in one process otherwise)

    @classmethod
    def parse(cls, text: str) -> SchedulerSpec:
        """``local``, ``local:N`` or ``tcp://HOST:PORT`` (also ``tls://``)."""
        text = text.strip()
        local = _LOCAL.match(text)
        if local:
            workers = int(local.group(1) or DEFAULT_WORKERS)
            if workers < 1:
                raise SchedulerSpecError(f"{text!r}: a local cluster needs at least one worker")
            return cls(workers=workers)
        if _REMOTE.match(text):
            return cls(address=text)
        raise SchedulerSpecError(f"{text!r} is neither local[:N] nor a scheduler address (tcp://HOST:PORT)")

    def describe(self) -> str:
        if self.address:
            return f"the scheduler at {self.address}"
        kind = "processes" if self.processes else "threads"
        return f"a local cluster of {self.workers} worker {kind}"


@contextmanager
def connect(spec: SchedulerSpec) -> Iterator[Client]:
    """A `distributed.Client` on ``spec``'s cluster (a local one is started and stopped with it)."""
    import dask
    from dask.distributed import Client, LocalCluster

    if spec.address:
        with dask.config.set(CLIENT_CONFIG), Client(spec.address) as client:
            yield client
        return
    # workers are spawned, and re-spawned by their nanny after a crash, for as long as the cluster
    # lives: the parent's __main__ script stays hidden from them all that time (`main_script_hidden`)
    with (
        main_script_hidden(),
        dask.config.set({**SCHEDULER_CONFIG, **CLIENT_CONFIG}),
        LocalCluster(
            n_workers=spec.workers,
            threads_per_worker=1,
            processes=spec.processes,
            dashboard_address=":0",  # a free port: several clusters may run on one machine
            memory_limit=0,  # the machine's memory, not a share of it: pieces are sized by the build
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


class DaskTasks:
    """A `core.tasks.TaskMap` submitting each piece as a task (with retries) and gathering the results
    in order; also single tasks (`submit`) for the stages that run whole on one worker."""

    def __init__(self, client: Client, retries: int = RETRIES) -> None:
        self.client = client
        self.retries = retries

    def __call__(self, function: Callable[[Item], Result], items: Sequence[Item], /) -> list[Result]:
        return self.gather(self.start(function, items))

    def start(self, function: Callable[[Item], Result], items: Sequence[Item]) -> list[Future]:
        """Submit the pieces (before the whole-stage tasks: `PIECE_PRIORITY`) without waiting for them."""
        if not items:
            return []
        futures: list[Future] = self.client.map(
            function, list(items), retries=self.retries, pure=False, priority=PIECE_PRIORITY
        )
        return futures

    def wait(self, futures: list[Future]) -> None:
        """Wait until the tasks are done, without fetching their results (raises the first task's error).

        The pieces of a stage return only their row counts, which the combine step has anyway; fetching
        them needs their worker's attention, which a worker busy with a long task gives late."""
        from dask.distributed import wait

        if futures:
            wait(futures)
            for future in futures:
                if future.status == "error":
                    future.result()  # raises the task's error

    def cancel(self, futures: list[Future]) -> None:
        """Cancel tasks that are no longer wanted (their build failed)."""
        self.client.cancel(futures)

    def gather(self, futures: list[Future]) -> list[Any]:
        """The results of `start`'s futures, in order (raises the first task's error)."""
        return self.client.gather(futures) if futures else []

    def submit(self, function: Callable[..., Result], *args: Any, name: str | None = None) -> Future:
        """One task; ``name`` prefixes its key (the stage it runs, in the task stream)."""
        key = f"{name}-{os.urandom(6).hex()}" if name else None
        return self.client.submit(function, *args, retries=self.retries, pure=False, key=key)

    @property
    def workers(self) -> int:
        """The workers the scheduler has now (at least one)."""
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))


def generate_sharded(
    scale: ShardedScale,
    seed: int,
    settings: Settings,
    map_tasks: TaskMap = in_process,
    shards: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, int], Path]:
    """Generate a sharded marketplace (`sim.shards`), its shards written by ``map_tasks`` (tasks on a
    cluster, or one after the other here), and ingest it file by file; the row counts and the inputs'
    folder. ``shards`` generates only the first shards (a reduced slice, for tests)."""
    from datastore.ingest import ingest_files
    from sim.shards import ShardPiece, merge_shards

    count = scale.shards if shards is None else min(shards, scale.shards)
    input_dir = settings.incoming / f"{scale.name}-{seed}"
    shutil.rmtree(input_dir, ignore_errors=True)
    pieces = [ShardPiece(scale.shard, seed, k, input_dir / f".shard-{k:02d}") for k in range(count)]
    rows: dict[str, int] = {}
    for shard_rows in map_tasks(write_shard, pieces):
        for name, value in shard_rows.items():
            rows[name] = rows.get(name, 0) + value
    files = merge_shards([piece.out_dir for piece in pieces], input_dir, settings.truth)
    ingest_files(
        files, settings, source=f"simulator:{scale.name}:{seed}", user="simulator", progress=progress
    )
    return rows, input_dir


# ---------------------------------------------------------------------------------------------------------
# Comparing two builds' snapshots (the cluster tests and bench/bench_scale.py)

FLOAT_SUMS = frozenset(
    {
        "product_daily",
        "merchant_daily",
        "creator_daily",
        "kpi_daily",
        "kpi_weekly",
        "merchant_kpi_weekly",
        "creator_features",
        "merchant_features",
        "creator_cohorts",
        "merchant_cohorts",
        "top_creators",
        "top_merchants",
        "top_products",
        "pilot_evidence",
        "creator_interests",
        "product_pairs",  # expected counts
        "shap_drivers",  # the entity's feature values and their cohort medians
        "shap_dependence",  # the sampled entities' feature values
    }
)
"""Snapshots holding float sums, compared within 1e-9 relative (summation order differs between any two
builds); the others exactly, except `MODELLED`."""

MODELLED = {
    "creator_product_recs": ("creator_id", "product_id"),
    "merchant_creator_recs": ("merchant_id", "creator_id"),
}
"""Snapshots of the matching stage's LightGBM ranker, compared by the pairs they recommend: they are not
reproducible between two single-process builds either."""
SHARED_PAIRS = 0.95
"""The share of a `MODELLED` snapshot's pairs two builds must have in common."""


def snapshot_rows(path: Path) -> pl.DataFrame:
    """A published snapshot in a canonical row order (run ids dropped), for comparing two builds."""
    import polars as pl

    frame = pl.read_parquet(path)
    frame = frame.drop([name for name in ("run_id",) if name in frame.columns])
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    others = [name for name, dtype in frame.schema.items() if not dtype.is_float() and not dtype.is_nested()]
    return frame.sort([*others, *floats], nulls_last=True) if frame.width else frame
