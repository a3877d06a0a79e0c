"""PDF of a report (fpdf2): A4 landscape, charts as images, the period and filters on every page.

Each section starts on a new page: summary lines, KPI cards, charts (PNG from `reports.charts`),
then tables. A table that must split over pages repeats its header row on each page and leaves no
stub of a row or two on either side of a break; tables longer than their ``print_rows`` end with a
note pointing to the Excel export, which has every row. Text uses the DejaVu Sans font shipped with
matplotlib, so any Unicode in names and notes prints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace, TTFFont

from reports.charts import chart_png
from reports.model import Kpi, Report, Section, Table, format_of, format_value

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVu"
ACCENT = (30, 58, 138)
MUTED = (90, 98, 112)
GOOD = (22, 128, 61)
BAD = (185, 28, 28)
MIN_ROWS = 3
"""The fewest rows of a table on either side of a page break."""
STUB_MM = 40.0
"""The least height (mm) of a table's rows on either side of a page break (about seven short rows)."""


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

    @functools.cached_property
    def scratch(self) -> _ReportPDF:
        """A blank document with the same pages, to measure what would be drawn (never output)."""
        return _ReportPDF(self.report)

    def close_scratch(self) -> None:
        """Release the font files of `scratch` (output releases a document's own)."""
        scratch = self.__dict__.pop("scratch", None)
        for font in scratch.fonts.values() if scratch is not None else ():
            if isinstance(font, TTFFont):
                font.close()

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


class _BodyRowFill:
    """Shades every other body row counted from the table's first row, so a part after a page break
    continues the stripes of the part before it."""

    def __init__(self, first_row: int) -> None:
        self.first_row = first_row

    def should_fill_cell(self, i: int, j: int) -> bool:
        return i >= 1 and (i - 1 + self.first_row) % 2 == 0


def _table_rows(pdf: _ReportPDF, table: Table, rows: list[dict[str, Any]], first_row: int = 0) -> None:
    """The header row, then ``rows`` (the table's rows from index ``first_row`` on)."""
    columns = table.shown_columns
    pdf.set_font(FONT, "", 7.5 if len(columns) > 8 else 8)
    with pdf.table(
        col_widths=[table.widths.get(c, 1.0) for c in columns],
        width=pdf.epw,
        text_align=tuple(_align(table, c) for c in columns),
        headings_style=FontFace(emphasis="B", fill_color=(224, 231, 255)),
        repeat_headings=1,
        line_height=4.2,
        padding=0.8,
        borders_layout="HORIZONTAL_LINES",
        cell_fill_color=(247, 248, 250),
        cell_fill_mode=_BodyRowFill(first_row),
    ) as pdf_table:
        heading = pdf_table.row()
        for column in columns:
            heading.cell(table.label(column))
        for row in rows:
            cells = pdf_table.row()
            for column in columns:
                cells.cell(table.cell(column, row))


@dataclass(frozen=True)
class _Heights:
    page_top: float
    """Where a new page's content starts, below the page header."""
    header: float
    """The header row with the table's top margin."""
    rows: list[float]


def _heights(scratch: _ReportPDF, table: Table, rows: list[dict[str, Any]]) -> _Heights:
    """The heights of a table's parts, measured by drawing them on ``scratch``, a page each."""
    tops: list[float] = []

    def height(part: list[dict[str, Any]]) -> float:
        scratch.add_page()
        tops.append(scratch.get_y())
        _table_rows(scratch, table, part)
        return scratch.get_y() - tops[-1]

    header = height([])
    return _Heights(tops[0], header, [height([row]) - header for row in rows])


