"""Excel workbook of a report: one formatted sheet per section, every row of every table.

Number formats come from the metric dictionary through the tables' format keys; a chart's data is
written as a table too, so every figure in the report can be re-plotted from the workbook.
"""

from __future__ import annotations

import io
import math
import re
from datetime import date, datetime
from typing import Any

from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from core.exports import safe_workbook
from reports.model import Chart, Report, Table, format_of

_INVALID = re.compile(r"[\[\]\:\*\?\/\\]")


def sheet_name(title: str, used: set[str]) -> str:
    """An Excel-safe, unique sheet name (≤ 31 characters, no ``[]:*?/\\``)."""
    base = _INVALID.sub(" ", title).strip()[:31] or "Sheet"
    name, n = base, 2
    while name.lower() in used:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(name.lower())
    return name


class _Formats:
    def __init__(self, workbook: Workbook) -> None:
        self.workbook = workbook
        self.cache: dict[str, Any] = {}
        self.title = workbook.add_format({"bold": True, "font_size": 14})
        self.subtitle = workbook.add_format({"italic": True, "font_color": "#4b5563"})
        self.table_title = workbook.add_format({"bold": True, "font_size": 12, "font_color": "#1e3a8a"})
        self.header = workbook.add_format(
            {"bold": True, "bg_color": "#e0e7ff", "bottom": 1, "text_wrap": True, "valign": "top"}
        )
        self.text = workbook.add_format({"valign": "top"})
        self.wrap = workbook.add_format({"text_wrap": True, "valign": "top"})

    def number(self, key: str) -> Any:
        excel = format_of(key).excel
        if excel not in self.cache:
            self.cache[excel] = self.workbook.add_format({"num_format": excel, "valign": "top"})
        return self.cache[excel]


def _write_cell(sheet: Worksheet, row: int, col: int, value: Any, key: str, fmt: _Formats) -> None:
    kind = format_of(key).kind
    if value is None or (isinstance(value, float) and math.isnan(value)):
        sheet.write_blank(row, col, None, fmt.text)
    elif kind == "date" and isinstance(value, date | datetime):
        sheet.write_datetime(row, col, datetime(value.year, value.month, value.day), fmt.number("date"))
    elif isinstance(value, int | float) and not isinstance(value, bool) and kind != "text":
        sheet.write_number(row, col, float(value), fmt.number(key))
    else:
        text = str(value)
        sheet.write_string(row, col, text, fmt.wrap if len(text) > 60 else fmt.text)


def _write_table(sheet: Worksheet, top: int, table: Table, fmt: _Formats, widths: dict[int, float]) -> int:
    """Write ``table`` (title, header, every row) from row ``top``; return the next free row."""
    sheet.write_string(top, 0, f"{table.title} ({table.frame.height:,} rows)", fmt.table_title)
    columns = table.frame.columns
    for col, column in enumerate(columns):
        label = table.label(column)
        sheet.write_string(top + 1, col, label, fmt.header)
        widths[col] = max(widths.get(col, 8), min(len(label) + 2, 40))
    for r, row in enumerate(table.frame.iter_rows(named=True), start=top + 2):
        for col, column in enumerate(columns):
            value = row[column]
            _write_cell(sheet, r, col, value, table.format_key(column, row), fmt)
            if isinstance(value, str):
                widths[col] = max(widths[col], min(len(value) + 2, 60))
            elif isinstance(value, float | int):
                widths[col] = max(widths[col], 14)
    if table.frame.height == 0:
        sheet.write_string(top + 2, 0, "(no rows)", fmt.subtitle)
        return top + 4
    return top + 3 + table.frame.height


def _chart_table(chart: Chart) -> Table:
    frame = chart.frame.rename({"panel": "panel", "x": "period", "y": "value"})
    return Table(
        key=chart.key,
        title=f"Chart data: {chart.title}",
        frame=frame,
        formats={"value": chart.y_format},
    )


def render_xlsx(report: Report) -> bytes:
    """The report as an .xlsx workbook (bytes)."""
    buffer = io.BytesIO()
    workbook = safe_workbook(buffer, in_memory=True)  # text stays text: never a formula, link or number
    workbook.set_properties({"title": report.title, "subject": report.period, "comments": report.filter_text})
    fmt = _Formats(workbook)
    used: set[str] = set()
    for section in report.sections:
        sheet = workbook.add_worksheet(sheet_name(section.label, used))
        widths: dict[int, float] = {}
        sheet.write_string(0, 0, f"{report.title} — {section.title}", fmt.title)
        sheet.write_string(1, 0, f"Period: {report.period}", fmt.subtitle)
        sheet.write_string(2, 0, report.filter_text, fmt.subtitle)
        row = 4
        for line in section.summary:
            sheet.write_string(row, 0, line, fmt.text)
            row += 1
        if section.text or section.key == "notes":
            sheet.set_row(row, 15 * max(3, section.text.count("\n") + 2))
            sheet.merge_range(row, 0, row, 7, section.text or "", fmt.wrap)
            row += 2
        row += 1 if section.summary else 0
        for table in section.tables:
            row = _write_table(sheet, row, table, fmt, widths) + 1
        for chart in section.charts:
            row = _write_table(sheet, row, _chart_table(chart), fmt, widths) + 1
        for col, width in widths.items():
            sheet.set_column(col, col, width)
        if not widths:
            sheet.set_column(0, 0, 100)
    workbook.close()
    return buffer.getvalue()
