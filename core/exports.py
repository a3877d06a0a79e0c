"""Files people open in a spreadsheet: CSV and Excel whose cells cannot run as formulas.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice
and Google Sheets as a formula (CSV or formula injection): an entity's name, a note or a handle typed as
``=HYPERLINK(…)`` would run when the export is opened. As OWASP recommends, such text cells of a CSV are
prefixed with a single quote (shown as text, the quote itself hidden) and every text cell is wrapped in
double quotes, inner quotes doubled. Numbers, dates and booleans are written as they are. An Excel
workbook stores a cell's type, so there text is written as a text cell (`safe_workbook`: XlsxWriter never
turns a string into a formula, a link or a number). List columns (a recommendation's reasons) are
written as joined text, ``a; b; c``. The app's downloads, the CLI's exports and the reports' workbooks
share these rules; nothing else creates a CSV or a workbook for people.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import polars as pl
from polars.datatypes import DataTypeClass

if TYPE_CHECKING:
    from xlsxwriter.workbook import Workbook

FORMULA_START = r"^[=+\-@\t\r]"
"""A text cell matching this would be read as a formula."""

LIST_SEPARATOR = "; "
"""Between the items of a list cell (``a; b; c``); ``, `` between the items of a list inside a list."""

SAFE_WORKBOOK_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
"""XlsxWriter options under which a string is always written as a text cell."""


def workbook_options(**options: Any) -> dict[str, Any]:
    """XlsxWriter ``Workbook`` options: ``options`` (``in_memory`` …) with `SAFE_WORKBOOK_OPTIONS` on top,
    which no caller can turn off."""
    return {**options, **SAFE_WORKBOOK_OPTIONS}


def safe_workbook(target: str | Path | IO[bytes], **options: Any) -> Workbook:
    """An XlsxWriter workbook writing to ``target`` in which no string becomes a formula, a link or a
    number (`workbook_options`); every workbook Liftboard writes is made here."""
    import xlsxwriter

    return xlsxwriter.Workbook(target, workbook_options(**options))


def _cell_text(
    value: pl.Expr, dtype: pl.DataType | DataTypeClass, separator: str = LIST_SEPARATOR
) -> pl.Expr:
    """``value`` (of ``dtype``) as the text of one cell: lists joined, structs as JSON, the rest cast."""
    if isinstance(dtype, pl.Array):
        return _cell_text(value.arr.to_list(), pl.List(dtype.inner), separator)
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        assert inner is not None
        return value.list.eval(_cell_text(pl.element(), inner, ", ")).list.join(separator)
    if isinstance(dtype, pl.Struct):
        return pl.when(value.is_not_null()).then(value.struct.json_encode())
    return value.cast(pl.String)


def spreadsheet_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with only columns a spreadsheet cell can hold: list and array columns as joined text
    (``a; b; c``), struct columns as JSON, categoricals as text; every other column unchanged."""
    return frame.with_columns(
        _cell_text(pl.col(name), dtype).alias(name)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Enum | pl.Categorical)
    )


def formula_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every text cell (categoricals included) that would be read as a formula prefixed
    with a single quote; other cells and every non-text column unchanged."""
    text = [
        name
        for name, dtype in frame.schema.items()
        if dtype == pl.String or isinstance(dtype, pl.Enum | pl.Categorical)
    ]
    return frame.with_columns(
        pl.when(pl.col(name).cast(pl.String).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(name).cast(pl.String))
        .otherwise(pl.col(name).cast(pl.String))
        .alias(name)
        for name in text
    )


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """All rows of ``frame`` as UTF-8 CSV, safe to open in a spreadsheet (`formula_safe`, text quoted,
    list columns joined: `spreadsheet_frame`)."""
    return formula_safe(spreadsheet_frame(frame)).write_csv(quote_style="non_numeric").encode("utf-8")
