"""Formats, week and format parsing, sheet names and meeting notes (no build needed)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core import metrics
from core.config import Settings
from reports.common import parse_week, week_label
from reports.model import ReportError, format_of, format_value
from reports.notes import MAX_NOTES_CHARS, notes_path, read_notes, save_notes
from reports.render import parse_formats
from reports.render_xlsx import sheet_name


def test_formats_come_from_the_metric_dictionary() -> None:
    assert format_of("gmv").excel == '"$"#,##0'
    assert format_of("ctr").excel == "0.00%"
    assert format_value(1234567.4, "gmv") == "$1,234,567"
    assert format_value(-12.5, "usd") == "-$12"
    assert format_value(52.171, "aov") == "$52.17"
    assert format_value(0.0438, "cvr") == "4.38%"
    assert format_value(-0.1253, "pct_change") == "-12.5%"
    assert format_value(None, "gmv") == "–"
    assert format_value(float("nan"), "orders") == "–"
    assert format_value(date(2026, 11, 16), "date") == "2026-11-16"
    with pytest.raises(KeyError, match="unknown format key"):
        format_of("nope")


def test_weeks() -> None:
    assert parse_week("2026-W47") == date(2026, 11, 16)
    assert week_label(date(2026, 11, 16)) == "2026-W47"
    assert week_label(date(2026, 1, 1) - (date(2026, 1, 1) - date(2025, 12, 29))) == "2026-W01"
    with pytest.raises(ReportError, match="not an ISO week"):
        parse_week("2026-47")
    with pytest.raises(ReportError, match="does not exist"):
        parse_week("2026-W54")


def test_parse_formats() -> None:
    assert parse_formats("PDF, xlsx,pdf") == ("pdf", "xlsx")
    with pytest.raises(ReportError, match="unknown format"):
        parse_formats("pdf,doc")
    with pytest.raises(ReportError, match="no format"):
        parse_formats(" , ")


def test_sheet_names_are_valid_and_unique() -> None:
    used: set[str] = set()
    assert sheet_name("Trends: GMV / orders [6 weeks]", used) == "Trends  GMV   orders  6 weeks"
    long = "x" * 40
    first, second = sheet_name(long, used), sheet_name(long, used)
    assert len(first) == len(second) == 31
    assert first != second


def test_notes_round_trip(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "home")
    assert read_notes(settings, "2026-W47").text == ""
    saved = save_notes(settings, "2026-W47", "Ünïcode ✓\nsecond line", user="ana")
    again = read_notes(settings, "2026-W47")
    assert again.text == "Ünïcode ✓\nsecond line"
    assert again.updated_by == "ana"
    assert again.updated_at == saved.updated_at
    assert read_notes(settings, "2026-W47", owner="ms").text == ""
    save_notes(settings, "2026-W47", "mine", owner="ms")
    assert read_notes(settings, "2026-W47", owner="ms").text == "mine"
    assert read_notes(settings, "2026-W47").text.startswith("Ünïcode")
    assert not list((tmp_path / "home" / "notes").glob(".*.tmp"))


def test_notes_reject_paths_and_huge_text(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "home")
    with pytest.raises(ReportError, match="ISO week"):
        notes_path(settings, "../../etc/passwd")
    with pytest.raises(ReportError, match="plain user name"):
        notes_path(settings, "2026-W47", owner="../x")
    with pytest.raises(ReportError, match="limited"):
        save_notes(settings, "2026-W47", "x" * (MAX_NOTES_CHARS + 1))


def test_a_share_column_has_one_number_of_decimals() -> None:
    # the merchant report's percentile column read "98.8%" beside "6.76%" (2 decimals under 10%)
    assert [format_value(v, "ratio") for v in (0.988, 0.0676, 0.075)] == ["98.8%", "6.8%", "7.5%"]
    # a metric reads as its display rule says, as in the app's grids and cards
    ctr = metrics.metric("ctr").display
    assert [format_value(v, "ctr") for v in (0.08, 0.0284)] == [ctr.text(0.08), ctr.text(0.0284)]
    assert len({len(format_value(v, "ctr").rstrip("%").partition(".")[2]) for v in (0.08, 0.0284)}) == 1
