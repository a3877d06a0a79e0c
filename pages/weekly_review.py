"""Weekly review: the week's business review on screen, a presentation mode that walks its sections
(the section is in the URL, so a link reopens the same slide), the meeting notes, and downloads of
every format (built on click). The review itself is assembled by `reports.weekly`."""

from __future__ import annotations

from functools import partial

import streamlit as st

from reports.charts import plotly_figure
from reports.common import complete_weeks, week_label
from reports.model import Report, Section, format_value
from reports.notes import read_notes, save_notes
from reports.render import FORMATS, MIME_TYPES, render
from reports.weekly import notes_owner, weekly_review
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
settings = app_data.settings()
build_id = (app_data.manifest() or {}).get("build_id", "")


@st.cache_data(ttl=600, max_entries=8, show_spinner="Assembling the weekly review…")
def _review(home: str, build: str, week: str, _user: object, username: str) -> Report:
    # Keyed by home, build, week and user; the user object itself stays out of the key.
    return weekly_review(settings, week, _user)  # type: ignore[arg-type]


st.title("Weekly review")
weeks = [week_label(day) for day in reversed(complete_weeks(settings))]
if not weeks:
    st.info("The current build has no complete week yet.")
    st.stop()
week = st.selectbox("Week", weeks, key="wr_week", bind="query-params", help="ISO weeks, newest first.")
report = _review(str(settings.home), build_id, week, user, user.username)
st.caption(f"{report.period} · {report.filter_text}")

labels = [section.label for section in report.sections]
keys = [section.key for section in report.sections]
top = st.columns([1, 1, 3])
present = top[0].toggle("Presentation mode", key="wr_present", bind="query-params")


def _render(section: Section, large: bool = False) -> None:
    """One section: summary, KPI cards, charts, tables (first rows; all rows in the downloads)."""
    (st.header if large else st.subheader)(section.title)
    for line in section.summary:
        st.markdown(line)
    if section.kpis:
        columns = st.columns(4)
        for i, kpi in enumerate(section.kpis):
            delta = None if kpi.change_pct is None else f"{kpi.change_pct:+.1%} WoW"
            columns[i % 4].metric(
                kpi.label,
                format_value(kpi.value, kpi.format_key),
                delta,
                delta_color="normal" if kpi.higher_is_better else "inverse",
                help=f"vs 4-week average {format_value(kpi.change_vs_4w_pct, 'pct_change')}, "
                f"vs 13 weeks earlier {format_value(kpi.change_vs_13w_pct, 'pct_change')}",
                border=True,
            )
    if section.charts:
        chart_columns = st.columns(2 if len(section.charts) > 1 else 1)
        for i, chart in enumerate(section.charts):
            with chart_columns[i % len(chart_columns)]:
                st.plotly_chart(plotly_figure(chart), key=f"wr_{section.key}_{chart.key}", width="stretch")
    for table in section.tables:
        if section.kpis:
            continue  # the cards already show the KPI table
        st.markdown(f"**{table.title}** ({table.frame.height:,} rows)")
        shown = table.frame.select(table.shown_columns).head(table.print_rows or 200)
        st.dataframe(
            ui.rounded(shown),
            column_config=ui.column_config(shown),
            hide_index=True,
            placeholder=ui.MISSING,
            key=f"wr_{table.key}",
        )
    if section.key == "notes":
        owner = notes_owner(user)
        saved = read_notes(settings, week, owner)
        text = st.text_area(
            "Notes for this week's meeting",
            value=saved.text,
            height=220,
            key=f"wr_notes_{week}",
            help="Saved with the review and included in every download.",
        )
        if st.button("Save notes", key="wr_save_notes", icon=":material/save:"):
            save_notes(settings, week, text, user.username, owner)
            _review.clear()
            st.toast("Notes saved")
            st.rerun()


def _review_file(fmt: str) -> bytes:
    """The review as a ``fmt`` file (built when its download button is clicked)."""
    return render(_review(str(settings.home), build_id, week, user, user.username), fmt)


if present:
    current = st.query_params.get("section", keys[0])
    index = keys.index(current) if current in keys else 0
    nav = st.columns([1, 6, 1])
    if nav[0].button("◀ Previous", key="wr_prev", disabled=index == 0, width="stretch"):
        st.query_params["section"] = keys[index - 1]
        st.rerun()
    nav[1].progress((index + 1) / len(keys), text=f"{index + 1} / {len(keys)} · {labels[index]}")
    if nav[2].button("Next ▶", key="wr_next", disabled=index == len(keys) - 1, width="stretch"):
        st.query_params["section"] = keys[index + 1]
        st.rerun()
    _render(report.sections[index], large=True)
else:
    st.query_params.pop("section", None)
    # Lazy tabs (the open one is in the URL): only the open section's charts and tables are drawn. The
    # whole review at once is 11 charts and 10 tables, slow to draw and slow to leave for another page.
    tabs = st.tabs(labels, key="wr_tab", on_change="rerun", bind="query-params")
    for tab, section in zip(tabs, report.sections, strict=True):
        if tab.open is not False:  # None when tabs do not track state (AppTest): draw every section
            with tab:
                _render(section)

with top[2], st.container(horizontal=True, gap="small"):
    for fmt in FORMATS:
        st.download_button(
            fmt.upper(),
            data=partial(_review_file, fmt),
            file_name=f"{report.slug}.{fmt}",
            mime=MIME_TYPES[fmt],
            key=f"wr_download_{fmt}",
            on_click="ignore",
            icon=":material/download:",
        )
