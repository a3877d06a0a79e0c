"""Cohorts: weekly retention heatmaps and GMV-per-member curves for creator and merchant cohorts, and a
comparison of chosen cohorts against the average cohort."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from webapp import data as app_data
from webapp import ui

user = ui.current_user()
st.title("Cohorts")

KINDS = {
    "creator": {"joined": "Joined", "first_active": "First active week", "first_sale": "First sale week"},
    "merchant": {"joined": "Joined", "first_sale": "First sale week"},
}
c1, c2, c3 = st.columns([1, 1.4, 1.4])
entity = c1.segmented_control(
    "Entities",
    ["creator", "merchant"],
    default="creator",
    key="co_entity",
    bind="query-params",
    format_func=lambda k: k.capitalize() + "s",
    required=True,
)
kind = c2.selectbox(
    "Cohort by",
    list(KINDS[entity]),
    format_func=KINDS[entity].__getitem__,
    key=f"co_kind_{entity}",
    index=1 if entity == "creator" else 1,
    bind="query-params",
)
max_weeks = c3.slider("Weeks since joining the cohort", 4, 26, 12, key="co_weeks", bind="query-params")

cohorts = app_data.snapshot(f"{entity}_cohorts", user).filter(
    (pl.col("cohort_kind") == kind) & (pl.col("weeks_since") <= max_weeks)
)
if cohorts.height == 0:
    st.info("No cohorts of this kind yet.")
    st.stop()

recent = cohorts.select("cohort_week").unique().sort("cohort_week").tail(20)["cohort_week"]
cohorts = cohorts.filter(pl.col("cohort_week").is_in(recent.implode()))
members = cohorts.filter(pl.col("weeks_since") == 0).select("cohort_week", "members").sort("cohort_week")
heat = cohorts.pivot(on="weeks_since", index="cohort_week", values="retention", sort_columns=True).sort(
    "cohort_week"
)
weeks = [c for c in heat.columns if c != "cohort_week"]
labels = [
    f"{d:%d %b %Y} (n={n:,})"
    for d, n in zip(
        heat["cohort_week"],
        members.join(heat.select("cohort_week"), on="cohort_week", how="right")["members"].fill_null(0),
        strict=True,
    )
]

tab_ret, tab_gmv, tab_cmp = st.tabs(["Retention", "GMV per member", "Compare cohorts"])
with tab_ret:
    z = heat.select(weeks).to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"W{w}" for w in weeks],
            y=labels,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=[[("" if v != v else f"{v:.0%}") for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="cohort %{y}<br>%{x}: %{z:.1%} active<extra></extra>",
            colorbar={"tickformat": ".0%"},
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Share of each weekly cohort active N weeks later")
    ui.chart(ui.style(fig, height=160 + 26 * len(labels), legend=False), key="co_heat")
with tab_gmv:
    fig = go.Figure()
    for i, week in enumerate(recent.to_list()[-8:]):
        part = cohorts.filter(pl.col("cohort_week") == week).sort("weeks_since")
        fig.add_scatter(
            x=part["weeks_since"],
            y=part["cumulative_gmv_per_member"],
            mode="lines+markers",
            name=f"{week:%d %b}",
            line={"color": ui.PALETTE[i % len(ui.PALETTE)]},
        )
    average = (
        cohorts.group_by("weeks_since").agg(pl.col("cumulative_gmv_per_member").mean()).sort("weeks_since")
    )
    fig.add_scatter(
        x=average["weeks_since"],
        y=average["cumulative_gmv_per_member"],
        name="Average cohort",
        line={"color": "#333", "dash": "dash", "width": 3},
    )
    fig.update_layout(
        title="Cumulative GMV per cohort member (8 most recent cohorts)", xaxis_title="weeks since"
    )
    ui.chart(ui.style(fig, y_format="$,.0f"), key="co_gmv")
with tab_cmp:
    options = recent.to_list()
    chosen = st.multiselect(
        "Cohorts",
        options,
        default=options[-3:-1] if len(options) >= 3 else options,
        format_func=lambda d: f"{d:%d %b %Y}",
        key="co_cmp",
    )
    table = (
        cohorts.filter(pl.col("cohort_week").is_in(chosen))
        .select(
            "cohort_week",
            "weeks_since",
            "members",
            "active_members",
            "retention",
            "average_retention",
            "retention_vs_average",
            "gmv_per_member",
            "average_gmv_per_member",
            "gmv_per_member_vs_average",
        )
        .sort("cohort_week", "weeks_since")
    )
    fig = go.Figure()
    for i, week in enumerate(chosen):
        part = table.filter(pl.col("cohort_week") == week)
        fig.add_scatter(
            x=part["weeks_since"],
            y=part["retention"],
            name=f"{week:%d %b}",
            mode="lines+markers",
            line={"color": ui.PALETTE[i % len(ui.PALETTE)]},
        )
    if table.height:
        avg = table.filter(pl.col("cohort_week") == chosen[0])
        fig.add_scatter(
            x=avg["weeks_since"],
            y=avg["average_retention"],
            name="Average cohort",
            line={"color": "#333", "dash": "dash"},
        )
    fig.update_layout(title="Retention against the average cohort", xaxis_title="weeks since")
    ui.chart(ui.style(fig, y_format=".0%"), key="co_cmp_chart")
    ui.table(table, key="co_cmp_table", height=300)

ui.downloads(f"{entity}_cohorts_{kind}", lambda: {"Cohorts": cohorts, "Retention": heat}, key="dl_cohorts")
