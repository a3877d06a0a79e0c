"""Ingest: read files or SQL extracts, validate them against the canonical specs, load them atomically.

One call is one *run*. Every source of a run is validated in dependency order (``schema.TABLES``), so a
batch of creators and the orders that reference them validates together. Each input row ends in exactly
one of three places, and the counts are recorded per table-file in the ``ingestion_loads`` ledger:

- **loaded**: new fact rows land in the lake; new or changed dimension rows are upserted in the DB;
- **quarantined**: rows with bad cells (uncastable, null where required, not allowed, out of range, in
  the future, unknown foreign key, a value a catalog does not know or that does not suit the row's kind,
  such as a merchant strategy applied to a creator) go to ``quarantine/<run_id>/<table>-<n>.parquet``
  with their raw values, ``_row`` (1-based data row), ``_column`` and ``_reason``;
- **duplicate**: a fact row whose primary key is already stored or appeared earlier in the run; a
  dimension row identical to the stored (or earlier in the run) row with the same key. A dimension row
  whose key exists with *different* values is an update and counts as loaded (last one wins).

A catalogued column (``TableSpec.catalog_columns``: the interventions' ``strategy``) may hold an alias the
catalog declares; the row is stored with the canonical value and the report counts the rows mapped from
each alias (``TableLoad.aliases_mapped``).

Whole-file problems (missing file, unknown table, missing or extra columns, empty, binary, truncated,
not UTF-8) raise ``IngestError``; the run is then recorded as ``failed`` and nothing else changes.

Atomicity: files are staged under ``lake/_staging/<run_id>`` with a manifest, then one DB transaction
upserts the dimensions and marks the run committed, then the staged files are moved into place.
``datastore.lake.recover`` rolls a committed run forward and discards an uncommitted one.
"""

from __future__ import annotations

import codecs
import csv
import getpass
import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from core.config import Settings
from core.schema import TABLES, CatalogColumn, ForeignKey, TableSpec, table_spec
from datastore import db, lake

Progress = Callable[[str, int, int], None]

FAULT_ENV = "LIFTBOARD_FAULT_INJECT"
ROW = "_row"
QUARANTINE_COLUMNS = (ROW, "_column", "_reason")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".ndjson": "ndjson", ".jsonl": "ndjson"}
_CHUNK = 1 << 22
_INSERT_BATCH = 50_000


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
    rows_loaded: int
    rows_quarantined: int
    rows_duplicate: int
    quarantine_path: str | None
    aliases_mapped: tuple[MappedAlias, ...] = ()  # rows read under an alias (loaded or not), per alias


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


@dataclass
class _Source:
    label: str
    table: str
    read: Callable[[], pl.DataFrame]  # raw frame: the source's columns plus ROW (Int64, 1-based)
    allow_empty: bool = False


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


def _check_text(path: Path, label: str) -> int:
    """Reject binary and non-UTF-8 text; return the number of lines."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 1
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
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise IngestError(
                f"{label}: not valid UTF-8 at line {lines}, byte offset {offset} "
                "(the file ends inside a character)"
            ) from None
    return lines


def _last_line(path: Path) -> tuple[bytes, bool]:
    """The last non-empty line of a file and whether the file ends with a line break."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(size - (1 << 16), 0))
        tail = handle.read()
    ends_with_newline = tail.endswith(b"\n")
    lines = [line for line in tail.splitlines() if line.strip()]
    return (lines[-1] if lines else b""), ends_with_newline


