"""``liftboard demo --stream``: replay a simulated marketplace as events on Redis Streams.

The marketplace is generated as ``liftboard demo`` generates it (``sim.simulate.simulate_inputs``: the
same inputs and truth). Its dimension tables (creators, merchants, products, showcase, interventions) are
ingested as files; its facts (content, engagement, orders) are published as events, one stream per table,
in event-time order: content at ``published_at``; orders at ``ordered_at``, or when their content is
published if that is later (the simulator may attribute an order to content published later the same
day); a day's engagement at the end of that day (a daily count is known when the day is over).
``speed`` compresses simulated time (3600: an hour per second; 0: as fast as possible). With ``days``,
only the last ``days`` days are replayed; the facts before them are ingested as files with the
dimensions, so the app has history to compare against.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.config import Settings
from datastore import db
from datastore.ingest import IngestReport, ingest_files, table_for_file
from datastore.stream import StreamSource, connect, event_fields
from sim.simulate import SimulationResult, simulate_inputs

FACTS = ("content", "engagement", "orders")
EVENT_AT = "__event_at"
_PIPELINE = 10_000
_PACE_SECONDS = 0.02  # events due within this much wall time go out in one pipeline

Progress = Callable[[str, int, int], None]


def event_time(table: str) -> pl.Expr:
    """When a fact row happens, as a UTC timestamp (engagement: the end of its day)."""
    if table == "engagement":
        return (pl.col("date") + pl.duration(days=1)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    column = {"content": "published_at", "orders": "ordered_at"}[table]
    return pl.col(column).dt.convert_time_zone("UTC").dt.cast_time_unit("us")


@dataclass(frozen=True)
class ReplayResult:
    """What a replay generated, ingested as files and published."""

    simulation: SimulationResult
    files_report: IngestReport
    published: dict[str, int]  # events per table
    first_event: datetime | None
    last_event: datetime | None
    seconds: float


def fact_events(input_dir: Path) -> dict[str, pl.DataFrame]:
    """Every fact row of a simulated marketplace's inputs, with its event time."""
    files = sorted(input_dir.glob("*.parquet"))
    frames = {}
    for table in FACTS:
        parts = [path for path in files if table_for_file(path) == table]
        frame = pl.concat([pl.read_parquet(path) for path in parts]) if parts else pl.DataFrame()
        frames[table] = frame.with_columns(event_time(table).alias(EVENT_AT)) if parts else frame
    if frames["content"].height:
        # the simulator draws an order's time (and counts a day's engagement) independently of its
        # content's publishing time: a quarter of the orders on content come before their content is
        # published, up to 17 hours before. The content's event goes out with the first event that
        # references it, so that no reference arrives before its content AND every order arrives at its
        # own time: the orders of an hour are complete once a later order has arrived, which is what
        # the alerts judge an hour by (`alerts.evaluate.evaluate_new_hours`).
        first_use = (
            pl.concat(
                [
                    frames[table].select("content_id", EVENT_AT)
                    for table in ("orders", "engagement")
                    if frames[table].height
                ]
            )
            .group_by("content_id")
            .agg(pl.col(EVENT_AT).min().alias("__first_use"))
        )
        frames["content"] = (
            frames["content"]
            .join(first_use, on="content_id", how="left", maintain_order="left")
            .with_columns(pl.min_horizontal(EVENT_AT, "__first_use").alias(EVENT_AT))
            .drop("__first_use")
        )
    return frames


