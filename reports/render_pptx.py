"""Slides of a report (python-pptx): a title slide, then one 16:9 slide per section, for a projector.

Fonts are large (titles 30 pt, tables 12 pt at least); tables are cut to the rows that fit and end
with a "+N more" line (the Excel export has every row); long text cells are shortened on slides.
"""

from __future__ import annotations

import io
from typing import Any

from pptx import Presentation
from pptx.dml.color import RGBColor
from pptx.enum.text import PP_ALIGN
from pptx.util import Inches, Length, Pt

from reports.charts import chart_png
from reports.model import Chart, Kpi, Report, Section, Table, format_of, format_value

WIDTH, HEIGHT = Inches(13.333), Inches(7.5)
MARGIN = Inches(0.45)
ACCENT = RGBColor(0x1E, 0x3A, 0x8A)
MUTED = RGBColor(0x5A, 0x62, 0x70)
GOOD = RGBColor(0x16, 0x80, 0x3D)
BAD = RGBColor(0xB9, 0x1C, 0x1C)
TABLE_FONT = Pt(12)
ROW_HEIGHT = Inches(0.36)
BOLD_EM = 0.7  # the widest a bold header character runs, in em (DejaVu Sans Bold as LibreOffice draws it)
CELL_MARGIN = Inches(0.1)  # a table cell's left and right margin (python-pptx's default)
MAX_CELL_CHARS = 48


def _text(
    slide: Any,
    left: int,
    top: int,
    width: int,
    height: int,
    text: str,
    size: float,
    bold: bool = False,
    color: RGBColor | None = None,
    align: Any = None,
) -> Any:
    box = slide.shapes.add_textbox(left, top, width, height)
    frame = box.text_frame
    frame.word_wrap = True
    lines = text.split("\n")
    for i, line in enumerate(lines):
        paragraph = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
        run = paragraph.add_run()
        run.text = line
        run.font.size = Pt(size)
        run.font.bold = bold
        if color is not None:
            run.font.color.rgb = color
        if align is not None:
            paragraph.alignment = align
    return box


def _footer(slide: Any, report: Report, number: int) -> None:
    _text(
        slide,
        MARGIN,
        HEIGHT - Inches(0.42),
        WIDTH - 2 * MARGIN,
        Inches(0.3),
        f"{report.title} · {report.period} · {report.filter_text}",
        9,
        color=MUTED,
    )
    _text(
        slide,
        WIDTH - Inches(1.2),
        HEIGHT - Inches(0.42),
        Inches(0.8),
        Inches(0.3),
        str(number),
        9,
        color=MUTED,
        align=PP_ALIGN.RIGHT,
    )


def _kpi_cards(slide: Any, kpis: tuple[Kpi, ...], top: int) -> None:
    per_row = 4
    gap = Inches(0.2)
    width = int((WIDTH - 2 * MARGIN - gap * (per_row - 1)) / per_row)
    height = Inches(2.2)
    for i, kpi in enumerate(kpis):
        left = MARGIN + (i % per_row) * (width + gap)
        y = top + (i // per_row) * (height + gap)
        card = slide.shapes.add_shape(1, left, y, width, height)
        card.fill.solid()
        card.fill.fore_color.rgb = RGBColor(0xF4, 0xF6, 0xFB)
        card.line.color.rgb = RGBColor(0xCD, 0xD2, 0xDC)
        card.shadow.inherit = False
        _text(
            slide,
            left + Inches(0.15),
            y + Inches(0.1),
            width - Inches(0.3),
            Inches(0.4),
            kpi.label,
            16,
            color=MUTED,
        )
        value = _text(
            slide,
            left + Inches(0.15),
            y + Inches(0.5),
            width - Inches(0.3),
            Inches(0.7),
            format_value(kpi.value, kpi.format_key),
            24,
            bold=True,
        )
        value.text_frame.word_wrap = False
        for row, (label, change) in enumerate(
            (
                ("WoW", kpi.change_pct),
                ("vs 4-wk avg", kpi.change_vs_4w_pct),
                ("vs 13 wks", kpi.change_vs_13w_pct),
            )
        ):
            good = change is not None and (change >= 0) == kpi.higher_is_better
            _text(
                slide,
                left + Inches(0.15),
                y + Inches(1.2) + row * Inches(0.3),
                width - Inches(0.3),
                Inches(0.3),
                f"{label}: {format_value(change, 'pct_change')}",
                13,
                color=MUTED if change is None else GOOD if good else BAD,
            )


def _short(text: str) -> str:
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1].rstrip() + "…"


