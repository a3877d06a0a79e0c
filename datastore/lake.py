"""The lake: every canonical table as a Delta Lake table, read at the versions of one completed run.

Layout under ``settings.lake_url`` (a local folder by default, or an object-store URL)::

    <fact table>/day=YYYY-MM-DD/*.parquet   facts, partitioned by the day of ``spec.partition_by``
    <fact table>/_delta_log/                 the table's Delta log (one JSON commit per version)
    <dimension table>/                        unpartitioned mirror of the state-DB table, overwritten
                                              by every run that changes it

Dimensions are Delta tables too (not loose Parquet snapshots) so that one mechanism pins every table a
reader sees: a build reads the dimensions of the same run as the facts, and time travel returns both.

**Cross-table atomicity.** A run writes each input's new fact rows as data files as soon as the input
is validated (`stage_facts`: not yet in any Delta version, so a run holds one input's rows at a time),
commits each table it changes as one Delta version (a fact table's staged files are one append; a
dimension's mirror one overwrite), then one state-DB transaction upserts the
dimensions, writes the ledger, marks the run ``committed`` and records the Delta version of *every*
table in ``ingestion_runs.lake_versions``. That transaction is the run's commit point. Readers never
read a table's latest version: ``lake_version`` resolves the versions of the last committed run (or of
the run a reader is pinned to, ``Settings.lake_run``), and ``scan_table`` reads exactly that version.
So a reader sees all of a run or none of it, across tables, whatever is being written meanwhile.

**Recovery.** Delta versions written by a run that never committed (a crash, a kill) are invisible to
readers; the next writer (holding the ingest lock) restores each table whose latest version is not the
pinned one back to it (a Delta ``RESTORE``, itself a new version), marks interrupted runs failed and
deletes their quarantine files. Nothing a reader needs is ever repaired by a reader.

**Object stores.** Every read and write goes through ``table_uri`` and the lake's storage options, so
the same code runs on a folder and on an ``s3://`` URL (`make test` runs the lake tests on both). One
writer at a time is the ingest lock, a file lock in ``settings.home``; the Delta commits themselves are
conditional writes on S3 (docs/architecture.md, "The lake on an object store").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from core.config import Settings
from core.schema import TABLES, TableSpec, table_spec
from datastore import db

LOCK_FILE = ".ingest.lock"
DAY = "day"
"""The partition column of fact tables (the date of ``spec.partition_by``); never shown to readers."""
CHANGES_SUFFIX = "_changes"


def changes_table(table: str) -> str:
    """The lake table that keeps the history of an updatable fact or a dimension (which run changed what,
    when)."""
    return f"{table}{CHANGES_SUFFIX}"


def changes_schema(spec: TableSpec) -> pl.Schema:
    """Key, the run and its time, then each other column before (``previous_<column>``) and after."""
    columns: list[tuple[str, pl.DataType | type[pl.DataType]]] = [
        *((name, spec.schema[name]) for name in spec.primary_key),
        ("run_id", pl.String),
        ("changed_at", pl.Datetime("us", "UTC")),
    ]
    for name, dtype in spec.schema.items():
        if name not in spec.primary_key:
            columns += [(f"previous_{name}", dtype), (name, dtype)]
    return pl.Schema(columns)


CHANGE_TABLES = {
    changes_table(name): spec for name, spec in TABLES.items() if spec.updatable or spec.storage == "db"
}
LAKE_TABLES = (*TABLES, *CHANGE_TABLES)
"""Every Delta table of the lake: the canonical tables and the histories of the updatable facts and of
the dimensions (a changed merchant rating or shipping time, a product moved to another category)."""


class LakeBusy(RuntimeError):
    """Another process holds the ingest lock."""


class UnknownLakeVersion(LookupError):
    """A run id that is not a committed run with recorded lake versions."""


class LakeFromEarlierVersion(RuntimeError):
    """The state DB records committed runs but no lake versions: the lake was written before the Delta
    tables (Parquet files without a Delta log), which this version does not read."""


@dataclass(frozen=True)
class LakeVersion:
    """The Delta version of every table as one completed run left them (``run_id`` None: empty lake)."""

    run_id: str | None
    versions: Mapping[str, int] = field(default_factory=dict)
    finished_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """What a build records in its manifest."""
        return {
            "run_id": self.run_id,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "versions": dict(sorted(self.versions.items())),
        }


def table_uri(settings: Settings, table: str) -> str:
    """Where the Delta table ``table`` lives (a local path or an object-store URL)."""
    return f"{settings.lake_url.rstrip('/')}/{table}"


def _options(settings: Settings) -> dict[str, str] | None:
    return dict(settings.lake_storage_options) or None


def _open(settings: Settings, table: str, version: int | None = None) -> DeltaTable | None:
    try:
        return DeltaTable(table_uri(settings, table), version=version, storage_options=_options(settings))
    except TableNotFoundError:
        return None


def _finished(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _committed_runs(connection: sa.Connection) -> sa.Select[Any]:
    runs = db.ingestion_runs
    return (
        sa.select(runs.c.run_id, runs.c.lake_versions, runs.c.finished_at)
        .where(runs.c.status == "committed", runs.c.lake_versions.is_not(None))
        .order_by(runs.c.finished_at.desc(), runs.c.run_id.desc())
    )


def lake_version(settings: Settings, run_id: str | None = None) -> LakeVersion:
    """The table versions a reader reads: those of ``run_id``, else of ``settings.lake_run``, else of
    the last committed run (an empty ``LakeVersion`` before the first).

    Raises:
        UnknownLakeVersion: ``run_id`` (or the pinned run) is not a committed run of this lake.
    """
    wanted = run_id or settings.lake_run
    with db.engine_for(settings).connect() as connection:
        if not sa.inspect(connection).has_table(db.ingestion_runs.name):
            # a state DB nothing was ever ingested into (ingest migrates it first): an empty lake
            if wanted is not None:
                raise UnknownLakeVersion(f"{wanted!r}: this state DB has recorded no ingestion run")
            return LakeVersion(None)
        query = _committed_runs(connection)
        if wanted is not None:
            query = query.where(db.ingestion_runs.c.run_id == wanted)
        row = connection.execute(query.limit(1)).first()
    if row is None:
        if wanted is not None:
            raise UnknownLakeVersion(f"{wanted!r} is not a committed ingestion run of this lake")
        if _has_runs_before_delta(settings):
            raise LakeFromEarlierVersion(
                f"the lake in {settings.lake_url} was written by an earlier Liftboard (before its Delta "
                "tables) and cannot be read: ingest its source files again into a new LIFTBOARD_HOME "
                "(or run `liftboard demo` there for the demo marketplace)"
            )
        return LakeVersion(None)
    versions = {name: int(version) for name, version in json.loads(row.lake_versions).items()}
    return LakeVersion(row.run_id, versions, _finished(row.finished_at))


def _has_runs_before_delta(settings: Settings) -> bool:
    """Committed ingestion runs recorded before lake versions were (migration 0005 left them null)."""
    runs = db.ingestion_runs
    query = sa.select(runs.c.run_id).where(runs.c.status == "committed", runs.c.lake_versions.is_(None))
    with db.engine_for(settings).connect() as connection:
        return connection.execute(query.limit(1)).first() is not None


def pinned(settings: Settings, run_id: str | None = None) -> Settings:
    """``settings`` pinned to one run's versions (default: the last committed run), so that every later
    read through them (in this process or one it starts) sees the same lake."""
    version = lake_version(settings, run_id)
    return replace(settings, lake_run=version.run_id)


def _resolve(settings: Settings, version: LakeVersion | None) -> LakeVersion:
    return version if version is not None else lake_version(settings)


def scan_table(
    table: str, settings: Settings | None = None, version: LakeVersion | None = None
) -> pl.LazyFrame:
    """A lazy scan of a canonical table with exactly ``spec.schema``, at one pinned Delta version.

    ``version`` defaults to ``lake_version(settings)``: the run ``settings`` is pinned to, else the last
    committed run. Filters are pushed down to the Parquet files of that version (a filter on a fact's
    partition column prunes whole days). An empty frame with the schema when nothing was loaded.
    """
    settings = settings or Settings.from_env()
    spec = table_spec(table)
    number = _resolve(settings, version).versions.get(table)
    if number is None:
        return spec.empty().lazy()
    frame = pl.scan_delta(
        table_uri(settings, table), version=number, storage_options=_options(settings)
    ).select(spec.columns)
    return frame.cast(dict(spec.schema.items()))  # type: ignore[arg-type]


def scan_changes(table: str, settings: Settings, version: LakeVersion | None = None) -> pl.LazyFrame:
    """The history of an updatable fact at a pinned version: one row per changed row and run."""
    spec = table_spec(table)
    name = changes_table(table)
    number = _resolve(settings, version).versions.get(name)
    if number is None:
        return pl.LazyFrame(schema=changes_schema(spec))
    return pl.scan_delta(table_uri(settings, name), version=number, storage_options=_options(settings))


def table_details(table: str, settings: Settings, version: LakeVersion | None = None) -> dict[str, Any]:
    """Files and last write of a table at a pinned version (zero files before its first run)."""
    number = _resolve(settings, version).versions.get(table)
    delta = _open(settings, table, number) if number is not None else None
    if delta is None:
        return {"version": None, "files": 0, "last_written": None}
    actions = pl.DataFrame(delta.get_add_actions(flatten=True))
    stamp = actions["modification_time"].max() if actions.height else None  # of the newest file
    written = datetime.fromtimestamp(stamp / 1000, tz=UTC) if isinstance(stamp, int) else None  # ms
    return {"version": number, "files": actions.height, "last_written": written}


def rows_added(table: str, settings: Settings, before: LakeVersion, after: LakeVersion) -> pl.LazyFrame:
    """The rows of a fact table that are in ``after``'s version and not in ``before``'s (the files a run
    added; Delta files are immutable, so a new file is new rows)."""
    spec = table_spec(table)
    end = after.versions.get(table)
    if end is None or end == before.versions.get(table):
        return spec.empty().lazy()
    start = before.versions.get(table)
    new = _open(settings, table, end)
    assert new is not None
    old = set(_open(settings, table, start).file_uris()) if start is not None else set()  # type: ignore[union-attr]
    files = [uri for uri in new.file_uris() if uri not in old]
    if not files:
        return spec.empty().lazy()
    added = (
        pl.scan_parquet(files, storage_options=_options(settings))
        .select(spec.columns)
        .cast(dict(spec.schema.items()))  # type: ignore[arg-type]
        .collect()
    )
    if spec.updatable and start is not None and added.height:
        # a MERGE rewrote files: rows whose key the earlier version held are updates, not new rows
        key = list(spec.primary_key)
        held = (
            scan_table(table, settings, before).select(key).join(added.select(key).lazy(), on=key, how="semi")
        )
        added = added.join(held.collect(), on=key, how="anti")
    return added.lazy()


# ---------------------------------------------------------------------------------------------------------
# Writing (only under the ingest lock)


def _with_day(spec: TableSpec, frame: pl.DataFrame) -> pl.DataFrame:
    assert spec.partition_by is not None
    column = pl.col(spec.partition_by)
    day = column if spec.schema[spec.partition_by] == pl.Date else column.dt.date()
    # sorted by time (the day follows): files whose rows are in time order prune well on time filters
    return frame.select(spec.columns).sort(spec.partition_by).with_columns(day.alias(DAY))


def _ensure_table(settings: Settings, spec: TableSpec) -> None:
    """Create an empty table (its version 0, what an unpinned table is restored to)."""
    if _open(settings, spec.name) is not None:
        return
    options: dict[str, Any] = {}
    if spec.name in CHANGE_TABLES:
        empty = pl.DataFrame(schema=changes_schema(CHANGE_TABLES[spec.name]))
    elif spec.storage == "lake":
        empty = _with_day(spec, spec.empty())
        options = {"partition_by": [DAY]}
    else:
        empty = spec.empty()
    empty.write_delta(
        table_uri(settings, spec.name),
        mode="append",
        storage_options=_options(settings),
        delta_write_options=options,
    )


def _latest(settings: Settings, table: str) -> int:
    delta = _open(settings, table)
    assert delta is not None
    return int(delta.version())


def _store(settings: Settings, table: str) -> Any:
    """The Delta table's location through deltalake's own object-store layer (a local folder and an
    object-store URL alike, with the lake's storage options): sizes, folders, deletes."""
    from deltalake.fs import DeltaStorageHandler

    return DeltaStorageHandler(table_uri(settings, table), _options(settings))


_STATS_TYPES = (pl.Int64, pl.Int32, pl.Date)
"""Columns whose min/max go into a file's Delta statistics: exact and cheap for these types (timestamps
would be rounded to milliseconds by the format, floats may hold NaN, text costs a pass per column)."""


def _file_stats(part: pl.DataFrame) -> str:
    """A data file's Delta statistics: rows, null counts, min/max of the exactly representable columns."""
    exact = [name for name, dtype in part.schema.items() if dtype in _STATS_TYPES]
    values = part.select(
        *(pl.col(name).min().alias(f"min:{name}") for name in exact),
        *(pl.col(name).max().alias(f"max:{name}") for name in exact),
        *(pl.col(name).null_count().alias(f"null:{name}") for name in part.columns),
    ).row(0, named=True)

    def shown(value: Any) -> Any:
        return value.isoformat() if hasattr(value, "isoformat") else value

    stats = {
        "numRecords": part.height,
        "minValues": {
            name: shown(values[f"min:{name}"]) for name in exact if values[f"min:{name}"] is not None
        },
        "maxValues": {
            name: shown(values[f"max:{name}"]) for name in exact if values[f"max:{name}"] is not None
        },
        "nullCount": {name: values[f"null:{name}"] for name in part.columns},
    }
    return json.dumps(stats)


def stage_facts(settings: Settings, table: str, frame: pl.DataFrame, run_id: str) -> list[Any]:
    """Write new rows of a fact table as data files of its Delta table, one per day, NOT yet committed;
    the Delta add actions that `commit_facts` commits.

    The ingest calls this for each input as soon as the input is validated, so a run holds one input's
    rows at a time, however many it has (the Delta writer took every input's rows at once: `large` peak
    6.7 GiB); the files are written by Polars (its Parquet writer is 1.5-2.5x faster than delta-rs's on
    these tables, bench/RESULTS.md). Files of a run that never commits are not in the table (no reader
    sees them); `vacuum` removes them, as `discard_staged` does at once when the run fails.
    """
    import time
    import uuid

    from deltalake.transaction import AddAction

    spec = table_spec(table)
    _ensure_table(settings, spec)
    if frame.is_empty():
        return []
    store = _store(settings, table)
    base = table_uri(settings, table)
    actions = []
    rows = _with_day(spec, frame)
    for (day,), part in rows.partition_by(DAY, as_dict=True, include_key=False, maintain_order=True).items():
        partition = f"{DAY}={day.isoformat()}"
        path = f"{partition}/part-{run_id}-{uuid.uuid4().hex[:12]}.parquet"
        part.write_parquet(f"{base}/{path}", storage_options=_options(settings), mkdir=True)
        (info,) = store.get_file_info([path])
        actions.append(
            AddAction(
                path=path,
                size=int(info.size),
                partition_values={DAY: day.isoformat()},
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=_file_stats(part),
            )
        )
    return actions


def commit_facts(settings: Settings, table: str, actions: list[Any]) -> int:
    """Commit a run's staged files of a fact table as one Delta version (an append); that version."""
    delta = _open(settings, table)
    assert delta is not None, f"{table} has no Delta table: stage_facts creates it"
    if actions:
        delta.create_write_transaction(actions, mode="append", schema=delta.schema(), partition_by=[DAY])
    return _latest(settings, table)


def discard_staged(settings: Settings, table: str, actions: list[Any]) -> None:
    """Delete the files of staged actions that were never committed (best effort: `vacuum` finds the rest)."""
    store = _store(settings, table)
    for action in actions:
        with contextlib.suppress(Exception):
            store.delete_file(action.path)


def staged_rows(settings: Settings, table: str, actions: list[Any]) -> pl.LazyFrame:
    """The rows of staged (uncommitted) files, with the table's columns."""
    spec = table_spec(table)
    if not actions:
        return spec.empty().lazy()
    base = table_uri(settings, table)
    return pl.scan_parquet(
        [f"{base}/{action.path}" for action in actions], storage_options=_options(settings)
    ).select(spec.columns)


def append_facts(settings: Settings, table: str, frames: list[pl.DataFrame]) -> int:
    """Append new rows of a fact table as one Delta version (stage, then commit); that version."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    actions = [action for frame in frames for action in stage_facts(settings, table, frame, run_id)]
    return commit_facts(settings, table, actions)


def merge_updates(settings: Settings, table: str, frame: pl.DataFrame, days: list[Any]) -> int:
    """Update stored rows of an updatable fact with ``frame`` (one row per key) as one Delta MERGE,
    reading only the day partitions the stored rows are in (``days``); the new version."""
    spec = table_spec(table)
    delta = _open(settings, table)
    assert delta is not None
    assert spec.updatable
    matched = " AND ".join(f"t.{name} = s.{name}" for name in spec.primary_key)
    within = ", ".join(f"CAST('{day.isoformat()}' AS DATE)" for day in sorted(set(days)))
    predicate = f"{matched} AND t.{DAY} IN ({within})" if within else matched
    source = _with_day(spec, frame).to_arrow()
    delta.merge(source, predicate, source_alias="s", target_alias="t").when_matched_update_all().execute()
    return _latest(settings, table)


def append_changes(settings: Settings, table: str, changes: pl.DataFrame) -> int:
    """Append a run's changed rows (before and after) to the history of an updatable fact."""
    spec = table_spec(table)
    name = changes_table(table)
    _ensure_table(settings, replace(spec, name=name))
    changes.select(changes_schema(spec).names()).write_delta(
        table_uri(settings, name), mode="append", storage_options=_options(settings)
    )
    return _latest(settings, name)


def overwrite_dimension(settings: Settings, table: str, frame: pl.DataFrame) -> int:
    """Replace the lake mirror of a dimension table as one Delta version; that version."""
    spec = table_spec(table)
    _ensure_table(settings, spec)
    frame.select(spec.columns).write_delta(
        table_uri(settings, table), mode="overwrite", storage_options=_options(settings)
    )
    return _latest(settings, table)


def restore(settings: Settings, version: LakeVersion) -> list[str]:
    """Bring every table whose latest version is not the pinned one back to it; the tables restored."""
    restored = []
    for name in LAKE_TABLES:
        delta = _open(settings, name)
        if delta is None:
            continue
        target = version.versions.get(name, 0)  # version 0 is the empty table a run created
        if delta.version() != target:
            delta.restore(target)
            restored.append(name)
    return restored


# ---------------------------------------------------------------------------------------------------------
# The ingest lock and recovery


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


def discard_quarantine(settings: Settings, run_id: str) -> None:
    """Delete the quarantine files of a run that did not commit."""
    shutil.rmtree(settings.quarantine / run_id, ignore_errors=True)


def mark_run_failed(settings: Settings, run_id: str, error: str) -> None:
    """Record in ``ingestion_runs`` that a run failed, and why."""
    with db.connect(settings) as connection:
        connection.execute(
            sa.update(db.ingestion_runs)
            .where(db.ingestion_runs.c.run_id == run_id)
            .values(status="failed", error=error, finished_at=datetime.now(UTC))
        )


def recover_locked(settings: Settings) -> LakeVersion:
    """``recover`` for a caller that holds the ingest lock already; the versions now current."""
    with db.engine_for(settings).connect() as connection:
        runs = db.ingestion_runs
        running = list(
            connection.execute(sa.select(runs.c.run_id).where(runs.c.status == "running")).scalars()
        )
    for run_id in running:
        discard_quarantine(settings, run_id)
        mark_run_failed(settings, run_id, "interrupted before commit; its lake versions were rolled back")
    current = lake_version(replace(settings, lake_run=None))
    restore(settings, current)
    return current


def recover(settings: Settings, *, blocking: bool = True) -> LakeVersion:
    """Undo what runs a crash interrupted (their Delta versions, quarantine files); the current versions.

    Raises:
        LakeBusy: when ``blocking`` is false and an ingest is running.
    """
    db.require_current(settings)
    with ingest_lock(settings, blocking=blocking):
        return recover_locked(settings)


def record_run(settings: Settings, source: str, versions: Mapping[str, int]) -> str:
    """Record a housekeeping commit (optimize) as a committed run with its versions; its run id."""
    now = datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%S}-{os.urandom(4).hex()}"
    with db.connect(settings) as connection:
        connection.execute(
            sa.insert(db.ingestion_runs).values(
                run_id=run_id,
                started_at=now,
                finished_at=now,
                user=None,
                source=source,
                status="committed",
                lake_versions=json.dumps(dict(versions)),
            )
        )
    return run_id


