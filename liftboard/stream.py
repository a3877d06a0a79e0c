"""``liftboard stream``: consume Redis Streams in micro-batches and keep creator interests current.

Each micro-batch is read and committed by ``datastore.stream`` (one ingest run, acknowledged after its
commit); then exactly the rows that run loaded are folded into the creator interests, as the folder watcher
does (``liftboard.watch.fold_run``), and the alert rules are evaluated for every hour the batch completed
(``alerts.evaluate.evaluate_new_hours``; new alerts delivered at once). The loop lives here, not in
``datastore``, because interests belong to ``matching`` and alerts to ``alerts``, above the data layer.

Ctrl-C: the first one lets the batch in progress finish (commit, acknowledge, fold) and stops; a second one
abandons it: its run is rolled back and its entries stay pending, to be read again by the next start.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType

from alerts.evaluate import evaluate_new_hours, last_complete_hour
from core.config import Settings
from datastore.stream import (
    DEFAULT_BATCH,
    StreamSource,
    claim_abandoned,
    commit_batch,
    connect,
    default_consumer,
    describe,
    ensure_groups,
    read_batch,
)
from liftboard.watch import drifting_creators, fold_run, interests_before_run
from matching.interests import InterestConfig


@dataclass(frozen=True)
class StreamBatchResult:
    """What one micro-batch did (one line of ``liftboard stream``'s output)."""

    entries: int
    per_table: dict[str, int]
    run_id: str
    rows_loaded: int
    rows_updated: int
    rows_quarantined: int
    rows_duplicate: int
    quarantine_paths: tuple[str, ...]
    seconds: float  # read, commit and acknowledge (interests not included)
    interest_events: int  # -1: rebuilt from the whole lake
    interests_as_of: datetime
    drifting_creators: int
    alert_hours: int = 0  # complete hours the alert rules were evaluated for after this batch
    alerts_as_of: datetime | None = None  # the last of them (the end of its window)
    alerts_opened: int = 0
    alerts_resolved: int = 0
    alerts_sent: int = 0

    def line(self) -> str:
        """One line for the operator."""
        tables = ", ".join(f"{table} {count:,}" for table, count in self.per_table.items())
        interests = (
            "interests rebuilt" if self.interest_events < 0 else f"{self.interest_events:,} interest event(s)"
        )
        alerts = (
            f"; alerts over {self.alert_hours} hour(s): {self.alerts_opened} opened, "
            f"{self.alerts_resolved} resolved, {self.alerts_sent} sent"
            if self.alert_hours
            else ""
        )
        return (
            f"run {self.run_id}: {self.entries:,} entries ({tables}), {self.rows_loaded:,} loaded, "
            f"{self.rows_updated:,} updated, {self.rows_quarantined:,} quarantined, "
            f"{self.rows_duplicate:,} duplicate(s) in {self.seconds:.2f}s; {interests}, "
            f"{self.drifting_creators:,} creator(s) drifting{alerts}"
        )


class StopRequest:
    """Set by the first Ctrl-C: finish the batch in progress, then stop."""

    def __init__(self) -> None:
        self.requested = False


@contextmanager
def _first_interrupt_stops(stop: StopRequest, on_stop: Callable[[], None] | None) -> Iterator[None]:
    """While inside: the first SIGINT sets ``stop``; a second raises KeyboardInterrupt (abandon)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        if on_stop is not None:
            on_stop()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def consume(
    source: StreamSource,
    settings: Settings,
    *,
    consumer: str | None = None,
    batch: int = DEFAULT_BATCH,
    block_ms: int = 1000,
    once: bool = False,
    max_batches: int | None = None,
    cfg: InterestConfig | None = None,
    on_batch: Callable[[StreamBatchResult], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    now: datetime | None = None,
    alerts: bool = True,
    claim_idle_ms: int | None = None,
) -> list[StreamBatchResult]:
    """Read, commit and acknowledge micro-batches until stopped; fold each into the creator interests.

    Args:
        source: the Redis URL and the stream of each table.
        settings: the installation.
        consumer: this consumer's name in the group (default: the host name, stable across restarts).
        batch: at most this many entries per micro-batch (over all streams).
        block_ms: how long a read waits for the first entries of a batch.
        once: stop when a read finds nothing (the streams are drained).
        max_batches: stop after this many committed batches.
        cfg: the interests' configuration.
        on_batch: called after each committed batch.
        on_stop: called when the first Ctrl-C asks to stop after the batch in progress.
        now: the moment after which times are "in the future" (default: now; tests).
        alerts: after each batch, evaluate the alert rules for every hour the stream completed since the
            previous batch and deliver new alerts (`alerts.evaluate.evaluate_new_hours`).
        claim_idle_ms: on start, take over the entries other consumers of the group left unacknowledged
            for at least this long (`datastore.stream.claim_abandoned`); None: leave them.

    Raises:
        datastore.stream.StreamError: the server is unreachable or the streams are unusable.
    """
    from datastore.db import require_current

    require_current(settings)  # fail now, not when the first event arrives
    name = consumer or default_consumer()
    client = connect(source.url)
    ensure_groups(client, source)
    if claim_idle_ms is not None:
        claim_abandoned(client, source, name, claim_idle_ms)
    results: list[StreamBatchResult] = []
    stop = StopRequest()
    # the last hour the alert rules were judged for: the lake's before the first batch (its hours were
    # complete before this consumer started), then the last one each batch completed
    judged = last_complete_hour(settings, now) if alerts else None
    with _first_interrupt_stops(stop, on_stop):
        while not stop.requested and (max_batches is None or len(results) < max_batches):
            started = time.perf_counter()
            entries = read_batch(client, source, name, max_entries=batch, block_ms=block_ms)
            if not entries:
                if once:
                    break
                continue
            before = interests_before_run(settings, cfg)
            report = commit_batch(client, source, name, entries, settings, now=now)
            seconds = time.perf_counter() - started
            state, events = fold_run(settings, before, report.run_id, cfg)
            evaluations = evaluate_new_hours(settings, judged, now=now) if alerts else []
            if evaluations:
                judged = evaluations[-1].as_of
            result = StreamBatchResult(
                entries=len(entries),
                per_table=describe(entries),
                run_id=report.run_id,
                rows_loaded=report.rows_loaded,
                rows_updated=report.rows_updated,
                rows_quarantined=report.rows_quarantined,
                rows_duplicate=report.rows_duplicate,
                quarantine_paths=report.quarantine_paths,
                seconds=seconds,
                interest_events=events,
                interests_as_of=state.as_of,
                drifting_creators=drifting_creators(state, cfg),
                alert_hours=len(evaluations),
                alerts_as_of=judged if evaluations else None,
                alerts_opened=sum(len(e.changes.opened) + len(e.changes.reopened) for e in evaluations),
                alerts_resolved=sum(len(e.changes.resolved) for e in evaluations),
                alerts_sent=sum(len(e.delivery.sent) for e in evaluations),
            )
            results.append(result)
            if on_batch is not None:
                on_batch(result)
    client.close()
    return results
