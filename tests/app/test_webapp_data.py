"""The app's data layer outside the app: the upload path, the quarantine browser's path guard, exports
and date presets."""

from __future__ import annotations

import io
from datetime import date

import openpyxl
import polars as pl
import pytest

from core import access
from core.config import Settings
from tests.builders import valid_tables
from webapp import data as app_data


def test_upload_ingests_through_the_cli_path(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFTBOARD_HOME", str(sqlite_settings.home))
    ops = access.User("o", "o", "ops", None)
    merchants = valid_tables()["merchants"]
    report = app_data.ingest_upload(ops, "merchants.csv", merchants.write_csv().encode(), None)
    assert report.status == "committed"
    assert report.rows_loaded == merchants.height
    runs = app_data.ingestion_runs(ops)
    assert runs.height == 1
    assert runs["rows_loaded"][0] == merchants.height
    assert runs["user"][0] == "o"
    again = app_data.ingest_upload(ops, "merchants.csv", merchants.write_csv().encode(), "merchants")
    assert again.rows_loaded == 0  # re-running an ingest changes nothing
    scoped = access.User("m", "m", "merchant_success", frozenset({"m1"}))
    with pytest.raises(PermissionError):
        app_data.ingest_upload(scoped, "merchants.csv", b"", None)
    with pytest.raises(PermissionError):
        app_data.ingestion_runs(scoped)


def test_quarantine_reader_stays_inside_the_quarantine(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFTBOARD_HOME", str(sqlite_settings.home))
    ops = access.User("o", "o", "ops", None)
    folder = sqlite_settings.quarantine / "run1"
    folder.mkdir(parents=True)
    pl.DataFrame(
        {"x": ["a"], "_reason": ["bad"], "_raw": ["a,"], "_row": [3], "_column": ["x"], "_line": [4]}
    ).write_parquet(folder / "t.parquet")
    (sqlite_settings.home / "secret.parquet").write_bytes(b"not for you")
    files = app_data.quarantine_files(ops)
    assert files["file"].to_list() == ["run1/t.parquet"]
    assert files["rows"].to_list() == [1]
    # where it is in the file and why first, the row's own cells after
    shown = app_data.quarantine_rows(ops, "run1/t.parquet").columns
    assert shown == ["_line", "_row", "_column", "_reason", "_raw", "x"]
    with pytest.raises(FileNotFoundError):
        app_data.quarantine_rows(ops, "../secret.parquet")


def test_exports_hold_every_row_with_formats() -> None:
    frame = pl.DataFrame(
        {
            "creator_id": [f"c{i:06d}" for i in range(2_500)],
            "gmv": [1.5] * 2_500,
            "ctr": [0.1] * 2_500,
            "tier": pl.Series(["nano"] * 2_500, dtype=pl.Categorical),
        }
    )
    assert pl.read_csv(io.BytesIO(app_data.csv_bytes(frame))).height == 2_500
    workbook = openpyxl.load_workbook(
        io.BytesIO(
            app_data.xlsx_bytes({"Creators": frame, "creators": frame.head(3), "a/b:c": frame.head(1)})
        )
    )
    # the reports' naming rule (`reports.render_xlsx.sheet_name`): valid, unique without regard to case
    assert workbook.sheetnames == ["Creators", "creators (2)", "a b c"]
    sheet = workbook["Creators"]
    assert sheet.max_row == 2_501
    assert "$" in sheet["B2"].number_format
    assert "%" in sheet["C2"].number_format


def test_exported_cells_never_run_as_formulas() -> None:
    """A handle typed as a formula reads as text in the CSV and in the workbook (OWASP's CSV injection)."""
    frame = pl.DataFrame({"handle": ['=HYPERLINK("http://x","y")', "@cmd", "plain"], "gmv": [-1.0, 2.0, 3.0]})
    back = pl.read_csv(io.BytesIO(app_data.csv_bytes(frame)))
    assert back["handle"].to_list() == ['\'=HYPERLINK("http://x","y")', "'@cmd", "plain"]
    assert back["gmv"].to_list() == [-1.0, 2.0, 3.0]
    sheet = openpyxl.load_workbook(io.BytesIO(app_data.xlsx_bytes({"Creators": frame})))["Creators"]
    assert sheet["A2"].data_type == "s"
    assert sheet["A2"].value == '=HYPERLINK("http://x","y")'


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("7d", (date(2026, 11, 16), date(2026, 11, 22))),
        ("28d", (date(2026, 10, 26), date(2026, 11, 22))),
        ("91d", (date(2026, 8, 24), date(2026, 11, 22))),
        ("last_week", (date(2026, 11, 16), date(2026, 11, 22))),
    ],
)
def test_presets_relative_to_the_last_day(preset: str, expected: tuple[date, date]) -> None:
    assert app_data.preset_range(preset, date(2026, 11, 22)) == expected


def test_last_full_week_ends_on_the_sunday_before_a_midweek_day() -> None:
    assert app_data.preset_range("last_week", date(2026, 11, 25)) == (date(2026, 11, 16), date(2026, 11, 22))
    assert app_data.preset_range("custom", date(2026, 11, 25), (date(2026, 11, 3), date(2026, 11, 1))) == (
        date(2026, 11, 1),
        date(2026, 11, 3),
    )
