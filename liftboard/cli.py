"""The ``liftboard`` command line: ingest, status, DB maintenance (and, later, demo and build).

Configuration comes from the environment (``LIFTBOARD_HOME``, ``LIFTBOARD_DATABASE_URL``), read by
``Settings.from_env``. Commands are thin: they call library functions and render what they return.

Only ``liftboard db upgrade`` (and ``liftboard demo``, which makes a new installation) migrate the state
DB; every other command that uses it stops with exit code 3 and the reason when it is not current.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import polars as pl
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from core.config import Settings
from datastore import db, lake
from datastore.ingest import IngestError, IngestReport, ingest_files, ingest_sql
from datastore.status import ingestion_runs, quarantine_files, quarantined_rows, table_freshness

app = typer.Typer(
    name="liftboard",
    help="Creator-commerce analytics: ingest data, inspect the lake, build and serve the dashboard.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(
    help="State DB schema: show its revision, run the migrations (the only commands that migrate it).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
lake_app = typer.Typer(
    help="Lake housekeeping: compact small files, delete files no recent version uses.",
    no_args_is_help=True,
)
app.add_typer(lake_app, name="lake")

EXIT_INGEST_ERROR = 2
EXIT_DB_NOT_CURRENT = 3

_P = ParamSpec("_P")
_R = TypeVar("_R")


SCHEDULER_HELP = (
    "Run on Dask distributed: local[:N] (a local cluster of N worker processes, default 2) or "
    "tcp://HOST:PORT (a running scheduler; docs/scale.md); default: this process."
)


@contextmanager
def _cluster_tasks(scheduler: str | None) -> Iterator[Any]:
    """None without ``--scheduler``; otherwise the cluster's task runner while the command runs (exit 2 on
    a value that is neither ``local[:N]`` nor an address)."""
    if scheduler is None:
        yield None
        return
    from liftboard.cluster import DaskTasks, SchedulerSpec, SchedulerSpecError, connect

    try:
        spec = SchedulerSpec.parse(scheduler)
    except SchedulerSpecError as exc:
        _err().print(Text(f"error: --scheduler {exc}", style="bold red"))
        raise typer.Exit(2) from None
    _err().print(f"running on {spec.describe()}")
    with connect(spec) as client:
        yield DaskTasks(client)


def _out() -> Console:
    return Console(soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def needs_current_db(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn ``DatabaseNotCurrent`` raised anywhere in ``command`` into its message and exit code 3."""

    @functools.wraps(command)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return command(*args, **kwargs)
        except db.DatabaseNotCurrent as exc:
            _err().print(Text(f"error: {exc}", style="bold red"))
            raise typer.Exit(EXIT_DB_NOT_CURRENT) from None

    return checked


class _ProgressLines:
    """Which progress events become a printed line, and how it reads: ``  12.3s [4/11] features``.

    A line per event, except that repeats of one description (a stage ticking through weeks or files)
    print at most every ``every`` seconds, and always at the last step. With ``finished_only``, only
    events that finish a step (``done`` grew) print.
    """

    def __init__(self, every: float = 2.0, finished_only: bool = False) -> None:
        self.started = time.perf_counter()
        self.every = every
        self.finished_only = finished_only
        self.last: tuple[str, int, float] = ("", -1, float("-inf"))

    def line(self, description: str, done: int, total: int) -> str | None:
        now = time.perf_counter()
        last_description, last_done, last_at = self.last
        if self.finished_only and done <= last_done:
            return None
        repeat = description == last_description and done < total and now - last_at < self.every
        if repeat:
            return None
        self.last = (description, done, now)
        counts = f"[{done}/{total}] " if total else ""
        return f"{now - self.started:7.1f}s {counts}{description}"


@contextmanager
def progress_bar(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """Progress as the ``progress(stage, done, total)`` callback the libraries take.

    When standard output is a terminal: rich's live bar on ``console`` (gone when done), above it a line
    per finished stage. Otherwise (a log, a pipe, CI): a plain line on standard output per event
    (`_ProgressLines`), with the time since the start, flushed at once.
    """
    out = _out()
    if not out.is_terminal:
        lines = _ProgressLines()

        def log(stage: str, done: int, total: int) -> None:
            text = lines.line(stage, done, total)
            if text is not None:
                out.print(text, highlight=False, markup=False)
                out.file.flush()

        yield log
        return
    finished = _ProgressLines(finished_only=True)
    with Progress(
        TimeElapsedColumn(),
        MofNCompleteColumn(),
        BarColumn(bar_width=20),
        TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)
            text = finished.line(stage, done, total)
            if text is not None:
                bar.console.print(text, highlight=False, markup=False)

        yield progress


def _report_table(report: IngestReport) -> Table:
    table = Table(title=f"Ingestion run {report.run_id}", caption_justify="left")
    table.caption = "\n".join(mapped.text() for mapped in report.aliases_mapped) or None
    table.add_column("table")
    table.add_column("source", overflow="fold")
    for name in ("read", "loaded", "updated", "quarantined", "duplicate"):
        table.add_column(name, justify="right")
    for load in report.loads:
        table.add_row(
            load.table,
            load.file,
            f"{load.rows_read:,}",
            f"{load.rows_loaded:,}",
            f"{load.rows_updated:,}",
            f"{load.rows_quarantined:,}",
            f"{load.rows_duplicate:,}",
        )
    if len(report.loads) > 1:
        table.add_row(
            "total",
            "",
            f"{report.rows_read:,}",
            f"{report.rows_loaded:,}",
            f"{report.rows_updated:,}",
            f"{report.rows_quarantined:,}",
            f"{report.rows_duplicate:,}",
            style="bold",
        )
    return table


@app.command()
@needs_current_db
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="CSV, Parquet or NDJSON files.")] = None,
    table: Annotated[str | None, typer.Option("--table", "-t", help="Table of every source.")] = None,
    source_url: Annotated[
        str | None, typer.Option("--source-url", help="SQLAlchemy URL of a database to extract from.")
    ] = None,
    source_table: Annotated[str | None, typer.Option("--source-table", help="Table to extract.")] = None,
    query: Annotated[str | None, typer.Option("--query", help="SQL query to extract with.")] = None,
    watch_dir: Annotated[
        Path | None,
        typer.Option("--watch", help="Keep ingesting files dropped in this folder (as `liftboard watch`)."),
    ] = None,
) -> None:
    """Validate and load files (or a SQL extract); bad rows go to quarantine, duplicates are dropped."""
    if watch_dir is not None:
        if paths or source_url:
            _err().print(Text("error: --watch takes no files or --source-url", style="bold red"))
            raise typer.Exit(EXIT_INGEST_ERROR)
        watch(watch_dir)
        return
    settings = Settings.from_env()
    out, err = _out(), _err()
    try:
        if source_url is not None:
            if paths:
                raise IngestError("give either files or --source-url, not both")
            if table is None:
                raise IngestError("--source-url needs --table (the canonical table the rows belong to)")
            report = ingest_sql(source_url, table, settings, query=query, source_table=source_table)
        else:
            if source_table is not None or query is not None:
                raise IngestError("--source-table and --query need --source-url")
            if not paths:
                raise IngestError(
                    "nothing to ingest: give files, or --source-url with --source-table or --query"
                )
            with progress_bar(err) as progress:
                report = ingest_files(paths, settings, table=table, progress=progress)
    except IngestError as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(EXIT_INGEST_ERROR) from None
    out.print(_report_table(report))
    if report.rows_quarantined:
        err.print(
            Text(
                f"warning: {report.rows_quarantined:,} row(s) quarantined; see "
                + ", ".join(report.quarantine_paths),
                style="yellow",
            )
        )
    out.print(
        Text(
            f"run {report.run_id} committed: {report.rows_loaded:,} row(s) loaded, "
            f"{report.rows_updated:,} updated",
            style="green",
        )
    )


