"""Ingest: read files or SQL extracts, validate them against the canonical specs, load them atomically.

One call is one *run*. Every source of a run is validated in dependency order (``schema.TABLES``), so a
batch of creators and the orders that reference them validates together. Each input row ends in exactly
one of three places, and the counts are recorded per table-file in the ``ingestion_loads`` ledger:

- **loaded**: new fact rows land in the lake; new or changed dimension rows are upserted in the DB;
- **quarantined**: rows with bad cells (uncastable, null or blank where required, not allowed, out of
  range, in the future, unknown foreign key, a value a catalog does not know or that does not suit the
  row's kind, such as a merchant strategy applied to a creator), rows that break a rule across columns or
  tables (``TableSpec.date_order``, ``TableSpec.ownership``: an order whose merchant does not own its
  product at the order's time), and lines of a CSV or NDJSON file that cannot be read into cells (not
  JSON, not a JSON object, a ragged CSV row, a quote never closed, a truncated last line). They go to the
  run's quarantine file of that input with their raw values, ``_row`` (1-based record number, blank lines
  not counted), ``_line`` (the line where the record starts, as an editor numbers it; null for Parquet
  and SQL), ``_column``, ``_reason`` and ``_raw`` (the text of a line that could not be read into cells);
- **duplicate**: a fact row whose primary key is already stored or appeared earlier in the run; a
  dimension row identical to the stored (or earlier in the run) row with the same key.
- **updated**: a row whose key exists with *different* values (last one wins): for a dimension (a
  merchant's new rating or shipping time) the row is replaced and the change (run, time, every column
  before and after) appended to the lake table ``<table>_changes`` (``merchants_changes``, ...).

The ledger (``ingestion_loads``) keeps, per input, rows read = loaded (new) + updated + quarantined +
duplicate.

**Updates as updates** (``TableSpec.updatable``: orders). An order whose ``order_id`` is stored (or came
in an earlier input of the run) with other values (a refund, a cancellation, a corrected amount) updates
the stored row: a Delta MERGE, counted as updated; the change (run, time, every column before and after)
is appended to the lake table ``orders_changes``. An identical row is a duplicate. Two *different* rows
with one ``order_id`` in one input are a conflict: both (all) are quarantined, each naming the rows it
conflicts with, and neither is loaded. Metrics are computed from the orders as they are now, by the day of
``ordered_at``: a refund that arrives a week later changes the refund KPIs of the order's day, not of the
day it arrived (a build before it and one after it disagree on that day; the history says why).

Blank lines (empty or whitespace only) are no records, wherever they are. A CSV file with a header and no
rows loads nothing and succeeds. Text files are parsed by Polars; only a file Polars cannot split into one
record per line (an NDJSON line that is not JSON, a CSV quote spanning lines) is read record by record in
Python, so a broken line costs speed, never the file.

Quarantine files: ``quarantine/<run_id>/<table>-<digest>.parquet``, one per run and input, where the
digest is the input's SHA-256 (its first 16 hex digits; for a SQL source, of its URL and query). When an
earlier run left a quarantine file of the same input with exactly the same rows, the new run records that
file and writes none, so retrying an input does not pile up copies; an input judged differently (other
bytes, or stored data that changed the verdict) gets its own file.

A catalogued column (``TableSpec.catalog_columns``: the interventions' ``strategy``) may hold an alias the
catalog declares; the row is stored with the canonical value and the report counts the rows mapped from
each alias (``TableLoad.aliases_mapped``).

Whole-file problems (missing file, unknown table, missing or extra columns, empty, binary, not UTF-8, a
corrupt Parquet file) raise ``IngestError``; the run is then recorded as ``failed`` and nothing else
changes. File names are shown with bytes that are not UTF-8 escaped (``\\xNN``).

Atomicity: a run appends its new fact rows to each fact table as one Delta version, overwrites the lake
mirror of each dimension it changed as one Delta version, then one DB transaction upserts the dimensions,
writes the ledger, marks the run committed and records every table's version (the readers' pin). A run
killed before that transaction is invisible to readers and rolled back by the next writer
(``datastore.lake.recover``); see ``datastore.lake``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import getpass
import hashlib
import json
import os
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import sqlalchemy as sa

from core.config import Settings
from core.schema import TABLES, CatalogColumn, DateOrder, ForeignKey, Ownership, TableSpec, table_spec
from datastore import db, lake

Progress = Callable[[str, int, int], None]

FAULT_ENV = "LIFTBOARD_FAULT_INJECT"
ROW = "_row"
LINE = "_line"
RAW_TEXT = "_raw"
QUARANTINE_COLUMNS = (ROW, LINE, "_column", "_reason", RAW_TEXT)
BROKEN_SCHEMA = pl.Schema({ROW: pl.Int64, LINE: pl.Int64, "_reason": pl.String, RAW_TEXT: pl.String})
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".ndjson": "ndjson", ".jsonl": "ndjson"}
_CHUNK = 1 << 22
_INSERT_BATCH = 50_000
_FALLBACK_BATCH = 100_000  # records per frame when a text file is read record by record in Python
_MAX_RECORD_LINES = 10_000  # a quoted value spanning more lines is taken for a quote never closed


class IngestError(Exception):
    """A whole-file problem; the message names the file and, where known, the row and column."""


@dataclass(frozen=True)
class MappedAlias:
    """Rows whose ``column`` held ``alias``, read as the catalog's canonical ``value`` (e.g. a strategy)."""

    table: str
    column: str
    alias: str
    value: str
    rows: int

    def text(self) -> str:
        """One line for the people who ran the ingest."""
        return (
            f"{self.table}: {self.rows:,} row(s) with {self.column} '{self.alias}' "
            f"read as {self.value} (an alias in the catalog)"
        )


@dataclass(frozen=True)
class TableLoad:
    """What happened to the rows of one source (file or SQL extract) of one table."""

    table: str
    file: str
    rows_read: int
    rows_loaded: int  # new rows
    rows_quarantined: int
    rows_duplicate: int
    quarantine_path: str | None
    aliases_mapped: tuple[MappedAlias, ...] = ()  # rows read under an alias (loaded or not), per alias
    rows_updated: int = 0  # rows that changed a stored row (an order's new status, a merchant's rating)


@dataclass(frozen=True)
class IngestReport:
    """The outcome of one run."""

    run_id: str
    status: str
    loads: tuple[TableLoad, ...]

    @property
    def rows_read(self) -> int:
        return sum(load.rows_read for load in self.loads)

    @property
    def rows_loaded(self) -> int:
        return sum(load.rows_loaded for load in self.loads)

    @property
    def rows_updated(self) -> int:
        return sum(load.rows_updated for load in self.loads)

    @property
    def rows_quarantined(self) -> int:
        return sum(load.rows_quarantined for load in self.loads)

    @property
    def rows_duplicate(self) -> int:
        return sum(load.rows_duplicate for load in self.loads)

    @property
    def quarantine_paths(self) -> tuple[str, ...]:
        return tuple(load.quarantine_path for load in self.loads if load.quarantine_path)

    @property
    def aliases_mapped(self) -> tuple[MappedAlias, ...]:
        """Rows read under an alias, per table, column and alias, summed over the run's sources."""
        totals: dict[tuple[str, str, str, str], int] = {}
        for load in self.loads:
            for mapped in load.aliases_mapped:
                key = (mapped.table, mapped.column, mapped.alias, mapped.value)
                totals[key] = totals.get(key, 0) + mapped.rows
        return tuple(MappedAlias(*key, rows=rows) for key, rows in totals.items())

    def by_table(self) -> dict[str, int]:
        """Rows loaded per table."""
        totals: dict[str, int] = {}
        for load in self.loads:
            totals[load.table] = totals.get(load.table, 0) + load.rows_loaded
        return totals


# ---------------------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class _Read:
    """What a source holds: ``rows``, its columns plus ROW (and LINE for text files), and ``broken``, the
    records that could not be read into cells (ROW, LINE, the reason, the raw text: ``BROKEN_SCHEMA``)."""

    rows: pl.DataFrame
    broken: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BROKEN_SCHEMA))
    tags: pl.DataFrame | None = None  # ROW, RAW_TEXT: what names each record (a stream entry ID)


@dataclass
class _Source:
    label: str
    table: str
    read: Callable[[], _Read]
    identity: Callable[[], str]  # a short digest of the input (names its quarantine file)


def fault_point(stage: str) -> None:
    """Die abruptly at a named stage when ``LIFTBOARD_FAULT_INJECT`` names it (crash tests)."""
    if os.environ.get(FAULT_ENV) == stage:
        os._exit(137)


def table_for_file(path: Path) -> str | None:
    """The table a file name designates: its stem, or the stem's prefix before ``-``, ``_`` or ``.``."""
    name = path.name
    for suffix in FORMATS:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name in TABLES:
        return name
    prefix = re.split(r"[-_.]", name, maxsplit=1)[0]
    return prefix if prefix in TABLES else None


def display_path(path: str | Path) -> str:
    """A path as text that is always valid UTF-8: bytes of a name that are not UTF-8 are shown as
    ``\\xNN`` (a file name may hold any bytes; messages, the ledger and the DB need text)."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def _safe_text(text: str) -> str:
    """``text`` with characters UTF-8 cannot encode (undecodable bytes of a name) escaped."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


