"""PDF of a report (fpdf2): A4 landscape, charts as images, the period and filters on every page.

Each section starts on a new page: summary lines, KPI cards, charts (PNG from `reports.charts`),
then tables. Long tables flow over pages with their header row repeated; tables longer than their
``print_rows`` end with a note pointing to the Excel export, which has every row. Text uses the
DejaVu Sans font shipped with matplotlib, so any Unicode in names and notes prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace

from reports.charts import chart_png
from reports.model import Kpi, Report, Section, Table, format_of, format_value

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVu"
ACCENT = (30, 58, 138)
MUTED = (90, 98, 112)
GOOD = (22, 128, 61)
BAD = (185, 28, 28)
STUB_MM = 40.0
"""The least height (mm) of a table's part on either side of a page break (about five rows)."""


class _ReportPDF(FPDF):
    def __init__(self, report: Report) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.report = report
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.add_font(FONT, "I", str(FONT_DIR / "DejaVuSans-Oblique.ttf"))
        self.set_auto_page_break(auto=True, margin=16)
        self.set_margins(12, 20, 12)
        self.set_title(report.title)
        self.set_subject(report.period)
        self.set_keywords(report.filter_text)
        self.set_creator("Liftboard")
        self.section_title = ""

    def header(self) -> None:
        self.set_y(7)
        self.set_font(FONT, "B", 9)
        self.set_text_color(*ACCENT)
        self.cell(0, 5, f"{self.report.title} · {self.report.period}", new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(200, 205, 215)
        self.line(self.l_margin, 13, self.w - self.r_margin, 13)
        self.set_text_color(0, 0, 0)
        self.set_y(16)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FONT, "", 7)
        self.set_text_color(*MUTED)
        self.cell(
            0,
            4,
            f"Filters: {self.report.filter_text} · generated {self.report.generated_at:%Y-%m-%d %H:%M} UTC",
            align="L",
        )
        self.set_x(self.l_margin)
        self.cell(0, 4, f"Page {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)


def _kpi_cards(pdf: _ReportPDF, kpis: tuple[Kpi, ...]) -> None:
    per_row = 4
    gap = 4
    width = (pdf.epw - gap * (per_row - 1)) / per_row
    height = 24
    for start in range(0, len(kpis), per_row):
        if pdf.get_y() + height > pdf.h - 18:
            pdf.add_page()
        top = pdf.get_y()
        for i, kpi in enumerate(kpis[start : start + per_row]):
            left = pdf.l_margin + i * (width + gap)
            pdf.set_draw_color(205, 210, 220)
            pdf.set_fill_color(248, 250, 252)
            pdf.rect(left, top, width, height, style="DF")
            pdf.set_xy(left + 3, top + 2)
            pdf.set_font(FONT, "", 8)
            pdf.set_text_color(*MUTED)
            pdf.cell(width - 6, 4, kpi.label)
            pdf.set_xy(left + 3, top + 7)
            pdf.set_font(FONT, "B", 15)
            pdf.set_text_color(0, 0, 0)
            pdf.cell(width - 6, 7, format_value(kpi.value, kpi.format_key))
            pdf.set_font(FONT, "", 7.5)
            pdf.set_xy(left + 3, top + 15.5)
            for label, change in (
                ("WoW", kpi.change_pct),
                ("4-wk", kpi.change_vs_4w_pct),
                ("13-wk", kpi.change_vs_13w_pct),
            ):
                good = change is not None and (change >= 0) == kpi.higher_is_better
                pdf.set_text_color(*(MUTED if change is None else GOOD if good else BAD))
                pdf.cell((width - 6) / 3, 4, f"{label} {format_value(change, 'pct_change')}")
        pdf.set_text_color(0, 0, 0)
        pdf.set_y(top + height + 4)


def _charts(pdf: _ReportPDF, section: Section) -> None:
    charts = section.charts
    per_row = 2 if len(charts) > 1 else 1
    gap = 5
    width = (pdf.epw - gap * (per_row - 1)) / per_row
    height = width * (0.42 if per_row == 2 else 0.30)
    for start in range(0, len(charts), per_row):
        if pdf.get_y() + height > pdf.h - 18:
            pdf.add_page()
        top = pdf.get_y()
        for i, chart in enumerate(charts[start : start + per_row]):
            image = chart_png(chart, width=width / 25.4, height=height / 25.4, dpi=150)
            pdf.image(image, x=pdf.l_margin + i * (width + gap), y=top, w=width, h=height)
        pdf.set_y(top + height + 3)
    notes = sorted({c.note for c in charts if c.note})
    for note in notes:
        pdf.set_font(FONT, "I", 7.5)
        pdf.set_text_color(*MUTED)
        pdf.multi_cell(0, 4, note, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)


def _align(table: Table, column: str) -> str:
    return (
        "L"
        if format_of(table.formats.get(column, "text")).kind in ("text", "date")
        and not (table.metric_column and column in table.per_row_columns)
        else "R"
    )


def _table(pdf: _ReportPDF, table: Table) -> None:
    """``table`` with its title, kept from leaving a stub: when it would split with less than `STUB_MM` on
    either side of the break (a title and a row or two at the bottom of this page, a row or two alone on
    the next), it starts on a new page instead; longer tables flow with their header repeated."""
    rows = table.display_rows()
    start_page, start_y = pdf.page, pdf.get_y()
    with pdf.offset_rendering() as dummy:
        _table_body(dummy, table, rows)  # type: ignore[arg-type]
        height = dummy.get_y() - start_y + (dummy.page - start_page) * pdf.eph
    room = pdf.page_break_trigger - start_y
    fits_a_page = height <= pdf.page_break_trigger - pdf.t_margin
    if height > room and (room < STUB_MM or (fits_a_page and height - room < STUB_MM)):
        pdf.add_page()
    _table_body(pdf, table, rows)


def _table_body(pdf: _ReportPDF, table: Table, rows: list[dict[str, Any]]) -> None:
    columns = table.shown_columns
    pdf.set_font(FONT, "B", 10)
    pdf.set_text_color(*ACCENT)
    pdf.cell(0, 6, table.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    if not rows:
        pdf.set_font(FONT, "I", 8)
        pdf.cell(0, 5, "No rows.", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    widths = [table.widths.get(c, 1.0) for c in columns]
    aligns = [_align(table, c) for c in columns]
    pdf.set_font(FONT, "", 7.5 if len(columns) > 8 else 8)
    with pdf.table(
        col_widths=widths,
        width=pdf.epw,
        text_align=tuple(aligns),
        headings_style=FontFace(emphasis="B", fill_color=(224, 231, 255)),
        repeat_headings=1,
        line_height=4.2,
        padding=0.8,
        borders_layout="HORIZONTAL_LINES",
        cell_fill_color=(247, 248, 250),
        cell_fill_mode="ROWS",
    ) as pdf_table:
        heading = pdf_table.row()
        for column in columns:
            heading.cell(table.label(column))
        for row in rows:
            cells = pdf_table.row()
            for column in columns:
                cells.cell(table.cell(column, row))
    if len(rows) < table.frame.height:
        pdf.set_font(FONT, "I", 7.5)
        pdf.set_text_color(*MUTED)
        pdf.cell(
            0,
            5,
            f"First {len(rows):,} of {table.frame.height:,} rows; the Excel export has every row.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)


def _section(pdf: _ReportPDF, section: Section) -> None:
    pdf.add_page()
    pdf.start_section(section.label)
    pdf.set_font(FONT, "B", 16)
    pdf.set_text_color(*ACCENT)
    pdf.multi_cell(0, 8, section.title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(1)
    if section.summary:
        pdf.set_font(FONT, "", 9.5)
        for line in section.summary:
            pdf.multi_cell(0, 5, line, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    if section.key == "notes" or section.text:
        pdf.set_font(FONT, "", 10)
        pdf.set_fill_color(255, 251, 235)
        pdf.multi_cell(
            0,
            5.5,
            section.text or "(no notes)",
            border=1,
            fill=True,
            align="L",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.ln(3)
    if section.kpis:
        _kpi_cards(pdf, section.kpis)
    if section.charts:
        _charts(pdf, section)
    for table in section.tables:
        _table(pdf, table)


def render_pdf(report: Report) -> bytes:
    """The report as PDF bytes."""
    pdf = _ReportPDF(report)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font(FONT, "B", 24)
    pdf.set_text_color(*ACCENT)
    pdf.ln(25)
    pdf.multi_cell(0, 12, report.title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 13)
    pdf.set_text_color(0, 0, 0)
    pdf.multi_cell(0, 8, report.period, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.set_text_color(*MUTED)
    for name, value in report.filters.items():
        pdf.multi_cell(0, 6, f"{name}: {value}", align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 7, "Contents", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    for number, section in enumerate(report.sections, start=1):
        pdf.cell(0, 6, f"{number}. {section.title}", new_x="LMARGIN", new_y="NEXT")
    for section in report.sections:
        _section(pdf, section)
    output: Any = pdf.output()
    return bytes(output)
