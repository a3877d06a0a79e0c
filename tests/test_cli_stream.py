"""`liftboard stream` and `liftboard demo --stream` against a real ``redis-server``: exit codes, the line
per micro-batch, Ctrl-C, and a replay's rows in the lake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from core.config import Settings
from core.schema import DIMENSION_TABLES
from datastore import db, lake
from datastore.ingest import ingest_files
from datastore.stream import StreamSource, connect, parse_streams, pending_count, publish_frame
from liftboard.cli import app
from tests.builders import valid_tables, write_all

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LIFTBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIFTBOARD_DATABASE_URL", raising=False)
    return Settings.from_env()


def with_dimensions_and_events(settings: Settings, directory: Path, url: str) -> StreamSource:
    db.upgrade_db(settings)
    tables = valid_tables()
    ingest_files(write_all(directory, "parquet", {name: tables[name] for name in DIMENSION_TABLES}), settings)
    source = StreamSource(url, parse_streams("orders,engagement,content"))
    client = connect(url)
    for name in ("content", "engagement", "orders"):
        publish_frame(client, source, name, tables[name])
    client.close()
    return source


def test_stream_prints_a_line_per_batch_and_folds_interests(
    home: Settings, tmp_path: Path, redis_url: str
) -> None:
    source = with_dimensions_and_events(home, tmp_path / "dims", redis_url)

    result = runner.invoke(
        app, ["stream", "--source", redis_url, "--once", "--batch", "6", "--block-ms", "50"]
    )

    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("run ")]
    assert len(lines) == 2
    assert (
        "6 entries (content 3, engagement 3), 6 loaded, 0 updated, 0 quarantined, 0 duplicate(s)" in lines[0]
    )
    assert "4 entries (orders 4), 4 loaded" in lines[1]
    assert "2 batch(es), 10 entries, 10 loaded, 0 quarantined, 0 duplicate(s)" in result.output
    assert (home.snapshots / "matching" / "interest_state.json").is_file()
    assert lake.scan_table("orders", home).collect().height == 4
    assert pending_count(connect(redis_url), source) == 0
    again = runner.invoke(app, ["stream", "--source", redis_url, "--once", "--block-ms", "50"])
    assert again.exit_code == 0
    assert "nothing to consume" in again.output


def test_ctrl_c_finishes_the_batch_and_stops(home: Settings, tmp_path: Path, redis_url: str) -> None:
    source = with_dimensions_and_events(home, tmp_path / "dims", redis_url)
    env = {**os.environ, "LIFTBOARD_HOME": str(home.home), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "liftboard.cli", "stream", "--source", redis_url, "--block-ms", "100"]
    consumer = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout is not None
        first = consumer.stdout.readline()  # the first committed batch (the consumer then waits for more)
        assert first.startswith("run "), first + (consumer.stderr.read() if consumer.stderr else "")
        consumer.send_signal(signal.SIGINT)
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    assert "1 batch(es), 10 entries, 10 loaded" in out
    assert "stopping after this batch" in err
    assert pending_count(connect(redis_url), source) == 0


def test_stream_errors_are_clear(home: Settings, redis_url: str) -> None:
    db.upgrade_db(home)
    unknown = runner.invoke(app, ["stream", "--source", redis_url, "--streams", "orders,buyers"])
    assert unknown.exit_code == 2
    assert "'buyers' is not a fact table" in unknown.output
    unreachable = runner.invoke(app, ["stream", "--source", "redis://127.0.0.1:1/0", "--once"])
    assert unreachable.exit_code == 2
    assert "cannot reach Redis" in unreachable.output
    no_stream = runner.invoke(app, ["demo", "--scale", "tiny", "--days", "3"])
    assert no_stream.exit_code == 2
    assert "--speed and --days need --stream" in no_stream.output


@pytest.mark.slow
def test_demo_stream_replays_the_last_days_and_the_consumer_loads_them(
    home: Settings, redis_url: str
) -> None:
    replayed = runner.invoke(app, ["demo", "--scale", "tiny", "--stream", redis_url, "--days", "2"])

    assert replayed.exit_code == 0, replayed.output
    assert "dimensions ingested as files" in replayed.output
    consumed = runner.invoke(app, ["stream", "--source", redis_url, "--once", "--batch", "100000"])
    assert consumed.exit_code == 0, consumed.output
    assert " 0 quarantined" in consumed.output.splitlines()[-1]
    inputs = home.incoming / "tiny-42"
    for name in ("content", "engagement", "orders"):
        files = sorted(str(path) for path in inputs.glob(f"{name}-w*.parquet"))
        expected = pl.scan_parquet(files).select(pl.len()).collect().item()
        assert lake.scan_table(name, home).select(pl.len()).collect().item() == expected
