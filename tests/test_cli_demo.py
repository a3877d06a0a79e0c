"""`liftboard demo` and `liftboard recommend` through typer's runner: exit codes and outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liftboard.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIFTBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIFTBOARD_DATABASE_URL", raising=False)
    return tmp_path / "home"


def test_demo_then_recommend(home: Path) -> None:
    result = runner.invoke(app, ["demo", "--scale", "tiny"])
    assert result.exit_code == 0, result.output
    assert "orders" in result.output
    assert (home / "truth" / "effects.parquet").exists()
    again = runner.invoke(app, ["demo", "--scale", "tiny", "--if-missing"])
    assert again.exit_code == 0
    assert "nothing to do" in again.output
    rec = runner.invoke(app, ["recommend", "--budget", "5000"])
    assert rec.exit_code == 0, rec.output
    assert "Recommendation run" in rec.output
    assert "allocation:" in rec.output
    spent = re.search(r"cost \$([\d,]+)", rec.output)
    assert spent is not None
    assert 0 < int(spent.group(1).replace(",", "")) <= 5000


def test_bad_arguments_are_clear_errors(home: Path) -> None:
    bad_scale = runner.invoke(app, ["demo", "--scale", "huge"])
    assert bad_scale.exit_code == 2
    assert "unknown scale 'huge'" in bad_scale.output
    bad_date = runner.invoke(app, ["recommend", "--as-of", "yesterday"])
    assert bad_date.exit_code == 2
    assert "is not a date" in bad_date.output
    not_migrated = runner.invoke(app, ["recommend"])
    assert not_migrated.exit_code == 3
    assert "run `liftboard db upgrade`" in not_migrated.output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    empty = runner.invoke(app, ["recommend"])
    assert empty.exit_code == 1
    assert "no orders in the lake" in empty.output


def test_ingest_watch_is_the_watch_command(home: Path, tmp_path: Path) -> None:
    clash = runner.invoke(app, ["ingest", "some.csv", "--watch", str(tmp_path)])
    assert clash.exit_code == 2
    assert "--watch takes no files" in clash.output
    missing = runner.invoke(app, ["ingest", "--watch", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "nope" in missing.output