# ---------------------------------------------------------------------------------------------------------
# Housekeeping


def optimize(settings: Settings) -> dict[str, Any]:
    """Compact small files of every table into few large ones (a new version each, recorded as a run
    named ``lake optimize`` so readers move to it); per table, files removed and added."""
    db.require_current(settings)
    with ingest_lock(settings):
        current = recover_locked(settings)
        versions = dict(current.versions)
        done: dict[str, Any] = {}
        for name in LAKE_TABLES:
            delta = _open(settings, name)
            if delta is None or name not in versions:
                continue
            metrics = delta.optimize.compact()
            done[name] = {key: metrics.get(key) for key in ("numFilesAdded", "numFilesRemoved")}
            versions[name] = int(delta.version())
        if versions != dict(current.versions):
            done["run_id"] = record_run(settings, "lake optimize", versions)
        return done


def vacuum(settings: Settings, retention_hours: int = 168, *, dry_run: bool = False) -> dict[str, int]:
    """Delete files no version younger than ``retention_hours`` uses (time travel to older runs ends
    there); per table, the files deleted (or that would be, with ``dry_run``)."""
    db.require_current(settings)
    with ingest_lock(settings):
        recover_locked(settings)
        removed: dict[str, int] = {}
        for name in LAKE_TABLES:
            delta = _open(settings, name)
            if delta is None:
                continue
            files = delta.vacuum(
                retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False
            )
            removed[name] = len(files)
        return removed


def has_rows(table: str, settings: Settings) -> bool:
    """Whether the current version of ``table`` holds any row."""
    return scan_table(table, settings).select(pl.len()).collect().item() > 0
