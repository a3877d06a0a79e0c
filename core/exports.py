"""Files people open in a spreadsheet: CSV whose cells cannot run as formulas.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice
and Google Sheets as a formula (CSV or formula injection): an entity's name, a note or a handle typed as
``=HYPERLINK(…)`` would run when the export is opened. As OWASP recommends, such text cells are
prefixed with a single quote (shown as text, the quote itself hidden) and every text cell is wrapped in
double quotes, inner quotes doubled. Numbers, dates and booleans are written as they are. The app's
downloads and the CLI's exports share this one rule.
"""

from __future__ import annotations

import polars as pl

FORMULA_START = r"^[=+\-@\t\r]"
"""A text cell matching this would be read as a formula."""


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
    """All rows of ``frame`` as UTF-8 CSV, safe to open in a spreadsheet (`formula_safe`, text quoted)."""
    return formula_safe(frame).write_csv(quote_style="non_numeric").encode("utf-8")
