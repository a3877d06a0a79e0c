"""The shape every report is assembled into, and how its numbers are formatted.

A report (weekly review or merchant report) is a frozen `Report` of `Section`s; a section holds KPI
cards, charts and tables. The renderers (Excel, PDF, slides, HTML) take a `Report` and nothing else,
so every format shows the same numbers. Number formats come from the metric dictionary
(`core.metrics`) through *format keys*: a metric name (``gmv``, ``ctr``…) or one of the extra
keys in `EXTRA_FORMATS` (``pct_change``, ``int``, ``text``, ``date``…).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Literal

import polars as pl

from core.metrics import METRICS


class ReportError(ValueError):
    """A report cannot be made from these arguments (unknown week, merchant, format…)."""


class NoReportData(LookupError):
    """There is no published build (or no data for the period) to make the report from."""


@dataclass(frozen=True)
class Format:
    """How one kind of value is shown: Excel number format, d3 format, and a Python formatter."""

    excel: str
    d3: str
    kind: Literal[
        "usd", "usd2", "count", "ratio", "pct_change", "points", "number", "multiple", "text", "date"
    ]


EXTRA_FORMATS: Mapping[str, Format] = MappingProxyType(
    {
        "usd": Format('"$"#,##0', "$,.0f", "usd"),
        "usd2": Format('"$"#,##0.00', "$,.2f", "usd2"),
        "int": Format("#,##0", ",d", "count"),
        "ratio": Format("0.0%", ".1%", "ratio"),
        "pct_change": Format("+0.0%;-0.0%;0.0%", "+.1%", "pct_change"),
        # a difference of two rates, in percentage points (the value is in points: 5.0 = 5 pp)
        "pp_change": Format('+0.0" pp";-0.0" pp";0.0" pp"', "+.1f", "points"),
        "number": Format("#,##0.00", ",.2f", "number"),
        "multiple": Format('0.00"×"', ".2f", "multiple"),
        "text": Format("@", "", "text"),
        "date": Format("yyyy-mm-dd", "", "date"),
    }
)


def _metric_format(name: str) -> Format:
    metric = METRICS[name]
    if metric.unit == "ratio":
        kind: Any = "ratio"
    elif metric.unit == "count":
        kind = "count"
    elif metric.d3_format.endswith(".2f"):
        kind = "usd2"
    else:
        kind = "usd"
    return Format(metric.excel_format, metric.d3_format, kind)


def format_of(key: str) -> Format:
    """The `Format` of a format key (a metric name from the dictionary, or an `EXTRA_FORMATS` key)."""
    if key in METRICS:
        return _metric_format(key)
    try:
        return EXTRA_FORMATS[key]
    except KeyError:
        raise KeyError(f"unknown format key {key!r}") from None


_NUMBER_TEXT: Mapping[str, Callable[[float], str]] = MappingProxyType(
    {
        "usd": lambda n: f"-${-n:,.0f}" if n < 0 else f"${n:,.0f}",
        "usd2": lambda n: f"-${-n:,.2f}" if n < 0 else f"${n:,.2f}",
        "count": lambda n: f"{n:,.0f}",
        "ratio": lambda n: f"{n:.1%}",  # one number of decimals for the whole column, as in Excel
        "pct_change": lambda n: f"{n:+.1%}",
        "points": lambda n: f"{n:+.1f} pp",
        "multiple": lambda n: f"{n:,.2f}×",
    }
)


def format_value(value: Any, key: str) -> str:
    """``value`` as text for PDF, slides and HTML tables (``–`` for a missing value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key in METRICS:  # a metric reads as its display rule says, in every report as in the app
        return METRICS[key].display.text(float(value))
    kind = format_of(key).kind
    if kind == "text":
        return str(value)
    if kind == "date":
        return value.isoformat() if isinstance(value, date | datetime) else str(value)
    return _NUMBER_TEXT.get(kind, lambda n: f"{n:,.2f}")(float(value))


@dataclass(frozen=True)
class Kpi:
    """A headline card: this period's value and its comparisons (changes are fractions)."""

    metric: str
    label: str
    value: float | None
    previous: float | None
    change_pct: float | None
    average_4w: float | None
    change_vs_4w_pct: float | None
    value_13w_ago: float | None
    change_vs_13w_pct: float | None
    higher_is_better: bool = True

    @property
    def format_key(self) -> str:
        return self.metric


@dataclass(frozen=True)
class Table:
    """A table of a section: the full frame (every row goes to Excel) and how to show it.

    ``formats`` maps columns to format keys (missing: text); ``metric_column`` names a column holding
    the metric of each row, whose format then applies to the ``per_row_columns``. ``print_rows``
    caps the rows shown in PDF and HTML (``None``: all); slides show what fits.
    """

    key: str
    title: str
    frame: pl.DataFrame
    labels: Mapping[str, str] = field(default_factory=dict)
    formats: Mapping[str, str] = field(default_factory=dict)
    metric_column: str | None = None
    per_row_columns: tuple[str, ...] = ()
    format_columns: Mapping[str, str] = field(default_factory=dict)
    """Columns whose format key each row names in another column (column → that column)."""
    print_rows: int | None = None
    widths: Mapping[str, float] = field(default_factory=dict)
    """Relative column widths for PDF/slides (default 1; long text columns get more)."""
    hidden: tuple[str, ...] = ()
    """Columns kept in the frame (Excel) but not shown in PDF, slides and HTML."""
    slide_columns: tuple[str, ...] = ()
    """The few columns a slide shows (default: the shown columns without long text)."""

    @property
    def shown_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in self.hidden]

    def label(self, column: str) -> str:
        if column in self.labels:
            return self.labels[column]
        if column in METRICS:
            return METRICS[column].label
        text = column.replace("_", " ")
        return text[:1].upper() + text[1:]

    def format_key(self, column: str, row: Mapping[str, Any] | None = None) -> str:
        if column in self.format_columns and row is not None:
            key = row.get(self.format_columns[column])
            if isinstance(key, str) and (key in METRICS or key in EXTRA_FORMATS):
                return key
        if self.metric_column and row is not None and column in self.per_row_columns:
            metric = row.get(self.metric_column)
            if isinstance(metric, str) and (metric in METRICS or metric in EXTRA_FORMATS):
                return metric
        return self.formats.get(column, "text")

    def cell(self, column: str, row: Mapping[str, Any]) -> str:
        """The displayed text of one cell."""
        return format_value(row.get(column), self.format_key(column, row))

    def display_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        limit = self.print_rows if limit is None else limit
        frame = self.frame if limit is None else self.frame.head(limit)
        return frame.to_dicts()


