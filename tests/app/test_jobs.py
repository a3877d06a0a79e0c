"""Background jobs (`liftboard.jobs`): an upload is ingested in a process of its own through the CLI's
ingest path, its state moves queued → running → done (or failed, with the error), its rows land in the
lake, bad rows in the quarantine, and the uploaded file is removed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from core import access
from core.config import Settings
from datastore import lake
from datastore.ingest import ingest_files
from datastore.status import ingestion_runs
from liftboard import jobs
from tests.builders import as_text, valid_tables, write_all
from webapp import data as app_data

pytestmark = pytest.mark.timeout(300)


def _chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    """``data`` in small pieces, as an upload is read (the job must put them back together in order)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _wait(settings: Settings, job_id: str, timeout: float = 120) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.read_job(settings, job_id)
        if not job.active:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.state} after {timeout:.0f} s")


@pytest.fixture
def marketplace(sqlite_settings: Settings, tmp_path: Path) -> Settings:
    """Every table but the orders, loaded: the orders a job ingests find their creators and products."""
    tables = {name: frame for name, frame in valid_tables().items() if name != "orders"}
    ingest_files(write_all(tmp_path / "dimensions", "csv", tables), sqlite_settings)
    return sqlite_settings


def test_an_upload_is_ingested_in_its_own_process(marketplace: Settings) -> None:
    settings = marketplace
    orders = as_text(valid_tables()["orders"])
    bad = orders.head(1).with_columns(
        order_id=pl.lit('=HYPERLINK("http://evil.example","x")'), quantity=pl.lit("0")
    )
    upload = pl.concat([orders, bad]).write_csv().encode()

    job = jobs.create_ingest_job(settings, "ops", "../../orders.csv", _chunks(upload))
    folder = jobs.job_dir(settings, job.job_id)
    assert job.state == "queued"
    assert job.bytes == len(upload)
    assert (folder / "input" / "orders.csv").read_bytes() == upload  # no directories from the name

    pid = jobs.start(settings, job.job_id)
    done = _wait(settings, job.job_id)

    assert pid != os.getpid()
    assert done.pid == pid  # recorded by the job's own process
    assert done.state == "done", done.error
    assert [state for state, _ in done.history] == ["queued", "running", "done"]
    assert done.started_at
    assert done.finished_at
    assert done.fraction == 1.0
    assert done.result is not None
    assert done.result["rows_read"] == 5
    assert done.result["rows_loaded"] == 4
    assert done.result["rows_quarantined"] == 1
    stored = lake.scan_table("orders", settings).collect()
    assert sorted(stored["order_id"]) == sorted(orders["order_id"])
    # the uploaded file is gone; the bad row is kept, with its reason, in the quarantine
    assert not (folder / "input").exists()
    (quarantined,) = done.result["quarantine_paths"]
    kept = pl.read_parquet(quarantined)
    assert kept["order_id"].to_list() == ['=HYPERLINK("http://evil.example","x")']
    assert "quantity" in kept["_reason"][0]
    runs = ingestion_runs(settings)
    run = runs.filter(pl.col("run_id") == done.result["run_id"]).row(0, named=True)
    assert (run["status"], run["user"], run["source"]) == ("committed", "ops", "upload:orders.csv")
    # status.json is whole JSON at every moment (written aside, then renamed): no temporary left behind
    assert json.loads((folder / "status.json").read_text())["state"] == "done"
    assert sorted(p.name for p in folder.iterdir()) == ["job.log", "status.json"]


def test_a_failing_job_records_its_error_and_removes_the_upload(marketplace: Settings) -> None:
    settings = marketplace
    job = jobs.submit_ingest(settings, "ops", "orders.csv", [b"order_id,colour\no1,red\n"])

    failed = _wait(settings, job.job_id)

    assert failed.state == "failed"
    assert [state for state, _ in failed.history] == ["queued", "running", "failed"]
    assert failed.error
    assert "colour" in failed.error or "missing" in failed.error
    assert failed.result is None
    assert not (jobs.job_dir(settings, job.job_id) / "input").exists()
    assert lake.scan_table("orders", settings).collect().height == 0
    assert "failed" in (jobs.job_dir(settings, job.job_id) / "job.log").read_text()


