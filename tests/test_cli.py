"""The CLI, through typer's runner: exit codes and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import Settings
from datastore import db, lake
from datastore.ingest import ingest_files
from liftboard.cli import app
from tests.builders import NOW, valid_tables, write, write_all

WIDE = {"COLUMNS": "250"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])

    assert result.exit_code in (0, 2)
    assert "ingest" in result.output
    assert "status" in result.output


def test_db_upgrade(runner: CliRunner, empty_settings: Settings) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=WIDE)

    assert result.exit_code == 0, result.output
    assert f"upgraded from revision (empty) to {db.head_revision()}" in result.output
    assert db.count_rows("ingestion_runs", empty_settings) == 0


def test_ingest_prints_the_report(runner: CliRunner, settings: Settings, tmp_path: Path) -> None:
    files = write_all(tmp_path / "in", "csv")

    result = runner.invoke(app, ["ingest", *map(str, files)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "orders.csv" in result.output
    assert "total" in result.output
    assert "committed: 23 row(s) loaded" in result.output
    assert "warning" not in result.output


def test_ingest_warns_about_quarantined_rows_but_succeeds(
    runner: CliRunner, sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "merchants.csv"
    path.write_text(
        "merchant_id,name,joined_on,region,category,rating,ships_in_days\n"
        "m1,A,2024-01-01,US,home,4,1\n"
        "m2,B,2024-01-01,US,home,9,1\n",
        encoding="utf-8",
    )

    result = runner.invoke(app, ["ingest", str(path)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "warning: 1 row(s) quarantined" in result.output
    assert str(sqlite_settings.quarantine) in result.output


def test_ingest_says_which_strategy_names_it_read_as_aliases(
    runner: CliRunner, sqlite_settings: Settings, tmp_path: Path
) -> None:
    creators = write(valid_tables()["creators"], tmp_path / "creators.csv")
    interventions = tmp_path / "interventions.csv"
    interventions.write_text(
        "intervention_id,entity_kind,entity_id,strategy,assigned_on,arm,assignment\n"
        "i1,creator,c000001,live_training,2024-05-01,treatment,randomized\n",
        encoding="utf-8",
    )

    result = runner.invoke(app, ["ingest", str(creators), str(interventions)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "interventions: 1 row(s) with strategy 'live_training' read as live_coaching" in result.output


def test_ingest_error_exits_2_without_a_traceback(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"")

    result = runner.invoke(app, ["ingest", str(path)], env=WIDE)

    assert result.exit_code == 2
    assert f"error: {path}: file is empty (0 bytes)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "nothing to ingest"),
        (["--query", "SELECT 1"], "--source-table and --query need --source-url"),
        (["--source-url", "sqlite://", "--source-table", "x"], "--source-url needs --table"),
    ],
)
def test_ingest_argument_errors(
    runner: CliRunner, sqlite_settings: Settings, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["ingest", *arguments], env=WIDE)

    assert result.exit_code == 2
    assert message in result.output


def test_ingest_from_a_sql_source(runner: CliRunner, settings: Settings, tmp_path: Path) -> None:
    from tests.datastore.ingest_support import warehouse

    url = warehouse(tmp_path)

    result = runner.invoke(
        app,
        ["ingest", "--source-url", url, "--source-table", "creator_export", "--table", "creators"],
        env=WIDE,
    )

    assert result.exit_code == 0, result.output
    assert "creator_export" in result.output
    assert "warning: 1 row(s) quarantined" in result.output
    assert db.count_rows("creators", settings) == 3


def test_status_shows_tables_runs_and_quarantine(
    runner: CliRunner, settings: Settings, tmp_path: Path
) -> None:
    runner.invoke(app, ["ingest", *map(str, write_all(tmp_path / "in"))], env=WIDE)
    empty = tmp_path / "orders.csv"
    empty.write_bytes(b"")
    runner.invoke(app, ["ingest", str(empty)], env=WIDE)

    result = runner.invoke(app, ["status"], env=WIDE)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    orders = next(line for line in lines if line.startswith("│ orders"))
    assert "4" in orders
    assert "2024-06-01" in orders
    assert "2024-06-03" in orders
    assert "committed" in result.output
    assert "failed" in result.output
    assert "file is empty" in result.output
    assert "quarantine: 0 row(s) in 0 file(s)" in result.output


def test_status_on_an_empty_home(runner: CliRunner, sqlite_settings: Settings) -> None:
    result = runner.invoke(app, ["status"], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "creators" in result.output


def test_ingest_with_explicit_table(runner: CliRunner, sqlite_settings: Settings, tmp_path: Path) -> None:
    from tests.builders import valid_tables

    path = write(valid_tables()["merchants"], tmp_path / "export.parquet")

    result = runner.invoke(app, ["ingest", "--table", "merchants", str(path)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert db.count_rows("merchants", sqlite_settings) == 2


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app tests' tiny build (built once per session, whichever file asks first); read-only here."""
    from tests.app.conftest import built_tiny_home

    return built_tiny_home(tmp_path_factory)


