"""`liftboard report weekly|merchant` through typer's runner: files, summary and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from liftboard.cli import app
from tests.reports.conftest import WEEK, ReportWorld

runner = CliRunner()


@pytest.fixture
def home(world: ReportWorld, monkeypatch: pytest.MonkeyPatch) -> ReportWorld:
    monkeypatch.setenv("LIFTBOARD_HOME", str(world.settings.home))
    return world


def test_weekly_writes_the_files_and_a_summary(home: ReportWorld, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["report", "weekly", "--week", WEEK, "--format", "xlsx,html", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [f"weekly-review-{WEEK}.html", f"weekly-review-{WEEK}.xlsx"]
    assert "wrote 2 file(s)" in result.output
    assert f"weekly-review-{WEEK}.xlsx" in result.output


def test_weekly_defaults_to_the_last_complete_week(home: ReportWorld, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "weekly", "--format", "html", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"weekly-review-{WEEK}.html").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["weekly", "--week", "2026-W99"], "does not exist"),
        (["weekly", "--week", "2025-W01"], "not a complete week"),
        (["weekly", "--format", "pdf,docx"], "unknown format"),
        (["weekly", "--user", "nobody"], "unknown user"),
        (["merchant", "--merchant", "m99999"], "not found"),
    ],
)
def test_bad_arguments_exit_2(home: ReportWorld, tmp_path: Path, arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", *arguments, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not any(tmp_path.iterdir())


def test_no_build_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTBOARD_HOME", str(tmp_path / "empty"))
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["report", "weekly", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "liftboard build" in result.output


def test_merchant_success_user_exports_only_their_merchants(home: ReportWorld, tmp_path: Path) -> None:
    inside = sorted(home.scoped_merchants)[0]
    ok = runner.invoke(
        app,
        [
            "report",
            "merchant",
            "--merchant",
            inside,
            "--format",
            "xlsx",
            "--user",
            "ms",
            "--out",
            str(tmp_path),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / f"merchant-{inside}-{WEEK}.xlsx").is_file()
    outside = next(m for m in ("m00001", "m00002", "m00003", "m00004") if m not in home.scoped_merchants)
    denied = runner.invoke(
        app,
        [
            "report",
            "merchant",
            "--merchant",
            outside,
            "--format",
            "xlsx",
            "--user",
            "ms",
            "--out",
            str(tmp_path),
        ],
    )
    assert denied.exit_code == 2
    assert "not found" in denied.output
    scoped = runner.invoke(
        app, ["report", "weekly", "--format", "html", "--user", "ms", "--out", str(tmp_path / "weekly")]
    )
    assert scoped.exit_code == 0, scoped.output
    page = (tmp_path / "weekly" / f"weekly-review-{WEEK}-ms.html").read_text(encoding="utf-8")
    assert "scope: 2 merchant(s) of ms" in page
