"""Overview: KPI cards against the previous period, the GMV trend with the previous period overlaid, and
breakdowns by region, category, tier and content kind."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core import metrics
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
f = ui.filters()

st.title("Overview")
st.subheader(
    "Today so far", help="Read from the lake's last commit (stream or ingest), not from the last build."
)
st.caption("The whole marketplace: the sidebar's filters apply to the period below.")
ui.today_section(user, "the marketplace")

st.subheader("Period")
st.caption(f.label + " · compared with the previous period of equal length")

data = app_data.overview(user, f.start, f.end, f.regions, f.categories, f.tiers)
cards = data["cards"]
daily = data["daily"]
current = daily.filter(pl.col("range") == "current")

CARDS = ["gmv", "orders", "aov", "ctr", "cvr", "gpm", "active_creators", "active_merchants", "refund_rate"]
rows = {r["metric"]: r for r in cards.iter_rows(named=True)}
columns = st.columns(5) + st.columns(5)
for column, name in zip(columns, CARDS, strict=False):
    row = rows.get(name)
    if row is None:
        continue
    value, change_pct = row["value"], row["change_pct"]
    if value is None:
        column.metric(
            row["label"],
            ui.MISSING,
            help=row["definition"] + " Not available with segment filters.",
            border=True,
        )
        # the reason in words under the card, not only in its tooltip
        column.caption("Not split by creator region, category or tier: clear those filters to see it.")
        continue
    # the dictionary's rule for the metric (GMV compact: a card has little room)
    shown = ui.money_compact(value) if name == "gmv" else metrics.metric(name).display.text(value)
    delta = None if change_pct is None else f"{change_pct * 100:+.1f}%"
    spark = current[name].fill_null(0).to_list() if name in current.columns else None
    column.metric(
        row["label"],
        shown,
        delta=delta,
        help=f"{row['definition']} Previous period: "
        f"{row['previous_start']:%d %b} – {row['previous_end']:%d %b}.",
        border=True,
        chart_data=spark,
        chart_type="area" if name == "gmv" else "line",
        delta_color="normal" if row["higher_is_better"] else "inverse",
    )
with columns[len(CARDS)]:
    st.caption("Change against the previous period; sparkline: each day of this period.")
    ui.downloads("kpis", {"KPIs": cards, "Daily": daily}, key="dl_kpis")

st.subheader("GMV trend", help=ui.metric_help("gmv"))
previous = daily.filter(pl.col("range") == "previous")
fig = go.Figure()
fig.add_scatter(x=current["date"], y=current["gmv"], name="This period", mode="lines", line={"width": 3})
fig.add_scatter(
    x=current["date"][: previous.height] if previous.height <= current.height else current["date"],
    y=previous["gmv"][: current.height],
    name="Previous period (aligned by day)",
    mode="lines",
    line={"dash": "dot", "width": 2},
    customdata=previous["date"][: current.height],
    hovertemplate="%{y:$,.0f} (on %{customdata|%d %b})",
)
ui.chart(ui.style(fig, y_format=ui.d3("gmv")), key="trend")

st.subheader("Breakdowns")
tabs = st.tabs(["Region", "Category", "Creator tier", "Live vs video"])
for tab, dimension in zip(tabs, ("region", "category", "tier", "content_kind"), strict=True):
    frame = data[f"by_{dimension}"]
    with tab:
        left, right = st.columns([2, 3])
        with left:
            fig = go.Figure(
                go.Bar(
                    x=frame[dimension],
                    y=frame["gmv"],
                    text=frame["gmv"],
                    texttemplate="%{text:$,.3s}",
                    textposition="outside",
                    textangle=0,
                    cliponaxis=False,
                    marker_color=ui.PALETTE[0],
                    hovertemplate="%{x}: %{y:$,.0f}<extra></extra>",
                )
            )
            ui.chart(ui.style(fig, height=300, y_format=ui.d3("gmv"), legend=False), key=f"bar_{dimension}")
        with right:
            breakdown = frame.select(
                dimension, "gmv", "orders", "aov", "ctr", "cvr", "gpm", "refund_rate", "active_creators"
            )
            ui.table(breakdown, key=f"t_{dimension}", export_name=f"gmv_by_{dimension}")

with st.expander("Metric definitions", icon=":material/menu_book:"):
    ui.table(app_data.dictionary(), key="dictionary")