@contextmanager
def _polars_input(path: Path) -> Iterator[Path | BinaryIO]:
    """``path`` as Polars can open it: the path itself, or an open file when the name is not valid UTF-8
    (Polars takes names as UTF-8 text; such a file is then read through Python, a rare and slower case)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        with open(path, "rb") as handle:
            yield handle
        return
    yield path


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


@dataclass(frozen=True)
class _TextShape:
    """What the UTF-8 check learnt of a text file: its physical lines (split at ``\\n`` only) and whether
    the last one ends with a line break."""

    lines: int
    ends_with_newline: bool


def _check_text(path: Path, label: str) -> _TextShape:
    """Reject binary and non-UTF-8 text; return the file's line count and whether it ends with a break."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 1
    last = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            nul = chunk.find(b"\x00")
            if nul >= 0:
                line = lines + chunk.count(b"\n", 0, nul)
                raise IngestError(
                    f"{label}: binary file, not text (NUL byte at line {line}, byte offset {offset + nul})"
                )
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                position = max(exc.start - pending, 0)
                line = lines + chunk.count(b"\n", 0, position)
                raise IngestError(
                    f"{label}: not valid UTF-8 at line {line}, byte offset {offset + position} ({exc.reason})"
                ) from None
            lines += chunk.count(b"\n")
            offset += len(chunk)
            last = chunk[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise IngestError(
                f"{label}: not valid UTF-8 at line {lines}, byte offset {offset} "
                "(the file ends inside a character)"
            ) from None
    ends_with_newline = last == b"\n"
    return _TextShape(lines=lines - 1 if ends_with_newline else lines, ends_with_newline=ends_with_newline)


def _trailing_blank_lines(path: Path) -> int:
    """How many blank (empty or whitespace-only) lines end the file (counted in its last 64 KiB)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(size - (1 << 16), 0))
        tail = handle.read()
    pieces = tail.split(b"\n")
    if tail.endswith(b"\n"):
        pieces.pop()
    count = 0
    for piece in reversed(pieces):
        if piece.strip():
            break
        count += 1
    return count


def _polars_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _physical_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Each line of a (checked) UTF-8 file: its 1-based number, its text without the line end (and
    without a byte-order mark on line 1), and whether it had a line end. Lines end at ``\\n`` only."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            ended = raw.endswith(b"\n")
            text = raw.decode("utf-8").rstrip("\n").removesuffix("\r")
            yield number, (text.removeprefix("\ufeff") if number == 1 else text), ended


def _line_scan(source: Path | BinaryIO) -> pl.LazyFrame:
    """Every physical line of a text file as ``text`` (null when empty) with its number in LINE."""
    return pl.scan_csv(
        source,
        has_header=False,
        separator="\x00",  # never in a checked text file: each line is one field
        quote_char=None,
        infer_schema=False,
        new_columns=["text"],
        row_index_name=LINE,
        row_index_offset=1,
    ).with_columns(pl.col(LINE).cast(pl.Int64))


def _csv_field_count(text: pl.Expr) -> pl.Expr:
    """Fields in a one-line CSV record: separators outside quoted values, plus one."""
    return text.str.replace_all(r'"[^"]*"', "").str.count_matches(",", literal=True) + 1


def _rows_after_blanks(lines: pl.Series, blanks: pl.Series, header: int) -> pl.Series:
    """ROW (1-based record number) of records at ``lines``: blank lines and ``header`` lines not counted."""
    before = blanks.search_sorted(lines) if blanks.len() else pl.Series([0] * lines.len())
    return (lines - header - before.cast(pl.Int64)).alias(ROW)


def _broken_frame(records: Sequence[tuple[int, int | None, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(records, schema=BROKEN_SCHEMA, orient="row")


def _text_cell(value: Any) -> str | None:
    """A JSON value as the text a cell of a text file holds (nested values as their JSON)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _frame_of_records(batches: list[pl.DataFrame], columns: list[str], records: list[dict[str, Any]]) -> None:
    """Append ``records`` (text cells, with ROW and LINE) to ``batches`` as one frame."""
    if records:
        names = list(dict.fromkeys(name for record in records for name in record))
        schema = {name: pl.Int64 if name in (ROW, LINE) else pl.String for name in names}
        batches.append(pl.from_dicts(records, schema=schema))
        columns += [name for name in names if name not in columns]
        records.clear()


def _records_frame(batches: list[pl.DataFrame], columns: list[str]) -> pl.DataFrame:
    if not batches:
        return pl.DataFrame(schema={ROW: pl.Int64, LINE: pl.Int64, **dict.fromkeys(columns, pl.String)})
    return pl.concat(batches, how="diagonal").select(ROW, LINE, *(c for c in columns if c not in (ROW, LINE)))


def _read_csv(path: Path, label: str) -> _Read:
    """A CSV file, parsed by Polars when every record is one line; otherwise record by record.

    A line scan (Polars, streaming) first finds blank lines, lines whose field count is not the header's
    and lines with an odd number of quotes. Blank lines are skipped; a ragged line is quarantined whole.
    An odd number of quotes means a quoted value spans lines (legitimately, or a quote never closed):
    only then is the file read record by record in Python (``_read_csv_records``).
    """
    shape = _check_text(path, label)
    text = pl.col("text").fill_null("")
    with _polars_input(path) as source:
        try:
            header = _line_scan(source).head(1).collect()
        except pl.exceptions.NoDataError:
            raise IngestError(f"{label}: file is empty (no header, no rows)") from None
    if header.is_empty() or not (header["text"][0] or "").strip():
        raise IngestError(f"{label}: file is empty (no header, no rows)")
    expected = header.select(_csv_field_count(pl.col("text").str.strip_prefix("\ufeff"))).item()
    with _polars_input(path) as source:
        anomalies = (
            _line_scan(source)
            .filter(pl.col(LINE) > 1)
            .with_columns(
                blank=text.str.strip_chars() == "",
                open_quote=text.str.count_matches('"', literal=True) % 2 == 1,
                fields=_csv_field_count(text),
            )
            .filter(pl.col("blank") | pl.col("open_quote") | (pl.col("fields") != expected))
            .collect()
        )
    if anomalies["open_quote"].any():
        return _read_csv_records(path, label, shape)
    try:
        with _polars_input(path) as source:
            frame = pl.read_csv(
                source,
                infer_schema=False,
                truncate_ragged_lines=True,
                row_index_name=LINE,
                row_index_offset=2,
            )
    except pl.exceptions.NoDataError:
        raise IngestError(f"{label}: file is empty (no header, no rows)") from None
    except (pl.exceptions.PolarsError, OSError):
        return _read_csv_records(path, label, shape)
    if frame.height != shape.lines - 1:  # not one row per line after the header: let Python read it
        return _read_csv_records(path, label, shape)
    frame = frame.rename({name: name.strip() for name in frame.columns if name != LINE})
    frame = frame.with_columns(pl.col(LINE).cast(pl.Int64))
    blanks = anomalies.filter("blank")[LINE].sort()
    ragged = anomalies.filter(~pl.col("blank"))
    if not anomalies.is_empty():
        frame = frame.filter(~pl.col(LINE).is_in(anomalies[LINE].implode()))
    frame = frame.with_columns(_rows_after_blanks(frame[LINE], blanks, header=1)).select(
        ROW, LINE, pl.exclude(ROW, LINE)
    )
    broken = []
    for line, raw, fields in ragged.select(LINE, "text", "fields").rows():
        row = line - 1 - int(blanks.search_sorted(line)) if blanks.len() else line - 1
        broken.append((row, line, _ragged_reason(line, fields, expected, shape), raw or ""))
    return _Read(frame, _broken_frame(broken))


def _ragged_reason(line: int, fields: int, expected: int, shape: _TextShape) -> str:
    if line == shape.lines and not shape.ends_with_newline and fields < expected:
        return f"line {line}: truncated: {fields} of {expected} fields and no line end (the file is cut off)"
    return f"line {line}: {fields} fields where the header has {expected}"


_Line = tuple[int, str, bool]  # number, text without the line end, whether it had a line end


def _csv_fields(lines: list[_Line]) -> list[str] | None:
    """The fields of one record made of ``lines``; None if they do not make exactly one CSV record."""
    try:
        parsed = list(csv.reader(text + "\n" for _, text, _ in lines))
    except csv.Error:
        return None
    return parsed[0] if len(parsed) == 1 else None


def _open_at_end(lines: list[_Line]) -> bool:
    """Whether ``lines`` end inside a quoted value (a quote in the middle of a value does not open one)."""
    try:
        parsed = list(csv.reader(text + "\n" for _, text, _ in lines))
    except csv.Error:
        return False
    return bool(parsed and parsed[-1] and parsed[-1][-1].endswith("\n"))


def _csv_records(lines: Iterator[_Line], expected: int) -> Iterator[tuple[_Line, list[str] | None]]:
    """The records of a CSV file's lines after the header: each record's first line and its fields.

    Blank lines are skipped. Fields are None when the record cannot be read: a quote still open at the
    end of the file or after ``_MAX_RECORD_LINES`` lines, or a record spanning lines with the wrong number
    of fields, is taken for a quote never closed; reading then resumes on the line after its first. A quote
    inside an unquoted value (``5" screen``) is kept as text, as the csv module reads it.
    """
    replay: deque[_Line] = deque()
    pending: list[_Line] = []
    open_quote = False
    while True:
        item = replay.popleft() if replay else next(lines, None)
        if item is None and not pending:
            return
        if item is not None:
            if not pending and not item[1].strip():
                continue
            pending.append(item)
            if item[1].count('"') % 2 == 1:  # a quote opens or closes a value spanning lines, or is stray
                open_quote = not open_quote and _open_at_end(pending)
            if open_quote and len(pending) < _MAX_RECORD_LINES:
                continue
        fields = None if open_quote else _csv_fields(pending)
        if fields is not None and (len(fields) == expected or len(pending) == 1):
            yield pending[0], fields
        else:
            yield pending[0], None
            replay.extendleft(reversed(pending[1:]))
        pending, open_quote = [], False


def _read_csv_records(path: Path, label: str, shape: _TextShape) -> _Read:
    """A CSV file record by record (Python's csv module), for files whose quoted values span lines."""
    lines = _physical_lines(path)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise IngestError(f"{label}: file is empty (no header, no rows)")
    columns = [name.strip() for name in next(csv.reader([first[1]]))]
    batches: list[pl.DataFrame] = []
    names: list[str] = []
    records: list[dict[str, Any]] = []
    broken: list[tuple[int, int, str, str]] = []
    for row, ((number, text, _), fields) in enumerate(_csv_records(lines, len(columns)), 1):
        if fields is None:
            reason = f"line {number}: a quote opened on this line is never closed (or the line is not CSV)"
            broken.append((row, number, reason, text))
        elif len(fields) != len(columns):
            broken.append((row, number, _ragged_reason(number, len(fields), len(columns), shape), text))
        else:
            records.append(
                {ROW: row, LINE: number, **dict(zip(columns, (v or None for v in fields), strict=True))}
            )
            if len(records) >= _FALLBACK_BATCH:
                _frame_of_records(batches, names, records)
    _frame_of_records(batches, names, records)
    return _Read(_records_frame(batches, names or columns), _broken_frame(broken))


def _read_ndjson(path: Path, label: str) -> _Read:
    """An NDJSON file, parsed by Polars; if that fails (a broken line), line by line in Python."""
    shape = _check_text(path, label)
    try:
        with _polars_input(path) as source:
            frame = pl.read_ndjson(source, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return _read_ndjson_records(path, label, shape)
    if frame.height == 0:
        raise IngestError(f"{label}: file is empty (no records)")
    rows = pl.int_range(1, frame.height + 1, dtype=pl.Int64, eager=True).alias(ROW)
    if frame.height == shape.lines - _trailing_blank_lines(path):
        lines = rows.alias(LINE)  # no blank line between records: record n is on line n
    else:
        with _polars_input(path) as source:
            lines = (
                _line_scan(source)
                .filter(pl.col("text").str.strip_chars().fill_null("") != "")
                .collect()[LINE]
            )
        if lines.len() != frame.height:
            return _read_ndjson_records(path, label, shape)
    return _Read(frame.with_columns(rows, lines.alias(LINE)).select(ROW, LINE, pl.exclude(ROW, LINE)))


def _read_ndjson_records(path: Path, label: str, shape: _TextShape) -> _Read:
    """An NDJSON file line by line: a line that is not a JSON object is quarantined whole."""
    row = 0
    batches: list[pl.DataFrame] = []
    names: list[str] = []
    records: list[dict[str, Any]] = []
    broken: list[tuple[int, int, str, str]] = []
    for number, text, ended in _physical_lines(path):
        if not text.strip():
            continue
        row += 1
        try:
            value = json.loads(text)
        except ValueError as exc:
            if not ended:
                reason = f"line {number}: truncated: not complete JSON and no line end (the file is cut off)"
            else:
                detail = (
                    f"{exc.msg} at character {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
                )
                reason = f"line {number}: not valid JSON ({detail})"
            broken.append((row, number, reason, text))
            continue
        if not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
            kind = "null" if value is None else kind
            reason = f"line {number}: {kind}, not a JSON object (one record per line)"
            broken.append((row, number, reason, text))
            continue
        records.append({**{key: _text_cell(cell) for key, cell in value.items()}, ROW: row, LINE: number})
        if len(records) >= _FALLBACK_BATCH:
            _frame_of_records(batches, names, records)
    _frame_of_records(batches, names, records)
    if row == 0:
        raise IngestError(f"{label}: file is empty (no records)")
    return _Read(_records_frame(batches, names), _broken_frame(broken))


def _read_parquet(path: Path, label: str) -> _Read:
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(path.stat().st_size - 4, 0))
        tail = handle.read(4)
    if head != b"PAR1":
        raise IngestError(f"{label}: not a Parquet file (no PAR1 magic at the start)")
    if tail != b"PAR1":
        raise IngestError(f"{label}: truncated Parquet file (footer missing)")
    try:
        with _polars_input(path) as source:
            frame = pl.read_parquet(source, row_index_name=ROW, row_index_offset=1)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(
            f"{label}: unreadable Parquet file (truncated or corrupt): {_polars_message(exc)}"
        ) from None
    return _Read(frame.with_columns(pl.col(ROW).cast(pl.Int64)))


def _file_source(raw_path: str | Path, table: str | None) -> _Source:
    path = Path(raw_path)
    label = display_path(path)
    if not path.exists():
        raise IngestError(f"{label}: file not found")
    if not path.is_file():
        raise IngestError(f"{label}: not a file")
    fmt = next((kind for suffix, kind in FORMATS.items() if path.name.lower().endswith(suffix)), None)
    if fmt is None:
        raise IngestError(f"{label}: unknown format; expected one of {', '.join(FORMATS)}")
    name = table or table_for_file(path)
    if name is None or name not in TABLES:
        raise IngestError(
            f"{label}: cannot tell which table the file holds; name it after a table (e.g. orders-001.csv) "
            f"or pass the table explicitly; known tables: {', '.join(TABLES)}"
        )
    if path.stat().st_size == 0:
        raise IngestError(f"{label}: file is empty (0 bytes)")
    reader = {"csv": _read_csv, "ndjson": _read_ndjson, "parquet": _read_parquet}[fmt]
    return _Source(
        label=label, table=name, read=lambda: reader(path, label), identity=lambda: _file_digest(path)
    )


def _series_from_values(name: str, values: Sequence[Any]) -> pl.Series:
    try:
        return pl.Series(name, values, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return pl.Series(name, [None if value is None else str(value) for value in values], dtype=pl.String)


def _sql_source(url: str, table: str, query: str | None, source_table: str | None) -> _Source:
    if (query is None) == (source_table is None):
        raise IngestError("SQL source: give exactly one of a source table or a query")
    try:
        safe_url = sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError as exc:
        raise IngestError(f"SQL source: invalid URL: {exc}") from None
    label = f"{safe_url}#{source_table if source_table else 'query'}"

    def read() -> _Read:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                if query is not None:
                    statement: Any = sa.text(query)
                else:
                    assert source_table is not None
                    schema, _, name = source_table.rpartition(".")
                    reflected = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=connection)
                    statement = sa.select(reflected)
                result = connection.execute(statement)
                columns = list(result.keys())
                rows = result.all()
        except sa.exc.NoSuchTableError:
            raise IngestError(f"{label}: source table {source_table!r} not found") from None
        except sa.exc.SQLAlchemyError as exc:
            raise IngestError(f"{label}: could not read the source: {_polars_message(exc)}") from None
        finally:
            engine.dispose()
        values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        frame = pl.DataFrame(
            [_series_from_values(name, col) for name, col in zip(columns, values, strict=True)]
        )
        return _Read(frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64)))

    def identity() -> str:
        what = f"{label}\n{query if query is not None else source_table}"
        return hashlib.sha256(what.encode("utf-8", errors="backslashreplace")).hexdigest()[:16]

    return _Source(label=label, table=table, read=read, identity=identity)


