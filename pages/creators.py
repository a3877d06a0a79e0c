"""Creators: a searchable, filterable directory; selecting a row (or ``?creator=`` in the URL) opens the
creator's profile — trend, funnel, content mix, interests, segment and lifecycle, comparison with the
tier's median creator, and recommended strategies with their SHAP drivers."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from analytics.profiles import FUNNEL_STAGES
from analytics.segments import LIFECYCLE_STAGES
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
f = ui.filters()

st.title("Creators")
directory_all = app_data.creator_directory(user)

with st.container(border=True):
    c1, c3, c4 = st.columns([2, 1.3, 2])
    search = c1.text_input(
        "Search handle or id",
        key="c_search",
        bind="query-params",
        placeholder="@handle or c000123",
        icon=":material/search:",
    )
    lifecycles = c3.multiselect(
        "Lifecycle", list(LIFECYCLE_STAGES), key="c_life", bind="query-params", placeholder="All"
    )
    top = ui.as_float(directory_all["gmv_28d"].max())
    gmv_min = c4.number_input(
        "Min GMV (28 days)",
        min_value=0.0,
        value=0.0,
        step=100.0,
        key="c_gmv_min",
        bind="query-params",
        format="%.0f",
        help=ui.metric_help("gmv"),
    )
directory = app_data.creator_directory(
    user,
    search=search,
    tiers=f.tiers,  # the sidebar's creator tier: one tier filter for the whole app
    lifecycles=lifecycles,
    categories=f.categories,
    regions=f.regions,
    gmv_range=(gmv_min, max(top, gmv_min)),
)
st.caption(
    f"{directory.height:,} of {directory_all.height:,} creators · 28-day figures up to "
    f"{app_data.last_day():%d %b %Y} · sidebar region and category apply · select a row to open a profile"
)
event = ui.table(
    directory, key="creator_table", export_name="creators", select=True, height=380, hide=("value_segment",)
)
creator_id = ui.selected_id(event, directory, "creator_id")

if not creator_id:
    st.info("Select a creator in the table to open their profile.", icon=":material/touch_app:")
    st.stop()

profile = app_data.creator_profile(user, creator_id, f.start, f.end)
if profile is None:
    ui.not_found(f"Creator {creator_id}")
    st.stop()

seg, feat, peers = profile.segment, profile.features, profile.peers
st.divider()
st.header(f"{profile.handle}  ·  {creator_id}")
st.caption(
    f"{seg['tier']} creator · {seg['primary_category']} · {seg['region']} · "
    f"lifecycle **{seg['lifecycle_stage']}** · value segment **{ui.segment_label(seg['value_segment'])}** · "
    f"{feat.get('followers', 0):,} followers"
)

st.subheader(
    "Today so far", help="Read from the lake's last commit (stream or ingest), not from the last build."
)
ui.today_section(user, profile.handle, creator_id=creator_id)

m = st.columns(5)
m[0].metric(
    "GMV 28d",
    ui.money_compact(feat.get("gmv_28d")),
    help=ui.metric_help("gmv"),
    border=True,
    delta=ui.pct(feat.get("gmv_trend_28d")) if feat.get("gmv_trend_28d") is not None else None,
)
m[1].metric("Orders 28d", f"{feat.get('orders_28d', 0):,}", help=ui.metric_help("orders"), border=True)
m[2].metric(
    "CTR 28d",
    ui.pct(feat.get("ctr_28d"), 2),
    help=ui.metric_help("ctr"),
    border=True,
    delta_description=f"{seg['tier']} median {ui.pct(peers['ctr_28d'], 2)}",
)
m[3].metric(
    "CVR 28d",
    ui.pct(feat.get("cvr_28d"), 2),
    help=ui.metric_help("cvr"),
    border=True,
    delta_description=f"{seg['tier']} median {ui.pct(peers['cvr_28d'], 2)}",
)
m[4].metric(
    "Lifetime GMV", ui.money_compact(feat.get("lifetime_gmv")), border=True, help=ui.metric_help("gmv")
)

tab_perf, tab_strat, tab_more = st.tabs(["Performance", "Recommended strategies", "Interests & products"])
with tab_perf:
    left, right = st.columns([3, 2])
    trend = profile.trend
    with left:
        fig = go.Figure()
        fig.add_bar(x=trend["date"], y=trend["gmv"], name="GMV", marker_color=ui.PALETTE[0])
        fig.add_scatter(
            x=trend["date"],
            y=trend["orders"],
            name="Orders",
            yaxis="y2",
            mode="lines",
            line={"color": ui.PALETTE[1]},
        )
        fig.update_layout(
            yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "tickformat": ",d"},
            title="Daily GMV and orders (last 91 days)",
        )
        fig.add_vrect(x0=f.start, x1=f.end, fillcolor="#2F5BEA", opacity=0.06, line_width=0)
        ui.chart(ui.style(fig, y_format=ui.d3("gmv")), key="c_trend")
    with right:
        funnel = profile.funnel
        fig = ui.funnel_figure(
            {stage: funnel[stage] for stage in FUNNEL_STAGES},
            "Funnel in the selected range (count · share of the stage before)",
        )
        ui.chart(ui.style(fig, legend=False), key="c_funnel")
    left, right = st.columns(2)
    with left:
        mix = profile.mix
        if mix.height:
            fig = go.Figure(
                go.Pie(
                    labels=mix["content_kind"].replace({"none": "no content (showcase, search)"}),
                    values=mix["gmv"],
                    hole=0.55,
                    hovertemplate="%{label}: %{value:$,.0f}<extra></extra>",
                )
            )
            fig.update_layout(title="GMV by content kind (selected range)")
            ui.chart(ui.style(fig, height=300), key="c_mix")
        else:
            st.info("No activity in the selected range.")
    with right:
        compare = profile.peer_comparison.rename({"peer_median": f"{seg['tier']} median"})
        fmt = ["${:,.0f}", "{:,.0f}", "pct", "pct", "${:,.2f}", "{:,.1f}", "${:,.2f}", "pct"]
        shown = compare.with_columns(
            *(
                pl.Series(
                    name,
                    [
                        ui.pct(v, 2) if f_ == "pct" else (f_.format(v) if v is not None else ui.MISSING)
                        for v, f_ in zip(compare[name].to_list(), fmt, strict=True)
                    ],
                )
                for name in compare.columns[1:]
            )
        )
        st.markdown(f"**Compared with the median {seg['tier']} creator** ({peers['creators']:,} creators)")
        st.dataframe(shown, hide_index=True, placeholder=ui.MISSING)
        ui.downloads(
            f"creator_{creator_id}",
            {"Trend": trend, "Comparison": compare, "Content mix": profile.mix},
            key="dl_c_profile",
        )

with tab_strat:
    recs = profile.recommendations
    names = ui.strategy_names(user)
    drivers = profile.drivers
    if recs.height == 0:
        st.info("No strategy recommendations for this creator in the current run.")
    for rec in recs.iter_rows(named=True):
        with st.container(border=True):
            head, value = st.columns([3, 2])
            head.markdown(ui.recommendation_title(rec, names))
            head.write(ui.rationale(rec))
            ui.recommendation_metric(value, rec)
            d = drivers.filter(pl.col("strategy") == rec["strategy"])
            if d.height:
                ui.drivers_chart(
                    d,
                    "Expected uplift, part by part: SHAP against the average creator (USD)",
                    key=f"c_shap_{rec['strategy']}",
                )
    if recs.height:
        ui.downloads(
            f"creator_{creator_id}_strategies",
            {"Recommendations": recs, "SHAP drivers": drivers},
            key="dl_c_recs",
        )

with tab_more:
    interests, product_recs = profile.interests, profile.product_recs
    live = app_data.live_interests(user, creator_id)
    interests_note = f"as of the build of {app_data.as_of():%d %b %Y}"
    if live is not None:
        interests, interests_as_of = live
        interests_note = (
            f"live: every ingest and stream batch is folded in; as of the newest event, "
            f"{interests_as_of:%d %b %Y %H:%M} UTC"
        )
    if interests.height == 0 and product_recs.height == 0:
        st.info(
            "Interest profiles and product recommendations appear here once the matching tables are built."
        )
    if interests.height:
        st.markdown("**Interests**")
        st.caption(interests_note)
        ui.table(interests, key="c_interests", export_name=f"creator_{creator_id}_interests")
    if product_recs.height:
        st.markdown("**Recommended products**")
        ui.table(product_recs, key="c_product_recs", export_name=f"creator_{creator_id}_product_recs")
