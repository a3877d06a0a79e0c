"""The lake: where tables live as Parquet, how to scan them, and how a run's files get there atomically.

Layout under ``settings.lake``::

    <fact table>/date=YYYY-MM-DD/part-<run_id>.parquet   facts, by the date of ``spec.partition_by``
    <dimension table>/<dimension table>.parquet          full mirror of the state-DB table
    _staging/<run_id>/...                                files of a run that is not in place yet

A run writes everything it will add to ``_staging/<run_id>`` together with a ``manifest.json`` of the
moves to make, commits the DB, then makes the moves (``roll_forward``). Every move is an atomic
``os.replace`` onto a name no reader sees half-written, and replaying the manifest is idempotent, so a
run interrupted at any point is either rolled forward or discarded by ``recover``, which reads the runs'
status from the state DB's ``ingestion_runs``.
Readers only ever look at final paths, never at ``_staging``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from core.config import Settings
from core.schema import TableSpec, table_spec
from datastore import db

STAGING_DIR = "_staging"
MANIFEST = "manifest.json"
LOCK_FILE = ".ingest.lock"


class LakeBusy(RuntimeError):
    """Another process holds the ingest lock."""


def fact_partition_dir(settings: Settings, table: str, day: date) -> Path:
    """The directory of one day of a fact table."""
    return settings.lake / table / f"date={day.isoformat()}"


def fact_part_name(run_id: str, part: int = 0) -> str:
    """The file name a run gives its (``part``-th source's) share of a fact partition."""
    return f"part-{run_id}.parquet" if part == 0 else f"part-{run_id}-{part}.parquet"


def dimension_path(settings: Settings, table: str) -> Path:
    """The lake mirror of a dimension table."""
    return settings.lake / table / f"{table}.parquet"


def staging_root(settings: Settings) -> Path:
    """Where runs stage their files before they are moved into place."""
    return settings.lake / STAGING_DIR


def staging_dir(settings: Settings, run_id: str) -> Path:
    """The staging directory of one run."""
    return staging_root(settings) / run_id


def has_staging(settings: Settings) -> bool:
    """Whether any run left a staging directory behind (cheap: one ``scandir``)."""
    root = staging_root(settings)
    try:
        with os.scandir(root) as entries:
            return any(entry.is_dir() for entry in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def table_files(table: str, settings: Settings) -> list[Path]:
    """The committed Parquet files of a table, sorted (staging is never included)."""
    spec = table_spec(table)
    root = settings.lake / table
    if spec.storage == "db":
        path = dimension_path(settings, table)
        return [path] if path.is_file() else []
    if not root.is_dir():
        return []
    return sorted(path for path in root.glob("date=*/*.parquet") if path.is_file())


def _scan(spec: TableSpec, files: list[Path]) -> pl.LazyFrame:
    if not files:
        return spec.empty().lazy()
    return pl.scan_parquet(files, schema=spec.schema, hive_partitioning=False)


def scan_table(table: str, settings: Settings | None = None) -> pl.LazyFrame:
    """A lazy scan of a canonical table with exactly ``spec.schema``.

    Facts scan all their day partitions (filters on the partition column are pushed down to Parquet
    statistics); dimensions scan their mirror. An empty frame with the schema when nothing was loaded.
    A staging directory left by an interrupted run is recovered first if no ingest is running.
    """
    settings = settings or Settings.from_env()
    spec = table_spec(table)
    if has_staging(settings):
        # An ingest is running if the lock is taken: it recovers on its own and readers never see staging.
        with contextlib.suppress(LakeBusy):
            recover(settings, blocking=False)
    return _scan(spec, table_files(table, settings))


def scan_committed(table: str, settings: Settings) -> pl.LazyFrame:
    """Like ``scan_table`` but never recovers (for code that already holds the ingest lock)."""
    return _scan(table_spec(table), table_files(table, settings))


@contextmanager
def ingest_lock(settings: Settings, *, blocking: bool = True) -> Iterator[None]:
    """Hold the installation-wide ingest lock (one writer at a time; released if the process dies).

    Raises:
        LakeBusy: when ``blocking`` is false and another process holds the lock.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LakeBusy(f"another ingest is running in {settings.home}") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class Staging:
    """The files of one run, written aside and listed in a manifest of moves."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        """Create the run's empty staging directory."""
        self.settings = settings
        self.run_id = run_id
        self.root = staging_dir(settings, run_id)
        self.root.mkdir(parents=True, exist_ok=False)
        self.moves: list[tuple[str, str]] = []

    def _add(self, relative: str, destination: Path, frame: pl.DataFrame) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, statistics=True)
        self.moves.append((relative, str(destination)))
        return destination

    def add_fact_partitions(self, spec: TableSpec, frame: pl.DataFrame, *, part: int = 0) -> list[Path]:
        """Stage ``frame`` (canonical schema) as one file per day of ``spec.partition_by``.

        ``part`` numbers the sources of one table within a run: 0 writes ``part-<run_id>.parquet``,
        k > 0 writes ``part-<run_id>-<k>.parquet``.
        """
        assert spec.partition_by is not None
        if frame.is_empty():
            return []
        column = pl.col(spec.partition_by)
        day = column if spec.schema[spec.partition_by] == pl.Date else column.dt.date()
        keyed = frame.with_columns(day.alias("__day")).sort("__day", spec.partition_by, *spec.primary_key)
        written = []
        name = fact_part_name(self.run_id, part)
        for (day_value,), day_rows in keyed.partition_by("__day", as_dict=True, maintain_order=True).items():
            assert isinstance(day_value, date)
            relative = f"lake/{spec.name}/date={day_value.isoformat()}/{name}"
            destination = fact_partition_dir(self.settings, spec.name, day_value) / name
            written.append(self._add(relative, destination, day_rows.drop("__day")))
        return written

    def add_dimension(self, spec: TableSpec, frame: pl.DataFrame) -> Path:
        """Stage the full new mirror of a dimension table."""
        relative = f"lake/{spec.name}/{spec.name}.parquet"
        return self._add(relative, dimension_path(self.settings, spec.name), frame.select(spec.columns))

    def add_quarantine(self, name: str, frame: pl.DataFrame) -> Path:
        """Stage a quarantine file; it lands in ``settings.quarantine / run_id / name``."""
        return self._add(f"quarantine/{name}", self.settings.quarantine / self.run_id / name, frame)

    def seal(self) -> None:
        """Write the manifest (atomically, durably); from now on the run can be rolled forward."""
        path = self.root / MANIFEST
        temporary = self.root / f".{MANIFEST}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"run_id": self.run_id, "moves": self.moves}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


def roll_forward(settings: Settings, run_id: str, *, after_move: Callable[[], None] | None = None) -> None:
    """Move a committed run's staged files into place and remove its staging dir (idempotent)."""
    root = staging_dir(settings, run_id)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise RuntimeError(f"run {run_id} is committed but its staging manifest {manifest} is missing")
    moves = json.loads(manifest.read_text(encoding="utf-8"))["moves"]
    for relative, destination in moves:
        source = root / relative
        if source.exists():
            Path(destination).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
            if after_move is not None:
                after_move()
    shutil.rmtree(root)


def discard(settings: Settings, run_id: str) -> None:
    """Delete the staging dir of a run that did not commit."""
    shutil.rmtree(staging_dir(settings, run_id), ignore_errors=True)


def staged_runs(settings: Settings) -> list[str]:
    """Run ids that have a staging directory."""
    root = staging_root(settings)
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir())