def _polars_message(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_csv(path: Path, label: str) -> pl.DataFrame:
    lines = _check_text(path, label)
    try:
        frame = pl.read_csv(path, infer_schema=False, row_index_name=ROW, row_index_offset=1)
    except pl.exceptions.NoDataError:
        raise IngestError(f"{label}: file is empty (no header, no rows)") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(f"{label}: malformed CSV: {_polars_message(exc)}") from None
    frame = frame.rename({name: name.strip() for name in frame.columns if name != ROW})
    if frame.height == 0:
        raise IngestError(f"{label}: file is empty (header only, no data rows)")
    last, ends_with_newline = _last_line(path)
    if not ends_with_newline:
        fields = next(csv.reader([last.decode("utf-8", errors="replace")]), [])
        expected = frame.width - 1
        if len(fields) < expected:
            raise IngestError(
                f"{label}: truncated file: the last line (line {lines}) has {len(fields)} of {expected} "
                "fields and no line end"
            )
    return frame.with_columns(pl.col(ROW).cast(pl.Int64))


def _read_ndjson(path: Path, label: str) -> pl.DataFrame:
    lines = _check_text(path, label)
    last, _ = _last_line(path)
    if not last.strip():
        raise IngestError(f"{label}: file is empty (no records)")
    try:
        json.loads(last)
    except ValueError:
        raise IngestError(
            f"{label}: truncated file: the last record (line {lines}) is not complete JSON"
        ) from None
    try:
        frame = pl.read_ndjson(path, infer_schema_length=None, row_index_name=ROW, row_index_offset=1)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(f"{label}: malformed NDJSON: {_polars_message(exc)}") from None
    if frame.height == 0:
        raise IngestError(f"{label}: file is empty (no records)")
    return frame.with_columns(pl.col(ROW).cast(pl.Int64))


def _read_parquet(path: Path, label: str) -> pl.DataFrame:
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(path.stat().st_size - 4, 0))
        tail = handle.read(4)
    if head != b"PAR1":
        raise IngestError(f"{label}: not a Parquet file (no PAR1 magic at the start)")
    if tail != b"PAR1":
        raise IngestError(f"{label}: truncated Parquet file (footer missing)")
    try:
        frame = pl.read_parquet(path, row_index_name=ROW, row_index_offset=1)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise IngestError(
            f"{label}: unreadable Parquet file (truncated or corrupt): {_polars_message(exc)}"
        ) from None
    if frame.height == 0:
        raise IngestError(f"{label}: file is empty (no rows)")
    return frame.with_columns(pl.col(ROW).cast(pl.Int64))


def _file_source(raw_path: str | Path, table: str | None) -> _Source:
    path = Path(raw_path)
    label = str(path)
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
    return _Source(label=label, table=name, read=lambda: reader(path, label))


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

    def read() -> pl.DataFrame:
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
        return frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))

    return _Source(label=label, table=table, read=read, allow_empty=True)


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
    """The canonical columns, cast, plus the raw text of each cast column; and which columns were cast."""
    columns = [name for name in raw.columns if name != ROW]
    missing = [name for name in spec.columns if name not in columns]
    extra = [name for name in columns if name not in spec.schema]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(extra)}")
        raise IngestError(f"{label}: {spec.name}: {'; '.join(parts)} (expected {', '.join(spec.columns)})")
    expressions: list[pl.Expr] = [pl.col(ROW)]
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
    spec: TableSpec, cast_columns: set[str], now: datetime, known: dict[ForeignKey, pl.Series]
) -> dict[str, list[tuple[pl.Expr, pl.Expr]]]:
    """Per column, the (is-bad, reason) pairs in priority order; the first that holds is the reason."""
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
    """Good rows (canonical columns plus ROW) and the quarantine frame of the bad ones."""
    conditions = [condition for pairs in checks.values() for condition, _ in pairs]
    flagged = typed.with_columns(pl.any_horizontal(conditions).alias("__bad"))
    if not flagged["__bad"].any():
        return typed.select(ROW, *spec.columns), pl.DataFrame()
    good = flagged.filter(~pl.col("__bad")).select(ROW, *spec.columns)
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
        pl.concat_str(
            [pl.when(pl.col(f"__why__{name}").is_not_null()).then(pl.lit(name)) for name in spec.columns],
            separator=", ",
            ignore_nulls=True,
        ).alias("_column"),
        pl.concat_str(
            [pl.col(f"__why__{name}") for name in spec.columns], separator="; ", ignore_nulls=True
        ).alias("_reason"),
    )
    return good, quarantine


