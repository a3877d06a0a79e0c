"""Seams a reader of a report notices: the week said twice in the header, a footnote printed twice, a
table row alone on a page, a justified paragraph with wide gaps, a lowercase "Why:", and differences of
rates read as relative changes (+107,823.4%) instead of percentage points."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from reports.merchant import _vs_median, _why, merchant_report
from reports.model import Report, Section, Table, format_value
from reports.render import render
from reports.weekly import weekly_review
from tests.reports import readers
from tests.reports.conftest import WEEK, ReportWorld


def _report(*sections: Section) -> Report:
    return Report(
        kind="weekly",
        title="Seams",
        period="2026-W47 (2026-11-16 – 2026-11-22)",
        filters={"week": "2026-W47"},
        build_id="test",
        generated_at=datetime(2026, 11, 23, tzinfo=UTC),
        sections=sections,
        slug="seams",
    )


def _pdf_pages(report: Report, tmp_path: Path) -> list[str]:
    readers.require_poppler()
    path = tmp_path / "report.pdf"
    path.write_bytes(render(report, "pdf"))
    return readers.pdf_text_pages(path)


@pytest.fixture(scope="module")
def weekly_pages(world: ReportWorld, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _pdf_pages(weekly_review(world.settings, WEEK), tmp_path_factory.mktemp("seams"))


def test_every_page_header_names_the_week_once(weekly_pages: list[str]) -> None:
    for number, page in enumerate(weekly_pages, start=1):
        header = next(line for line in page.splitlines() if line.strip())
        assert header.count(WEEK) == 1, f"page {number}: {header.strip()}"
        assert header.strip().startswith("Weekly business review · 2026-W47 (")


def test_each_trend_section_prints_its_footnote_once(world: ReportWorld, weekly_pages: list[str]) -> None:
    report = weekly_review(world.settings, WEEK)
    for key in ("trends_volume", "trends_activity"):
        assert len({chart.note for chart in report.section(key).charts}) == 1
    for page in weekly_pages:
        assert page.count("Months are calendar months") <= 1


def _rows_table(key: str, rows: int) -> Table:
    frame = pl.DataFrame(
        {"name": [f"{key} row {i:02d}" for i in range(rows)], "gmv": [1000.0 + i for i in range(rows)]}
    )
    return Table(key=key, title=f"Table {key}", frame=frame, formats={"gmv": "gmv"})


def test_a_table_that_fits_a_page_is_not_split_into_a_stub(tmp_path: Path) -> None:
    # a summary filling most of the page, then an 8-row table: a row or two would spill onto the next page
    summary = tuple(f"Line {i} of a long summary that fills the page before the table." for i in range(22))
    report = _report(Section(key="s", title="Section", summary=summary, tables=(_rows_table("t", 8),)))
    pages = _pdf_pages(report, tmp_path)
    holding = [n for n, page in enumerate(pages) if "t row" in page]
    assert len(holding) == 1, f"the table's rows are split over pages {holding}"
    assert "Table t" in pages[holding[0]]  # its title travels with it


def test_summary_paragraphs_are_left_aligned_without_wide_gaps(tmp_path: Path) -> None:
    line = " ".join(["Why: the average effect on similar merchants at its sales of the last 28 days"] * 3)
    pages = _pdf_pages(_report(Section(key="s", title="Section", summary=(line,))), tmp_path)
    body = [row for row in pages[-1].splitlines() if "average effect" in row]
    assert body
    assert not any(re.search(r"\S {3,}\S", row) for row in body), body


def test_why_starts_with_a_capital_and_skips_the_repeated_gain() -> None:
    text = "Commission boost: expected +$23 GMV over 28 days. of this, +$20 is the average effect."
    assert _why(text) == "Why: Of this, +$20 is the average effect."
    assert _why("Commission boost: expected +$0 GMV over 28 days.") == ""


@pytest.mark.parametrize(
    ("value", "median", "fmt", "shown"),
    [
        (-0.082, -0.032, "pct_change", "-5.0 pp"),  # a difference of two rates: points
        (0.0234, 0.0272, "ratio", "-0.4 pp"),
        (54_000.0, 50.0, "usd", "1,080.00×"),  # not +107,900.0%
        (1_865.0, 3_402.0, "usd", "-45.2%"),
        (10.0, 0.0, "usd", "–"),
    ],
)
def test_vs_median_reads_in_points_multiples_or_percent(
    value: float, median: float, fmt: str, shown: str
) -> None:
    result = _vs_median(value, median, fmt)
    key = result["vs_median_format"] or "pct_change"
    assert format_value(result["vs_median"], str(key)) == shown


def test_merchant_report_shows_rate_differences_in_points(world: ReportWorld) -> None:
    merchant = sorted(world.scoped_merchants)[0]
    table = merchant_report(world.settings, merchant, world.merchant_user).section("category").tables[0]
    shown = {row["measure"]: table.cell("vs_median", row) for row in table.display_rows()}
    for measure in (
        "CTR (28 days)",
        "CVR (28 days)",
        "Refund rate (91 days)",
        "GMV trend (28 vs prior 28 days)",
    ):
        assert shown[measure].endswith(" pp") or shown[measure] == "–", (measure, shown[measure])
    assert not any(re.fullmatch(r"[+-][\d,]{5,}\.\d%", text) for text in shown.values()), shown


def _long_table(key: str, rows: int, *, tall: bool) -> Table:
    """``rows`` rows named ``<key> row NN``; ``tall`` ones carry a long rationale like recommendations."""
    why = " ".join(["Live-stream coaching: expected +$18,646 GMV over 28 days from similar creators."] * 4)
    frame = pl.DataFrame(
        {
            "name": [f"{key} row {i:02d}" for i in range(rows)],
            "gmv": [1000.0 + i for i in range(rows)],
            **({"rationale": [why] * rows} if tall else {}),
        }
    )
    return Table(
        key=key,
        title=f"Table {key}",
        frame=frame,
        labels={"name": "Row name", "gmv": "Row sales"},
        formats={"gmv": "gmv"},
        widths={"rationale": 4.0},
    )


def _split_sections() -> tuple[Section, ...]:
    """Tables long enough to split, at every length over a page's worth of rows, some below a summary:
    whatever the page holds, one of them would leave a row or two alone on a page if nothing prevented it."""
    sections = []
    for rows in range(24, 64):
        summary = tuple(f"Summary line {i} above the table." for i in range(rows % 13))
        sections.append(
            Section(
                key=f"s{rows}",
                title=f"Short rows {rows}",
                summary=summary,
                tables=(_long_table(f"s{rows}", rows, tall=False),),
            )
        )
    for rows in range(6, 20):
        sections.append(
            Section(
                key=f"t{rows}", title=f"Tall rows {rows}", tables=(_long_table(f"t{rows}", rows, tall=True),)
            )
        )
    return tuple(sections)


def test_a_split_table_leaves_no_lone_rows_and_repeats_its_header(tmp_path: Path) -> None:
    report = _report(*_split_sections())
    pages = _pdf_pages(report, tmp_path)
    split = 0
    for section in report.sections:
        key = section.tables[0].key
        counts = {n: len(re.findall(rf"\b{key} row \d\d\b", page)) for n, page in enumerate(pages, start=1)}
        holding = {n: count for n, count in counts.items() if count}
        assert sum(holding.values()) == section.tables[0].frame.height, key
        first = min(holding)
        assert f"Table {key}" in pages[first - 1], f"{key}: the title is not on the page of its first row"
        if len(holding) > 1:
            split += 1
        for number, count in holding.items():
            assert count >= 3, f"{key}: page {number} holds only {count} of its rows ({holding})"
            header = [line for line in pages[number - 1].splitlines() if "Row name" in line]
            assert len(header) == 1, f"{key}: no header row on page {number}"
            assert "Row sales" in header[0], f"{key}: no header row on page {number}"
    assert split >= len(report.sections) // 2  # the case is exercised: most of these tables do split