@dataclass(frozen=True)
class Chart:
    """A chart: one or more side-by-side panels of series over a categorical x axis.

    ``frame`` has columns ``panel``, ``x`` (text label, in order), ``y`` and ``series``.
    """

    key: str
    title: str
    frame: pl.DataFrame
    kind: Literal["line", "bar"] = "line"
    y_format: str = "number"
    note: str = ""

    @property
    def panels(self) -> list[str]:
        return list(dict.fromkeys(self.frame["panel"].to_list())) if self.frame.height else []


@dataclass(frozen=True)
class Section:
    """One section of a report: one sheet, one slide, one block of pages."""

    key: str
    title: str
    short_title: str = ""
    """Sheet name and navigation label (≤ 31 characters)."""
    summary: tuple[str, ...] = ()
    kpis: tuple[Kpi, ...] = ()
    charts: tuple[Chart, ...] = ()
    tables: tuple[Table, ...] = ()
    text: str = ""
    """Free text shown as is (meeting notes)."""

    @property
    def label(self) -> str:
        return self.short_title or self.title

    def table(self, key: str) -> Table:
        for table in self.tables:
            if table.key == key:
                return table
        raise KeyError(f"section {self.key!r} has no table {key!r}")


@dataclass(frozen=True)
class Report:
    """An assembled report: what every renderer draws from."""

    kind: Literal["weekly", "merchant"]
    title: str
    period: str
    """Human-readable period, e.g. ``2026-W47 (2026-11-16 – 2026-11-22)``."""
    filters: Mapping[str, str]
    """Filters and scope the report was made with (printed on every page)."""
    build_id: str
    generated_at: datetime
    sections: tuple[Section, ...]
    slug: str
    """File-name stem, e.g. ``weekly-review-2026-W47``."""

    def section(self, key: str) -> Section:
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(f"report has no section {key!r}; sections: {', '.join(s.key for s in self.sections)}")

    @property
    def filter_text(self) -> str:
        return " · ".join(f"{name}: {value}" for name, value in self.filters.items())


def kpi_table(kpis: tuple[Kpi, ...], key: str = "kpis", title: str = "Headline KPIs") -> Table:
    """The KPI cards as a table (one row per metric) for Excel, PDF and slides."""
    frame = pl.DataFrame(
        {
            "metric": [k.metric for k in kpis],
            "label": [k.label for k in kpis],
            "value": [k.value for k in kpis],
            "previous": [k.previous for k in kpis],
            "change_pct": [k.change_pct for k in kpis],
            "average_4w": [k.average_4w for k in kpis],
            "change_vs_4w_pct": [k.change_vs_4w_pct for k in kpis],
            "value_13w_ago": [k.value_13w_ago for k in kpis],
            "change_vs_13w_pct": [k.change_vs_13w_pct for k in kpis],
        },
        schema={
            "metric": pl.String,
            "label": pl.String,
            **{
                name: pl.Float64
                for name in (
                    "value",
                    "previous",
                    "change_pct",
                    "average_4w",
                    "change_vs_4w_pct",
                    "value_13w_ago",
                    "change_vs_13w_pct",
                )
            },
        },
    )
    return Table(
        key=key,
        title=title,
        frame=frame,
        labels={
            "label": "Metric",
            "value": "This week",
            "previous": "Previous week",
            "change_pct": "WoW",
            "average_4w": "4-week avg",
            "change_vs_4w_pct": "vs 4-wk avg",
            "value_13w_ago": "13 weeks earlier",
            "change_vs_13w_pct": "vs 13 wks",
        },
        formats={
            "change_pct": "pct_change",
            "change_vs_4w_pct": "pct_change",
            "change_vs_13w_pct": "pct_change",
        },
        metric_column="metric",
        per_row_columns=("value", "previous", "average_4w", "value_13w_ago"),
        widths={"label": 1.6},
        hidden=("metric",),
    )