# ---------------------------------------------------------------------------------------------------------
# The run


def _stored_dimension(table: str, settings: Settings) -> pl.DataFrame:
    """A dimension table as stored: its lake mirror when that agrees with the DB, else the DB itself.

    Runs hold the ingest lock and have recovered, so the mirror is the table as of the last committed run;
    the row-count check guards against a DB changed behind Liftboard's back (or a deleted mirror).
    """
    spec = table_spec(table)
    path = lake.dimension_path(settings, table)
    if path.is_file():
        mirror = pl.read_parquet(path)
        if mirror.schema == spec.schema and mirror.height == db.count_rows(table, settings):
            return mirror.sort(list(spec.primary_key))
    return db.read_table(table, settings)


@dataclass
class _RunState:
    """What a run knows: stored data (read lazily, once) plus what earlier sources of the run added."""

    settings: Settings
    dimensions: dict[str, pl.DataFrame] = field(default_factory=dict)  # working full tables
    stored_dimensions: dict[str, pl.DataFrame] = field(default_factory=dict)
    fact_keys: dict[str, list[pl.DataFrame]] = field(default_factory=dict)  # keys added by this run
    stored_fact_keys: dict[str, pl.DataFrame] = field(default_factory=dict)
    fact_hashes: dict[str, pl.Series] = field(default_factory=dict)  # of stored and run keys
    known: dict[tuple[str, str], pl.Series] = field(default_factory=dict)
    changed_dimensions: set[str] = field(default_factory=set)

    def dimension(self, table: str) -> pl.DataFrame:
        if table not in self.dimensions:
            stored = _stored_dimension(table, self.settings)
            self.stored_dimensions[table] = stored
            self.dimensions[table] = stored
        return self.dimensions[table]

    def known_keys(self, table: str, column: str) -> pl.Series:
        key = (table, column)
        if key not in self.known:
            if table_spec(table).storage == "db":
                values = self.dimension(table)[column]
            else:
                values = lake.scan_committed(table, self.settings).select(column).unique().collect()[column]
                for frame in self.fact_keys.get(table, []):
                    if column in frame.columns:
                        values = pl.concat([values, frame[column]])
            self.known[key] = values.drop_nulls().unique()
        return self.known[key]

    def add_known(self, table: str, frame: pl.DataFrame) -> None:
        for (name, column), values in list(self.known.items()):
            if name == table and column in frame.columns:
                self.known[(name, column)] = pl.concat([values, frame[column]]).unique()