def test_pilot_prints_the_proposal_and_writes_interventions_that_ingest_cleanly(
    runner: CliRunner, built_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import shutil

    import polars as pl

    from core.schema import table_spec
    from strategies.catalog import load_catalog

    home = tmp_path / "home"
    shutil.copytree(built_home, home, ignore=shutil.ignore_patterns("incoming", "truth", ".ready"))
    monkeypatch.setenv("LIFTBOARD_HOME", str(home))
    out = tmp_path / "pilot" / "free_samples.csv"

    result = runner.invoke(
        app, ["pilot", "--strategy", "free_samples", "--mde", "0.2", "--out", str(out)], env=WIDE
    )

    assert result.exit_code == 0, result.output
    assert "Average effect on 28-day net GMV, 95% interval (build as of 2026-11-23)" in result.output
    assert "Free samples to creators (free_samples)" in result.output
    size = re.search(r"Size: (\d+) merchants per arm", result.output)
    assert size is not None
    per_arm = int(size.group(1))
    assert "Who: a seeded random draw of the" in result.output
    assert "results can be read in a build on or after 2026-12-21" in result.output
    fee = load_catalog().get("free_samples").cost.amount
    assert (
        f"Cost: ${fee * per_arm:,.0f} expected, ${fee:,.0f} per merchant × {per_arm} treated."
        in result.output
    )
    assert f"wrote {2 * per_arm} interventions row(s) to {out}" in result.output

    spec = table_spec("interventions")
    rows = pl.read_csv(out, schema=spec.schema)
    assert rows.columns == spec.columns
    assert rows["intervention_id"].is_unique().all()
    assert set(rows["assignment"]) == {"randomized"}
    assert set(rows["strategy"]) == {"free_samples"}
    assert set(rows["entity_kind"]) == {"merchant"}
    assert rows.filter(pl.col("arm") == "treatment").height == per_arm
    assert rows.filter(pl.col("arm") == "control").height == per_arm

    loaded = runner.invoke(app, ["ingest", str(out), "--table", "interventions"], env=WIDE)

    assert loaded.exit_code == 0, loaded.output
    assert f"committed: {2 * per_arm} row(s) loaded" in loaded.output
    assert "warning" not in loaded.output  # no row quarantined
    # the enrolled merchants are now under treatment: the next proposal leaves them out
    again = runner.invoke(
        app, ["pilot", "--strategy", "free_samples", "--out", str(tmp_path / "next.parquet")]
    )
    assert again.exit_code == 0, again.output
    assert not set(pl.read_parquet(tmp_path / "next.parquet")["entity_id"]) & set(rows["entity_id"])
    db.dispose_engine(Settings.from_env(home=home))


def test_pilot_errors_are_clear(runner: CliRunner, sqlite_settings: Settings, tmp_path: Path) -> None:
    no_build = runner.invoke(app, ["pilot"], env=WIDE)
    assert no_build.exit_code == 2
    assert "run `liftboard build` first" in no_build.output
    bad_mde = runner.invoke(app, ["pilot", "--mde", "0"], env=WIDE)
    assert bad_mde.exit_code == 2
    assert "the minimum detectable effect must be in (0, 5]" in bad_mde.output


def test_lake_optimize_and_vacuum(runner: CliRunner, sqlite_settings: Settings, tmp_path: Path) -> None:
    ingest_files(write_all(tmp_path / "a"), sqlite_settings, now=NOW)
    more = valid_tables()["orders"].with_columns(order_id=valid_tables()["orders"]["order_id"] + "-b")
    ingest_files(write_all(tmp_path / "b", "parquet", {"orders": more}), sqlite_settings, now=NOW)
    rows = lake.scan_table("orders", sqlite_settings).collect().height

    optimized = runner.invoke(app, ["lake", "optimize"])
    dry = runner.invoke(app, ["lake", "vacuum", "--retention-hours", "0", "--dry-run"])
    vacuumed = runner.invoke(app, ["lake", "vacuum", "--retention-hours", "0"])

    assert optimized.exit_code == 0, optimized.output
    assert "orders" in optimized.output
    assert "readers now read run" in optimized.output
    assert dry.exit_code == 0, dry.output
    assert "orders: would delete 6 file(s)" in dry.output
    assert vacuumed.exit_code == 0, vacuumed.output
    assert "orders: deleted 6 file(s)" in vacuumed.output
    assert lake.scan_table("orders", sqlite_settings).collect().height == rows
