"""Merchants: the merchants the user may see; selecting one (or ``?merchant=`` in the URL) opens its page —
trend, catalog, creators and concentration, refund rate, commission against the category, and
recommended strategies. Out-of-scope ids are "not found" (the data layer never returns their rows)."""

from __future__ import annotations

from functools import partial

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from analytics.segments import LIFECYCLE_STAGES
from reports.merchant import merchant_report_bytes
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
f = ui.filters()

st.title("Merchants" if user.is_ops else "My merchants")
with st.container(border=True):
    c1, c2 = st.columns([2, 2])
    search = c1.text_input(
        "Search name or id",
        key="m_search",
        bind="query-params",
        placeholder="name or m00042",
        icon=":material/search:",
    )
    lifecycles = c2.multiselect(
        "Lifecycle", list(LIFECYCLE_STAGES), key="m_life", bind="query-params", placeholder="All"
    )
directory = app_data.merchant_directory(
    user,
    search=search,
    lifecycles=lifecycles,
    categories=f.categories if user.is_ops else (),
    regions=f.regions if user.is_ops else (),
)
st.caption(
    f"{directory.height:,} merchant{'' if directory.height == 1 else 's'} · 28-day figures up to "
    f"{app_data.last_day():%d %b %Y} · select a row to open the merchant"
)
event = ui.table(
    directory, key="merchant_table", export_name="merchants", select=True, height=320, hide=("value_segment",)
)
merchant_id = ui.selected_id(event, directory, "merchant_id")
if not merchant_id:
    st.info("Select a merchant in the table to open its page.", icon=":material/touch_app:")
    st.stop()

profile = app_data.merchant_profile(user, merchant_id, f.start, f.end)
if profile is None:
    ui.not_found(f"Merchant {merchant_id}")
    st.stop()

feat, seg = profile.features, profile.segment
st.divider()
st.header(f"{profile.name}  ·  {merchant_id}", anchor="merchant")
st.caption(
    f"{feat['category']} · {feat['region']} · rating {feat['rating']:.1f} · ships in "
    f"{feat['ships_in_days']:.1f} days · lifecycle **{seg.get('lifecycle_stage', '?')}** · "
    f"{feat['catalog_products']:,} products"
)

st.subheader(
    "Today so far", help="Read from the lake's last commit (stream or ingest), not from the last build."
)
ui.today_section(user, profile.name, merchant_id=merchant_id)

# The merchant report (reports.merchant): built only when a format is clicked.
MIME = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "html": "text/html",
}
with st.container(horizontal=True, gap="small"):
    st.caption("Merchant report:")
    for fmt, mime in MIME.items():
        st.download_button(
            fmt.upper(),
            data=partial(merchant_report_bytes, app_data.settings(), user, merchant_id, fmt),
            file_name=f"merchant_report_{merchant_id}.{fmt}",
            mime=mime,
            key=f"m_report_{fmt}",
            on_click="ignore",
            icon=":material/description:",
            type="tertiary",
        )

m = st.columns(5)
m[0].metric(
    "GMV 28d",
    ui.money_compact(feat["gmv_28d"]),
    help=ui.metric_help("gmv"),
    border=True,
    delta=ui.pct(feat["gmv_trend_28d"]) if feat["gmv_trend_28d"] is not None else None,
)
m[1].metric("Orders 28d", f"{feat['orders_28d']:,}", help=ui.metric_help("orders"), border=True)
m[2].metric(
    "Refund rate 91d",
    ui.pct(feat["refund_rate_91d"]),
    help=ui.metric_help("refund_rate"),
    border=True,
    delta_color="inverse",
)
m[3].metric(
    "Commission rate",
    ui.pct(feat["median_commission_rate"]),
    delta=f"{(feat['commission_rate_gap_vs_category'] or 0) * 100:+.2f} pts vs category",
    help="Median commission rate of the catalog against the category's median "
    f"({ui.pct(feat['category_median_commission_rate'])}).",
    border=True,
)
m[4].metric(
    "Top creator's share",
    ui.pct(feat["top_creator_gmv_share_91d"]),
    border=True,
    help="Share of the last 91 days' GMV brought by the merchant's largest creator.",
)

tab_perf, tab_cat, tab_creators, tab_strat = st.tabs(
    ["Performance", "Catalog", "Creators", "Recommended strategies"]
)
with tab_perf:
    trend = profile.trend
    fig = go.Figure()
    fig.add_bar(x=trend["date"], y=trend["gmv"], name="GMV", marker_color=ui.PALETTE[0])
    fig.add_scatter(
        x=trend["date"],
        y=trend["refund_rate"],
        name="Refund rate",
        yaxis="y2",
        mode="lines",
        line={"color": ui.PALETTE[4]},
    )
    fig.update_layout(
        yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "tickformat": ".0%"},
        title="Daily GMV and refund rate (last 91 days)",
    )
    fig.add_vrect(x0=f.start, x1=f.end, fillcolor="#2F5BEA", opacity=0.06, line_width=0)
    ui.chart(ui.style(fig, y_format=ui.d3("gmv")), key="m_trend")
with tab_cat:
    ui.table(profile.catalog, key="m_catalog", export_name=f"{merchant_id}_catalog", height=360)
with tab_creators:
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Creators selling this merchant's products** ({f.start:%d %b} – {f.end:%d %b})")
        ui.table(profile.creators, key="m_creators", export_name=f"{merchant_id}_creators", height=360)
    with right:
        conc = profile.concentration
        if conc.height:
            fig = go.Figure(
                go.Scatter(
                    x=conc["creators"],
                    y=conc["cumulative_share"],
                    mode="lines",
                    fill="tozeroy",
                    line={"color": ui.PALETTE[0]},
                    hovertemplate="top %{x} creators: %{y:.1%} of GMV<extra></extra>",
                )
            )
            fig.update_layout(
                title="GMV concentration: cumulative share by top creators",
                xaxis_title="creators (largest first)",
            )
            ui.chart(ui.style(fig, y_format=".0%", legend=False), key="m_conc")
        else:
            st.info("No creator sales in the selected range.")
with tab_strat:
    recs, drivers = profile.recommendations, profile.drivers
    names = ui.strategy_names(user)
    if recs.height == 0:
        st.info("No strategy recommendations for this merchant in the current run.")
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
                    "Expected uplift, part by part: SHAP against the average merchant (USD)",
                    key=f"m_shap_{rec['strategy']}",
                )
    if profile.recruits.height:
        st.markdown("**Creators to recruit**")
        ui.table(profile.recruits, key="m_recruits", export_name=f"{merchant_id}_recruits")

ui.downloads(
    f"merchant_{merchant_id}",
    {
        "Summary": profile.summary,
        "Daily": profile.trend,
        "Catalog": profile.catalog,
        "Creators": profile.creators,
        "Recommendations": profile.recommendations,
        "SHAP drivers": profile.drivers,
    },
    key="dl_m_all",
    csv=False,
    label="Excel: merchant workbook",
)
st.caption("Excel: one workbook with a sheet per table of this merchant.")