def test_a_job_whose_process_dies_is_failed(marketplace: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTBOARD_FAULT_INJECT", "before_commit")  # the ingest exits abruptly (code 137)
    orders = as_text(valid_tables()["orders"]).write_csv().encode()
    job = jobs.submit_ingest(marketplace, "ops", "orders.csv", [orders])

    dead = _wait(marketplace, job.job_id)

    assert dead.state == "failed"
    assert dead.error is not None
    assert "137" in dead.error
    assert not (jobs.job_dir(marketplace, job.job_id) / "input").exists()


def test_jobs_are_listed_newest_first_and_by_user(marketplace: Settings) -> None:
    first = jobs.create_ingest_job(marketplace, "ops", "orders.csv", [b"x"])
    second = jobs.create_ingest_job(marketplace, "ana", "orders.csv", [b"x"])

    assert [job.job_id for job in jobs.list_jobs(marketplace)] == [second.job_id, first.job_id]
    assert [job.job_id for job in jobs.list_jobs(marketplace, "ops")] == [first.job_id]
    with pytest.raises(jobs.JobNotFound):
        jobs.read_job(marketplace, "../../etc")
    with pytest.raises(jobs.JobNotFound):
        jobs.read_job(marketplace, "20990101T000000-000000-00000000")


def test_the_data_layer_streams_the_upload_and_releases_it(
    marketplace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFTBOARD_HOME", str(marketplace.home))
    ops = access.User("o", "o", "ops", None)
    data = as_text(valid_tables()["orders"]).write_csv().encode()
    reads: list[int] = []

    class Upload(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    upload = Upload(data)
    job = app_data.start_upload(ops, upload, "orders.csv", None)

    assert upload.getvalue() == b""  # the server keeps no copy
    assert reads
    assert all(0 < size <= app_data.UPLOAD_CHUNK for size in reads)  # read in chunks, never whole
    done = _wait(marketplace, job.job_id)
    assert done.state == "done", done.error
    frame = app_data.jobs_frame(app_data.upload_jobs(ops))
    assert frame.select("user", "file", "state", "rows_loaded").row(0) == ("o", "orders.csv", "done", 4)
    scoped = access.User("m", "m", "merchant_success", frozenset({"m1"}))
    with pytest.raises(PermissionError):
        app_data.start_upload(scoped, io.BytesIO(data), "orders.csv", None)
    assert app_data.upload_jobs(scoped) == []


def test_a_running_job_whose_process_is_gone_reads_as_failed(marketplace: Settings) -> None:
    """After a restart no thread waits for the job's process: reading the job notices it is gone."""
    job = jobs.create_ingest_job(marketplace, "ops", "orders.csv", [b"order_id\n"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = jobs.job_dir(marketplace, job.job_id)
    status = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**status, "state": "running", "pid": gone.pid}))

    failed = jobs.read_job(marketplace, job.job_id)

    assert failed.state == "failed"
    assert failed.error == "the job's process ended before finishing"
    assert not (folder / "input").exists()
    assert jobs.read_job(marketplace, job.job_id).state == "failed"  # recorded, not only shown


def test_a_job_never_started_reads_as_failed(marketplace: Settings) -> None:
    job = jobs.create_ingest_job(marketplace, "ops", "orders.csv", [b"order_id\n"])
    folder = jobs.job_dir(marketplace, job.job_id)
    status = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**status, "created_at": "2020-01-01T00:00:00+00:00"}))

    failed = jobs.read_job(marketplace, job.job_id)

    assert (failed.state, failed.error) == ("failed", "the job's process never started")
    assert jobs.read_job(marketplace, jobs.create_ingest_job(marketplace, "ops", "o.csv", []).job_id).active