def _event_order(events: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """(time, table, row) of every event, in event-time order; ties in dependency order (content before
    the engagement and orders that reference it)."""
    parts = [
        frame.select(
            pl.col(EVENT_AT), pl.lit(rank, dtype=pl.Int8).alias("rank"), pl.int_range(pl.len()).alias("row")
        )
        for rank, (table, frame) in enumerate(events.items())
        if frame.height
    ]
    if not parts:
        return pl.DataFrame(schema={EVENT_AT: pl.Datetime("us", "UTC"), "rank": pl.Int8, "row": pl.Int64})
    return pl.concat(parts).sort(EVENT_AT, "rank", "row")


def publish_in_event_order(
    client: Any,
    source: StreamSource,
    events: dict[str, pl.DataFrame],
    *,
    speed: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> dict[str, int]:
    """XADD every event (rows with their time in ``EVENT_AT``) to its table's stream in event-time order,
    in pipelines, paced by ``speed`` (simulated seconds per second; 0: no pacing); events per table."""
    tables = [table for table in events if events[table].height]
    cells = {table: event_fields(events[table], table).rows() for table in tables}
    names = {table: event_fields(events[table].head(0), table).columns for table in tables}
    keys = [source.streams[table] for table in events]
    order = _event_order(events)
    published = dict.fromkeys(events, 0)
    table_names = list(events)
    started = time.perf_counter()
    first = order[EVENT_AT][0] if order.height else None
    pipe = client.pipeline(transaction=False)
    queued = 0
    total = order.height
    for index, (at, rank, row) in enumerate(order.iter_rows()):
        if speed > 0 and first is not None:
            due = (at - first).total_seconds() / speed
            wait = due - (time.perf_counter() - started)
            if wait > _PACE_SECONDS:
                if queued:
                    pipe.execute()
                    queued = 0
                sleep(wait)
        table = table_names[rank]
        fields = [item for pair in zip(names[table], cells[table][row], strict=True) for item in pair]
        pipe.execute_command("XADD", keys[rank], "*", *fields)
        published[table] += 1
        queued += 1
        if queued >= _PIPELINE:
            pipe.execute()
            queued = 0
            if progress:
                progress("publishing", index + 1, total)
    if queued:
        pipe.execute()
    if progress:
        progress("publishing", total, total)
    return published


def replay(
    url: str,
    settings: Settings,
    *,
    streams: dict[str, str],
    scale: str = "demo",
    seed: int = 42,
    world: str = "demo",
    speed: float = 0.0,
    days: int | None = None,
    incidents: bool = False,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Generate a marketplace, ingest its dimensions (and, with ``days``, its older facts) as files and
    publish its facts to ``streams`` (table -> stream key) at ``url`` in event-time order.

    A replay is a new installation, as ``liftboard demo`` is: the state DB is migrated first.
    ``incidents`` plants the simulator's incidents (`sim.incidents`, all in the last 28 days) in the
    events, with their truth in ``truth/incidents.parquet``, for the alerts of the consumer to find.
    """
    client = connect(url)  # an unreachable server fails before the simulation runs
    started = time.perf_counter()
    db.upgrade_db(settings)
    simulation = simulate_inputs(scale, seed, settings, progress, world, incidents)
    files = sorted(simulation.input_dir.glob("*.parquet"))
    dimension_files = [path for path in files if table_for_file(path) not in FACTS]
    events = fact_events(simulation.input_dir)
    history_files: list[Path] = []
    if days is not None:
        end = max((frame[EVENT_AT].max() for frame in events.values() if frame.height), default=None)  # type: ignore[type-var]
        if isinstance(end, datetime):
            start = datetime.combine(end.date() - timedelta(days=days - 1), datetime.min.time(), end.tzinfo)
            history = simulation.input_dir / "history"
            history.mkdir(exist_ok=True)
            for table, frame in events.items():
                before = frame.filter(pl.col(EVENT_AT) < start).drop(EVENT_AT)
                if before.height:
                    path = history / f"{table}.parquet"
                    before.write_parquet(path)
                    history_files.append(path)
                events[table] = frame.filter(pl.col(EVENT_AT) >= start)
    report = ingest_files(
        [*dimension_files, *history_files],
        settings,
        source=f"{simulation.source} (replay: dimensions{' and history' if history_files else ''})",
        user="simulator",
        progress=progress,
    )
    source = StreamSource(url, streams)
    published = publish_in_event_order(
        client,
        source,
        events,
        speed=speed,
        sleep=sleep,
        progress=progress,
    )
    client.close()
    times = [frame[EVENT_AT] for frame in events.values() if frame.height]
    first = min(series.min() for series in times) if times else None  # type: ignore[type-var]
    last = max(series.max() for series in times) if times else None  # type: ignore[type-var]
    return ReplayResult(
        simulation=simulation,
        files_report=report,
        published=published,
        first_event=first if isinstance(first, datetime) else None,
        last_event=last if isinstance(last, datetime) else None,
        seconds=time.perf_counter() - started,
    )
