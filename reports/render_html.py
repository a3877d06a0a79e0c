"""A self-contained HTML report: interactive Plotly charts with plotly.js embedded once, inline CSS,
no external requests. Tables show every row in scrollable boxes."""

from __future__ import annotations

import html

import plotly.io as pio

from reports.charts import plotly_figure
from reports.model import Kpi, Report, Section, Table, format_of, format_value

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#111827;background:#f8fafc}
header{background:#1e3a8a;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:26px}
header .meta{opacity:.85;font-size:14px}nav{padding:8px 28px;background:#e0e7ff;font-size:14px}
nav a{margin-right:14px;color:#1e3a8a;text-decoration:none}main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:18px 0;padding:14px 20px}
h2{color:#1e3a8a;margin:4px 0 10px}h3{color:#1e3a8a;font-size:15px;margin:16px 0 6px}
.summary p{margin:4px 0}.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin:10px 0}
.card{border:1px solid #d1d5db;border-radius:8px;padding:10px 12px;background:#f9fafb}
.card .label{color:#4b5563;font-size:13px}.card .value{font-size:24px;font-weight:700;margin:4px 0}
.card .changes span{display:inline-block;margin-right:10px;font-size:12px}
.good{color:#15803d}.bad{color:#b91c1c}
.muted{color:#6b7280}.tablebox{max-height:460px;overflow:auto;border:1px solid #e5e7eb}
table{border-collapse:collapse;font-size:13px;width:100%}
th{position:sticky;top:0;background:#e0e7ff;text-align:left}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
td.num{text-align:right;white-space:nowrap}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px}
.notes{white-space:pre-wrap;background:#fffbeb;border:1px solid #fde68a;padding:10px;border-radius:6px}
footer{font-size:12px;color:#6b7280;padding:0 28px 20px}
"""


def _kpis(kpis: tuple[Kpi, ...]) -> str:
    cards = []
    for kpi in kpis:
        changes = []
        for label, change in (
            ("WoW", kpi.change_pct),
            ("4-wk", kpi.change_vs_4w_pct),
            ("13-wk", kpi.change_vs_13w_pct),
        ):
            good = change is not None and (change >= 0) == kpi.higher_is_better
            css = "muted" if change is None else "good" if good else "bad"
            changes.append(
                f'<span class="{css}">{label} {html.escape(format_value(change, "pct_change"))}</span>'
            )
        cards.append(
            f'<div class="card" data-metric="{kpi.metric}"><div class="label">{html.escape(kpi.label)}</div>'
            f'<div class="value">{html.escape(format_value(kpi.value, kpi.format_key))}</div>'
            f'<div class="changes">{"".join(changes)}</div></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _table(table: Table) -> str:
    columns = table.shown_columns
    head = "".join(f"<th>{html.escape(table.label(c))}</th>" for c in columns)
    body = []
    for row in table.frame.iter_rows(named=True):
        cells = []
        for column in columns:
            kind = format_of(table.format_key(column, row)).kind
            css = "" if kind in ("text", "date") else ' class="num"'
            cells.append(f"<td{css}>{html.escape(table.cell(column, row))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        return f'<h3>{html.escape(table.title)}</h3><p class="muted">No rows.</p>'
    return (
        f'<h3>{html.escape(table.title)} <span class="muted">({table.frame.height:,} rows)</span></h3>'
        f'<div class="tablebox"><table data-key="{table.key}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _section(section: Section, include_js: list[bool]) -> str:
    parts = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
    if section.summary:
        parts.append(
            '<div class="summary">' + "".join(f"<p>{html.escape(s)}</p>" for s in section.summary) + "</div>"
        )
    if section.key == "notes" or section.text:
        parts.append(f'<div class="notes">{html.escape(section.text) or "(no notes)"}</div>')
    if section.kpis:
        parts.append(_kpis(section.kpis))
    if section.charts:
        divs = []
        for chart in section.charts:
            divs.append(
                pio.to_html(
                    plotly_figure(chart),
                    full_html=False,
                    include_plotlyjs=not include_js[0],
                    config={"displaylogo": False, "responsive": True},
                )
            )
            include_js[0] = True
        parts.append(f'<div class="charts">{"".join(divs)}</div>')
        notes = sorted({c.note for c in section.charts if c.note})
        parts.extend(f'<p class="muted">{html.escape(n)}</p>' for n in notes)
    parts.extend(_table(t) for t in section.tables)
    parts.append("</section>")
    return "".join(parts)


def render_html(report: Report) -> bytes:
    """The report as one self-contained HTML page (UTF-8 bytes)."""
    include_js = [False]
    sections = "".join(_section(s, include_js) for s in report.sections)
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.label)}</a>' for s in report.sections)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)} · {html.escape(report.period)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>"
        f'<header><h1>{html.escape(report.title)}</h1><div class="meta">{html.escape(report.period)}'
        f" · {html.escape(report.filter_text)}</div></header><nav>{nav}</nav><main>{sections}</main>"
        f"<footer>Generated {report.generated_at:%Y-%m-%d %H:%M} UTC by Liftboard · "
        f"{html.escape(report.filter_text)}</footer></body></html>"
    )
    return page.encode("utf-8")