def _cell_run(cell: Any, text: str, font: Length):  # type: ignore[no-untyped-def]
    paragraph = cell.text_frame.paragraphs[0]
    run = paragraph.add_run()
    run.text = text
    run.font.size = font
    return run


def _header_floor(table: Table, column: str, font: Length) -> float:
    """The width (EMU) that holds ``column``'s longest header word on one line."""
    return max(len(word) for word in (table.label(column).split() or [""])) * BOLD_EM * font + 2 * CELL_MARGIN


def _column_widths(table: Table, columns: list[str], width: int, font: Length) -> list[int]:
    """Column widths (EMU) in proportion to the table's weights, but each at least as wide as its longest
    header word (a word broken over two lines, "Contributi/on", also makes the header row taller than
    the space kept for it). A bold word is up to ~0.7 em per character, plus the cell's 0.1-inch margins."""
    weights = [table.widths.get(c, 1.0) for c in columns]
    proportional = [width * w / sum(weights) for w in weights]
    floor = [_header_floor(table, c, font) for c in columns]
    if sum(floor) >= width:  # cannot honour every floor: share by floors instead
        return [int(width * f / sum(floor)) for f in floor]
    widths = proportional
    for _ in range(len(columns)):  # raise columns below their floor, take it from the others
        short = [j for j, w in enumerate(widths) if w < floor[j] - 1]
        if not short:
            break
        fixed = {j: floor[j] for j, w in enumerate(widths) if w <= floor[j] + 1}
        rest = [j for j in range(len(columns)) if j not in fixed]
        spare = width - sum(fixed.values())
        total = sum(weights[j] for j in rest)
        widths = [fixed[j] if j in fixed else spare * weights[j] / total for j in range(len(columns))]
    return [int(w) for w in widths]


def _header_height(table: Table, columns: list[str], widths: list[int], font: Length) -> int:
    """The header row's height: one row, plus a line for every extra line its longest label wraps to
    (greedy word wrap at ~0.7 em a bold character)."""
    lines = 1
    for column, column_width in zip(columns, widths, strict=True):
        room = max(int((column_width - 2 * CELL_MARGIN) / (BOLD_EM * font)), 1)  # characters per line
        count, used = 1, 0
        for word in table.label(column).split():
            if used and used + 1 + len(word) > room:
                count, used = count + 1, len(word)
            else:
                used += len(word) + (1 if used else 0)
        lines = max(lines, count)
    return int(ROW_HEIGHT + (lines - 1) * 1.2 * font)


def _table(
    slide: Any, table: Table, left: int, top: int, width: int, height: int, font: Length = TABLE_FONT
) -> int:
    """Draw ``table`` in the box; return how many rows were shown."""
    _text(slide, left, top, width, Inches(0.4), table.title, 15, bold=True, color=ACCENT)
    columns = list(table.slide_columns) or [c for c in table.shown_columns if table.widths.get(c, 1.0) < 3.5]
    while len(columns) > 2 and sum(_header_floor(table, c, font) for c in columns) > width:
        columns.pop()  # the last columns are the least important; the Excel export has them all
    widths = _column_widths(table, columns, width, font)
    header = _header_height(table, columns, widths, font)
    body_top = top + Inches(0.42)
    available = int((height - Inches(0.42) - Inches(0.35) - header) / ROW_HEIGHT)
    total = table.frame.height
    shown = max(0, min(total, available))
    if total == 0:
        _text(slide, left, body_top, width, Inches(0.4), "No rows.", 14, color=MUTED)
        return 0
    rows = table.frame.head(shown).to_dicts()
    shape = slide.shapes.add_table(
        shown + 1, len(columns), left, body_top, width, header + ROW_HEIGHT * shown
    )
    grid = shape.table
    for j, column_width in enumerate(widths):
        grid.columns[j].width = column_width
    for j, column in enumerate(columns):
        run = _cell_run(grid.cell(0, j), table.label(column), font)
        run.font.bold = True
    for i, row in enumerate(rows, start=1):
        for j, column in enumerate(columns):
            cell = grid.cell(i, j)
            _cell_run(cell, _short(table.cell(column, row)), font)
            paragraph = cell.text_frame.paragraphs[0]
            kind = format_of(table.format_key(column, row)).kind
            if kind not in ("text", "date"):
                paragraph.alignment = PP_ALIGN.RIGHT
    grid.rows[0].height = header
    for i in range(1, shown + 1):
        grid.rows[i].height = ROW_HEIGHT
    if shown < total:
        _text(
            slide,
            left,
            body_top + header + ROW_HEIGHT * shown + Inches(0.02),
            width,
            Inches(0.3),
            f"+{total - shown:,} more (all rows in the Excel export)",
            12,
            color=MUTED,
        )
    return shown