class _Pages:
    """Where the rows of a table (of these ``heights``) may break over pages of ``page_room`` for rows,
    the last part also holding ``note``. Strictly, each part of a split table holds at least `MIN_ROWS`
    rows and `STUB_MM` of rows; otherwise any part of at least one row will do."""

    def __init__(self, heights: list[float], page_room: float, note: float, strict: bool) -> None:
        self.count = len(heights)
        self.ends = [0.0]
        for height in heights:
            self.ends.append(self.ends[-1] + height)
        self.page_room = page_room
        self.note = note
        self.strict = strict
        self.fewest = [float("inf")] * self.count + [0.0]
        """The fewest pages of their own that rows ``i…`` need (inf: none satisfy the rules)."""
        for start in range(self.count - 1, -1, -1):
            for stop in self._stops(start, page_room):
                self.fewest[start] = min(self.fewest[start], 1 + self.fewest[stop])

    def fits(self, start: int, stop: int, room: float) -> bool:
        note = self.note if stop == self.count else 0.0
        return self.ends[stop] - self.ends[start] + note <= room - 0.01

    def stands_alone(self, start: int, stop: int) -> bool:
        if not self.strict or (start == 0 and stop == self.count):
            return True
        return stop - start >= MIN_ROWS and self.ends[stop] - self.ends[start] >= STUB_MM

    def _stops(self, start: int, room: float) -> list[int]:
        """Where a part from row ``start`` in ``room`` may end."""
        stops = []
        for stop in range(start + 1, self.count + 1):
            if not self.fits(start, stop, room):
                break
            if self.stands_alone(start, stop):
                stops.append(stop)
        return stops

    def parts(self, start: int, first_room: float) -> list[int] | None:
        """Rows per page from row ``start``, the first part in ``first_room``: the fewest pages, then the
        fullest early pages (a tail too short takes rows from the page before it); ``None``: no way."""
        sizes: list[int] = []
        room = first_room
        while start < self.count:
            stops = [stop for stop in self._stops(start, room) if self.fewest[stop] < float("inf")]
            if not stops:
                return None
            fewest = min(self.fewest[stop] for stop in stops)
            stop = max(stop for stop in stops if self.fewest[stop] == fewest)
            sizes.append(stop - start)
            start, room = stop, self.page_room
        return sizes


def _split(
    heights: list[float], first_room: float, page_room: float, note: float
) -> tuple[bool, list[int]] | None:
    """Whether a table of rows of these ``heights`` starts on a new page, and its rows per page.

    ``first_room`` is the height left for rows on the current page, ``page_room`` on a page of their
    own. It starts here when its parts can follow the rules of `_Pages` from here, else on a new page;
    when no split follows them (rows too tall), it flows from here a page at a time. ``None``: a row is
    taller than a page.
    """
    for strict in (True, False):
        pages = _Pages(heights, page_room, note, strict)
        here = pages.parts(0, first_room)
        if here is not None:
            return False, here
        fresh = pages.parts(0, page_room)
        if fresh is not None:
            return True, fresh
    return None


def _table(pdf: _ReportPDF, table: Table) -> None:
    """``table`` with its title; when it must split over pages, no part is a stub (see `_split`) and each
    part starts with the header row."""
    rows = table.display_rows()
    title_height = 6.0
    if not rows:
        if pdf.get_y() + title_height + 5 > pdf.page_break_trigger:
            pdf.add_page()
        _table_title(pdf, table.title)
        pdf.set_font(FONT, "I", 8)
        pdf.cell(0, 5, "No rows.", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    heights = _heights(pdf.scratch, table, rows)
    first_room = pdf.page_break_trigger - pdf.get_y() - title_height - heights.header
    page_room = pdf.page_break_trigger - heights.page_top - heights.header
    note = 5.0 if len(rows) < table.frame.height else 0.0
    new_page, sizes = _split(heights.rows, first_room, page_room, note) or (False, [len(rows)])
    if new_page:
        pdf.add_page()
    start = 0
    for number, size in enumerate(sizes):
        if number:
            pdf.add_page()
        else:
            _table_title(pdf, table.title)
        _table_rows(pdf, table, rows[start : start + size], first_row=start)
        start += size
    if note:
        pdf.set_font(FONT, "I", 7.5)
        pdf.set_text_color(*MUTED)
        pdf.cell(
            0,
            note,
            f"First {len(rows):,} of {table.frame.height:,} rows; the Excel export has every row.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)


def _table_title(pdf: _ReportPDF, title: str) -> None:
    pdf.set_font(FONT, "B", 10)
    pdf.set_text_color(*ACCENT)
    pdf.cell(0, 6, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)


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
    try:
        for section in report.sections:
            _section(pdf, section)
    finally:
        pdf.close_scratch()
    output: Any = pdf.output()
    return bytes(output)