# ---------------------------------------------------------------------------------------------------------
# Validation


_KIND = {pl.Int64: "integer", pl.Float64: "number", pl.Date: "date (YYYY-MM-DD)", pl.String: "text"}


def _kind(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamp (ISO 8601)"
    return _KIND.get(dtype, str(dtype))  # type: ignore[call-overload]


def _parse_datetime(text: pl.Expr) -> pl.Expr:
    """ISO 8601 strings to UTC timestamps: with an offset or ``Z``, or naive (taken as UTC), or a date."""
    normalized = text.str.replace(r"[zZ]$", "+00:00").str.replace("T", " ", literal=True)
    return pl.coalesce(
        normalized.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", time_unit="us", time_zone="UTC", strict=False),
        normalized.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", time_zone="UTC", strict=False),
        normalized.str.to_datetime("%Y-%m-%d %H:%M", time_unit="us", time_zone="UTC", strict=False),
        normalized.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    )


def _float_to_int(value: pl.Expr) -> pl.Expr:
    exact = value.is_finite() & (value == value.floor()) & (value.abs() < 2.0**53)
    return pl.when(exact).then(value.cast(pl.Int64, strict=False))


def _coerce(column: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    """An expression casting ``column`` from ``source`` to ``target``; null where a value can't be cast.

    Only safe casts: integral floats to integers (never truncation), naive timestamps as UTC, aware ones
    converted to UTC, midnight timestamps to dates; anything else goes through its text.
    """
    value = pl.col(column)
    if source == pl.String:
        return _coerce_text(value, target)
    if source == pl.Null:
        return value.cast(target)
    if target == pl.String:
        return value.cast(pl.String)
    if source.is_numeric() and target == pl.Int64:
        if source.is_float() or isinstance(source, pl.Decimal):
            return _float_to_int(value.cast(pl.Float64))
        return value.cast(pl.Int64, strict=False)
    if source.is_numeric() and target == pl.Float64:
        return value.cast(pl.Float64, strict=False)
    if isinstance(source, pl.Datetime) and isinstance(target, pl.Datetime):
        stamp = (
            value.dt.replace_time_zone("UTC")
            if source.time_zone is None
            else value.dt.convert_time_zone("UTC")
        )
        return stamp.dt.cast_time_unit("us")
    if source == pl.Date and isinstance(target, pl.Datetime):
        return value.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(source, pl.Datetime) and target == pl.Date:
        return pl.when(value.dt.time() == pl.time(0)).then(value.dt.date())
    return _coerce_text(value.cast(pl.String), target)


def _coerce_text(value: pl.Expr, target: pl.DataType) -> pl.Expr:
    """Text cells (CSV, NDJSON strings) to ``target``; surrounding blanks ignored, blank cells null."""
    text = value.str.strip_chars()
    if target == pl.String:
        return pl.when(text == "").then(None).otherwise(value)
    if target == pl.Int64:
        return pl.coalesce(
            text.cast(pl.Int64, strict=False), _float_to_int(text.cast(pl.Float64, strict=False))
        )
    if target == pl.Float64:
        return text.cast(pl.Float64, strict=False)
    if target == pl.Date:
        stamp = _parse_datetime(text)
        return pl.coalesce(
            text.str.to_date("%Y-%m-%d", strict=False),
            pl.when(stamp.dt.time() == pl.time(0)).then(stamp.dt.date()),
        )
    if isinstance(target, pl.Datetime):
        return _parse_datetime(text).dt.cast_time_unit("us")
    raise AssertionError(f"no text coercion to {target}")


def _as_text(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A value as the text shown in reasons and quarantine files."""
    if isinstance(dtype, pl.Datetime):
        return value.dt.to_string("%Y-%m-%dT%H:%M:%S")
    if dtype == pl.Date:
        return value.dt.to_string("%Y-%m-%d")
    return value.cast(pl.String)


def _raw(column: str) -> str:
    return f"__raw__{column}"


def _typed_frame(raw: pl.DataFrame, spec: TableSpec, label: str) -> tuple[pl.DataFrame, set[str]]:
    """The canonical columns, cast, plus ROW, LINE and the raw text of each cast column; and which columns
    were cast."""
    columns = [name for name in raw.columns if name not in (ROW, LINE)]
    if raw.is_empty() and not columns:  # only lines that could not be read: no columns to check
        raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(name) for name in spec.columns)
        columns = spec.columns
    missing = [name for name in spec.columns if name not in columns]
    extra = [name for name in columns if name not in spec.schema]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(extra)}")
        raise IngestError(f"{label}: {spec.name}: {'; '.join(parts)} (expected {', '.join(spec.columns)})")
    line = pl.col(LINE) if LINE in raw.columns else pl.lit(None, dtype=pl.Int64).alias(LINE)
    expressions: list[pl.Expr] = [pl.col(ROW), line]
    cast_columns: set[str] = set()
    for name, target in spec.schema.items():
        source = raw.schema[name]
        if source.is_nested() or source == pl.Binary or source == pl.Object:
            raise IngestError(
                f"{label}: column {name} holds {source} values, which cannot be read as {_kind(target)}"
            )
        if source == target:
            expressions.append(pl.col(name))
            continue
        cast_columns.add(name)
        expressions.append(_coerce(name, source, target).alias(name))
        raw_text = pl.col(name) if source == pl.String else pl.col(name).cast(pl.String)
        if source == pl.String and target != pl.String:
            raw_text = pl.when(pl.col(name).str.strip_chars() == "").then(None).otherwise(pl.col(name))
        expressions.append(raw_text.alias(_raw(name)))
    try:
        return raw.select(expressions), cast_columns
    except pl.exceptions.PolarsError as exc:
        raise IngestError(
            f"{label}: cannot read the columns as {spec.name}: {_polars_message(exc)}"
        ) from None


def _canonical_values(
    typed: pl.DataFrame, spec: TableSpec, cast_columns: set[str]
) -> tuple[pl.DataFrame, set[str], tuple[MappedAlias, ...]]:
    """Aliases in catalogued columns replaced by their canonical values; the raw value is kept (as for a
    cast column) so that a quarantined row shows what was read. Also: the rows mapped, per alias."""
    mapped: list[MappedAlias] = []
    kept_raw = set(cast_columns)
    for catalog in spec.catalog_columns:
        name, aliases = catalog.column, dict(catalog.aliases)
        is_alias = pl.col(name).is_in(pl.Series(list(aliases), dtype=pl.String).implode())
        counts = typed.filter(is_alias).group_by(name).len().sort(name)
        if counts.is_empty():
            continue
        mapped += [MappedAlias(spec.name, name, alias, aliases[alias], rows) for alias, rows in counts.rows()]
        if name not in kept_raw:
            typed = typed.with_columns(pl.col(name).alias(_raw(name)))
            kept_raw.add(name)
        typed = typed.with_columns(pl.col(name).replace(aliases))
    return typed, kept_raw, tuple(mapped)


def _checks(
    spec: TableSpec,
    cast_columns: set[str],
    now: datetime,
    known: dict[ForeignKey, pl.Series],
    owners: dict[Ownership, pl.DataFrame] | None = None,
) -> dict[str, list[tuple[pl.Expr, pl.Expr]]]:
    """Per column, the (is-bad, reason) pairs in priority order; the first that holds is the reason.

    ``known`` holds the keys each foreign key may name; ``owners`` the referenced rows of each ownership
    rule (item, owner and since columns, named as in the referenced table).
    """
    checks: dict[str, list[tuple[pl.Expr, pl.Expr]]] = {}
    for name, dtype in spec.schema.items():
        value = pl.col(name)
        shown = _as_text(value, dtype)
        pairs: list[tuple[pl.Expr, pl.Expr]] = []
        if name in cast_columns:
            raw = pl.col(_raw(name))
            pairs.append(
                (
                    raw.is_not_null() & value.is_null(),
                    pl.concat_str(pl.lit(f"{name}: '"), raw, pl.lit(f"' is not a valid {_kind(dtype)}")),
                )
            )
        if dtype == pl.Float64:
            pairs.append(
                (
                    ~value.is_finite(),
                    pl.concat_str(pl.lit(f"{name}: "), shown, pl.lit(" is not a finite number")),
                )
            )
        if name not in spec.nullable:
            pairs.append((value.is_null(), pl.lit(f"{name}: value is missing (the column is required)")))
        if name in spec.required_text:
            blank = pl.lit(f"{name}: value is blank (the column is required)")
            pairs.append((value.str.strip_chars() == "", blank))
        if name in spec.allowed:
            allowed = spec.allowed[name]
            pairs.append(
                (
                    ~value.is_in(pl.Series(allowed, dtype=pl.String).implode()),
                    pl.concat_str(
                        pl.lit(f"{name}: '"), shown, pl.lit(f"' is not one of {', '.join(allowed)}")
                    ),
                )
            )
        pairs += _range_checks(spec, name, shown)
        if name in spec.not_in_future:
            limit = pl.lit(now.date()) if dtype == pl.Date else pl.lit(now, dtype=dtype)
            pairs.append(
                (value > limit, pl.concat_str(pl.lit(f"{name}: "), shown, pl.lit(" is in the future")))
            )
        pairs += _foreign_key_checks(spec, name, shown, known)
        for catalog in (c for c in spec.catalog_columns if c.column == name):
            pairs += _catalog_checks(catalog, pl.col(_raw(name)) if name in cast_columns else value)
        pairs += _rule_checks(spec, name, owners or {})
        checks[name] = [(condition.fill_null(False), reason) for condition, reason in pairs]
    return checks


def _range_checks(spec: TableSpec, name: str, shown: pl.Expr) -> list[tuple[pl.Expr, pl.Expr]]:
    """The (is-bad, reason) pairs of a column's declared minimum and maximum."""
    low, high = spec.ranges.get(name, (None, None))
    value = pl.col(name)
    pairs: list[tuple[pl.Expr, pl.Expr]] = []
    if low is not None:
        pairs.append(
            (value < low, pl.concat_str(pl.lit(f"{name}: "), shown, pl.lit(f" is below the minimum {low}")))
        )
    if high is not None:
        pairs.append(
            (value > high, pl.concat_str(pl.lit(f"{name}: "), shown, pl.lit(f" is above the maximum {high}")))
        )
    return pairs


def _foreign_key_checks(
    spec: TableSpec, name: str, shown: pl.Expr, known: dict[ForeignKey, pl.Series]
) -> list[tuple[pl.Expr, pl.Expr]]:
    """The (is-bad, reason) pairs of the foreign keys a column holds (``known``: the referenced keys)."""
    value = pl.col(name)
    pairs: list[tuple[pl.Expr, pl.Expr]] = []
    for fk in (fk for fk in spec.foreign_keys if fk.column == name):
        unknown = value.is_not_null() & ~value.is_in(known[fk].implode())
        if fk.when is not None:
            unknown = unknown & (pl.col(fk.when[0]) == fk.when[1])
        reason = pl.concat_str(
            pl.lit(f"{name}: '"), shown, pl.lit(f"' is not a known {fk.table}.{fk.ref_column}")
        )
        pairs.append((unknown, reason))
    return pairs


def _rule_checks(
    spec: TableSpec, name: str, owners: dict[Ownership, pl.DataFrame]
) -> list[tuple[pl.Expr, pl.Expr]]:
    """The (is-bad, reason) pairs the rules across columns and tables put on column ``name``."""
    pairs = [_date_order_check(spec, order) for order in spec.date_order if order.later == name]
    for rule in spec.ownership:
        pairs += _ownership_checks(spec, rule, name, owners.get(rule))
    return pairs


def _date_order_check(spec: TableSpec, order: DateOrder) -> tuple[pl.Expr, pl.Expr]:
    """The (is-bad, reason) pair of a date-order rule, on its later column."""
    later, earlier = pl.col(order.later), pl.col(order.earlier)
    return (
        later < earlier,
        pl.concat_str(
            pl.lit(f"{order.later}: "),
            _as_text(later, spec.schema[order.later]),
            pl.lit(f" is before {order.earlier} "),
            _as_text(earlier, spec.schema[order.earlier]),
        ),
    )


def _ownership_checks(
    spec: TableSpec, rule: Ownership, name: str, owners: pl.DataFrame | None
) -> list[tuple[pl.Expr, pl.Expr]]:
    """The (is-bad, reason) pairs an ownership rule puts on column ``name`` (its owner, or its ``at``).

    ``owners``: the referenced rows (``ref_item``, ``ref_owner`` and ``since``) of the items in the input.
    """
    if owners is None or name not in (rule.owner, rule.at):
        return []
    item, value = pl.col(rule.item), pl.col(name)
    items = owners[rule.ref_item]
    if name == rule.owner:
        owner = item.replace_strict(items, owners[rule.ref_owner], default=None, return_dtype=pl.String)
        return [
            (
                value.is_not_null() & owner.is_not_null() & (value != owner),
                pl.concat_str(
                    pl.lit(f"{name}: '"),
                    value,
                    pl.lit(f"' does not own {rule.item} '"),
                    item,
                    pl.lit(f"' ({rule.table}.{rule.ref_owner} is '"),
                    owner,
                    pl.lit("')"),
                ),
            )
        ]
    assert rule.since is not None
    since = item.replace_strict(items, owners[rule.since], default=None, return_dtype=pl.Date)
    day = value.dt.date() if isinstance(spec.schema[name], pl.Datetime) else value
    return [
        (
            since.is_not_null() & (day < since),
            pl.concat_str(
                pl.lit(f"{name}: "),
                _as_text(value, spec.schema[name]),
                pl.lit(f" is before {rule.item} '"),
                item,
                pl.lit(f"' {rule.since_means} ({rule.table}.{rule.since} "),
                since.dt.to_string("%Y-%m-%d"),
                pl.lit(")"),
            ),
        )
    ]


def _catalog_checks(catalog: CatalogColumn, read: pl.Expr) -> list[tuple[pl.Expr, pl.Expr]]:
    """The (is-bad, reason) pairs of a catalogued column (aliases already mapped; ``read``: the value as
    read): a value the catalog does not know, with how to add or map it; a value of another kind."""
    name, noun = catalog.column, catalog.noun
    value, row_kind = pl.col(name), pl.col(catalog.kind_column)
    known = list(catalog.kinds)
    help_parts: list[pl.Expr] = []
    for index, text in enumerate(catalog.unknown_help.split("{value}")):
        help_parts += [read, pl.lit(text)] if index else [pl.lit(text)]
    unknown = (
        value.is_not_null() & ~value.is_in(pl.Series(known, dtype=pl.String).implode()),
        pl.concat_str(
            pl.lit(f"{name}: '"),
            read,
            pl.lit(f"' is not a known {noun}; "),
            *help_parts,
            pl.lit(f" (known: {', '.join(known)})"),
        ),
    )
    kind = value.replace_strict(dict(catalog.kinds), default=None, return_dtype=pl.String)
    kinds = pl.Series(sorted(set(catalog.kinds.values())), dtype=pl.String)
    alias_of = pl.when(read != value).then(pl.concat_str(pl.lit(" (an alias of "), value, pl.lit(")")))
    wrong_kind = (
        kind.is_not_null() & row_kind.is_in(kinds.implode()) & (kind != row_kind),
        pl.concat_str(
            pl.lit(f"{name}: '"),
            read,
            pl.lit("'"),
            alias_of.otherwise(pl.lit("")),
            pl.lit(" is a "),
            kind,
            pl.lit(f" {noun} and cannot apply to a "),
            row_kind,
            pl.lit(f" ({catalog.kind_column})"),
        ),
    )
    return [unknown, wrong_kind]


def _reason_of(pairs: list[tuple[pl.Expr, pl.Expr]]) -> pl.Expr:
    chain: Any = pl
    for condition, reason in pairs:
        chain = chain.when(condition).then(reason)
    return chain.otherwise(pl.lit(None, dtype=pl.String)) if pairs else pl.lit(None, dtype=pl.String)


def _split(
    typed: pl.DataFrame,
    spec: TableSpec,
    cast_columns: set[str],
    checks: dict[str, list[tuple[pl.Expr, pl.Expr]]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Good rows (canonical columns plus ROW and LINE) and the quarantine frame of the bad ones."""
    conditions = [condition for pairs in checks.values() for condition, _ in pairs]
    flagged = typed.with_columns(pl.any_horizontal(conditions).alias("__bad"))
    if not flagged["__bad"].any():
        return typed.select(ROW, LINE, *spec.columns), pl.DataFrame()
    good = flagged.filter(~pl.col("__bad")).select(ROW, LINE, *spec.columns)
    bad = flagged.filter(pl.col("__bad"))
    reasons = {name: _reason_of(pairs).alias(f"__why__{name}") for name, pairs in checks.items()}
    bad = bad.with_columns(reasons.values())
    raw_text = [
        (pl.col(_raw(name)) if name in cast_columns else _as_text(pl.col(name), dtype)).alias(name)
        for name, dtype in spec.schema.items()
    ]
    quarantine = bad.select(
        *raw_text,
        pl.col(ROW),
        pl.col(LINE),
        pl.concat_str(
            [pl.when(pl.col(f"__why__{name}").is_not_null()).then(pl.lit(name)) for name in spec.columns],
            separator=", ",
            ignore_nulls=True,
        ).alias("_column"),
        pl.concat_str(
            [pl.col(f"__why__{name}") for name in spec.columns], separator="; ", ignore_nulls=True
        ).alias("_reason"),
        pl.lit(None, dtype=pl.String).alias(RAW_TEXT),
    )
    return good, quarantine


def _broken_quarantine(spec: TableSpec, broken: pl.DataFrame) -> pl.DataFrame:
    """The quarantine frame of records that could not be read into cells: no cells, the whole text."""
    return broken.select(
        *(pl.lit(None, dtype=pl.String).alias(name) for name in spec.columns),
        pl.col(ROW),
        pl.col(LINE),
        pl.lit(None, dtype=pl.String).alias("_column"),
        pl.col("_reason"),
        pl.col(RAW_TEXT),
    )


# ---------------------------------------------------------------------------------------------------------
# The run


def _stored_dimension(table: str, settings: Settings, version: lake.LakeVersion) -> pl.DataFrame:
    """A dimension table as stored: its lake mirror when that agrees with the DB, else the DB itself.

    Runs hold the ingest lock and have recovered, so the mirror is the table as of the last committed run;
    the row-count check guards against a DB changed behind Liftboard's back (or a deleted mirror).
    """
    spec = table_spec(table)
    if table in version.versions:
        mirror = lake.scan_table(table, settings, version).collect()
        if mirror.schema == spec.schema and mirror.height == db.count_rows(table, settings):
            return mirror.sort(list(spec.primary_key))
    return db.read_table(table, settings)


@dataclass
class _RunState:
    """What a run knows: stored data (read lazily, once) plus what earlier sources of the run added."""

    settings: Settings
    version: lake.LakeVersion  # the lake as the last committed run left it
    dimensions: dict[str, pl.DataFrame] = field(default_factory=dict)  # working full tables
    stored_dimensions: dict[str, pl.DataFrame] = field(default_factory=dict)
    fact_keys: dict[str, list[pl.DataFrame]] = field(default_factory=dict)  # keys added by this run
    stored_fact_keys: dict[str, pl.DataFrame] = field(default_factory=dict)
    fact_hashes: dict[str, pl.Series] = field(default_factory=dict)  # of stored and run keys
    known: dict[tuple[str, str], pl.Series] = field(default_factory=dict)
    changed_dimensions: set[str] = field(default_factory=set)
    quarantines: dict[str, tuple[str, pl.DataFrame]] = field(default_factory=dict)  # name → path, rows
    staged: dict[str, list[Any]] = field(default_factory=dict)  # new rows' files, per fact table
    updates: dict[str, list[pl.DataFrame]] = field(default_factory=dict)  # changed rows, updatable facts
    changes: dict[str, list[pl.DataFrame]] = field(default_factory=dict)  # their history rows
    moment: datetime | None = None
    run_id: str = ""

    def dimension(self, table: str) -> pl.DataFrame:
        if table not in self.dimensions:
            stored = _stored_dimension(table, self.settings, self.version)
            self.stored_dimensions[table] = stored
            self.dimensions[table] = stored
        return self.dimensions[table]

    def known_keys(self, table: str, column: str) -> pl.Series:
        key = (table, column)
        if key not in self.known:
            if table_spec(table).storage == "db":
                values = self.dimension(table)[column]
            else:
                values = (
                    lake.scan_table(table, self.settings, self.version).select(column).unique().collect()
                )[column]
                for frame in self.fact_keys.get(table, []):
                    if column in frame.columns:
                        values = pl.concat([values, frame[column]])
            self.known[key] = values.drop_nulls().unique()
        return self.known[key]

    def add_known(self, table: str, frame: pl.DataFrame) -> None:
        for (name, column), values in list(self.known.items()):
            if name == table and column in frame.columns:
                self.known[(name, column)] = pl.concat([values, frame[column]]).unique()


def _dedupe_dimension(state: _RunState, spec: TableSpec, good: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """Rows that insert or change a dimension row (applied in file order), the duplicate count and how
    many of the rows change an existing row (their before and after are kept as the run's history)."""
    if good.is_empty():
        return good, 0, 0
    key = list(spec.primary_key)
    values = [name for name in spec.columns if name not in spec.primary_key]
    current = state.dimension(spec.name)
    ordered = good.sort(*key, ROW)
    old = current.select(*key, *[pl.col(name).alias(f"__old__{name}") for name in values]).with_columns(
        pl.lit(True).alias("__exists")
    )
    ordered = ordered.join(old, on=key, how="left", nulls_equal=False, maintain_order="left")
    # Sorted by key then row: a row is the first of its key when the key differs from the previous row's.
    # (Plain shifts over the sorted frame, not window functions: they stay fast with millions of keys.)
    first = pl.any_horizontal([pl.col(name).ne_missing(pl.col(name).shift(1)) for name in key])
    same = [
        pl.col(name).eq_missing(
            pl.when(first).then(pl.col(f"__old__{name}")).otherwise(pl.col(name).shift(1))
        )
        for name in values
    ]
    exists_before = pl.when(first).then(pl.col("__exists").fill_null(False)).otherwise(True)
    previous = [
        pl.when(first)
        .then(pl.col(f"__old__{name}"))
        .otherwise(pl.col(name).shift(1))
        .alias(f"previous_{name}")
        for name in values
    ]
    marked = ordered.with_columns(
        (exists_before & pl.all_horizontal(same) if same else exists_before).alias("__dup"),
        exists_before.alias("__update"),
        *previous,
    )
    duplicates = int(marked["__dup"].sum())
    changes = marked.filter(~pl.col("__dup")).sort(ROW)
    updates = changes.filter(pl.col("__update"))
    if updates.height:
        state.changes.setdefault(spec.name, []).append(
            updates.select(*spec.columns, *(f"previous_{name}" for name in values)).with_columns(
                pl.lit(state.run_id).alias("run_id"),
                pl.lit(state.moment, dtype=pl.Datetime("us", "UTC")).alias("changed_at"),
            )
        )
    changes = changes.select(ROW, *spec.columns)
    if not changes.is_empty():
        latest = changes.unique(subset=key, keep="last", maintain_order=True).select(spec.columns)
        state.dimensions[spec.name] = pl.concat(
            [current.join(latest.select(key), on=key, how="anti"), latest]
        ).sort(key)
        state.changed_dimensions.add(spec.name)
        state.add_known(spec.name, latest)
    return changes, duplicates, updates.height


def _key_hash(key: list[str]) -> pl.Expr:
    return (pl.struct(key) if len(key) > 1 else pl.col(key[0])).hash(seed=0).alias("__key_hash")


def _seen_fact_hashes(state: _RunState, spec: TableSpec) -> pl.Series:
    """Hashes of every key of a fact table stored or loaded by this run (stored keys read once per run)."""
    if spec.name not in state.fact_hashes:
        stored = lake.scan_table(spec.name, state.settings, state.version).select(spec.primary_key).collect()
        state.stored_fact_keys[spec.name] = stored
        state.fact_hashes[spec.name] = stored.select(_key_hash(list(spec.primary_key))).to_series()
    return state.fact_hashes[spec.name]


def _dedupe_fact(state: _RunState, spec: TableSpec, good: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Rows whose key is new (first occurrence wins); and the duplicate count.

    New keys are screened with 64-bit hashes against everything seen so far (cheap even with tens of
    millions of keys); only hash hits are then compared exactly, so a collision can never drop a row.
    """
    if good.is_empty():
        return good, 0
    key = list(spec.primary_key)
    first = pl.struct(key).is_first_distinct() if len(key) > 1 else pl.col(key[0]).is_first_distinct()
    fresh = good.filter(first)
    hashes = fresh.select(_key_hash(key)).to_series()
    seen = _seen_fact_hashes(state, spec)
    hit = seen.is_in(hashes.implode())
    if hit.any():
        # ``seen`` lists the hashes of the stored keys, then of each source's keys, in the order of ``pool``
        pool = pl.concat([state.stored_fact_keys[spec.name], *state.fact_keys.get(spec.name, [])])
        candidates = fresh.filter(hashes.is_in(seen.filter(hit).implode())).select(key)
        known = pool.filter(hit).join(candidates, on=key, how="semi")
        if known.height:
            fresh = fresh.join(known, on=key, how="anti", maintain_order="left")
            hashes = fresh.select(_key_hash(key)).to_series()
    state.fact_hashes[spec.name] = seen.append(hashes)
    state.fact_keys.setdefault(spec.name, []).append(fresh.select(key))
    state.add_known(spec.name, fresh)
    return fresh, good.height - fresh.height


def _conflicts(
    spec: TableSpec, good: pl.DataFrame, typed: pl.DataFrame, cast_columns: set[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of one input whose key appears with different values: (the other rows, their quarantine).

    Every row of such a key is quarantined with its cells as the input wrote them (from ``typed``, the
    input's rows with their raw text), its reason naming the rows of the key (their ``_row``) and
    ``_column`` the columns whose values differ."""
    key = list(spec.primary_key)
    values = [name for name in spec.columns if name not in key]
    repeated = (pl.struct(key) if len(key) > 1 else pl.col(key[0])).is_duplicated()
    candidates = good.filter(repeated)  # keys seen more than once: usually none, checked by a hash
    if candidates.is_empty():
        return good, pl.DataFrame()
    marked = candidates.with_columns(pl.struct(values).n_unique().over(key).alias("__versions"))
    bad = marked.filter(pl.col("__versions") > 1)
    if bad.is_empty():
        return good, pl.DataFrame()
    described = bad.group_by(key).agg(
        pl.col(ROW).sort().cast(pl.String).str.join(", ").alias("__rows"),
        pl.concat_str(
            [pl.when(pl.col(name).n_unique() > 1).then(pl.lit(name)) for name in values],
            separator=", ",
            ignore_nulls=True,
        )
        .first()
        .alias("_column"),
    )
    label = pl.concat_str([pl.col(name).cast(pl.String) for name in key], separator="/")
    as_written = typed.select(ROW, *(_raw(name) for name in sorted(cast_columns)))
    quarantine = (
        bad.join(described, on=key, how="left")
        .join(as_written, on=ROW, how="left")
        .select(
            *(
                (pl.col(_raw(name)) if name in cast_columns else _as_text(pl.col(name), dtype)).alias(name)
                for name, dtype in spec.schema.items()
            ),
            pl.col(ROW),
            pl.col(LINE),
            pl.col("_column"),
            pl.format(
                "conflict: {} {} has different values in rows {} of this input",
                pl.lit(", ".join(key)),
                label,
                pl.col("__rows"),
            ).alias("_reason"),
            pl.lit(None, dtype=pl.String).alias(RAW_TEXT),
        )
    )
    return good.join(bad.select(ROW), on=ROW, how="anti", maintain_order="left"), quarantine


def _current_rows(state: _RunState, spec: TableSpec, keys: pl.DataFrame) -> pl.DataFrame:
    """The rows as they are now for ``keys``: updated earlier in this run, else loaded earlier in this run,
    else stored (read from the pinned version, pruned by the keys)."""
    key = list(spec.primary_key)
    scan = lake.scan_table(spec.name, state.settings, state.version)
    if len(key) == 1:
        scan = scan.filter(pl.col(key[0]).is_in(keys[key[0]].implode()))
    staged = lake.staged_rows(state.settings, spec.name, state.staged.get(spec.name, []))
    parts = [
        scan.join(keys.lazy(), on=key, how="semi").collect().with_columns(pl.lit(0).alias("__rank")),
        staged.join(keys.lazy(), on=key, how="semi").collect().with_columns(pl.lit(1).alias("__rank")),
    ]
    for rank, frame in enumerate(state.updates.get(spec.name, [])):
        parts.append(
            frame.join(keys, on=key, how="semi")
            .select(spec.columns)
            .with_columns(pl.lit(rank + 2).alias("__rank"))
        )
    return pl.concat(parts).sort("__rank").unique(subset=key, keep="last").drop("__rank")


def _dedupe_updatable(
    state: _RunState, spec: TableSpec, good: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """New rows of an updatable fact; rows that change a stored one are kept as the run's updates (and
    their history); identical rows are duplicates. The new rows, the updates and the duplicate count."""
    if good.is_empty():
        return good, good, 0
    key = list(spec.primary_key)
    first = pl.struct(key).is_first_distinct() if len(key) > 1 else pl.col(key[0]).is_first_distinct()
    unique = good.filter(first)  # conflicts are gone: a repeated key here repeats an identical row
    fresh, _ = _dedupe_fact(state, spec, unique)
    if fresh.height == unique.height:  # every key is new (the usual case): nothing to compare
        return fresh, fresh.clear(), good.height - fresh.height
    known = unique.join(fresh.select(key), on=key, how="anti", maintain_order="left")
    current = _current_rows(state, spec, known.select(key))
    changed = known.select(ROW, *spec.columns).join(
        current, on=spec.columns, how="anti", nulls_equal=True, maintain_order="left"
    )
    if changed.height:
        updated = changed.select(spec.columns)
        state.updates.setdefault(spec.name, []).append(updated)
        values = [name for name in spec.columns if name not in key]
        before = current.select(*key, *(pl.col(name).alias(f"previous_{name}") for name in values))
        state.changes.setdefault(spec.name, []).append(
            updated.join(before, on=key, how="left").with_columns(
                pl.lit(state.run_id).alias("run_id"),
                pl.lit(state.moment, dtype=pl.Datetime("us", "UTC")).alias("changed_at"),
            )
        )
    changed = changed.select(fresh.columns)
    return fresh, changed, good.height - fresh.height - changed.height


def _owners(state: _RunState, rule: Ownership, items: pl.Series) -> pl.DataFrame:
    """The rows of an ownership rule's table (stored, plus this run's) that hold the given items."""
    if table_spec(rule.table).storage != "db":
        raise AssertionError(f"ownership rules refer to dimension tables, not {rule.table}")
    columns = [rule.ref_item, rule.ref_owner, *([rule.since] if rule.since else [])]
    reference = state.dimension(rule.table).select(columns)
    return reference.filter(pl.col(rule.ref_item).is_in(items.drop_nulls().unique().implode()))


def _same_rows(path: Path, frame: pl.DataFrame) -> bool:
    """Whether the Parquet file at ``path`` holds exactly ``frame`` (row counts compared first, cheaply)."""
    try:
        if pl.scan_parquet(path).select(pl.len()).collect().item() != frame.height:
            return False
        return pl.read_parquet(path).equals(frame)
    except (pl.exceptions.PolarsError, OSError):
        return False


def _quarantine_file(state: _RunState, spec: TableSpec, source: _Source, quarantine: pl.DataFrame) -> str:
    """Where the quarantined rows of one input are kept: one file per run and input, named after the
    input's digest; an identical file an earlier run (or this one) kept for the same input is reused."""
    name = f"{spec.name}-{source.identity()}.parquet"
    if name in state.quarantines:
        path, kept = state.quarantines[name]
        if kept.equals(quarantine):
            return path
        name = f"{spec.name}-{source.identity()}-{len(state.quarantines) + 1}.parquet"
    root = state.settings.quarantine
    earlier = sorted(root.glob(f"*/{name}"), reverse=True) if root.is_dir() else []  # newest run first
    for candidate in earlier:
        if _same_rows(candidate, quarantine):
            state.quarantines[name] = (str(candidate), quarantine)
            return str(candidate)
    target = root / state.run_id / name
    target.parent.mkdir(parents=True, exist_ok=True)
    quarantine.write_parquet(target, statistics=True)  # deleted again if the run does not commit
    path = str(target)
    state.quarantines[name] = (path, quarantine)
    return path


def _process(source: _Source, spec: TableSpec, state: _RunState, now: datetime) -> TableLoad:
    """Validate one source, dedupe it, keep its new facts for the run's commit and quarantine its bad
    rows; what happened to its rows."""
    read = source.read()
    typed, cast_columns = _typed_frame(read.rows, spec, source.label)
    broken, tags = read.broken, read.tags
    del read
    typed, cast_columns, aliases_mapped = _canonical_values(typed, spec, cast_columns)
    known: dict[ForeignKey, pl.Series] = {}
    for fk in spec.foreign_keys:
        # Probe the (possibly huge) stored key set with this file's few distinct values, then check rows
        # against the small matching subset: two cheap hash lookups instead of hashing every stored key.
        present = typed[fk.column].drop_nulls().unique()
        stored = state.known_keys(fk.table, fk.ref_column)
        known[fk] = stored.filter(stored.is_in(present.implode()))
    owners = {rule: _owners(state, rule, typed[rule.item]) for rule in spec.ownership}
    checks = _checks(spec, cast_columns, now, known, owners)
    good, quarantine = _split(typed, spec, cast_columns, checks)
    if spec.updatable:
        good, conflicts = _conflicts(spec, good, typed, cast_columns)
        if conflicts.height:
            quarantine = pl.concat([quarantine, conflicts]) if quarantine.height else conflicts
    del typed
    if broken.height:  # lines that could not be read into cells join the rows that failed a check
        unreadable = _broken_quarantine(spec, broken)
        quarantine = pl.concat([quarantine, unreadable]) if quarantine.height else unreadable
    if tags is not None and quarantine.height:  # a record's tag (its stream entry ID) in RAW_TEXT
        named = quarantine.join(tags.rename({RAW_TEXT: "__tag"}), on=ROW, how="left", maintain_order="left")
        quarantine = named.with_columns(pl.coalesce(RAW_TEXT, "__tag").alias(RAW_TEXT)).drop("__tag")
    good = good.drop(LINE)
    if spec.storage == "db":
        changes, duplicates, updated = _dedupe_dimension(state, spec, good)
        inserted = changes.height - updated
    else:
        if spec.updatable:
            new_rows, changed, duplicates = _dedupe_updatable(state, spec, good)
            inserted, updated = new_rows.height, changed.height
        else:
            new_rows, duplicates = _dedupe_fact(state, spec, good)
            inserted, updated = new_rows.height, 0
        # written now (not held until the end of the run), committed with the run's other files
        staged = lake.stage_facts(state.settings, spec.name, new_rows.select(spec.columns), state.run_id)
        state.staged.setdefault(spec.name, []).extend(staged)
        del new_rows
    quarantine_path = None
    if quarantine.height:
        quarantine_path = _quarantine_file(state, spec, source, quarantine.sort(ROW))
    return TableLoad(
        table=spec.name,
        file=source.label,
        rows_read=good.height + quarantine.height,
        rows_loaded=inserted,
        rows_quarantined=quarantine.height,
        rows_duplicate=duplicates,
        quarantine_path=quarantine_path,
        aliases_mapped=aliases_mapped,
        rows_updated=updated,
    )


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _default_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _copy_into(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
    """PostgreSQL: stream rows with ``COPY ... FROM STDIN`` (identifiers come from our own metadata)."""
    preparer = connection.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(name) for name in frame.columns)
    statement = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
    statement += " WITH (FORMAT csv)"  # unquoted empty field = NULL, "" = empty text
    cursor: Any = connection.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for start in range(0, frame.height, _INSERT_BATCH):
                chunk = frame.slice(start, _INSERT_BATCH)
                copy.write(chunk.write_csv(include_header=False, date_format="%Y-%m-%d").encode("utf-8"))
    finally:
        cursor.close()


def _bulk_insert(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
    """Insert many rows through the DBAPI's ``executemany`` within ``connection``'s transaction.

    The statement is SQLAlchemy's own compiled ``INSERT`` with bound parameters; only the per-row
    parameter processing of the Core layer is skipped (it dominates for millions of rows). SQLite stores
    dates as ISO text, as SQLAlchemy's SQLite ``Date`` type does.
    """
    if frame.is_empty():
        return
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy_into(connection, table, frame)
        return
    compiled = sa.insert(table).compile(dialect=dialect, column_keys=frame.columns)
    if dialect.name == "sqlite":
        frame = frame.with_columns(pl.col(pl.Date).dt.to_string("%Y-%m-%d"))
    names = list(compiled.positiontup) if compiled.positional and compiled.positiontup else frame.columns
    frame = frame.select(names)
    cursor = connection.connection.cursor()
    try:
        for start in range(0, frame.height, _INSERT_BATCH):
            chunk = frame.slice(start, _INSERT_BATCH)
            rows: list[Any] = chunk.rows() if compiled.positional else chunk.to_dicts()
            cursor.executemany(str(compiled), rows)
    finally:
        cursor.close()


def _upsert_dimensions(connection: sa.Connection, state: _RunState) -> None:
    for name in TABLES:
        if name not in state.changed_dimensions:
            continue
        spec = TABLES[name]
        table = db.DIMENSION_SQL_TABLES[name]
        key = list(spec.primary_key)
        stored = state.stored_dimensions[name]
        final = state.dimensions[name]
        inserts = final.join(stored.select(key), on=key, how="anti")
        updates = final.join(stored, on=spec.columns, how="anti", nulls_equal=True).join(
            stored.select(key), on=key, how="semi"
        )
        _bulk_insert(connection, table, inserts)
        if updates.height:
            statement = (
                sa.update(table)
                .where(*(table.c[column] == sa.bindparam(f"key_{column}") for column in key))
                .values({column: sa.bindparam(column) for column in spec.columns if column not in key})
            )
            rows = updates.rename({column: f"key_{column}" for column in key}).to_dicts()
            for start in range(0, len(rows), _INSERT_BATCH):
                connection.execute(statement, rows[start : start + _INSERT_BATCH])


def _write_updates(state: _RunState, name: str) -> dict[str, int]:
    """MERGE a run's updates of an updatable fact (last one per key wins) and append their history."""
    spec = TABLES[name]
    key = list(spec.primary_key)
    updates = pl.concat(state.updates[name]).unique(subset=key, keep="last", maintain_order=True)
    changes = pl.concat(state.changes[name])
    previous = f"previous_{spec.partition_by}"
    day = pl.col(previous) if spec.schema[spec.partition_by or ""] == pl.Date else pl.col(previous).dt.date()
    days = changes.select(day.unique()).to_series().drop_nulls().to_list()
    version = lake.merge_updates(state.settings, name, updates, days)
    return {name: version, lake.changes_table(name): lake.append_changes(state.settings, name, changes)}


def _write_lake(state: _RunState) -> dict[str, int]:
    """Write the run's changes: one Delta version per changed table; every table's version after it."""
    versions = dict(state.version.versions)
    written = 0
    for name in TABLES:
        if state.staged.get(name):
            if written:
                fault_point("mid_write")  # some tables of the run are written, others not yet
            versions[name] = lake.commit_facts(state.settings, name, state.staged[name])
            written += 1
        if state.updates.get(name):
            if written:
                fault_point("mid_write")
            versions.update(_write_updates(state, name))
            written += 1
        elif name in state.changed_dimensions:
            if written:
                fault_point("mid_write")
            versions[name] = lake.overwrite_dimension(state.settings, name, state.dimensions[name])
            written += 1
            if state.changes.get(name):
                history = pl.concat(state.changes[name])
                versions[lake.changes_table(name)] = lake.append_changes(state.settings, name, history)
    return versions


def _commit(
    settings: Settings, state: _RunState, run_id: str, loads: list[TableLoad], versions: dict[str, int]
) -> None:
    """The run's commit point: dimensions, ledger, status and the lake versions readers will read."""
    with db.connect(settings) as connection:
        _upsert_dimensions(connection, state)
        if loads:
            connection.execute(
                sa.insert(db.ingestion_loads),
                [
                    {
                        "run_id": run_id,
                        "table_name": load.table,
                        "file": load.file,
                        "rows_read": load.rows_read,
                        "rows_loaded": load.rows_loaded,
                        "rows_quarantined": load.rows_quarantined,
                        "rows_duplicate": load.rows_duplicate,
                        "rows_updated": load.rows_updated,
                        "quarantine_path": load.quarantine_path,
                    }
                    for load in loads
                ],
            )
        connection.execute(
            sa.update(db.ingestion_runs)
            .where(db.ingestion_runs.c.run_id == run_id)
            .values(status="committed", finished_at=datetime.now(UTC), lake_versions=json.dumps(versions))
        )


def _run(
    sources_factory: Callable[[], list[_Source]],
    settings: Settings,
    *,
    source: str,
    user: str | None,
    now: datetime | None,
    progress: Progress | None,
) -> IngestReport:
    db.require_current(settings)
    report_progress = progress or (lambda _stage, _done, _total: None)
    moment = _utc(now)
    with lake.ingest_lock(settings):
        version = lake.recover_locked(settings)
        run_id = _new_run_id()
        with db.connect(settings) as connection:
            connection.execute(
                sa.insert(db.ingestion_runs).values(
                    run_id=run_id,
                    started_at=datetime.now(UTC),
                    user=user if user is not None else _default_user(),
                    source=source,
                    status="running",
                )
            )
        committed = False
        state: _RunState | None = None
        try:
            sources = sources_factory()
            order = {name: position for position, name in enumerate(TABLES)}
            sources = sorted(sources, key=lambda item: order[item.table])
            state = _RunState(settings, version, run_id=run_id, moment=datetime.now(UTC))
            loads: list[TableLoad] = []
            for index, item in enumerate(sources):
                report_progress("validating", index, len(sources))
                loads.append(_process(item, table_spec(item.table), state, moment))
            report_progress("validating", len(sources), len(sources))
            report_progress("staging", 0, 1)  # writing the lake versions
            versions = _write_lake(state)
            report_progress("staging", 1, 1)
            fault_point("before_commit")
            report_progress("committing", 0, 1)
            _commit(settings, state, run_id, loads, versions)
            committed = True
            fault_point("after_commit")
            report_progress("committing", 1, 1)
        except BaseException as exc:
            if not committed:
                lake.discard_quarantine(settings, run_id)
                if state is not None:
                    for name, actions in state.staged.items():
                        lake.discard_staged(settings, name, actions)
                message = str(exc) if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
                lake.mark_run_failed(settings, run_id, _safe_text(message))
                with contextlib.suppress(Exception):  # else the next writer rolls the lake back
                    lake.restore(settings, version)
            raise
    return IngestReport(run_id=run_id, status="committed", loads=tuple(loads))


def ingest_files(
    paths: Sequence[str | Path],
    settings: Settings,
    *,
    table: str | None = None,
    source: str | None = None,
    user: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate and load CSV, Parquet and NDJSON files as one atomic run.

    Args:
        paths: the files; each holds one table, named by ``table`` or by the file name.
        settings: the installation.
        table: the table of every file (overrides file names).
        source: what to record as the run's source (default: the paths).
        user: who ran it (default: the OS user).
        now: the moment after which time columns are "in the future" (default: now, UTC).
        progress: called with (stage, done, total) as the run advances.

    Raises:
        IngestError: on a whole-file problem; the run is recorded as failed and nothing else changes.
    """
    if table is not None and table not in TABLES:
        raise IngestError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}")
    if not paths:
        raise IngestError("no files to ingest")
    label = source or ", ".join(display_path(path) for path in paths)
    return _run(
        lambda: [_file_source(path, table) for path in paths],
        settings,
        source=label,
        user=user,
        now=now,
        progress=progress,
    )


def ingest_sql(
    url: str,
    table: str,
    settings: Settings,
    *,
    query: str | None = None,
    source_table: str | None = None,
    user: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Extract rows from any SQLAlchemy database (a table or a query) and ingest them as ``table``.

    The source table is reflected and selected through SQLAlchemy; a query is the operator's own SQL.
    An extract returning no rows is a successful run that loads nothing.
    """
    if table not in TABLES:
        raise IngestError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}")
    sql_source = _sql_source(url, table, query, source_table)
    return _run(
        lambda: [sql_source], settings, source=sql_source.label, user=user, now=now, progress=progress
    )


@dataclass(frozen=True)
class Record:
    """One event of a source that is not a file (a stream entry): its cells as text, keyed by column, as
    a CSV row holds them (an empty string is a null), and ``tag``, what names it for an operator (``entry
    1733380000000-0``). ``unreadable`` says why it could not be read into cells (then it is quarantined
    whole, ``cells`` as JSON in the raw-text column)."""

    tag: str
    cells: Mapping[str, str | None]
    unreadable: str | None = None


@dataclass(frozen=True)
class RecordColumns:
    """Records that all have the same fields, column-wise (``cells[name][i]``: record ``i``'s cell, text,
    an empty string a null) with their tags: how a stream batch usually arrives, read without a dict per
    record. Equal to the records `as_records` returns."""

    tags: Sequence[str]
    cells: Mapping[str, Sequence[str]]

    def __len__(self) -> int:
        return len(self.tags)

    def as_records(self) -> list[Record]:
        """The same records one by one."""
        names = list(self.cells)
        return [Record(tag, {name: self.cells[name][i] for name in names}) for i, tag in enumerate(self.tags)]


@dataclass(frozen=True)
class RecordBatch:
    """The records of one table from one source (``label``: ``redis://host:6379/0#orders``), one by one or
    column-wise."""

    table: str
    label: str
    records: Sequence[Record] | RecordColumns


def _column_cells(records: RecordColumns, spec: TableSpec) -> pl.DataFrame:
    """Records that have exactly the table's fields, as its text frame (ROW: the record's position)."""
    return pl.DataFrame(
        {ROW: range(1, len(records) + 1), **{name: records.cells[name] for name in spec.columns}},
        schema={ROW: pl.Int64, **dict.fromkeys(spec.columns, pl.String)},
    ).with_columns(  # an empty cell is a null, as in a CSV file
        pl.when(pl.col(name) != "").then(pl.col(name)).alias(name) for name in spec.columns
    )


def _record_cells(
    records: Sequence[Record], spec: TableSpec
) -> tuple[pl.DataFrame, list[tuple[int, int | None, str, str]]]:
    """Records one by one: the text frame of those with exactly the table's fields, and the others as
    quarantined rows (why, and their cells as JSON)."""
    expected = set(spec.columns)
    good: list[Mapping[str, str | None]] = []
    rows: list[int] = []
    broken: list[tuple[int, int | None, str, str]] = []
    for row, record in enumerate(records, 1):
        fields = record.cells.keys()
        problem = record.unreadable
        if problem is None and fields != expected:
            parts = []
            if missing := [name for name in spec.columns if name not in fields]:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if extra := sorted(set(fields) - expected):
                parts.append(f"unexpected field(s) {', '.join(extra)}")
            problem = f"{'; '.join(parts)} (expected {', '.join(spec.columns)})"
        if problem is not None:
            raw = json.dumps(dict(record.cells), ensure_ascii=False)
            broken.append((row, None, f"{record.tag}: {problem}", raw))
            continue
        good.append(record.cells)
        rows.append(row)
    columns = {ROW: pl.Series(ROW, rows, dtype=pl.Int64)}
    for name in spec.columns:  # an empty cell is a null, as in a CSV file
        columns[name] = pl.Series(name, [cells[name] or None for cells in good], dtype=pl.String)
    return pl.DataFrame(columns), broken


def _records_source(batch: RecordBatch) -> _Source:
    """A source of text records: each one row, its ROW its position in the batch, its tag kept (in
    RAW_TEXT) with the row if quarantined. A record whose fields are not the table's columns (or that could
    not be read) is quarantined whole, as a ragged CSV line is, instead of failing the run: one bad event
    must not stop a stream."""
    spec = table_spec(batch.table)

    def tags() -> Sequence[str]:
        records = batch.records
        return records.tags if isinstance(records, RecordColumns) else [record.tag for record in records]

    def read() -> _Read:
        tag_frame = pl.DataFrame(
            {ROW: range(1, len(batch.records) + 1), RAW_TEXT: tags()},
            schema={ROW: pl.Int64, RAW_TEXT: pl.String},
        )
        records = batch.records
        if isinstance(records, RecordColumns):
            if set(records.cells) == set(spec.columns):  # every record has exactly the table's fields
                return _Read(_column_cells(records, spec), _broken_frame([]), tag_frame)
            records = records.as_records()
        frame, broken = _record_cells(records, spec)
        return _Read(frame, _broken_frame(broken), tag_frame)

    def identity() -> str:
        digest = hashlib.sha256(batch.label.encode("utf-8", errors="backslashreplace"))
        for tag in tags():
            digest.update(b"\n" + tag.encode("utf-8", errors="backslashreplace"))
        return digest.hexdigest()[:16]

    return _Source(label=batch.label, table=batch.table, read=read, identity=identity)


def ingest_records(
    batches: Sequence[RecordBatch],
    settings: Settings,
    *,
    source: str,
    user: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate and load records of a source that is not a file (a stream's micro-batch) as one run.

    The same validation, quarantine, dedupe, ledger and lake versions as ``ingest_files``: a record is a
    CSV row of its table (text cells), named by its batch's label and its tag. A record delivered again
    (the same key, the same values) is a duplicate; with other values an update (orders), as in a file.

    Raises:
        IngestError: on an unknown table or an empty call; the run is recorded as failed.
    """
    for batch in batches:
        if batch.table not in TABLES:
            raise IngestError(
                f"{batch.label}: unknown table {batch.table!r}; known tables: {', '.join(TABLES)}"
            )
    if not any(batch.records for batch in batches):
        raise IngestError("no records to ingest")
    return _run(
        lambda: [_records_source(batch) for batch in batches if batch.records],
        settings,
        source=source,
        user=user,
        now=now,
        progress=progress,
    )


def quarantine_files(settings: Settings) -> list[Path]:
    """All quarantine files, oldest run first."""
    root = settings.quarantine
    return sorted(root.glob("*/*.parquet")) if root.is_dir() else []