def _image(slide: Any, chart: Chart, left: int, top: int, width: int, height: int) -> None:
    image = chart_png(chart, width=width / 914400, height=height / 914400, dpi=110, scale=1.55)
    slide.shapes.add_picture(io.BytesIO(image), left, top, width, height)


def _title_size(title: str, base: float = 28) -> float:
    """A title font size that keeps ``title`` on one line of the slide."""
    return base if len(title) <= 44 else base * 0.86 if len(title) <= 54 else base * 0.72


def _grid(count: int) -> tuple[int, int]:
    return (1, 1) if count == 1 else (1, 2) if count == 2 else (2, 2)


def _section_slide(prs: Any, report: Report, section: Section, number: int) -> None:
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    _text(
        slide,
        MARGIN,
        Inches(0.25),
        WIDTH - 2 * MARGIN,
        Inches(0.7),
        section.title,
        _title_size(section.title),
        bold=True,
        color=ACCENT,
    )
    top: int = Inches(1.0)
    if section.summary:
        summary = " ".join(section.summary[:2])
        lines = -(-len(summary) // 120)
        _text(slide, MARGIN, top, WIDTH - 2 * MARGIN, Inches(0.3) * lines + Inches(0.1), summary, 15)
        top += Inches(0.3) * lines + Inches(0.2)
    bottom = HEIGHT - Inches(0.5)
    box_width = WIDTH - 2 * MARGIN
    if section.kpis:
        _kpi_cards(slide, section.kpis, top + Inches(0.1))
    elif section.key == "notes" or (section.text and not section.tables):
        _text(slide, MARGIN, top, box_width, bottom - top, section.text or "(no notes)", 20)
    elif section.charts and section.tables and len(section.charts) == 1:
        half = int(box_width * 0.52)
        _image(slide, section.charts[0], MARGIN, top, half, bottom - top)
        _table(
            slide,
            section.tables[0],
            MARGIN + half + Inches(0.2),
            top,
            box_width - half - Inches(0.2),
            bottom - top,
            Pt(12),
        )
    elif section.charts:
        rows, cols = _grid(len(section.charts[:4]))
        gap = Inches(0.15)
        width = int((box_width - gap * (cols - 1)) / cols)
        height = int((bottom - top - gap * (rows - 1)) / rows)
        for k, chart in enumerate(section.charts[:4]):
            _image(
                slide,
                chart,
                MARGIN + (k % cols) * (width + gap),
                top + (k // cols) * (height + gap),
                width,
                height,
            )
    elif section.tables:
        rows, cols = _grid(len(section.tables[:4]))
        gap = Inches(0.25)
        width = int((box_width - gap * (cols - 1)) / cols)
        height = int((bottom - top - gap * (rows - 1)) / rows)
        for k, table in enumerate(section.tables[:4]):
            _table(
                slide,
                table,
                MARGIN + (k % cols) * (width + gap),
                top + (k // cols) * (height + gap),
                width,
                height,
            )
    _footer(slide, report, number)


def render_pptx(report: Report) -> bytes:
    """The report as a .pptx deck (bytes): a title slide and one slide per section."""
    prs = Presentation()
    prs.slide_width, prs.slide_height = WIDTH, HEIGHT
    prs.core_properties.title = report.title
    prs.core_properties.subject = report.period
    prs.core_properties.keywords = report.filter_text
    title = prs.slides.add_slide(prs.slide_layouts[6])
    _text(
        title,
        MARGIN,
        Inches(1.6),
        WIDTH - 2 * MARGIN,
        Inches(1.4),
        report.title,
        _title_size(report.title, 40),
        bold=True,
        color=ACCENT,
    )
    _text(title, MARGIN, Inches(3.2), WIDTH - 2 * MARGIN, Inches(1.0), report.period, 22)
    _text(
        title,
        MARGIN,
        Inches(4.5),
        WIDTH - 2 * MARGIN,
        Inches(1.5),
        "\n".join(f"{k}: {v}" for k, v in report.filters.items()),
        16,
        color=MUTED,
    )
    for number, section in enumerate(report.sections, start=2):
        _section_slide(prs, report, section, number)
    buffer = io.BytesIO()
    prs.save(buffer)
    return buffer.getvalue()