def _day(value: date | None) -> str:
    return "" if value is None else value.isoformat()


def _tables_overview(settings: Settings) -> Table:
    table = Table(title=f"Tables in {settings.home}")
    table.add_column("table")
    table.add_column("stored in")
    table.add_column("rows", justify="right")
    table.add_column("from")
    table.add_column("to")
    table.add_column("files", justify="right")
    for row in table_freshness(settings).iter_rows(named=True):
        where = "DB + lake mirror" if row["storage"] == "db" else "lake (by day)"
        rows = "?" if row["rows"] is None else f"{row['rows']:,}"
        table.add_row(
            row["table"], where, rows, _day(row["first_day"]), _day(row["last_day"]), str(row["files"])
        )
    return table


def _runs_overview(settings: Settings, limit: int) -> Table:
    table = Table(title=f"Last {limit} ingestion runs")
    table.add_column("run")
    table.add_column("started (UTC)")
    table.add_column("status")
    table.add_column("user")
    for name in ("read", "loaded", "updated", "quarantined", "duplicate"):
        table.add_column(name, justify="right")
    table.add_column("error", overflow="fold")
    styles = {"committed": "green", "failed": "red", "running": "yellow"}
    for row in ingestion_runs(settings, limit).iter_rows(named=True):
        table.add_row(
            row["run_id"],
            row["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            Text(row["status"], style=styles.get(row["status"], "")),
            row["user"] or "",
            f"{row['rows_read']:,}",
            f"{row['rows_loaded']:,}",
            f"{row['rows_updated']:,}",
            f"{row['rows_quarantined']:,}",
            f"{row['rows_duplicate']:,}",
            row["error"] or "",
        )
    return table


@app.command()
@needs_current_db
def status(
    runs: Annotated[int, typer.Option("--runs", min=1, help="How many recent runs to list.")] = 10,
) -> None:
    """Tables with row counts and date ranges, recent ingestion runs and quarantine totals."""
    settings = Settings.from_env()
    db.require_current(settings)
    out = _out()
    out.print(Text(f"home: {settings.home}"))
    out.print(Text(f"database: {sa.make_url(settings.database_url).render_as_string(hide_password=True)}"))
    out.print(_tables_overview(settings))
    out.print(_runs_overview(settings, runs))
    quarantined, files = quarantined_rows(settings), quarantine_files(settings).height
    out.print(Text(f"quarantine: {quarantined:,} row(s) in {files} file(s) under {settings.quarantine}"))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the state DB to the schema of this Liftboard (safe to repeat; one migrator at a time)."""
    settings = Settings.from_env()
    done = db.upgrade_db(settings)
    if done.before == done.after:
        message = f"state DB {done.url} already at revision {done.after}: nothing to do"
    else:
        message = f"state DB {done.url} upgraded from revision {done.before or '(empty)'} to {done.after}"
    _out().print(Text(message, style="green"))


@db_app.command("current")
def db_current() -> None:
    """Show the state DB's revision and the one this Liftboard needs (changes nothing)."""
    settings = Settings.from_env()
    revision, head = db.database_revision(settings), db.head_revision()
    out = _out()
    out.print(Text(f"database: {db.display_url(settings)}"))
    out.print(Text(f"revision: {revision or '(none: no Liftboard schema yet)'}"))
    out.print(Text(f"head:     {head}"))
    if revision == head:
        out.print(Text("up to date", style="green"))
    else:
        out.print(Text("not current: run `liftboard db upgrade`", style="yellow"))


@app.command("build")
@needs_current_db
def build_command(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Compute from data strictly before this date (YYYY-MM-DD); "
            "default: the day after the last order.",
        ),
    ] = None,
    no_sql: Annotated[bool, typer.Option("--no-sql", help="Publish Parquet snapshots only.")] = False,
    if_stale: Annotated[
        bool,
        typer.Option(
            "--if-stale", help="Build only when no build exists or data was ingested since the last one."
        ),
    ] = False,
    lake_version: Annotated[
        str | None,
        typer.Option(
            "--lake-version",
            help="Read the lake as this ingestion run (its id) left it; default: the last committed run.",
        ),
    ] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Do not evaluate the alert rules after the build.")
    ] = False,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help=SCHEDULER_HELP)] = None,
) -> None:
    """Run the analytics build and publish snapshots (Parquet) and analytics_* tables (SQL); then evaluate
    the alert rules on the lake and deliver new alerts (as `liftboard alerts evaluate` does)."""
    from datetime import date

    from datastore.snapshots import is_stale
    from liftboard.build import BuildConfig, build

    settings = Settings.from_env()
    out, err = _out(), _err()
    db.require_current(settings)
    if if_stale and not is_stale(settings):
        out.print("the current build is up to date with the lake: nothing to do")
        return
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        err.print(Text(f"error: --as-of {as_of!r} is not a date (YYYY-MM-DD)", style="bold red"))
        raise typer.Exit(2) from None
    try:
        read = lake.lake_version(settings, lake_version)
    except lake.UnknownLakeVersion as exc:
        err.print(Text(f"error: --lake-version: {exc}", style="bold red"))
        raise typer.Exit(2) from None
    started = time.perf_counter()
    with _cluster_tasks(scheduler) as tasks, progress_bar(err) as progress:
        result = build(
            settings,
            day,
            progress=progress,
            config=BuildConfig(publish_sql=not no_sql),
            lake_run=read.run_id,
            tasks=tasks,
        )
    seconds = time.perf_counter() - started
    table = Table(title=f"Build {result.build_id} (as of {result.as_of})")
    table.add_column("snapshot")
    table.add_column("rows", justify="right")
    for name, count in result.row_counts.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    timings = ", ".join(f"{stage} {stage_seconds:.1f}s" for stage, stage_seconds in result.timings.items())
    out.print(Text(f"published to {result.path} in {seconds:.1f}s ({timings})", style="green"))
    versions = ", ".join(f"{name} v{number}" for name, number in result.lake.get("versions", {}).items())
    out.print(Text(f"lake read as of run {result.lake.get('run_id') or '(empty lake)'}: {versions or '-'}"))
    if not no_alerts:
        from alerts.evaluate import evaluate_and_deliver

        out.print(_evaluation_line(evaluate_and_deliver(settings)))


