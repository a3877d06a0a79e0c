"""Movers: last complete week's leaderboards, rising stars and decliners, and the contribution-to-change
waterfall of the week-over-week GMV change."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from webapp import data as app_data
from webapp import ui

user = ui.current_user()
st.title("Movers")

contributions = app_data.snapshot("gmv_change_contributions", user)
if contributions.height:
    first = contributions.row(0, named=True)
    st.caption(
        f"Week {first['start']:%a %d %b} – {first['end']:%a %d %b %Y} against "
        f"{first['previous_start']:%d %b} – {first['previous_end']:%d %b} "
        "(last complete week of the build; the sidebar's filters do not apply here)"
    )

entity = st.segmented_control(
    "Entities",
    ["creators", "merchants", "products"],
    default="creators",
    key="mv_entity",
    bind="query-params",
    required=True,
    format_func=str.capitalize,
)
top = app_data.snapshot(f"top_{entity}", user)
sheets = {f"Top {entity}": top}
NAME = {"creators": "handle", "merchants": "name", "products": "title"}[entity]
ID = {"creators": "creator_id", "merchants": "merchant_id", "products": "product_id"}[entity]

# Lazy tabs (the open one is in the URL): only the open tab's chart and table are drawn.
tab_top, tab_rise, tab_decl, tab_why = st.tabs(
    ["Leaderboard", "Rising stars", "Decliners", "Contribution to change"],
    key="mv_tab",
    on_change="rerun",
    bind="query-params",
)
if entity != "products":
    for direction in ("rising", "declining"):
        sheets[f"{direction.capitalize()} {entity}"] = app_data.snapshot(f"{direction}_{entity}", user)
sheets["Contributions"] = contributions


def leaderboard() -> None:
    head = top.head(15).reverse()
    fig = go.Figure(
        go.Bar(
            x=head["gmv"],
            y=head[NAME],
            orientation="h",
            marker_color=ui.PALETTE[0],
            customdata=head["growth_pct"],
            hovertemplate="%{y}: %{x:$,.0f} (%{customdata:+.0%} wow)<extra></extra>",
        )
    )
    fig.update_layout(title=f"Top 15 {entity} by GMV")
    ui.chart(ui.style(fig, height=460, x_format="$,.0s", legend=False), key="mv_top_chart")
    ui.table(top.drop("start", "end"), key="mv_top", export_name=f"top_{entity}", height=320)


def moving(direction: str) -> None:
    if entity == "products":
        st.info("Rising stars and decliners are tracked for creators and merchants.")
        return
    frame = sheets[f"{direction.capitalize()} {entity}"]
    head = frame.head(15)
    fig = go.Figure()
    fig.add_bar(x=head[NAME], y=head["previous_gmv"], name="Previous week", marker_color="#B8C4E6")
    fig.add_bar(
        x=head[NAME],
        y=head["gmv"],
        name="This week",
        marker_color=ui.PALETTE[2] if direction == "rising" else ui.PALETTE[4],
    )
    fig.update_layout(
        barmode="group",
        title=f"{'Rising' if direction == 'rising' else 'Declining'} {entity}: "
        "GMV this week vs the week before",
    )
    ui.chart(ui.style(fig, height=380, y_format="$,.0f"), key=f"mv_{direction}_chart")
    ui.table(
        frame.drop("start", "end"), key=f"mv_{direction}", export_name=f"{direction}_{entity}", height=300
    )


def why() -> None:
    dims = contributions["dimension"].unique(maintain_order=True).to_list()
    dimension = st.selectbox(
        "Explain the change by",
        dims,
        key="mv_dim",
        bind="query-params",
        format_func=lambda d: d.replace("_", " ").replace("creator id", "creator"),
    )
    part = contributions.filter(pl.col("dimension") == dimension).sort("contribution", descending=True)
    if part.height == 0:
        return
    total = part["total_change"][0]
    previous_total = float(part["previous_gmv"].sum())
    fig = go.Figure(
        go.Waterfall(
            x=["Previous week", *part["segment"].to_list(), "This week"],
            measure=["absolute", *(["relative"] * part.height), "total"],
            y=[previous_total, *part["contribution"].to_list(), 0],
            increasing={"marker": {"color": ui.PALETTE[2]}},
            decreasing={"marker": {"color": ui.PALETTE[4]}},
            totals={"marker": {"color": ui.PALETTE[0]}},
            hovertemplate="%{x}: %{y:$,.0f}<extra></extra>",
        )
    )
    fig.update_layout(title=f"Week-over-week GMV change {ui.money(total)} by {dimension.replace('_', ' ')}")
    ui.chart(ui.style(fig, height=420, y_format="$,.0s", legend=False), key="mv_waterfall")
    ui.table(
        part.select("segment", "previous_gmv", "gmv", "contribution", "share_of_change"),
        key="mv_contrib",
        export_name=f"gmv_change_by_{dimension}",
    )


for tab, render in (
    (tab_top, leaderboard),
    (tab_rise, lambda: moving("rising")),
    (tab_decl, lambda: moving("declining")),
    (tab_why, why),
):
    if tab.open is not False:  # None when tabs do not track state (AppTest): draw every tab
        with tab:
            render()

ui.downloads("movers", sheets, key="dl_movers", csv=False, label="Excel: all tables")
st.caption("Excel: every table of this page in one workbook.")
