"""Strategy board: every recommendation of the current run with filters; accept / assign / dismiss with an
owner and a note (persisted with history); a budget and capacity allocation; and what was accepted
earlier with its realized against predicted uplift."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core import metrics
from strategies.wording import EVIDENCE_HELP, evidence_label
from webapp import data as app_data
from webapp import ui


def uplift_totals(rows: pl.DataFrame, reference: app_data.ReferenceGmv) -> None:
    """The expected 28-day uplift of ``rows`` as an operator weighs it: its 80% interval, its share of the
    reference GMV over 28 days, and how much of it rests on strategies whose pilots establish the effect
    (the rest rests on the model alone); the figures come from `app_data.uplift_totals`."""
    what, gmv = reference
    totals = app_data.uplift_totals(rows)
    total, established = totals.expected, totals.established
    share = metrics.Display("ratio", 1)
    c = st.columns(3)
    c[0].metric(
        "Expected uplift",
        ui.money_compact(total),
        delta=f"80% interval {ui.money_compact(totals.low)} – {ui.money_compact(totals.high)}",
        delta_color="off",
        delta_arrow="off",
        border=True,
        help="Sum of the expected 28-day incremental GMV of these rows; the interval adds up the rows' 80% "
        "intervals (as if their errors moved together, so it is wide).",
    )
    c[1].metric(
        f"Share of {what}",
        share.text(total / gmv) if gmv else ui.MISSING,
        delta=f"of {ui.money_compact(gmv)} over the last 28 days",
        delta_color="off",
        delta_arrow="off",
        border=True,
        help="The expected uplift over 28 days against the GMV of the build's last 28 days. A creator's "
        "sale is also a merchant's, so creator and merchant uplifts overlap: the share of both kinds "
        "together overstates what the platform gains.",
    )
    c[2].metric(
        "Established by pilots",
        ui.money_compact(established),
        delta=f"{share.text(established / total)} of the expected uplift"
        if established
        else "none yet: every figure rests on the model alone",
        delta_color="off",
        delta_arrow="off",
        border=True,
        help=EVIDENCE_HELP + " The rest of the expected uplift rests on the model alone.",
    )


user = ui.current_user()
st.title("Strategy board")

recs = app_data.recommendations(user)
if recs.height == 0:
    st.info("No recommendations in the current build.")
    st.stop()
names = ui.strategy_names(user)

with st.container(border=True):
    c1, c2, c3, c4, c5 = st.columns([1.6, 1.2, 1.2, 1.2, 1])
    strategies = c1.multiselect(
        "Strategy",
        sorted(recs["strategy"].unique()),
        key="sb_strategy",
        bind="query-params",
        format_func=lambda s: names.get(s, s),
        placeholder="All",
    )
    teams = c2.multiselect(
        "Team",
        sorted(recs["team"].unique()),
        key="sb_team",
        bind="query-params",
        format_func=ui.team_label,
        placeholder="All",
    )
    statuses = c3.multiselect(
        "Status",
        ["proposed", "accepted", "in_progress", "done", "dismissed"],
        key="sb_status",
        bind="query-params",
        placeholder="All",
    )
    owners = c4.multiselect(
        "Owner", sorted(recs["owner"].drop_nulls().unique()), key="sb_owner", placeholder="Anyone"
    )
    min_net = c5.number_input(
        "Min net value ($)",
        value=0.0,
        step=100.0,
        key="sb_min_net",
        bind="query-params",
        format="%.0f",
        help=ui.COLUMN_HELP["net_value"],
    )
    best_only = st.toggle("Best strategy per entity only", value=True, key="sb_best", bind="query-params")

shown = recs.filter(pl.col("net_value") >= min_net)
for column, allowed in (("strategy", strategies), ("team", teams), ("status", statuses), ("owner", owners)):
    if allowed:
        shown = shown.filter(pl.col(column).is_in(allowed))
if best_only:
    shown = shown.filter(pl.col("is_best"))
shown = shown.sort("net_value", descending=True)
columns = [
    "entity_kind",
    "entity_id",
    "entity_name",
    "strategy",
    "team",
    "established",
    "evidence",
    "expected_uplift",
    "uplift_low",
    "uplift_high",
    "cost",
    "net_value",
    "status",
    "owner",
    "rationale",
]
if "established" not in shown.columns:  # a build from before the evidence column
    shown = shown.with_columns(established=pl.lit(None, pl.Boolean))
shown = shown.with_columns(evidence=evidence_label(pl.col("established")).fill_null("—"))
board = ui.with_names(shown.select(columns), names)

reference = app_data.reference_gmv(user, recs)
m = st.columns(3)
m[0].metric("Recommendations", f"{board.height:,}", border=True)
m[1].metric("Cost", ui.money(board["cost"].sum()), border=True)
m[2].metric(
    "Accepted or in progress",
    f"{recs.filter(pl.col('status').is_in(['accepted', 'in_progress'])).height:,}",
    border=True,
)
uplift_totals(shown, reference)
by_kind = shown.group_by("entity_kind").agg(pl.col("expected_uplift").sum()).sort("entity_kind")
if by_kind.height > 1 and reference[1]:
    st.caption(
        "By kind: "
        + "; ".join(
            f"{kind}s {ui.money_compact(v)} ({metrics.Display('ratio', 1).text(v / reference[1])} of "
            f"{reference[0]})"
            for kind, v in by_kind.iter_rows()
        )
        + ". The two overlap (the same orders), so read them apart, not added up."
    )

event = ui.table(
    board,
    key="sb_table",
    select=True,
    height=360,
    overrides={
        **ui.NAME_COLUMNS,
        "rationale": st.column_config.TextColumn("Why", width="large"),
        "evidence": st.column_config.TextColumn("Evidence", help=EVIDENCE_HELP),
    },
    hide=("strategy", "team", "established"),
)
ui.downloads("recommendations", {"Recommendations": board}, key="dl_sb")
picked = ui.selected_row(event, board)

if picked is not None:
    full = shown.filter(
        (pl.col("entity_id") == picked["entity_id"]) & (pl.col("strategy") == picked["strategy"])
    )
    row = full.row(0, named=True)
    with st.container(border=True):
        st.subheader(
            f"{row['entity_name'] or row['entity_id']} · {names.get(row['strategy'], row['strategy'])}"
        )
        ui.recommendation_metric(st, row)
        st.write(ui.rationale(row))
        st.caption(
            f"Status **{row['status']}**"
            + (f" · owner {row['owner']}" if row["owner"] else "")
            + (f" · started {row['started_on']}" if row["started_on"] else "")
        )
        with st.form("sb_action"):
            owner = st.text_input("Owner", value=row["owner"] or user.username, key="sb_owner_in")
            note = st.text_area("Note", key="sb_note", height=80)
            b1, b2, b3, _ = st.columns([1, 1, 1, 3])
            accept = b1.form_submit_button("Accept", type="primary", icon=":material/check:")
            assign = b2.form_submit_button("Assign", icon=":material/person_add:")
            dismiss = b3.form_submit_button("Dismiss", icon=":material/close:")
        if accept or assign or dismiss:
            key = {
                "run_id": row["run_id"],
                "entity_kind": row["entity_kind"],
                "entity_id": row["entity_id"],
                "strategy": row["strategy"],
            }
            try:
                if dismiss:
                    app_data.set_status(
                        user, **key, status="dismissed", owner=owner or None, note=note or None
                    )
                elif accept:
                    app_data.set_status(
                        user, **key, status="accepted", owner=owner or None, note=note or None
                    )
                else:  # assign: accept if needed, then hand over as in progress
                    if row["status"] in ("proposed", "dismissed"):
                        if row["status"] == "dismissed":
                            app_data.set_status(user, **key, status="proposed")
                        app_data.set_status(user, **key, status="accepted", owner=owner or None)
                    app_data.set_status(
                        user, **key, status="in_progress", owner=owner or None, note=note or None
                    )
                st.toast("Saved", icon=":material/check_circle:")
                st.rerun()
            except (ValueError, PermissionError) as exc:
                st.error(str(exc))
        if row["action_id"]:
            hist = app_data.history(user, row["action_id"])
            if hist.height:
                st.markdown("**History**")
                ui.table(hist.drop("history_id", "action_id"), key="sb_history")

st.subheader(
    "Allocate a budget",
    help="Greedy portfolio on the rows above: best net value first, one strategy "
    "per entity, within the budget and each team's capacity, only where the interval's low end is "
    "above zero.",
)


@st.fragment
def allocation_panel() -> None:
    candidates = recs.filter(pl.col("net_value") >= min_net)
    if strategies:
        candidates = candidates.filter(pl.col("strategy").is_in(strategies))
    team_names = sorted(candidates["team"].unique())
    cols = st.columns(1 + len(team_names))
    budget = cols[0].number_input(
        "Budget ($)", min_value=0.0, value=5_000.0, step=500.0, key="sb_budget", format="%.0f"
    )
    capacity = {
        team: int(
            cols[i + 1].number_input(
                f"Capacity: {ui.team_label(team)}", min_value=0, value=50, step=5, key=f"sb_cap_{team}"
            )
        )
        for i, team in enumerate(team_names)
    }
    chosen = app_data.allocation(user, candidates, budget, capacity)
    a = st.columns(2)
    a[0].metric("Entities treated", f"{chosen.height:,}", border=True)
    a[1].metric("Spend", ui.money(chosen["cost"].sum() if chosen.height else 0), border=True)
    if chosen.height:
        uplift_totals(chosen, reference)
        fig = go.Figure(
            go.Scatter(
                x=[0.0, *chosen["cumulative_cost"]],  # from the origin: nothing spent, nothing gained
                y=[0.0, *chosen["expected_uplift"].cum_sum()],
                mode="lines+markers",
                line={"shape": "hv", "color": ui.PALETTE[0]},
                hovertemplate="spend %{x:$,.0f}: uplift %{y:$,.0f}<extra></extra>",
            )
        )
        fig.update_layout(title="Expected uplift against spend", xaxis_title="cumulative cost")
        fig.update_yaxes(rangemode="tozero")  # a cost curve reads from the origin
        ui.chart(
            ui.style(fig, height=300, y_format="$,.0f", x_format="$,.0f", legend=False), key="sb_alloc_chart"
        )
        ui.table(
            ui.with_names(
                chosen.select(
                    "entity_kind",
                    "entity_id",
                    "strategy",
                    "team",
                    "expected_uplift",
                    "uplift_low",
                    "cost",
                    "net_value",
                    "cumulative_cost",
                ),
                names,
            ),
            key="sb_alloc",
            export_name="allocation",
            height=260,
            overrides=ui.NAME_COLUMNS,
            hide=("strategy", "team"),
        )


allocation_panel()

plans = app_data.pilot_plans(user) if user.is_ops else None
if plans is not None:  # operations staff: pilots span creators and merchants
    st.subheader(
        "Pilots to run",
        help="A strategy is unproven while the 95% interval of its average effect on 28-day net GMV, "
        "measured on its randomized pilots so far, includes zero. For each, the randomized pilot that would "
        "settle it (as `liftboard pilot` proposes it; `--mde` sets another detectable effect).",
    )
    percent = {
        c: st.column_config.NumberColumn(label, format="percent", step=metrics.FIELDS[c].step)
        for c, label in (
            ("average_effect", "Average effect"),
            ("effect_low_95", "95% low"),
            ("effect_high_95", "95% high"),
            ("pilot_detectable_effect", "Pilot detects"),
        )
    }
    ui.table(
        plans.precision,
        key="sb_pilot_precision",
        overrides={**percent, "strategy_name": st.column_config.TextColumn("Strategy")},
        hide=("strategy",),
    )
    st.write(plans.headline)
    for proposal in plans.proposals:
        title = f"{proposal.strategy_name}: {proposal.per_arm:,} {proposal.entity_kind}s per arm"
        with st.expander(f"{title}, results from {proposal.read_on:%Y-%m-%d}"):
            st.markdown("\n".join(f"- {line}" for line in proposal.lines()))
    if plans.entities.height:
        ui.downloads(
            "pilot_interventions",
            {"Pilot interventions": plans.interventions(), "Pilot entities by stratum": plans.entities},
            key="dl_sb_pilots",
        )
        st.caption(
            "The CSV has the interventions table's columns (assignment randomized): load it on the start day "
            "through the Data page or `liftboard ingest FILE --table interventions`."
        )

st.subheader("Accepted earlier: realized against predicted")
outcomes = app_data.accepted_outcomes(user)
if outcomes.height == 0:
    st.info(
        "Nothing accepted yet. Accepted recommendations appear here with their realized uplift so far, "
        "day by day up to the 28 days the uplift is predicted over."
    )
else:
    observed = outcomes.filter(pl.col("days_observed") > 0)
    if observed.height:
        fig = go.Figure()
        for complete, label, color in (
            (True, "complete (28 days)", ui.PALETTE[0]),
            (False, "so far", ui.PALETTE[1]),
        ):
            part = observed.filter(pl.col("complete") == complete)
            if part.height:
                fig.add_scatter(
                    x=part["predicted_so_far"],
                    y=part["realized_uplift"],
                    mode="markers",
                    name=label,
                    text=part["entity_id"],
                    customdata=part["state"],
                    marker={"size": 9, "color": color},
                    hovertemplate="%{text} (%{customdata}): predicted %{x:$,.0f}, "
                    "realized %{y:$,.0f}<extra></extra>",
                )
        top = max(
            ui.as_float(observed["predicted_so_far"].max()), ui.as_float(observed["realized_uplift"].max())
        )
        fig.add_scatter(
            x=[0, top], y=[0, top], mode="lines", line={"dash": "dot", "color": "#999"}, name="y = x"
        )
        fig.update_layout(
            title="Realized against predicted uplift, over the days observed so far",
            xaxis_title="predicted so far",
            yaxis_title="realized so far",
        )
        ui.chart(ui.style(fig, height=320, y_format="$,.0f", x_format="$,.0f"), key="sb_outcomes")
    ui.table(
        outcomes.drop("complete"),
        key="sb_outcomes_table",
        export_name="accepted_outcomes",
        height=260,
        hide=("action_id",),
    )
    st.caption(
        "Realized so far = the entity's GMV in the days observed since the start (up to 28, to the "
        "build's last day) minus its GMV in as many days before (daily facts; a before/after "
        "difference, not a controlled estimate). Predicted so far = the 28-day prediction × days "
        "observed / 28. The weekly review's follow-up uses the same figures."
    )