@lake_app.command("optimize")
@needs_current_db
def lake_optimize() -> None:
    """Compact each table's small files into large ones (a new version, recorded as a run)."""
    settings = Settings.from_env()
    done = lake.optimize(settings)
    table = Table(title="Lake optimize")
    for column in ("table", "files removed", "files added"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, metrics in done.items():
        if isinstance(metrics, dict):
            table.add_row(name, str(metrics.get("numFilesRemoved", 0)), str(metrics.get("numFilesAdded", 0)))
    _out().print(table)
    if "run_id" in done:
        _out().print(Text(f"readers now read run {done['run_id']}", style="green"))


@lake_app.command("vacuum")
@needs_current_db
def lake_vacuum(
    retention_hours: Annotated[
        int,
        typer.Option(
            "--retention-hours", min=0, help="Keep files any version this recent uses (time travel)."
        ),
    ] = 168,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the count only; delete nothing.")] = False,
) -> None:
    """Delete files that no version younger than the retention uses (builds of older runs end there)."""
    settings = Settings.from_env()
    removed = lake.vacuum(settings, retention_hours, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for name, count in removed.items():
        _out().print(f"{name}: {verb} {count} file(s)")


# --------------------------------------------------------------------------------------------------------
# demo: the simulator's command goes here (`@app.command() def demo(...)` calling
# sim.simulate.generate). Keep it below this line so the ingest/status/db commands stay together.
# --------------------------------------------------------------------------------------------------------


@app.command()
def demo(
    scale: Annotated[
        str,
        typer.Option(
            help="tiny (tests), demo (default), large (benchmarks) or xlarge (a cluster's; sharded)."
        ),
    ] = "demo",
    seed: Annotated[
        int, typer.Option(help="Seed of the simulation: the same seed gives the same data.")
    ] = 42,
    world: Annotated[
        str,
        typer.Option(
            help="The effect world: how strategies work in this marketplace (sim/worlds.toml lists them; "
            "demo is the default)."
        ),
    ] = "demo",
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when the lake already holds orders.")
    ] = False,
    stream: Annotated[
        str | None,
        typer.Option(
            "--stream",
            help="Replay the facts as events on Redis Streams at this URL (redis://HOST:PORT/DB) instead of "
            "ingesting their files; `liftboard stream` consumes them.",
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="With --stream: simulated seconds per second (0: as fast as possible).")
    ] = 0.0,
    days: Annotated[
        int | None,
        typer.Option(help="With --stream: replay only the last N days (older facts are ingested as files)."),
    ] = None,
    stream_prefix: Annotated[
        str, typer.Option(help="With --stream: prefix of the stream keys (orders, engagement, content).")
    ] = "",
    incidents: Annotated[
        bool,
        typer.Option(
            "--incidents",
            help="Plant incidents in the last 28 days for the alerts to find (a merchant's refund spike, a "
            "region's GMV drop, a top creator going quiet, a live that sells nothing; listed in "
            "truth/incidents.parquet).",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="xlarge only: generate its shards as tasks on Dask distributed. " + SCHEDULER_HELP,
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option("--shards", min=1, help="xlarge only: generate only the first N of its shards."),
    ] = None,
) -> None:
    """Generate a simulated marketplace and load it through ingest (truth goes to $LIFTBOARD_HOME/truth).

    ``--scale xlarge`` (docs/scale.md) is ten shards the size of ``large``, generated side by side on a
    cluster with ``--scheduler`` (one after the other in this process without) and ingested file by file.

    A demo is a new installation, so this first migrates the state DB (as `liftboard db upgrade` does).
    With --stream, the dimensions are ingested as files and the facts published as events in event-time
    order.
    """
    from sim.shards import SHARDED_SCALES
    from sim.simulate import SCALES, generate
    from sim.worlds import EFFECT_WORLDS

    settings = Settings.from_env()
    out, err = _out(), _err()
    if scale not in SCALES and scale not in SHARDED_SCALES:
        names = ", ".join([*SCALES, *SHARDED_SCALES])
        err.print(Text(f"error: unknown scale {scale!r}; choose one of {names}", style="bold red"))
        raise typer.Exit(2)
    if scale in SHARDED_SCALES:
        _demo_sharded(scale, seed, settings, scheduler, shards)
        return
    if scheduler is not None or shards is not None:
        err.print(
            Text("error: --scheduler and --shards are for the sharded scales (xlarge)", style="bold red")
        )
        raise typer.Exit(2)
    if world not in EFFECT_WORLDS:
        err.print(
            Text(
                f"error: unknown world {world!r}; choose one of {', '.join(EFFECT_WORLDS)}", style="bold red"
            )
        )
        raise typer.Exit(2)
    if if_missing and db.database_revision(settings) is not None and lake.has_rows("orders", settings):
        out.print(f"the lake at {settings.lake_url} already holds orders: nothing to do")
        return
    if stream is not None:
        _demo_stream(
            stream,
            settings,
            scale,
            seed,
            world,
            speed=speed,
            days=days,
            prefix=stream_prefix,
            incidents=incidents,
        )
        return
    if speed or days is not None:
        err.print(Text("error: --speed and --days need --stream", style="bold red"))
        raise typer.Exit(2)
    db.upgrade_db(settings)
    with progress_bar(err) as progress:
        result = generate(scale, seed, settings, progress=progress, world=world, incidents=incidents)
    table = Table(title=f"Simulated marketplace: scale {scale}, seed {seed}, world {world}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in result.rows.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    out.print(Text(f"inputs in {result.input_dir}; truth in {result.truth_dir}", style="green"))


def _demo_sharded(
    scale: str, seed: int, settings: Settings, scheduler: str | None, shards: int | None
) -> None:
    """`demo` for a sharded scale (`sim.shards`)."""
    from liftboard.cluster import generate_sharded
    from sim.shards import SHARDED_SCALES

    db.upgrade_db(settings)
    with _cluster_tasks(scheduler) as tasks, progress_bar(_err()) as progress:
        rows, input_dir = generate_sharded(
            SHARDED_SCALES[scale],
            seed,
            settings,
            **({"map_tasks": tasks} if tasks else {}),
            shards=shards,
            progress=progress,
        )
    table = Table(title=f"Simulated marketplace: scale {scale}, seed {seed}, {shards or 'all'} shard(s)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    _out().print(table)
    _out().print(Text(f"inputs in {input_dir}; truth in {settings.truth}", style="green"))


def _demo_stream(
    url: str,
    settings: Settings,
    scale: str,
    seed: int,
    world: str,
    *,
    speed: float,
    days: int | None,
    prefix: str,
    incidents: bool = False,
) -> None:
    """`liftboard demo --stream`: replay the marketplace on Redis Streams (with ``incidents`` planted)."""
    from datastore.stream import StreamError, parse_streams
    from liftboard.replay import replay

    out, err = _out(), _err()
    if speed < 0 or (days is not None and days < 1):
        err.print(Text("error: --speed must be >= 0 and --days >= 1", style="bold red"))
        raise typer.Exit(2)
    try:
        streams = parse_streams("content,engagement,orders", prefix)
        with progress_bar(err) as progress:
            result = replay(
                url,
                settings,
                streams=streams,
                scale=scale,
                seed=seed,
                world=world,
                speed=speed,
                days=days,
                incidents=incidents,
                progress=progress,
            )
    except StreamError as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(EXIT_INGEST_ERROR) from None
    table = Table(title=f"Replayed marketplace: scale {scale}, seed {seed}, world {world}")
    table.add_column("table")
    table.add_column("stream")
    table.add_column("events", justify="right")
    for name, count in result.published.items():
        table.add_row(name, streams[name], f"{count:,}")
    out.print(table)
    span = (
        f"{result.first_event:%Y-%m-%d %H:%M} to {result.last_event:%Y-%m-%d %H:%M}"
        if result.first_event and result.last_event
        else "no events"
    )
    out.print(
        Text(
            f"dimensions ingested as files (run {result.files_report.run_id}); events {span} published "
            f"in {result.seconds:.1f}s; consume them with `liftboard stream --source {url}`",
            style="green",
        )
    )


@app.command()
@needs_current_db
def recommend(
    as_of: Annotated[
        str | None,
        typer.Option(help="Score as of this date (YYYY-MM-DD); default: the day after the last order."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(help="Budget (USD) of the allocation; default: the teams' capacity at median cost."),
    ] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help=SCHEDULER_HELP)] = None,
) -> None:
    """Train the uplift models, score and explain every entity, and save a recommendation run (with
    ``--scheduler``, one task per strategy's model fits and, per worker, two scoring and explaining runs
    of entities on the cluster: `BuildConfig.pieces_per_worker`)."""
    from datetime import date

    from liftboard.build import BuildConfig
    from strategies.pipeline import run_strategies

    settings = Settings.from_env()
    out, err = _out(), _err()
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        err.print(Text(f"error: --as-of {as_of!r} is not a date (YYYY-MM-DD)", style="bold red"))
        raise typer.Exit(2) from None
    db.require_current(settings)
    try:
        with _cluster_tasks(scheduler) as tasks, progress_bar(err) as progress:
            pieces = BuildConfig().pieces_per_worker * tasks.workers if tasks else 1
            cluster = {"map_tasks": tasks, "scoring_pieces": pieces} if tasks else {}
            run = run_strategies(settings, day, budget=budget, progress=progress, **cluster)
    except ValueError as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(1) from None
    if run.recommendations.height == 0:
        err.print(
            Text("no recommendations: no interventions with finished outcomes to learn from", style="yellow")
        )
        raise typer.Exit(1)
    best = (
        run.recommendations.filter(pl.col("is_best"))
        .group_by("entity_kind", "strategy")
        .agg(pl.len().alias("entities"), pl.col("expected_uplift").sum(), pl.col("net_value").sum())
        .sort("net_value", descending=True)
    )
    table = Table(title=f"Recommendation run {run.run_id} (as of {run.as_of})")
    for column in ("kind", "best strategy", "entities", "expected uplift", "net value"):
        table.add_column(column, justify="right" if column not in ("kind", "best strategy") else "left")
    for row in best.iter_rows(named=True):
        table.add_row(
            row["entity_kind"],
            row["strategy"],
            f"{row['entities']:,}",
            f"${row['expected_uplift']:,.0f}",
            f"${row['net_value']:,.0f}",
        )
    out.print(table)
    chosen = run.allocation
    out.print(
        f"allocation: {chosen.height:,} entities, cost ${chosen['cost'].sum():,.0f}, "
        f"expected uplift ${chosen['expected_uplift'].sum():,.0f}"
    )
    out.print(Text(f"done in {run.timings.get('total', 0):.1f}s", style="green"))


@app.command()
@needs_current_db
def pilot(
    strategy: Annotated[
        str | None,
        typer.Option(help="Propose this strategy's pilot (id), even if its effect is established."),
    ] = None,
    mde: Annotated[
        float,
        typer.Option(help="Minimum detectable effect: relative change of 28-day net GMV (0.1 = 10%)."),
    ] = 0.1,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the entities with their arms (.csv or .parquet), as interventions rows."
        ),
    ] = None,
) -> None:
    """Propose randomized pilots where the evidence is thin: who, how many per arm, how long, what cost."""
    from datastore.snapshots import SnapshotNotFound
    from strategies.pilots import PilotConfig, published_pilot_plans, write_pilot_file

    settings = Settings.from_env()
    out, err = _out(), _err()
    try:
        plans = published_pilot_plans(settings, PilotConfig(mde=mde), [strategy] if strategy else None)
        written = write_pilot_file(plans, out_file) if out_file is not None else None
    except (ValueError, SnapshotNotFound) as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(2) from None
    table = Table(title=f"Average effect on 28-day net GMV, 95% interval (build as of {plans.as_of})")
    for column in ("kind", "strategy", "effect", "95% interval", "treated", "control", "status"):
        table.add_column(column, justify="right" if column in ("effect", "treated", "control") else "left")
    for row in plans.precision.iter_rows(named=True):
        effect, low, high = row["average_effect"], row["effect_low_95"], row["effect_high_95"]
        table.add_row(
            row["entity_kind"],
            row["strategy"],
            "n/a" if effect is None else f"{effect:+.1%}",
            "n/a" if low is None or high is None else f"{low:+.1%} to {high:+.1%}",
            f"{row['treated_rows']:,}",
            f"{row['control_rows']:,}",
            row["status"],
        )
    out.print(table)
    out.print(plans.headline)
    for proposal in plans.proposals:
        out.print(Text(f"\n{proposal.strategy_name} ({proposal.strategy})", style="bold"))
        for line in proposal.lines():
            out.print(f"  {line}")
    if written is not None:
        out.print(
            f"\nwrote {written:,} interventions row(s) to {out_file}; load them on {plans.start} with "
            f"`liftboard ingest {out_file} --table interventions`"
        )
    elif plans.proposals:
        out.print("\nwrite the entities with their arms with --out FILE (.csv or .parquet)")


# ------------------------------------------------------------------------------------------------
# users and serve (the app)
# ------------------------------------------------------------------------------------------------

users_app = typer.Typer(
    help="App users: accounts, roles and assigned merchants; every change is recorded in the audit trail.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")

EXIT_USERS_REFUSED = 1
"""A `users` command refused by the DB's state or the password policy: unknown user or merchant ids."""
EXIT_USERS_INVALID = 2
"""A `users` request that cannot be honoured as written: unknown role, taken name, empty password."""

UsernameArgument = Annotated[str, typer.Argument(help="Login name.")]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who makes the change, for the audit trail (default: the OS user)."),
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        help="The password, for scripts (other local users can see it in the process list: prefer the "
        "prompt or --password-stdin).",
    ),
]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
MerchantOption = Annotated[
    list[str] | None, typer.Option("--merchant", help="A merchant id this user manages (repeatable).")
]


