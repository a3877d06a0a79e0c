"""The Redis Streams source against a real ``redis-server``: micro-batches committed as ingest runs,
acknowledged after the commit, nothing lost and nothing counted twice when a consumer is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import DIMENSION_TABLES, FACT_TABLES, TABLES
from datastore import db, lake
from datastore import stream as stream_module
from datastore.ingest import ingest_files
from datastore.stream import (
    Entry,
    StreamSource,
    _causal_cut,
    commit_batch,
    connect,
    ensure_groups,
    event_fields,
    parse_streams,
    pending_count,
    publish,
    publish_frame,
    read_batch,
)
from tests.builders import NOW, canonical, valid_tables, write_all
from tests.datastore.ingest_support import GOOD, REPO, ledger, ledger_loads, order_row, orders_csv

CONSUMER = "c1"


def source_of(url: str) -> StreamSource:
    return StreamSource(url, parse_streams("orders,engagement,content"))


def ready_to_stream(settings: Settings, directory: Path, url: str) -> tuple[StreamSource, Any]:
    """The dimensions ingested, the source's consumer group made: a client and the source, before any
    event is published."""
    load_dimensions(settings, directory)
    source = source_of(url)
    client = connect(url)
    ensure_groups(client, source)
    return source, client


def load_dimensions(settings: Settings, directory: Path) -> None:
    tables = valid_tables()
    dims = {name: tables[name] for name in DIMENSION_TABLES}
    ingest_files(write_all(directory, "parquet", dims), settings, now=NOW)


def drain(client: Any, source: StreamSource, settings: Settings, batch: int = 10_000) -> list[Any]:
    """Consume until a read finds nothing (the library loop without the interests)."""
    reports = []
    while entries := read_batch(client, source, CONSUMER, max_entries=batch, block_ms=50):
        reports.append(commit_batch(client, source, CONSUMER, entries, settings, now=NOW))
    return reports


def many_orders(count: int) -> pl.DataFrame:
    template = valid_tables()["orders"].head(1)
    return pl.concat(
        template.with_columns(
            pl.lit(f"s{index:07d}").alias("order_id"), pl.col("ordered_at") + timedelta(minutes=index)
        )
        for index in range(count)
    )


def fact_rows(settings: Settings) -> dict[str, pl.DataFrame]:
    return {name: canonical(lake.scan_table(name, settings).collect(), name) for name in FACT_TABLES}


def stream_loads(settings: Settings) -> list[sa.Row]:
    runs = [run for run in ledger(settings) if run.source.startswith("stream ") and run.status == "committed"]
    return [load for run in runs for load in ledger_loads(settings, run.run_id)]


# ---------------------------------------------------------------------------------------------------------
# Micro-batches


def test_events_are_loaded_as_one_run_and_acknowledged(
    settings: Settings, tmp_path: Path, redis_url: str
) -> None:
    sqlite_settings = settings  # the SQLite and the PostgreSQL state DB
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    tables = valid_tables()
    for name in ("content", "engagement", "orders"):
        publish_frame(client, source, name, tables[name])

    entries = read_batch(client, source, CONSUMER, max_entries=100, block_ms=50)
    assert pending_count(client, source) == 10  # delivered, not yet acknowledged
    report = commit_batch(client, source, CONSUMER, entries, sqlite_settings, now=NOW)

    assert len(entries) == 10
    assert pending_count(client, source) == 0
    assert report.rows_loaded == 10
    assert {load.file for load in report.loads} == {
        f"{source.location}#{name}" for name in ("orders", "engagement", "content")
    }
    assert len([run for run in ledger(sqlite_settings) if run.source.startswith("stream ")]) == 1
    stored = fact_rows(sqlite_settings)
    for name in FACT_TABLES:
        assert_frame_equal(stored[name], canonical(tables[name], name))
    assert read_batch(client, source, CONSUMER, max_entries=100, block_ms=10) == []


def test_an_event_delivered_twice_counts_once(
    sqlite_settings: Settings, tmp_path: Path, redis_url: str
) -> None:
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    tables = valid_tables()
    publish_frame(client, source, "content", tables["content"])
    order = event_fields(tables["orders"].head(1), "orders").to_dicts()
    publish(client, "orders", order * 2)  # twice in one batch
    first = drain(client, source, sqlite_settings)
    publish(client, "orders", order)  # and once more, later

    second = drain(client, source, sqlite_settings)

    assert sum(report.rows_loaded for report in first) == 4  # 3 content, 1 order
    assert sum(report.rows_duplicate for report in first) == 1
    assert sum(report.rows_duplicate for report in second) == 1
    assert sum(report.rows_loaded for report in second) == 0
    assert fact_rows(sqlite_settings)["orders"].height == 1


def test_a_bad_event_is_quarantined_with_the_reason_a_csv_row_gets(
    sqlite_settings: Settings, tmp_path: Path, redis_url: str
) -> None:
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    bad = {"gmv": "-3", "ordered_at": "2024-06-01T25:00:00", "status": "lost"}
    csv_report = ingest_files(
        [orders_csv(tmp_path / "orders.csv", order_row(order_id="q7", **bad))], sqlite_settings, now=NOW
    )
    csv_row = pl.read_parquet(csv_report.quarantine_paths[0]).row(0, named=True)
    event = {**GOOD, "order_id": "q7", **bad}
    unreadable_event = {name: event[name] for name in list(event)[:-2]}  # no commission, no status
    ids = publish(client, "orders", [event, unreadable_event])

    (report,) = drain(client, source, sqlite_settings)

    assert report.rows_quarantined == 2
    (load,) = report.loads
    assert load.file == f"{redis_url}#orders"
    quarantined = pl.read_parquet(load.quarantine_path or "").sort("_row")
    checked, unreadable = quarantined.row(0, named=True), quarantined.row(1, named=True)
    assert checked["_reason"] == csv_row["_reason"]  # the same words as for the CSV row
    assert checked["_column"] == csv_row["_column"] == "ordered_at, content_id, gmv, status"
    assert checked["_raw"] == f"entry {ids[0]}"
    assert checked["gmv"] == "-3"
    assert unreadable["_reason"].startswith(f"entry {ids[1]}: missing field(s) commission, status")
    assert json.loads(unreadable["_raw"])["order_id"] == "q7"
    assert pending_count(client, source) == 0  # a bad event is settled (quarantined), not retried


def test_entries_that_cannot_be_read_are_quarantined_whole(
    sqlite_settings: Settings, tmp_path: Path, redis_url: str
) -> None:
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    event = {name.encode(): value.encode() for name, value in GOOD.items()}
    not_utf8 = client.xadd("orders", {**event, b"buyer_id": b"caf\xe9"})
    gone = client.xadd("orders", {**event, b"order_id": b"q2"}).decode()
    assert len(read_batch(client, source, CONSUMER, max_entries=10, block_ms=50)) == 2
    client.xdel("orders", gone)  # trimmed while pending (a consumer died with it)
    entries = read_batch(client, source, CONSUMER, max_entries=10, block_ms=50)  # the restart's read

    report = commit_batch(client, source, CONSUMER, entries, sqlite_settings, now=NOW)

    assert report.rows_quarantined == 2
    reasons = pl.read_parquet(report.quarantine_paths[0]).sort("_row")["_reason"].to_list()
    assert reasons == [
        f"entry {not_utf8.decode()}: not valid UTF-8 (unexpected end of data)",
        f"entry {gone}: deleted from the stream before it was ingested",
    ]
    assert pending_count(client, source) == 0


def test_the_ack_comes_only_after_the_commit(
    sqlite_settings: Settings, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    publish_frame(client, source, "content", valid_tables()["content"])
    seen: list[tuple[str, int]] = []
    real_ack = stream_module.acknowledge

    def spying_ack(client_: Any, source_: StreamSource, entries: Any) -> int:
        seen.append((ledger(sqlite_settings)[-1].status, pending_count(client_, source_)))
        return real_ack(client_, source_, entries)

    def failing_ingest(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the lake is unwritable")

    monkeypatch.setattr(stream_module, "acknowledge", spying_ack)
    entries = read_batch(client, source, CONSUMER, max_entries=100, block_ms=50)
    with monkeypatch.context() as patch:
        patch.setattr(stream_module, "ingest_records", failing_ingest)
        with pytest.raises(RuntimeError, match="unwritable"):
            commit_batch(client, source, CONSUMER, entries, sqlite_settings, now=NOW)
    assert seen == []  # a failed run acknowledges nothing
    assert pending_count(client, source) == 3

    drain(client, source, sqlite_settings)  # the pending entries are read again

    assert seen == [("committed", 3)]  # acknowledged after the run committed, not before
    assert pending_count(client, source) == 0
    assert fact_rows(sqlite_settings)["content"].height == 3


def entry(table: str, millis: int, sequence: int = 0) -> Entry:
    return Entry(table, f"{millis}-{sequence}", {})


def test_a_batch_never_takes_an_event_before_what_it_may_reference() -> None:
    order = ["content", "engagement", "orders"]
    entries = {
        "content": [entry("content", 10), entry("content", 20)],
        "engagement": [],
        "orders": [entry("orders", 5), entry("orders", 20), entry("orders", 30)],
    }
    # content was cut at 20 (more of it may arrive in that millisecond); orders from 20 on must wait
    cut = _causal_cut(entries, {"content": 20, "engagement": float("inf"), "orders": 30}, order, 100)
    assert [(item.table, item.millis) for item in cut] == [("orders", 5), ("content", 10), ("content", 20)]
    # content read to its end: every order may go; the limit takes the earliest entries
    everything = _causal_cut(entries, dict.fromkeys(order, float("inf")), order, 4)
    assert [(item.table, item.millis) for item in everything] == [
        ("orders", 5),
        ("content", 10),
        ("content", 20),
        ("orders", 20),
    ]


def test_small_batches_keep_references_resolvable(
    sqlite_settings: Settings, tmp_path: Path, redis_url: str
) -> None:
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    tables = valid_tables()
    for name in ("content", "engagement", "orders"):  # orders and engagement reference the content
        publish_frame(client, source, name, tables[name])

    reports = drain(client, source, sqlite_settings, batch=2)

    assert sum(report.rows_quarantined for report in reports) == 0
    assert sum(report.rows_loaded for report in reports) == 10
    assert all(sum(load.rows_read for load in report.loads) <= 2 for report in reports)


# ---------------------------------------------------------------------------------------------------------
# A consumer killed mid-batch, then restarted


def consumer_process(
    settings: Settings, url: str, fault: str | None, batch: int
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIFTBOARD_HOME": str(settings.home),
        "LIFTBOARD_DATABASE_URL": settings.database_url,
        "PYTHONPATH": str(REPO),
    }
    env.pop("LIFTBOARD_FAULT_INJECT", None)
    if fault is not None:
        env["LIFTBOARD_FAULT_INJECT"] = fault
    command = [sys.executable, "-m", "liftboard.cli", "stream", "--source", url, "--consumer", CONSUMER]
    command += ["--batch", str(batch), "--block-ms", "50", "--once"]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("stage", ["before_commit", "after_commit"])
def test_events_in_equal_lake_rows_plus_quarantined_plus_duplicates_after_a_kill(
    settings: Settings, tmp_path: Path, redis_url: str, stage: str
) -> None:
    sqlite_settings = settings  # the SQLite and the PostgreSQL state DB
    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    tables = valid_tables()
    orders = many_orders(60)
    publish_frame(client, source, "content", tables["content"])
    publish_frame(client, source, "engagement", tables["engagement"])
    order_events = event_fields(orders, "orders").to_dicts()
    bad = {**order_events[7], "order_id": "bad-1", "quantity": "0"}
    missing = {name: value for name, value in order_events[8].items() if name != "gmv"}
    publish(client, "orders", [*order_events[:30], order_events[5], bad, *order_events[30:], missing])
    published = 3 + 3 + 60 + 3  # valid + one delivered twice + two bad
    batch = 20

    killed = consumer_process(sqlite_settings, redis_url, stage, batch)

    assert killed.returncode == 137, killed.stderr
    # nothing acknowledged: the batch (20 entries) and what was read with it (up to 20 per stream)
    assert pending_count(client, source) == 3 + 3 + batch
    run = ledger(sqlite_settings)[-1]
    assert run.status == ("committed" if stage == "after_commit" else "running")
    loaded_before_restart = sum(height for height in map(len, fact_rows(sqlite_settings).values()))
    assert loaded_before_restart == (batch if stage == "after_commit" else 0)

    restarted = consumer_process(sqlite_settings, redis_url, None, batch)

    assert restarted.returncode == 0, restarted.stderr
    assert pending_count(client, source) == 0
    assert client.xinfo_groups("orders")[0]["lag"] == 0  # every entry delivered and acknowledged
    stored = fact_rows(sqlite_settings)
    assert_frame_equal(stored["orders"], canonical(orders, "orders"))  # nothing lost, nothing doubled
    assert_frame_equal(stored["content"], canonical(tables["content"], "content"))
    assert_frame_equal(stored["engagement"], canonical(tables["engagement"], "engagement"))
    loads = stream_loads(sqlite_settings)
    redelivered = batch if stage == "after_commit" else 0
    read = sum(load.rows_read for load in loads)
    loaded = sum(load.rows_loaded + load.rows_updated for load in loads)
    quarantined = {
        text
        for path in {load.quarantine_path for load in loads if load.quarantine_path}
        for text in pl.read_parquet(path)["_raw"].to_list()
    }
    duplicates = sum(load.rows_duplicate for load in loads)
    assert read == published + redelivered
    assert loaded == 66
    assert len(quarantined) == 2
    # events in = rows in the lake + quarantined + duplicates (the redelivered batch counted as duplicates
    # of the rows its committed run stored, or quarantined again: never stored twice)
    repeated_bad = sum(load.rows_quarantined for load in loads) - 2
    assert published == loaded + 2 + (duplicates - redelivered + repeated_bad)
    assert duplicates - redelivered + repeated_bad == 1


# ---------------------------------------------------------------------------------------------------------
# The simulator's replay


@pytest.mark.slow
def test_a_replay_of_the_tiny_world_gives_the_lake_rows_of_its_files(tmp_path: Path, redis_url: str) -> None:
    from liftboard.replay import replay
    from sim.simulate import generate

    from_files = Settings.from_env(home=tmp_path / "files")
    db.upgrade_db(from_files)
    generate("tiny", 7, from_files)
    streamed = Settings.from_env(home=tmp_path / "stream")
    source = StreamSource(redis_url, parse_streams("orders,engagement,content", prefix="tiny:"))

    result = replay(redis_url, streamed, streams=dict(source.streams), scale="tiny", seed=7)
    client = connect(redis_url)
    ensure_groups(client, source)
    reports = []
    while entries := read_batch(client, source, CONSUMER, max_entries=150_000, block_ms=50):
        reports.append(commit_batch(client, source, CONSUMER, entries, streamed))

    assert sum(result.published.values()) == sum(report.rows_read for report in reports)
    assert sum(report.rows_quarantined for report in reports) == 0
    for name in TABLES:
        assert_frame_equal(
            canonical(lake.scan_table(name, streamed).collect(), name),
            canonical(lake.scan_table(name, from_files).collect(), name),
        )
    assert pending_count(client, source) == 0


def test_unknown_streams_and_unreachable_servers_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(stream_module.StreamError, match="'buyers' is not a fact table"):
        parse_streams("orders,buyers")
    with pytest.raises(stream_module.StreamError, match="not a Redis URL"):
        connect("http://127.0.0.1:1/0")
    with pytest.raises(stream_module.StreamError, match=r"redis://127\.0\.0\.1:1/0: cannot reach Redis"):
        connect("redis://127.0.0.1:1/0")


def test_a_replay_publishes_in_event_time_order_at_its_speed(redis_url: str) -> None:
    from liftboard.replay import EVENT_AT, event_time, publish_in_event_order

    tables = valid_tables()
    events = {
        name: tables[name].with_columns(event_time(name).alias(EVENT_AT))
        for name in ("content", "engagement", "orders")
    }
    timeline = sorted(  # (event time, table) in the order a replay must send them
        (at, name) for name, frame in events.items() for at in frame[EVENT_AT].to_list()
    )
    source = source_of(redis_url)
    client = connect(redis_url)
    waits: list[tuple[float, dict[str, int]]] = []

    def sleep(seconds: float) -> None:  # what was sent before each wait (the sleep itself is not real)
        waits.append((seconds, {name: int(client.xlen(name)) for name in events}))

    published = publish_in_event_order(client, source, events, speed=3600.0, sleep=sleep)

    assert published == {"content": 3, "engagement": 3, "orders": 4}
    assert len(waits) >= 3
    start = timeline[0][0]
    for seconds, sent in waits:
        count = sum(sent.values())
        due, _ = timeline[count]  # the next event waits for its time: one simulated hour per second
        assert seconds == pytest.approx((due - start).total_seconds() / 3600, abs=0.05)
        expected = {name: sum(1 for _, table in timeline[:count] if table == name) for name in events}
        assert sent == expected  # exactly the events before it in event time were sent


def test_entries_with_the_same_fields_are_read_column_wise_as_they_are_one_by_one() -> None:
    from datastore.ingest import RecordBatch, RecordColumns, _records_source
    from datastore.stream import Entry, record_batches
    from tests.builders import as_text

    orders = as_text(valid_tables()["orders"]).with_columns(pl.col("content_id").fill_null(""))
    entries = [
        Entry(
            "orders",
            f"17000000000{i:02d}-0",
            [c for name, v in row.items() for c in (name.encode(), v.encode())],
        )
        for i, row in enumerate(orders.iter_rows(named=True))
    ]
    source = StreamSource("redis://127.0.0.1:1/0", parse_streams("orders"))
    (batch,) = record_batches(source, entries)
    assert isinstance(batch.records, RecordColumns)
    one_by_one = RecordBatch(batch.table, batch.label, batch.records.as_records())
    assert [record.cells["content_id"] for record in one_by_one.records][1] == ""  # a null, as in a CSV
    columns, records = _records_source(batch), _records_source(one_by_one)
    assert columns.identity() == records.identity()
    read_columns, read_records = columns.read(), records.read()
    assert_frame_equal(read_columns.rows, read_records.rows)
    assert read_columns.rows["content_id"].null_count() == 1
    assert read_columns.tags is not None
    assert read_records.tags is not None
    assert_frame_equal(read_columns.tags, read_records.tags)
    # one entry with other fields: the whole group is read one by one, and that entry quarantined
    odd = Entry("orders", "1700000000099-0", [b"order_id", b"o9"])
    (mixed,) = record_batches(source, [*entries, odd])
    assert not isinstance(mixed.records, RecordColumns)
    assert _records_source(mixed).read().broken.height == 1


def test_a_dead_consumers_batch_is_claimed_by_another_and_loaded_once(
    sqlite_settings: Settings, tmp_path: Path, redis_url: str
) -> None:
    from liftboard.stream import consume

    source, client = ready_to_stream(sqlite_settings, tmp_path / "dims", redis_url)
    tables = valid_tables()
    for name in ("content", "engagement", "orders"):
        publish_frame(client, source, name, tables[name])
    # "gone" reads a batch and dies before committing it: its entries stay pending under its name
    taken = read_batch(client, source, "gone", max_entries=4, block_ms=50)
    assert len(taken) == 4
    assert pending_count(client, source) > 0

    without = consume(source, sqlite_settings, consumer="other", once=True, block_ms=50, alerts=False)
    # without claiming, another consumer reads only what was never delivered: the dead one's are missing
    assert sum(r.entries for r in without) == 10 - pending_count(client, source)
    assert pending_count(client, source) > 0

    claimed = consume(
        source, sqlite_settings, consumer="other", once=True, block_ms=50, alerts=False, claim_idle_ms=0
    )
    assert sum(r.entries for r in claimed) > 0
    assert pending_count(client, source) == 0
    stored = fact_rows(sqlite_settings)
    for name in ("content", "engagement", "orders"):  # every event stored once
        assert_frame_equal(stored[name], canonical(tables[name], name))
