"""A stream source: Redis Streams read through a consumer group, committed to the lake in micro-batches.

One stream per fact table (``orders``, ``engagement``, ``content``; the keys may carry a prefix or other
names). Each entry is one event: its fields are the table's columns as text, exactly the cells of a CSV
row of that table (an empty string is a null). A micro-batch is committed as ONE ingest run through
``datastore.ingest.ingest_records``, so validation, quarantine, dedupe, the ledger and the lake versions
are those of file ingest; its entries are acknowledged (``XACK``) only after the run's commit.

Delivery is at least once: a consumer killed before the commit leaves its entries pending (its uncommitted
lake versions are rolled back by the next writer); on restart it re-reads its own pending entries (ID
``0``) before new ones (``>``). Killed after the commit and before the acknowledgement, the entries come
again and are duplicates of stored rows (the event key is the table's primary key): nothing lost, nothing
counted twice. A quarantined event names its stream (the load's source ``redis://host:port/db#orders``)
and its entry ID (``_raw``: ``entry 1733380000000-0``; a reason about the entry's fields starts with it).

**Order across streams.** An order may reference content published just before it, in another stream. A
micro-batch is cut so that it never holds an event without what it may reference: entries are taken in
order of their IDs' time (Redis stamps each entry with its arrival in milliseconds), and an entry is left
for the next batch (pending, unacknowledged) while a stream of a table it may reference (earlier in
``core.schema.TABLES``) could still hold unread entries of the same or an earlier millisecond. With one
consumer per group, events are then validated in the order they arrived, whatever the batch size.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import polars as pl

from core.config import Settings
from core.schema import FACT_TABLES, TABLES, table_spec
from datastore.ingest import IngestReport, Record, RecordBatch, RecordColumns, fault_point, ingest_records

DEFAULT_GROUP = "liftboard"
DEFAULT_BATCH = 10_000
_PAGE = 10_000  # pending entries read per call on start
_PIPELINE = 10_000  # XADD / XACK commands per round trip


class StreamError(Exception):
    """A stream source that cannot be used: a bad URL or stream list, an unreachable server."""


@dataclass(frozen=True)
class StreamSource:
    """Where the events come from: a Redis URL and, per table, the stream key."""

    url: str
    streams: Mapping[str, str]  # table -> stream key
    group: str = DEFAULT_GROUP

    @property
    def location(self) -> str:
        """``redis://host:port/db`` without credentials (what labels and messages show)."""
        parts = urlsplit(self.url)
        database = parts.path.strip("/") or "0"
        return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}/{database}"

    def label(self, table: str) -> str:
        """The source a table's events are recorded under: ``redis://host:port/0#orders``."""
        return f"{self.location}#{self.streams[table]}"

    def tables(self) -> list[str]:
        """The source's tables in dependency order (a table's references come before it)."""
        return [name for name in TABLES if name in self.streams]


def parse_streams(spec: str, prefix: str = "") -> dict[str, str]:
    """``orders,engagement,content`` (or ``orders=shop.orders,...``) as table -> stream key.

    Raises:
        StreamError: on a table that is not a fact table, or no streams at all.
    """
    streams: dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        table, _, key = item.partition("=")
        table = table.strip()
        if table not in FACT_TABLES:
            raise StreamError(
                f"stream {item!r}: {table!r} is not a fact table; streams carry {', '.join(FACT_TABLES)}"
            )
        streams[table] = key.strip() or f"{prefix}{table}"
    if not streams:
        raise StreamError("no streams given (e.g. --streams orders,engagement,content)")
    return streams


def default_consumer() -> str:
    """A consumer name that stays the same across restarts on one machine (so that a restarted consumer
    re-reads its own pending entries)."""
    return socket.gethostname() or "liftboard"