def _users_refusal(exc: Exception) -> typer.Exit:
    """Print a `users` command's error and return the exit to raise (see EXIT_USERS_*)."""
    from datastore import users

    _err().print(Text(f"error: {exc}", style="bold red"))
    refused = isinstance(exc, users.UnknownUser | users.UnknownMerchants | users.PasswordPolicyError)
    return typer.Exit(EXIT_USERS_REFUSED if refused else EXIT_USERS_INVALID)


def _new_password(password: str | None, password_stdin: bool) -> str:
    """The password given with --password, read from standard input, or typed twice at a hidden prompt."""
    import sys

    if password is not None:
        secret = password
    elif password_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    if not secret:
        raise _users_refusal(ValueError("empty password"))
    return secret


def _existing_user(settings: Settings, username: str) -> None:
    """Stop with EXIT_USERS_REFUSED unless ``username`` exists (checked before asking for anything)."""
    from datastore import users

    if users.get_user(settings, username) is None:
        raise _users_refusal(users.UnknownUser(f"unknown user {username!r}"))


@users_app.command("add")
@needs_current_db
def users_add(
    username: UsernameArgument,
    role: Annotated[str, typer.Option("--role", help="ops | merchant_success")],
    merchant: MerchantOption = None,
    display_name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="E-mail of the OIDC identity (st.login).")
    ] = None,
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    actor: ActorOption = None,
) -> None:
    """Create an app user (asks for the password twice unless --password or --password-stdin)."""
    from core import access
    from datastore import users

    settings = Settings.from_env()
    db.require_current(settings)
    secret = _new_password(password, password_stdin)
    try:
        user = users.add_user(
            settings,
            username,
            secret,
            role,
            display_name=display_name,
            merchant_ids=merchant or (),
            email=email,
            actor=actor or users.default_actor(),
        )
    except access.AccessError as exc:
        raise _users_refusal(exc) from None
    scope = "all merchants" if user.merchant_ids is None else f"{len(user.merchant_ids)} merchant(s)"
    _out().print(Text(f"user {user.username} ({user.role}, {scope}) created", style="green"))


