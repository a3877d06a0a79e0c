"""Helpers shared by the ingest tests: snapshots of lake and DB, ledger reads, input builders, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from polars.testing import assert_frame_equal

from core.config import Settings
from core.schema import DIMENSION_TABLES, TABLES
from datastore import db, lake
from datastore.ingest import IngestReport, ingest_files
from tests.builders import NOW, as_text, canonical, valid_tables, write, write_all
from tests.objectstore import s3_client

REPO = Path(__file__).resolve().parents[2]


def lake_options(settings: Settings) -> dict[str, str] | None:
    """The storage options of the test's lake (an object store's endpoint and keys; None for a folder)."""
    return dict(settings.lake_storage_options) or None


def lake_snapshot(settings: Settings) -> dict[str, str]:
    """Every file under the lake (a folder, or the lake's prefix on the test object store) with a hash of
    its bytes."""
    if settings.lake_url.startswith("s3://"):
        client = s3_client(dict(settings.lake_storage_options))
        bucket, _, prefix = settings.lake_url.removeprefix("s3://").partition("/")
        snapshot = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                snapshot[item["Key"].removeprefix(f"{prefix}/")] = hashlib.sha256(body).hexdigest()
        return dict(sorted(snapshot.items()))
    if not settings.lake.exists():
        return {}
    return {
        str(path.relative_to(settings.lake)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(settings.lake.rglob("*"))
        if path.is_file()
    }


def db_snapshot(settings: Settings) -> dict[str, pl.DataFrame]:
    db.require_current(settings)
    return {name: db.read_table(name, settings) for name in DIMENSION_TABLES}


def assert_same_db(left: dict[str, pl.DataFrame], right: dict[str, pl.DataFrame]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert_frame_equal(left[name], right[name])


def ledger(settings: Settings) -> list[sa.Row]:
    with db.engine_for(settings).connect() as connection:
        runs = connection.execute(sa.select(db.ingestion_runs).order_by(db.ingestion_runs.c.started_at)).all()
    return list(runs)


def ledger_loads(settings: Settings, run_id: str) -> list[sa.Row]:
    with db.engine_for(settings).connect() as connection:
        query = sa.select(db.ingestion_loads).where(db.ingestion_loads.c.run_id == run_id)
        return list(connection.execute(query.order_by(db.ingestion_loads.c.load_id)).all())


def load_valid(settings: Settings, directory: Path, fmt: str = "parquet") -> IngestReport:
    return ingest_files(write_all(directory, fmt), settings, now=NOW)


def assert_counts_add_up(report: IngestReport) -> None:
    for load in report.loads:
        assert load.rows_read == (
            load.rows_loaded + load.rows_updated + load.rows_quarantined + load.rows_duplicate
        )


def assert_lake_holds(settings: Settings, expected: dict[str, pl.DataFrame]) -> None:
    for name, frame in expected.items():
        stored = lake.scan_table(name, settings).collect()
        assert stored.schema == TABLES[name].schema
        assert_frame_equal(canonical(stored, name), canonical(frame, name))
        if TABLES[name].storage == "db":
            assert_frame_equal(db.read_table(name, settings), canonical(frame, name))


def quarantine(report: IngestReport, table: str) -> pl.DataFrame:
    paths = [load.quarantine_path for load in report.loads if load.table == table and load.quarantine_path]
    assert len(paths) == 1, report
    return pl.read_parquet(paths[0])


ORDER_HEADER = (
    "order_id,ordered_at,buyer_id,creator_id,content_id,product_id,merchant_id,quantity,gmv,commission,status"
)


def orders_csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([ORDER_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


GOOD = {
    "order_id": "q1",
    "ordered_at": "2024-06-04T10:00:00",
    "buyer_id": "b9",
    "creator_id": "c000001",
    "content_id": "v0000001",
    "product_id": "p0000001",
    "merchant_id": "m00001",
    "quantity": "1",
    "gmv": "19.99",
    "commission": "2",
    "status": "completed",
}


def order_row(**changes: str) -> str:
    return ",".join({**GOOD, **changes}.values())


def orders_parquet_bytes(tmp_path: Path) -> bytes:
    return write(valid_tables()["orders"], tmp_path / "src" / "orders.parquet").read_bytes()


def warehouse(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    frame = as_text(valid_tables()["creators"]).with_columns(pl.col("followers").cast(pl.Int64))
    frame = pl.concat(
        [
            frame,
            pl.DataFrame(
                [{**frame.row(0, named=True), "creator_id": "c000009", "followers": -1}], schema=frame.schema
            ),
        ]
    )
    metadata = sa.MetaData()
    table = sa.Table(
        "creator_export",
        metadata,
        *(sa.Column(name, sa.BigInteger if name == "followers" else sa.Text) for name in frame.columns),
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(table), frame.to_dicts())
    engine.dispose()
    return url


CRASH_SCRIPT = """
import sys
from datetime import datetime, timezone
from datastore.ingest import ingest_files
from core.config import Settings
ingest_files(sys.argv[1:], Settings.from_env(), now=datetime(2025, 1, 1, tzinfo=timezone.utc))
"""


def crash_ingest(settings: Settings, stage: str, files: list[Path]) -> None:
    env = {
        **os.environ,
        "LIFTBOARD_HOME": str(settings.home),
        "LIFTBOARD_DATABASE_URL": settings.database_url,
        "LIFTBOARD_FAULT_INJECT": stage,
        "LIFTBOARD_LAKE_URL": settings.lake_url,
        "LIFTBOARD_LAKE_OPTIONS": json.dumps(dict(settings.lake_storage_options)),
        "PYTHONPATH": str(REPO),
    }
    completed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 137, completed.stderr