def _dedupe_dimension(state: _RunState, spec: TableSpec, good: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Rows that insert or change a dimension row (applied in file order); and the duplicate count."""
    if good.is_empty():
        return good, 0
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
    marked = ordered.with_columns(
        (exists_before & pl.all_horizontal(same) if same else exists_before).alias("__dup")
    )
    duplicates = int(marked["__dup"].sum())
    changes = marked.filter(~pl.col("__dup")).select(ROW, *spec.columns).sort(ROW)
    if not changes.is_empty():
        latest = changes.unique(subset=key, keep="last", maintain_order=True).select(spec.columns)
        state.dimensions[spec.name] = pl.concat(
            [current.join(latest.select(key), on=key, how="anti"), latest]
        ).sort(key)
        state.changed_dimensions.add(spec.name)
        state.add_known(spec.name, latest)
    return changes, duplicates


def _key_hash(key: list[str]) -> pl.Expr:
    return (pl.struct(key) if len(key) > 1 else pl.col(key[0])).hash(seed=0).alias("__key_hash")


def _seen_fact_hashes(state: _RunState, spec: TableSpec) -> pl.Series:
    """Hashes of every key of a fact table stored or loaded by this run (stored keys read once per run)."""
    if spec.name not in state.fact_hashes:
        stored = lake.scan_committed(spec.name, state.settings).select(spec.primary_key).collect()
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


def _process(
    source: _Source, spec: TableSpec, state: _RunState, staging: lake.Staging, now: datetime, part: int
) -> TableLoad:
    """Validate one source, dedupe it, stage its facts and quarantine; what happened to its rows."""
    raw = source.read()
    if raw.height == 0 and not source.allow_empty:
        raise IngestError(f"{source.label}: file is empty (no rows)")
    typed, cast_columns = _typed_frame(raw, spec, source.label)
    del raw
    typed, cast_columns, aliases_mapped = _canonical_values(typed, spec, cast_columns)
    known: dict[ForeignKey, pl.Series] = {}
    for fk in spec.foreign_keys:
        # Probe the (possibly huge) stored key set with this file's few distinct values, then check rows
        # against the small matching subset: two cheap hash lookups instead of hashing every stored key.
        present = typed[fk.column].drop_nulls().unique()
        stored = state.known_keys(fk.table, fk.ref_column)
        known[fk] = stored.filter(stored.is_in(present.implode()))
    checks = _checks(spec, cast_columns, now, known)
    good, quarantine = _split(typed, spec, cast_columns, checks)
    del typed
    if spec.storage == "db":
        loaded, duplicates = _dedupe_dimension(state, spec, good)
    else:
        loaded, duplicates = _dedupe_fact(state, spec, good)
        staging.add_fact_partitions(spec, loaded.select(spec.columns), part=part)
    quarantine_path = None
    if quarantine.height:
        name = f"{spec.name}-{part + 1}.parquet"
        quarantine_path = str(staging.add_quarantine(name, quarantine.sort(ROW)))
    return TableLoad(
        table=spec.name,
        file=source.label,
        rows_read=good.height + quarantine.height,
        rows_loaded=loaded.height,
        rows_quarantined=quarantine.height,
        rows_duplicate=duplicates,
        quarantine_path=quarantine_path,
        aliases_mapped=aliases_mapped,
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
        lake.recover_locked(settings)
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
        try:
            sources = sources_factory()
            order = {name: position for position, name in enumerate(TABLES)}
            sources = sorted(sources, key=lambda item: order[item.table])
            state = _RunState(settings)
            staging = lake.Staging(settings, run_id)
            loads: list[TableLoad] = []
            parts: dict[str, int] = {}
            for index, item in enumerate(sources):
                report_progress("validating", index, len(sources))
                part = parts.get(item.table, 0)
                parts[item.table] = part + 1
                loads.append(_process(item, table_spec(item.table), state, staging, moment, part))
            report_progress("validating", len(sources), len(sources))
            report_progress("staging", 0, 1)
            for name in TABLES:
                if name in state.changed_dimensions:
                    staging.add_dimension(TABLES[name], state.dimensions[name])
            staging.seal()
            report_progress("staging", 1, 1)
            fault_point("before_commit")
            report_progress("committing", 0, 1)
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
                                "quarantine_path": load.quarantine_path,
                            }
                            for load in loads
                        ],
                    )
                connection.execute(
                    sa.update(db.ingestion_runs)
                    .where(db.ingestion_runs.c.run_id == run_id)
                    .values(status="committed", finished_at=datetime.now(UTC))
                )
            committed = True
            fault_point("after_commit")
            lake.roll_forward(settings, run_id, after_move=lambda: fault_point("mid_move"))
            report_progress("committing", 1, 1)
        except BaseException as exc:
            if not committed:
                lake.discard(settings, run_id)
                message = str(exc) if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
                lake.mark_run_failed(settings, run_id, message)
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
    label = source or ", ".join(str(path) for path in paths)
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


def quarantine_files(settings: Settings) -> list[Path]:
    """All quarantine files, oldest run first."""
    root = settings.quarantine
    return sorted(root.glob("*/*.parquet")) if root.is_dir() else []