def _signed_in_at(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if isinstance(value, date) else "never"


@users_app.command("list")
@needs_current_db
def users_list() -> None:
    """List the app users: role, merchants, status (active or disabled) and last sign-in."""
    from datastore import users

    frame = users.list_users(Settings.from_env())
    table = Table(title="Users")
    for column in ("username", "name", "email", "role", "merchants", "status", "last sign-in"):
        table.add_column(column, overflow="fold")
    for row in frame.iter_rows(named=True):
        table.add_row(
            row["username"],
            row["display_name"],
            row["email"] or "",
            row["role"],
            row["merchants"],
            Text(row["status"], style="red" if row["status"] == "disabled" else "green"),
            _signed_in_at(row["last_sign_in"]),
        )
    _out().print(table)


@users_app.command("remove")
@needs_current_db
def users_remove(
    username: UsernameArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    actor: ActorOption = None,
) -> None:
    """Delete a user with their merchants and sessions (the audit trail keeps their history)."""
    from core import access
    from datastore import users

    settings = Settings.from_env()
    _existing_user(settings, username)
    if not yes:
        typer.confirm(f"Remove user {username}, their merchants and their sessions?", abort=True)
    try:
        users.remove_user(settings, username, actor=actor or users.default_actor())
    except access.AccessError as exc:
        raise _users_refusal(exc) from None
    _out().print(Text(f"user {username} removed", style="green"))


@users_app.command("disable")
@needs_current_db
def users_disable(username: UsernameArgument, actor: ActorOption = None) -> None:
    """Stop a user from signing in and end their open sessions."""
    from core import access
    from datastore import users

    try:
        changed = users.disable_user(Settings.from_env(), username, actor=actor or users.default_actor())
    except access.AccessError as exc:
        raise _users_refusal(exc) from None
    if changed:
        _out().print(Text(f"user {username} disabled; their sessions are ended", style="green"))
    else:
        _out().print(f"user {username} was already disabled")


@users_app.command("enable")
@needs_current_db
def users_enable(username: UsernameArgument, actor: ActorOption = None) -> None:
    """Let a disabled user sign in again."""
    from core import access
    from datastore import users

    try:
        changed = users.enable_user(Settings.from_env(), username, actor=actor or users.default_actor())
    except access.AccessError as exc:
        raise _users_refusal(exc) from None
    if changed:
        _out().print(Text(f"user {username} enabled", style="green"))
    else:
        _out().print(f"user {username} was not disabled")


@users_app.command("reset-password")
@needs_current_db
def users_reset_password(
    username: UsernameArgument,
    password: PasswordOption = None,
    password_stdin: PasswordStdinOption = False,
    actor: ActorOption = None,
) -> None:
    """Set a user's password (asked twice unless --password or --password-stdin); ends their sessions."""
    from core import access
    from datastore import users

    settings = Settings.from_env()
    _existing_user(settings, username)
    secret = _new_password(password, password_stdin)
    try:
        users.reset_password(settings, username, secret, actor=actor or users.default_actor())
    except access.AccessError as exc:
        raise _users_refusal(exc) from None
    _out().print(Text(f"password of {username} reset; their sessions are ended", style="green"))


@users_app.command("set-merchants")
@needs_current_db
def users_set_merchants(
    username: UsernameArgument,
    merchant: MerchantOption = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove all the user's merchants.")] = False,
    actor: ActorOption = None,
) -> None:
    """Replace a merchant-success user's merchants (open sessions see the change at their next click)."""
    from core import access
    from datastore import users

    if bool(merchant) == clear:
        raise _users_refusal(ValueError("name the merchants with --merchant (repeatable), or give --clear"))
    try:
        user = users.set_merchants(
            Settings.from_env(), username, merchant or (), actor=actor or users.default_actor()
        )
    except access.AccessError as exc:
        raise _users_refusal(exc) from None
    listed = ", ".join(sorted(user.merchant_ids or ())) or "none"
    _out().print(Text(f"merchants of {username}: {listed}", style="green"))


@users_app.command("seed-demo")
@needs_current_db
def users_seed_demo(actor: ActorOption = None) -> None:
    """Create the demo users ops/ops and merchant/merchant (the 5 largest merchants); needs a build."""
    from datastore import users
    from datastore.snapshots import SnapshotNotFound

    try:
        created = users.seed_demo_users(Settings.from_env(), actor=actor or users.default_actor())
    except SnapshotNotFound as exc:
        _err().print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(1) from None
    for user in created:
        _out().print(Text(f"created {user.username} ({user.role})", style="green"))
    if not created:
        _out().print("demo users already exist")


@app.command()
@needs_current_db
def watch(
    directory: Annotated[Path, typer.Argument(help="Folder to watch for CSV, Parquet or NDJSON files.")],
    once: Annotated[bool, typer.Option("--once", help="Process what is there now, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
) -> None:
    """Ingest files dropped in DIRECTORY as they arrive and keep creator interests current (Ctrl-C stops)."""
    from liftboard.watch import WatchBatch, watch_folder

    out, err = _out(), _err()

    def report(batch: WatchBatch) -> None:
        if batch.error:
            err.print(Text(f"rejected {len(batch.files)} file(s): {batch.error}", style="bold red"))
            return
        out.print(
            f"run {batch.run_id}: {len(batch.files)} file(s), {batch.rows_loaded:,} row(s) loaded, "
            + ("interests rebuilt" if batch.events < 0 else f"{batch.events:,} interest event(s)")
            + f"; interests as of {batch.state_as_of:%Y-%m-%d %H:%M}, "
            f"{batch.drifting_creators:,} creator(s) drifting"
        )

    try:
        settings = Settings.from_env()
        batches = watch_folder(directory, settings, once=once, poll_seconds=interval, on_batch=report)
    except FileNotFoundError as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(EXIT_INGEST_ERROR) from None
    except KeyboardInterrupt:
        out.print("stopped")
        return
    if once and not batches:
        out.print("nothing to ingest")
    if any(batch.error for batch in batches):
        raise typer.Exit(EXIT_INGEST_ERROR)


@app.command()
@needs_current_db
def stream(
    source: Annotated[str, typer.Option("--source", help="Redis URL: redis://HOST:PORT/DB.")],
    streams: Annotated[
        str,
        typer.Option(help="Tables to consume, comma-separated (table=key names a stream other than table)."),
    ] = "orders,engagement,content",
    prefix: Annotated[str, typer.Option(help="Prefix of the stream keys (default: none).")] = "",
    group: Annotated[str, typer.Option(help="Consumer group.")] = "liftboard",
    consumer: Annotated[
        str | None, typer.Option(help="Consumer name (default: the host name; keep it across restarts).")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="At most this many entries per micro-batch.")] = 10_000,
    block_ms: Annotated[
        int, typer.Option("--block-ms", min=1, help="How long a read waits for the first entries.")
    ] = 1000,
    once: Annotated[bool, typer.Option("--once", help="Stop when the streams are drained.")] = False,
    max_batches: Annotated[
        int | None, typer.Option("--max-batches", min=1, help="Stop after N micro-batches.")
    ] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Do not evaluate the alert rules after each batch.")
    ] = False,
    claim_idle_ms: Annotated[
        int | None,
        typer.Option(
            "--claim-idle-ms",
            min=0,
            help="On start, take over entries other consumers of the group left unacknowledged this long "
            "(a consumer that died with a batch in progress).",
        ),
    ] = None,
) -> None:
    """Consume events from Redis Streams in micro-batches (one ingest run each, acknowledged after its
    commit), keep creator interests current and evaluate the alert rules for each hour the stream
    completes. Ctrl-C finishes the batch and stops; twice abandons it."""
    from datastore.stream import StreamError, StreamSource, parse_streams
    from liftboard.stream import StreamBatchResult, consume

    out, err = _out(), _err()

    def report(result: StreamBatchResult) -> None:
        out.print(result.line(), highlight=False, markup=False)
        if result.rows_quarantined:
            err.print(Text("quarantined: " + ", ".join(result.quarantine_paths), style="yellow"))
        out.file.flush()

    def stopping() -> None:
        err.print(
            Text("stopping after this batch (Ctrl-C again abandons it, unacknowledged)", style="yellow")
        )

    try:
        source_streams = StreamSource(source, parse_streams(streams, prefix), group=group)
        results = consume(
            source_streams,
            Settings.from_env(),
            consumer=consumer,
            batch=batch,
            block_ms=block_ms,
            once=once,
            max_batches=max_batches,
            on_batch=report,
            on_stop=stopping,
            alerts=not no_alerts,
            claim_idle_ms=claim_idle_ms,
        )
    except StreamError as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(EXIT_INGEST_ERROR) from None
    except KeyboardInterrupt:
        out.print("stopped; the batch in progress was abandoned (its entries stay pending)")
        return
    if not results:
        out.print("nothing to consume")
        return
    out.print(
        f"{len(results)} batch(es), {sum(r.entries for r in results):,} entries, "
        f"{sum(r.rows_loaded for r in results):,} loaded, {sum(r.rows_quarantined for r in results):,} "
        f"quarantined, {sum(r.rows_duplicate for r in results):,} duplicate(s)"
    )


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Serve the dashboard (streamlit run app.py, headless); first print its URL and how to sign in. The
    console then shows errors only, one line each with its error id (the logging settings are in
    .streamlit/config.toml; the tracebacks go to logs/errors.log under the Liftboard home)."""
    import os
    import subprocess
    import sys

    app_path = Path(__file__).resolve().parent.parent / "app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        # the URL is printed below; Streamlit's own welcome block would only repeat it
        "--logger.hideWelcomeMessage",
        "true",
    ]
    out = _out()
    host = "127.0.0.1" if address in ("", "0.0.0.0", "::") else address
    out.print(f"Liftboard: open http://{host}:{port} in a browser (Ctrl-C stops the server)", highlight=False)
    out.print(_sign_in_hint(), highlight=False)
    out.file.flush()
    # unbuffered: the server's own lines reach a log (`make run > log`) as they are written
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    raise typer.Exit(subprocess.call(command, cwd=app_path.parent, env=environment))


def _sign_in_hint() -> str:
    """How to sign in: the demo logins when they exist, otherwise how to make a user."""
    from datastore import users

    try:
        settings = Settings.from_env()
        demo = [name for name in ("ops", "merchant") if users.get_user(settings, name) is not None]
    except db.DatabaseNotCurrent:
        return "Sign in: not yet — run `liftboard db upgrade` first (the state DB is not current)"
    if demo == ["ops", "merchant"]:
        return (
            "Sign in as ops / ops (everything) or merchant / merchant (the five merchants assigned to "
            "them): the demo logins, unless their passwords were changed"
        )
    return (
        "Sign in with a user made by `liftboard users add NAME --role ops` "
        "(or `liftboard users seed-demo` for the demo logins ops/ops and merchant/merchant)"
    )


# --------------------------------------------------------------------------------------------------------
# report: the weekly review and merchant reports as files (reports/), for people and for cron.
# Exit codes: 0 written, 1 no build or no data, 2 bad arguments (week, merchant, format, user),
# 3 state DB not current (run `liftboard db upgrade`).
# --------------------------------------------------------------------------------------------------------

report_app = typer.Typer(help="Export the weekly review or a merchant report (PDF, slides, Excel, HTML).")
app.add_typer(report_app, name="report", no_args_is_help=True)

_FORMAT_HELP = "Comma-separated formats: pdf, pptx, xlsx, html."


def _report_user(settings: Settings, username: str | None) -> None:
    """Exit with code 2 when ``username`` is given but unknown."""
    from datastore.users import get_user

    if username is not None and get_user(settings, username) is None:
        _err().print(Text(f"error: unknown user {username!r}", style="bold red"))
        raise typer.Exit(2)


def _write_reports(make: Callable[[], object], formats: str, out: Path) -> None:
    import time

    from reports.model import NoReportData, ReportError
    from reports.render import parse_formats, write_report

    console, err = _out(), _err()
    started = time.perf_counter()
    try:
        chosen = parse_formats(formats)
        report = make()
    except ReportError as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(2) from None
    except NoReportData as exc:
        err.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(1) from None
    paths = write_report(report, chosen, out)  # type: ignore[arg-type]
    table = Table(title=f"{report.title} · {report.period}")  # type: ignore[attr-defined]
    table.add_column("format")
    table.add_column("file", overflow="fold")
    table.add_column("bytes", justify="right")
    for path in paths:
        table.add_row(path.suffix[1:], str(path), f"{path.stat().st_size:,}")
    console.print(table)
    console.print(
        Text(f"wrote {len(paths)} file(s) to {out} in {time.perf_counter() - started:.1f}s", style="green")
    )


@report_app.command("weekly")
@needs_current_db
def report_weekly(
    week: Annotated[
        str | None, typer.Option(help="ISO week, e.g. 2026-W47; default: the last complete week.")
    ] = None,
    formats: Annotated[str, typer.Option("--format", "-f", help=_FORMAT_HELP)] = "pdf,pptx,xlsx,html",
    out: Annotated[Path, typer.Option(help="Folder to write the files to.")] = Path("reports-out"),
    user: Annotated[
        str | None, typer.Option("--user", help="Make the review as this user (scoped to their merchants).")
    ] = None,
) -> None:
    """The weekly business review of one ISO week."""
    from datastore.users import get_user
    from reports.weekly import weekly_review

    settings = Settings.from_env()
    db.require_current(settings)
    _report_user(settings, user)
    who = get_user(settings, user) if user else None
    _write_reports(lambda: weekly_review(settings, week, who), formats, out)


@report_app.command("merchant")
@needs_current_db
def report_merchant(
    merchant: Annotated[str, typer.Option("--merchant", "-m", help="Merchant id, e.g. m00042.")],
    formats: Annotated[str, typer.Option("--format", "-f", help=_FORMAT_HELP)] = "pdf,xlsx",
    out: Annotated[Path, typer.Option(help="Folder to write the files to.")] = Path("reports-out"),
    week: Annotated[
        str | None, typer.Option(help="ISO week of the KPIs; default: the last complete week.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Make the report as this user (their merchants only).")
    ] = None,
) -> None:
    """The report of one merchant: KPIs and trend, products, creators, category, recommendations."""
    from datastore.users import get_user
    from reports.merchant import merchant_report

    settings = Settings.from_env()
    db.require_current(settings)
    _report_user(settings, user)
    who = get_user(settings, user) if user else None
    _write_reports(lambda: merchant_report(settings, merchant, who, week), formats, out)


# --------------------------------------------------------------------------------------------------------
# export: what a build published, as a file (Parquet or CSV by the file's suffix).
# Exit codes: 0 written, 1 no build or nothing to export, 2 bad arguments, 3 state DB not current (--user).
# --------------------------------------------------------------------------------------------------------

export_app = typer.Typer(help="Export the current build's figures as Parquet or CSV (by the file's suffix).")
app.add_typer(export_app, name="export", no_args_is_help=True)

_EXPORT_SUFFIXES = (".parquet", ".csv")


@export_app.command("uplift")
@needs_current_db
def export_uplift(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: NAME.parquet or NAME.csv.")],
    user: Annotated[
        str | None, typer.Option("--user", help="Export as this user (their merchants only).")
    ] = None,
) -> None:
    """Every prediction of the current build at its scoring date: one row per entity and strategy of its
    kind, eligible or not, with the predicted 28-day uplift, its 80% interval (low, high), whether the
    strategy's effect is established, the learner and the run id: the figures the Strategy board shows."""
    from core.access import scope_frame
    from core.exports import csv_bytes
    from datastore.snapshots import SnapshotNotFound, latest_manifest, load_snapshot
    from datastore.users import get_user
    from strategies.recommend import uplift_export

    settings = Settings.from_env()
    err = _err()
    if out.suffix.lower() not in _EXPORT_SUFFIXES:
        err.print(Text(f"error: --out {out} must end in .parquet or .csv", style="bold red"))
        raise typer.Exit(2)
    who = None
    if user is not None:
        db.require_current(settings)
        _report_user(settings, user)
        who = get_user(settings, user)
    manifest = latest_manifest(settings)  # one build throughout, even if another lands meanwhile
    if manifest is None:
        err.print(
            Text(f"error: no build in {settings.snapshots}; run `liftboard build` first", style="bold red")
        )
        raise typer.Exit(1)
    try:
        scan = load_snapshot("uplift_predictions", settings, build_id=manifest["build_id"])
    except SnapshotNotFound as exc:
        err.print(Text(f"error: {exc}; run `liftboard build` to publish it", style="bold red"))
        raise typer.Exit(1) from None
    predictions = (scope_frame(scan, who, "uplift predictions") if who is not None else scan).collect()
    as_of = date.fromisoformat(manifest["as_of"])
    if predictions.height == 0:
        err.print(
            Text(
                f"error: build {manifest['build_id']} has no uplift predictions"
                + (
                    f" of {who.username}'s merchants"
                    if who is not None and not who.is_ops
                    else ": no interventions with finished outcomes to learn from"
                ),
                style="bold red",
            )
        )
        raise typer.Exit(1)
    frame = uplift_export(predictions, as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        out.write_bytes(csv_bytes(frame))
    else:
        frame.write_parquet(out)
    runs = ", ".join(sorted(set(frame["run_id"].to_list())))
    _out().print(
        Text(
            f"wrote {frame.height:,} predictions ({frame['entity_id'].n_unique():,} entities) as of "
            f"{as_of}, run {runs}, to {out}",
            style="green",
        )
    )


# --------------------------------------------------------------------------------------------------------
# alerts: evaluate the rules, list the alerts, acknowledge and resolve them (docs/alerts.md)
# --------------------------------------------------------------------------------------------------------

alerts_app = typer.Typer(help="Alerts: evaluate the rules on the lake, list, acknowledge and resolve alerts.")
app.add_typer(alerts_app, name="alerts", no_args_is_help=True)


def _evaluation_line(evaluation: Any) -> Text:
    from alerts.state import format_time

    if evaluation.as_of is None:
        return Text("alerts: the lake holds no orders: nothing evaluated")
    changes, delivery = evaluation.changes, evaluation.delivery
    counts = (
        f"{len(changes.opened)} opened, {len(changes.updated)} still open, "
        f"{len(changes.reopened)} re-opened, {len(changes.resolved)} resolved; {len(delivery.sent)} sent, "
        f"{len(delivery.failed)} failed, {len(delivery.waiting)} waiting"
    )
    return Text(f"alerts as of {format_time(evaluation.as_of)}: {counts}")


@alerts_app.command("evaluate")
@needs_current_db
def alerts_evaluate(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Evaluate the windows ending at this UTC hour (YYYY-MM-DDTHH); "
            "default: the end of the last hour with orders.",
        ),
    ] = None,
) -> None:
    """Evaluate every alert rule, update the alerts and deliver the new ones."""
    from datetime import datetime

    from alerts.evaluate import evaluate_and_deliver

    try:
        moment = datetime.fromisoformat(as_of) if as_of else None
    except ValueError:
        _err().print(Text(f"error: --as-of {as_of!r} is not a time (YYYY-MM-DDTHH)", style="bold red"))
        raise typer.Exit(2) from None
    _out().print(_evaluation_line(evaluate_and_deliver(Settings.from_env(), moment)))


