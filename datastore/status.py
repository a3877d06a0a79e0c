"""The state of an installation's data: how fresh each canonical table is, the ingestion ledger and
the quarantine. One reading for the CLI's ``liftboard status`` and the app's Data page."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import sqlalchemy as sa

from core.config import Settings
from core.schema import TABLES, table_spec
from datastore import db, lake

DATE_COLUMNS: dict[str, str] = {
    "creators": "joined_on",
    "merchants": "joined_on",
    "products": "listed_on",
    "showcase": "added_on",
    "interventions": "assigned_on",
}
"""The date column of each dimension table (facts use their partition column)."""

FRESHNESS_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "storage": pl.String(),
    "rows": pl.Int64(),
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "files": pl.Int64(),
    "last_written": pl.Datetime("us", "UTC"),
    "version": pl.Int64(),
}

INGESTION_RUNS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "started_at": pl.Datetime("us", "UTC"),
    "finished_at": pl.Datetime("us", "UTC"),
    "status": pl.String(),
    "user": pl.String(),
    "source": pl.String(),
    "error": pl.String(),
    "rows_read": pl.Int64(),
    "rows_loaded": pl.Int64(),
    "rows_updated": pl.Int64(),
    "rows_quarantined": pl.Int64(),
    "rows_duplicate": pl.Int64(),
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(),
    "rows": pl.Int64(),
    "written": pl.Datetime("us", "UTC"),
}


def date_column(table: str) -> str:
    """The column a table's days are read from: the partition column of a fact, else `DATE_COLUMNS`."""
    return TABLES[table].partition_by or DATE_COLUMNS[table]


def _day(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def table_freshness(settings: Settings) -> pl.DataFrame:
    """Per canonical table: where it is stored, its rows, first and last day, files, last write and the
    Delta version read (all tables at the versions of one run: ``lake.lake_version``).

    Rows of a state-DB table are counted in the DB (null when it cannot be read); days, files and the
    last write come from the lake (a dimension's lake mirror). Days are those of the table's
    `date_column`; times are UTC.
    """
    rows = []
    version = lake.lake_version(settings)
    for name, spec in TABLES.items():
        details = lake.table_details(name, settings, version)
        column = date_column(name)
        stats = (
            lake.scan_table(name, settings, version)
            .select(
                pl.len().alias("rows"),
                pl.col(column).min().alias("first"),
                pl.col(column).max().alias("last"),
            )
            .collect()
            .row(0, named=True)
        )
        count: int | None = int(stats["rows"])
        if table_spec(name).storage == "db":
            try:
                count = db.count_rows(name, settings)
            except sa.exc.SQLAlchemyError:
                count = None
        rows.append(
            {
                "table": name,
                "storage": spec.storage,
                "rows": count,
                "first_day": _day(stats["first"]),
                "last_day": _day(stats["last"]),
                "files": details["files"],
                "last_written": details["last_written"],
                "version": details["version"],
            }
        )
    return pl.DataFrame(rows, schema=FRESHNESS_SCHEMA)


def ingestion_runs(settings: Settings, limit: int = 200) -> pl.DataFrame:
    """The newest ``limit`` ingestion runs, newest first, with their row totals over every load."""
    runs, loads = db.ingestion_runs, db.ingestion_loads
    columns = (
        runs.c.run_id,
        runs.c.started_at,
        runs.c.finished_at,
        runs.c.status,
        runs.c.user,
        runs.c.source,
        runs.c.error,
    )
    query = (
        sa.select(
            *columns,
            sa.func.coalesce(sa.func.sum(loads.c.rows_read), 0).label("rows_read"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_loaded), 0).label("rows_loaded"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_updated), 0).label("rows_updated"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_quarantined), 0).label("rows_quarantined"),
            sa.func.coalesce(sa.func.sum(loads.c.rows_duplicate), 0).label("rows_duplicate"),
        )
        .select_from(runs.outerjoin(loads, loads.c.run_id == runs.c.run_id))
        .group_by(*columns)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(limit)
    )
    db.require_current(settings)
    with db.connect(settings) as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    return pl.DataFrame(rows, schema=INGESTION_RUNS_SCHEMA, strict=False)


def ingestion_loads(settings: Settings, run_id: str) -> pl.DataFrame:
    """The per-file loads of one ingestion run (an empty frame for an unknown run)."""
    loads = db.ingestion_loads
    with db.connect(settings) as connection:
        rows = [
            dict(r._mapping) for r in connection.execute(sa.select(loads).where(loads.c.run_id == run_id))
        ]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def quarantined_rows(settings: Settings) -> int:
    """Rows quarantined over every ingestion run (from the ledger)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(db.ingestion_loads.c.rows_quarantined), 0))
    with db.connect(settings) as connection:
        return int(connection.execute(query).scalar_one())


def quarantine_files(settings: Settings) -> pl.DataFrame:
    """Every quarantine Parquet file (path relative to the quarantine folder) with its row count
    (null for a file that cannot be read) and when it was written (UTC)."""
    root = settings.quarantine
    rows = []
    for path in sorted(root.rglob("*.parquet")) if root.is_dir() else []:
        try:
            count = pl.scan_parquet(path).select(pl.len()).collect().item()
        except Exception:  # noqa: BLE001 - a broken file is listed with no count
            count = None
        rows.append(
            {
                "file": path.relative_to(root).as_posix(),
                "rows": count,
                "written": datetime.fromtimestamp(path.stat().st_mtime, tz=UTC),
            }
        )
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA)
