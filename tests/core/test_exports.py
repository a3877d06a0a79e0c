"""Spreadsheet-safe CSV: no text cell can run as a formula, everything else is written as it is."""

from __future__ import annotations

import io
from datetime import date

import polars as pl
from polars.testing import assert_frame_equal

from core.exports import csv_bytes, formula_safe


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