def connect(url: str) -> Any:
    """A Redis client for ``url`` (``redis://HOST:PORT/DB``); the server is pinged once.

    Raises:
        StreamError: on an invalid URL or an unreachable server.
    """
    import redis

    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise StreamError(f"{url!r}: not a Redis URL (expected redis://HOST:PORT/DB)")
    try:
        client = redis.Redis.from_url(url, decode_responses=False)
        client.ping()
        # entries as the server sends them (names and values alternating): building a dict per entry
        # in redis-py's reply callback cost a third of reading a 100k-entry batch
        client.set_response_callback("XREADGROUP", _raw_reply)
        client.set_response_callback("XAUTOCLAIM", _raw_reply)  # next start, IDs, deleted IDs
    except (redis.RedisError, ValueError) as exc:
        source = StreamSource(url, {}).location if urlsplit(url).hostname else url
        raise StreamError(f"{source}: cannot reach Redis ({exc})") from None
    return client


def _raw_reply(response: Any, **_options: Any) -> Any:
    return response


def ensure_groups(client: Any, source: StreamSource) -> None:
    """Create the consumer group on every stream (and the stream itself) when missing.

    A new group starts at the beginning of its stream (ID ``0``): events published before the first
    consumer started are read too.
    """
    import redis

    for key in source.streams.values():
        try:
            client.xgroup_create(key, source.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


# ---------------------------------------------------------------------------------------------------------
# Reading a micro-batch


class Entry(NamedTuple):
    """One stream entry: its table, ID and fields as the server sent them (names and values alternating;
    None when the entry was deleted from the stream while pending)."""

    table: str
    entry_id: str
    fields: Sequence[bytes] | Mapping[bytes, bytes] | None

    @property
    def millis(self) -> int:
        """The time Redis stamped on the entry (milliseconds since the epoch)."""
        return int(self.entry_id.split("-", 1)[0])


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _entries(reply: Any, tables_by_key: Mapping[str, str]) -> dict[str, list[Entry]]:
    found: dict[str, list[Entry]] = {}
    items = reply.items() if isinstance(reply, dict) else (reply or [])
    for key, messages in items:
        table = tables_by_key[_text(key)]
        found[table] = [Entry(table, entry_id.decode(), fields) for entry_id, fields in messages]
    return found


def _pending(client: Any, source: StreamSource, consumer: str) -> dict[str, list[Entry]]:
    """Every entry delivered to ``consumer`` and not acknowledged, per table, oldest first."""
    by_key = {key: table for table, key in source.streams.items()}
    pending: dict[str, list[Entry]] = {table: [] for table in source.streams}
    for table, key in source.streams.items():
        last = "0"
        while True:
            reply = client.xreadgroup(source.group, consumer, {key: last}, count=_PAGE)
            page = _entries(reply, by_key).get(table, [])
            if not page:
                break
            pending[table] += page
            last = page[-1].entry_id
    return pending


def _causal_cut(
    entries: Mapping[str, list[Entry]], unread_from: Mapping[str, float], order: list[str], limit: int
) -> list[Entry]:
    """The entries a batch may take: at most ``limit`` in order of (time, table), each stream a prefix,
    and no entry while a stream of a table before its own may hold unread entries of its time or earlier
    (``unread_from``: the earliest time of a stream's unread entries; infinity when it was read to its
    end)."""
    if all(math.isinf(unread_from[table]) for table in order) and sum(map(len, entries.values())) <= limit:
        # every stream was read to its end and all of it fits: nothing to cut (no sort of the whole pool)
        return [entry for table in order for entry in entries[table]]
    rank = {table: position for position, table in enumerate(order)}
    # an entry of a table may go while its time is before every unread entry of the tables before it
    before = {table: min((unread_from[t] for t in order[: rank[table]]), default=math.inf) for table in order}
    pool = sorted(
        (
            (entry.millis, rank[entry.table], position, entry)
            for rows in entries.values()
            for position, entry in enumerate(rows)
        ),
    )
    chosen: list[Entry] = []
    blocked: set[str] = set()
    for millis, _rank, _position, entry in pool[:limit]:
        if entry.table in blocked:
            continue
        if millis >= before[entry.table]:
            blocked.add(entry.table)  # the stream's later entries wait too: each stream stays a prefix
            continue
        chosen.append(entry)
    return chosen


def read_batch(
    client: Any, source: StreamSource, consumer: str, *, max_entries: int, block_ms: int
) -> list[Entry]:
    """The next micro-batch of ``consumer``: its pending entries first, then new ones (blocking up to
    ``block_ms`` when there is nothing pending), cut to at most ``max_entries`` in arrival order.

    Entries read but left out of the batch stay pending and come first in the next one.
    """
    order = source.tables()
    by_key = {key: table for table, key in source.streams.items()}
    entries = _pending(client, source, consumer)
    wanted = [table for table in order if len(entries[table]) < max_entries]
    anything_pending = any(entries.values())
    fresh: dict[str, list[Entry]] = {}
    if wanted:
        reply = client.xreadgroup(
            source.group,
            consumer,
            {source.streams[table]: ">" for table in wanted},
            count=max_entries,
            block=None if anything_pending else max(block_ms, 1),
        )
        fresh = _entries(reply, by_key)
    unread_from: dict[str, float] = {}
    for table in order:
        got = fresh.get(table, [])
        entries[table] += got
        caught_up = table in wanted and len(got) < max_entries
        unread_from[table] = math.inf if caught_up or not entries[table] else entries[table][-1].millis
    return _causal_cut(entries, unread_from, order, max_entries)


# ---------------------------------------------------------------------------------------------------------
# Committing a micro-batch


def _record(entry: Entry) -> Record:
    tag = f"entry {entry.entry_id}"
    fields = entry.fields
    if fields is None:
        return Record(tag, {}, unreadable="deleted from the stream before it was ingested")
    names: Sequence[bytes]
    values: Sequence[bytes]
    if isinstance(fields, Mapping):
        names, values = list(fields), list(fields.values())
    else:
        names, values = fields[0::2], fields[1::2]
    try:
        return Record(tag, dict(zip(map(bytes.decode, names), map(bytes.decode, values), strict=True)))
    except UnicodeDecodeError as exc:
        shown = {
            name.decode("utf-8", "backslashreplace"): value.decode("utf-8", "backslashreplace")
            for name, value in zip(names, values, strict=True)
        }
        return Record(tag, shown, unreadable=f"not valid UTF-8 ({exc.reason})")


def _columns(group: Sequence[Entry]) -> RecordColumns | None:
    """The entries column-wise when every one has the same field names in the same order and is UTF-8
    (one decode per cell, no dict per entry); None otherwise (then they are read one by one)."""
    first = group[0].fields
    if not isinstance(first, list | tuple) or not first:
        return None
    names, width = first[0::2], len(first)
    values: list[bytes] = []
    for entry in group:
        fields = entry.fields
        if not isinstance(fields, list | tuple) or len(fields) != width or fields[0::2] != names:
            return None
        values += fields[1::2]
    try:
        header = [name.decode() for name in names]
        text = list(map(bytes.decode, values))
    except UnicodeDecodeError:
        return None
    if len(set(header)) != len(header):
        return None
    step = len(header)
    return RecordColumns(
        tags=[f"entry {entry.entry_id}" for entry in group],
        cells={name: text[i::step] for i, name in enumerate(header)},
    )


def record_batches(source: StreamSource, entries: Sequence[Entry]) -> list[RecordBatch]:
    """The entries as one record batch per table, in stream order (column-wise when they allow it)."""
    batches = []
    for table in source.tables():
        group = [entry for entry in entries if entry.table == table]
        if group:
            records = _columns(group) or [_record(entry) for entry in group]
            batches.append(RecordBatch(table=table, label=source.label(table), records=records))
    return batches


def acknowledge(client: Any, source: StreamSource, entries: Sequence[Entry]) -> int:
    """``XACK`` the entries (after their run committed); how many the server acknowledged."""
    pipe = client.pipeline(transaction=False)  # one round trip for every chunk of every stream
    for table in source.tables():
        ids = [entry.entry_id for entry in entries if entry.table == table]
        for start in range(0, len(ids), _PIPELINE):
            pipe.xack(source.streams[table], source.group, *ids[start : start + _PIPELINE])
    return sum(int(count) for count in pipe.execute())


@dataclass(frozen=True)
class StreamBatch:
    """What one micro-batch did."""

    entries: int
    report: IngestReport | None  # None: nothing arrived
    seconds: float
    per_table: Mapping[str, int] = field(default_factory=dict)  # entries per table


def commit_batch(
    client: Any,
    source: StreamSource,
    consumer: str,
    entries: Sequence[Entry],
    settings: Settings,
    *,
    now: datetime | None = None,
) -> IngestReport:
    """Ingest the entries as one run, then acknowledge them (never before the run committed)."""
    report = ingest_records(
        record_batches(source, entries),
        settings,
        source=f"stream {source.location} group {source.group} consumer {consumer}",
        user=consumer,
        now=now,
    )
    fault_point("before_ack")  # committed, not acknowledged (the ingest's own after_commit is the same)
    acknowledge(client, source, entries)
    return report


def claim_abandoned(client: Any, source: StreamSource, consumer: str, min_idle_ms: int) -> int:
    """Take over the group's entries that another consumer read and left unacknowledged for at least
    ``min_idle_ms`` (``XAUTOCLAIM``: a consumer that died, or was renamed, with a batch in progress); they
    join ``consumer``'s pending entries and come first in its next batch. How many were claimed."""
    claimed = 0
    for key in source.streams.values():
        start: bytes | str = "0-0"
        while True:
            reply = client.execute_command(
                "XAUTOCLAIM", key, source.group, consumer, min_idle_ms, start, "COUNT", _PAGE, "JUSTID"
            )
            start, ids = reply[0], reply[1]
            claimed += len(ids)
            if start in (b"0-0", "0-0"):
                break
    return claimed


def pending_count(client: Any, source: StreamSource) -> int:
    """Entries delivered to some consumer of the group and not acknowledged, over the source's streams."""
    return sum(int(client.xpending(key, source.group)["pending"]) for key in source.streams.values())


# ---------------------------------------------------------------------------------------------------------
# Publishing (the simulator's replay, tests, benchmarks)


def event_fields(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """A table's rows as the text cells of its events: a CSV row's text (timestamps ISO 8601 in UTC with
    microseconds, dates ``YYYY-MM-DD``, a null as an empty string)."""
    spec = table_spec(table)
    columns = []
    for name, dtype in spec.schema.items():
        value = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            text = value.dt.convert_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")
        elif dtype == pl.Date:
            text = value.dt.to_string("%Y-%m-%d")
        else:
            text = value.cast(pl.String)
        columns.append(text.fill_null("").alias(name))
    return frame.select(columns)


def _chunks(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def publish(client: Any, key: str, events: Sequence[Mapping[str, str]]) -> list[str]:
    """``XADD`` the events to stream ``key`` in pipelines, in order; their entry IDs."""
    ids: list[str] = []
    for chunk in _chunks(events, _PIPELINE):
        pipe = client.pipeline(transaction=False)
        for event in chunk:
            pipe.xadd(key, dict(event))
        ids += [_text(entry_id) for entry_id in pipe.execute()]
    return ids


def publish_frame(client: Any, source: StreamSource, table: str, frame: pl.DataFrame) -> list[str]:
    """Publish a table's rows as events of its stream; their entry IDs."""
    return publish(client, source.streams[table], event_fields(frame, table).to_dicts())


def describe(entries: Sequence[Entry]) -> dict[str, int]:
    """Entries per table."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.table] = counts.get(entry.table, 0) + 1
    return counts