@alerts_app.command("list")
@needs_current_db
def alerts_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="open, acknowledged or resolved (repeatable).")
    ] = None,
) -> None:
    """List the alerts, newest first (default: open and acknowledged)."""
    from alerts.state import format_time, format_value, list_alerts

    settings = Settings.from_env()
    db.require_current(settings)
    with db.connect(settings) as connection:
        frame = list_alerts(connection, statuses=status or ["open", "acknowledged"])
    table = Table(title="Alerts")
    for column in (
        "id",
        "status",
        "severity",
        "rule",
        "entity",
        "observed",
        "expected range",
        "opened",
        "owner",
    ):
        table.add_column(column, overflow="fold")
    for row in frame.iter_rows(named=True):
        unit = row["unit"]
        table.add_row(
            str(row["alert_id"]),
            row["status"],
            row["severity"],
            row["rule_id"],
            f"{row['entity_kind']} {row['entity_id']}",
            format_value(row["observed"], unit),
            f"{format_value(row['expected_low'], unit)} – {format_value(row['expected_high'], unit)}",
            format_time(row["opened_at"]),
            row["owner"] or "",
        )
    _out().print(table)
    if frame.is_empty():
        _out().print("no alerts")


def _change_alert(alert_id: int, status: str, owner: str | None, note: str | None, user: str) -> None:
    from alerts.state import AlertNotFound, update_alert

    settings = Settings.from_env()
    db.require_current(settings)
    try:
        with db.connect(settings) as connection:
            update_alert(connection, alert_id, user, status=status, owner=owner, notes=note)
    except AlertNotFound:
        _err().print(Text(f"error: no alert {alert_id}", style="bold red"))
        raise typer.Exit(1) from None
    _out().print(f"alert {alert_id}: {status}")


_USER = typer.Option("--user", help="Who does it (default: $USER).")


@alerts_app.command("ack")
@needs_current_db
def alerts_ack(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (see `liftboard alerts list`).")],
    owner: Annotated[str | None, typer.Option("--owner", help="Who takes it.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Notes (replace the alert's notes).")] = None,
    user: Annotated[str | None, _USER] = None,
) -> None:
    """Acknowledge an alert (someone is on it: it is no longer delivered)."""
    _change_alert(alert_id, "acknowledged", owner, note, user or os.environ.get("USER") or "cli")


@alerts_app.command("resolve")
@needs_current_db
def alerts_resolve(
    alert_id: Annotated[int, typer.Argument(help="The alert's id (see `liftboard alerts list`).")],
    note: Annotated[str | None, typer.Option("--note", help="Notes (replace the alert's notes).")] = None,
    user: Annotated[str | None, _USER] = None,
) -> None:
    """Resolve an alert by hand (it re-opens if its condition still holds within the rule's cooldown)."""
    _change_alert(alert_id, "resolved", None, note, user or os.environ.get("USER") or "cli")


if __name__ == "__main__":
    app()
