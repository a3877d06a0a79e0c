"""Every format of the weekly review and the merchant report, opened with an independent reader and
checked against the assembled report."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pptx import Presentation

from reports.merchant import merchant_report, merchant_report_bytes
from reports.model import Report, ReportError, format_value
from reports.render import FORMATS, write_report
from reports.weekly import weekly_review
from tests.reports import readers
from tests.reports.conftest import NOTES, WEEK, ReportWorld


@pytest.fixture(scope="module")
def weekly_files(
    world: ReportWorld, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Report, dict[str, Path]]:
    report = weekly_review(world.settings, WEEK)
    paths = write_report(report, FORMATS, tmp_path_factory.mktemp("weekly"))
    return report, {path.suffix[1:]: path for path in paths}


@pytest.fixture(scope="module")
def merchant_files(
    world: ReportWorld, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Report, dict[str, Path]]:
    merchant = sorted(world.scoped_merchants)[0]
    report = merchant_report(world.settings, merchant, world.merchant_user)
    paths = write_report(report, FORMATS, tmp_path_factory.mktemp("merchant"))
    return report, {path.suffix[1:]: path for path in paths}


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_weekly_pdf_pages_text_and_images(weekly_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    readers.require_poppler()
    report, files = weekly_files
    pdf = files["pdf"]
    count = readers.pdf_pages(pdf)
    assert count >= len(report.sections) + 1
    images = readers.pdf_images(pdf, tmp_path / "png")
    assert len(images) == count
    for number, image in enumerate(images, start=1):
        assert float(np.std(image)) > 5.0, f"page {number} looks blank"
    pages = readers.pdf_text_pages(pdf)
    assert len(pages) == count
    for number, page in enumerate(pages, start=1):
        flat = _squash(page)
        assert report.period in flat, f"page {number} lacks the period"
        assert "scope: all merchants" in flat, f"page {number} lacks the scope filter"
        assert f"Page {number}/{count}" in flat
    text = _squash(" ".join(pages))
    for section in report.sections:
        assert _squash(section.title) in text, section.title
    for kpi in report.section("headline").kpis:
        assert format_value(kpi.value, kpi.format_key) in text, kpi.label
    first = report.section("recommendations").table("recommendations").frame.row(0, named=True)
    assert format_value(first["net_value"], "usd") in text
    assert "the Excel export has every row" in text
    for line in NOTES.splitlines():
        assert _squash(line) in text


def test_weekly_pdf_repeats_table_headers(weekly_files) -> None:  # type: ignore[no-untyped-def]
    report, files = weekly_files
    pages = readers.pdf_text_pages(files["pdf"])
    with_header = [p for p in pages if "Net value" in p and "Expected" in p]
    assert len(with_header) >= 2, "the recommendations table spans pages with its header repeated"


def test_weekly_workbook(weekly_files) -> None:  # type: ignore[no-untyped-def]
    report, files = weekly_files
    book = readers.workbook(files["xlsx"].read_bytes())
    assert book.sheetnames == [s.label for s in report.sections]
    sheet = book["Headline KPIs"]
    cells = {c.value: c for row in sheet.iter_rows() for c in row if c.value is not None}
    gmv = report.section("headline").kpis[0]
    match = [c for c in cells.values() if isinstance(c.value, float) and c.value == pytest.approx(gmv.value)]
    assert match
    assert match[0].number_format == '"$"#,##0'
    recs = report.section("recommendations").table("recommendations").frame
    rows = list(book["Recommendations"].iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r[0] == "Kind")
    body = [r for r in rows[header + 1 :] if r[0] is not None]
    assert len(body) == recs.height, "every row, not the printed ones"
    assert body[0][1] == recs["entity_id"][0]
    columns = list(rows[header])
    assert body[0][columns.index("Net value")] == pytest.approx(recs["net_value"][0])
    assert body[0][columns.index("Evidence")] == recs["evidence"][0]
    notes = [c for row in book["Meeting notes"].iter_rows(values_only=True) for c in row if c]
    assert NOTES in notes
    trend_rows = list(book["Trends volume"].iter_rows(values_only=True))
    assert any(r[1] == "W47" for r in trend_rows), "chart data is exported too"


def test_weekly_deck(weekly_files) -> None:  # type: ignore[no-untyped-def]
    report, files = weekly_files
    data = files["pptx"].read_bytes()
    slides = readers.deck_texts(data)
    assert len(slides) == len(report.sections) + 1
    for section, text in zip(report.sections, slides[1:], strict=True):
        assert section.title in text
        assert report.period in text  # the footer
    headline = slides[1]
    for kpi in report.section("headline").kpis:
        assert format_value(kpi.value, kpi.format_key) in headline
    recs = report.section("recommendations").table("recommendations").frame
    more = re.search(
        r"\+([\d,]+) more", slides[1 + [s.key for s in report.sections].index("recommendations")]
    )
    assert more is not None
    shown = recs.height - int(more.group(1).replace(",", ""))
    assert 3 <= shown <= 14
    prs = Presentation(files["pptx"])
    sizes = [
        run.font.size.pt
        for slide in prs.slides
        for shape in slide.shapes
        if shape.has_table
        for row in shape.table.rows
        for cell in row.cells
        for paragraph in cell.text_frame.paragraphs
        for run in paragraph.runs
        if run.font.size is not None
    ]
    assert sizes, "tables have sized text"
    assert min(sizes) >= 12, "tables readable on a projector"
    # no header word is broken over two lines: each column holds its longest header word (~0.7 em a
    # bold character at the header's size, plus the cell's 0.1-inch margins)
    for slide in prs.slides:
        for shape in slide.shapes:
            if shape.has_table:
                for column, cell in zip(shape.table.columns, shape.table.rows[0].cells, strict=True):
                    run = cell.text_frame.paragraphs[0].runs[0]
                    longest = max(len(word) for word in run.text.split())
                    assert column.width >= longest * 0.7 * run.font.size + 2 * 91440 - 2, run.text
    assert NOTES.splitlines()[0] in slides[-1]


def test_weekly_html_is_self_contained(weekly_files) -> None:  # type: ignore[no-untyped-def]
    report, files = weekly_files
    page = files["html"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page), "no external scripts"
    assert not re.search(r"<link[^>]+href=\"http", page)
    assert page.count("Plotly.newPlot") == sum(len(s.charts) for s in report.sections)
    assert "plotly.js v" in page or "plotly.min.js" in page or "Plotly=" in page
    for section in report.sections:
        assert f'id="{section.key}"' in page
    recs = report.section("recommendations").table("recommendations").frame
    table = page.split('data-key="recommendations"')[1].split("</table>")[0]
    assert table.count("<tr>") == recs.height + 1


def test_merchant_report_files(world: ReportWorld, merchant_files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    readers.require_poppler()
    report, files = merchant_files
    assert [s.key for s in report.sections] == [
        "headline",
        "trends",
        "products",
        "creators",
        "category",
        "recommendations",
    ]
    pages = readers.pdf_text_pages(files["pdf"])
    images = readers.pdf_images(files["pdf"], tmp_path / "png")
    assert len(images) == len(pages)
    assert all(float(np.std(i)) > 5.0 for i in images)
    merchant = report.filters["merchant"]
    assert all(merchant in _squash(p) for p in pages), "the merchant is printed on every page"
    text = _squash(" ".join(pages))
    products = report.section("products").table("products").frame
    assert format_value(products["gmv"][0], "usd") in text
    book = readers.workbook(files["xlsx"].read_bytes())
    rows = list(book["Products"].iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r[0] == "Product")
    assert len([r for r in rows[header + 1 :] if r[0]]) == products.height
    slides = readers.deck_texts(files["pptx"].read_bytes())
    assert len(slides) == len(report.sections) + 1
    recs = report.section("recommendations").table("recommendations").frame
    assert recs.height >= 1
    assert recs["rationale"].str.len_chars().max() > 0
    page = files["html"].read_text(encoding="utf-8")
    assert recs["rationale"].filter(recs["rationale"] != "")[0].split(":")[0] in page


def test_merchant_report_bytes_respects_scope(world: ReportWorld) -> None:
    inside = sorted(world.scoped_merchants)[0]
    data = merchant_report_bytes(world.settings, world.merchant_user, inside, "xlsx")
    assert data[:2] == b"PK"
    from datastore.users import get_user

    outside = next(
        m for m in ("m00001", "m00002", "m00003", "m00004", "m00005") if m not in world.scoped_merchants
    )
    with pytest.raises(ReportError, match="not found"):
        merchant_report_bytes(world.settings, world.merchant_user, outside, "pdf")
    ops = get_user(world.settings, "ops")
    assert merchant_report_bytes(world.settings, ops, outside, "html").startswith(b"<!DOCTYPE html>")
    with pytest.raises(ReportError, match="unknown format"):
        merchant_report_bytes(world.settings, ops, outside, "docx")