def mark_run_failed(settings: Settings, run_id: str, error: str) -> None:
    """Record in ``ingestion_runs`` that a run failed, and why."""
    with db.connect(settings) as connection:
        connection.execute(
            sa.update(db.ingestion_runs)
            .where(db.ingestion_runs.c.run_id == run_id)
            .values(status="failed", error=error, finished_at=datetime.now(UTC))
        )


def recover_locked(settings: Settings) -> None:
    """``recover`` for a caller that holds the ingest lock already."""
    statuses: dict[str, str] = {}
    with db.engine_for(settings).connect() as connection:
        runs = db.ingestion_runs
        staged = staged_runs(settings)
        if staged:
            rows = connection.execute(
                sa.select(runs.c.run_id, runs.c.status).where(runs.c.run_id.in_(staged))
            )
            statuses = {run_id: status for run_id, status in rows}
        running = list(
            connection.execute(sa.select(runs.c.run_id).where(runs.c.status == "running")).scalars()
        )
    for run_id in staged:
        if statuses.get(run_id) == "committed":
            roll_forward(settings, run_id)
        else:
            discard(settings, run_id)
    for run_id in running:
        mark_run_failed(settings, run_id, "interrupted before commit; its staged files were discarded")


def recover(settings: Settings, *, blocking: bool = True) -> None:
    """Finish or undo runs a crash interrupted: roll committed ones forward, discard the others.

    Raises:
        LakeBusy: when ``blocking`` is false and an ingest is running.
    """
    db.require_current(settings)
    with ingest_lock(settings, blocking=blocking):
        recover_locked(settings)
