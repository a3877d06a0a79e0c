"""Models: per strategy the Qini curves (model, random, perfect), calibration by decile, SHAP global
importance and dependence, and the model run's card."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from core import metrics
from strategies.modeling import ModelConfig
from webapp import data as app_data
from webapp import ui

LEARNER_NAMES = {
    "t_learner": "T-learner",
    "x_learner": "X-learner",
    "dr_learner": "DR-learner",
    "average": "Average",
}

SELECTION = ModelConfig()


def learner_name(learner: str) -> str:
    return LEARNER_NAMES.get(learner, learner)


def selection_reason(runs: pl.DataFrame, chosen: str) -> str:
    """Why the chosen learner was chosen, in words, from each learner's share of holdout bootstrap
    resamples in which it beat the default's Qini area (`strategies.modeling._select`)."""
    default, needed = SELECTION.default_learner, SELECTION.switch_share
    rule = (
        f"The {learner_name(default).lower()} of the T-, X- and DR-learners is the default, since it varies "
        f"less than any one of them; another learner replaces it only if it beats the default's holdout "
        f"Qini area in at least {needed:.0%} of paired bootstrap resamples of the holdout."
    )
    shares = {
        r["learner"]: r["beats_default_share"]
        for r in runs.iter_rows(named=True)
        if r["learner"] != default and r.get("beats_default_share") is not None
    }
    if not shares:
        return rule + " The holdout could not score the learners, so the default is kept."
    if chosen != default:
        return rule + f" The {learner_name(chosen)} did so in {shares.get(chosen, 0):.0%} of them."
    best = max(shares, key=lambda name: shares[name])
    others = ", ".join(f"{learner_name(n)} {v:.0%}" for n, v in shares.items() if n != best)
    return (
        rule + f" Here the best challenger, the {learner_name(best)}, beat it in {shares[best]:.0%} "
        f"({others}), short of {needed:.0%}, so the default is kept: a higher Qini or Spearman on one small "
        "holdout is often luck, and a learner chosen on it ranks entities worse elsewhere. The truth columns "
        "(simulator only) are measured for the chosen learner and never used to choose."
    )


COMPARED = (
    "beats_default_share",
    "qini_coefficient",
    "qini_area",
    "auuc",
    "uplift_at_10",
    "uplift_at_20",
    "holdout_spearman",
    "holdout_policy_vs_oracle",
    "truth_spearman",
    "truth_policy_vs_oracle",
)


def learners_table(runs: pl.DataFrame) -> pl.DataFrame:
    """The learners side by side, one column each (the chosen one says so), one row per measure, each
    value as the metric dictionary shows it (so the table fits the page instead of scrolling sideways)."""
    columns: dict[str, list[str]] = {"measure": [ui.column_label(c) for c in COMPARED]}
    for r in runs.iter_rows(named=True):
        name = learner_name(r["learner"]) + (" (chosen)" if r["chosen"] else "")
        columns[name] = [
            ui.MISSING
            if r.get(c) is None or (c == "beats_default_share" and r["learner"] == SELECTION.default_learner)
            else metrics.FIELDS[c].text(r[c])
            for c in COMPARED
        ]
    return pl.DataFrame(columns)


user = ui.current_user()
st.title("Models")

model_metrics = app_data.snapshot("model_metrics", user)
catalog = app_data.snapshot("strategy_catalog", user)
names = dict(zip(catalog["strategy"], catalog["name"], strict=True))
strategies = model_metrics["strategy"].unique(maintain_order=True).to_list()
if not strategies:
    st.info("No uplift models in the current build.")
    st.stop()
strategy = st.selectbox(
    "Strategy", strategies, key="md_strategy", bind="query-params", format_func=lambda s: names.get(s, s)
)
runs = model_metrics.filter(pl.col("strategy") == strategy)
chosen = runs.filter(pl.col("chosen"))
card = (chosen if chosen.height else runs).row(0, named=True)

with st.container(border=True):
    st.markdown(
        f"**Model card — {names.get(strategy, strategy)}** ({card['entity_kind']}s) · "
        "trained on interventions "
        f"assigned {card['data_start']:%d %b %Y} – {card['data_end']:%d %b %Y}"
    )
    c = st.columns(5)
    c[0].metric(
        "Learner",
        learner_name(card["learner"]),
        help=f"The average of the T-, X- and DR-learners, unless another beat its holdout Qini area in "
        f"{SELECTION.switch_share:.0%} of bootstrap resamples of the holdout (see below).",
    )
    c[1].metric(
        "Training weeks",
        f"{((card['data_end'] - card['data_start']).days + 1) // 7}",
        help=f"Interventions assigned {card['data_start']:%d %b %Y} – {card['data_end']:%d %b %Y}.",
    )
    c[2].metric("Training rows", f"{card['n_train']:,}", help="Interventions with finished 28-day outcomes.")
    c[3].metric(
        "Holdout",
        f"{card['n_holdout']:,}",
        help=f"{card['n_treated']:,} treated, {card['n_control']:,} control",
    )
    c[4].metric(
        "Qini coefficient",
        f"{card['qini_coefficient']:.3f}",
        help=f"95% bootstrap interval {card['qini_coefficient_ci_low']:.3f} – "
        f"{card['qini_coefficient_ci_high']:.3f}; see the normalization note below.",
    )
    d = st.columns(4)
    d[0].metric(
        "Uplift in top 10%",
        ui.money(card["uplift_at_10"]),
        help="Mean treated minus control outcome in the top 10% by predicted uplift (holdout).",
    )
    d[1].metric("Uplift in top 20%", ui.money(card["uplift_at_20"]))
    # against the simulator's true effects: a simulated marketplace only (real data has no truth)
    truth_note = " Needs the simulator's true effects: shown for simulated marketplaces only."
    d[2].metric(
        "Spearman with truth",
        ui.num(card["truth_spearman"]),
        help="Rank correlation of the predicted with the true uplift over every eligible entity at the "
        f"scoring date (holdout rows: {ui.num(card['holdout_spearman'])})." + truth_note,
    )
    d[3].metric(
        "Policy vs oracle (top 20%)",
        ui.pct(card["truth_policy_vs_oracle"]),
        help="True value of treating the model's top 20% of every eligible entity at the scoring date, as "
        f"a share of the best possible top 20% (on the holdout: {ui.pct(card['holdout_policy_vs_oracle'])})."
        + truth_note,
    )
    if card.get("traffic_effect_se"):
        applied = card["traffic_effect"] != 0
        st.caption(
            f"Effect on clicks (traffic): {card['traffic_effect_raw']:+.1%} (standard error "
            f"{card['traffic_effect_se']:.1%}) — "
            + (
                "applied to every prediction."
                if applied
                else "not applied: under 3 standard errors from zero. Predictions carry the effect on "
                "GMV per click only."
            )
        )

qini = app_data.snapshot("qini_curves", user).filter(pl.col("strategy") == strategy)
calibration = app_data.snapshot("calibration", user).filter(pl.col("strategy") == strategy)
importance = (
    app_data.snapshot("shap_importance", user)
    .filter(pl.col("strategy") == strategy)
    .sort("mean_abs_shap", descending=True)
)
dependence = app_data.snapshot("shap_dependence", user).filter(pl.col("strategy") == strategy)
rules = app_data.snapshot("segment_rules", user).filter(pl.col("strategy") == strategy)

left, right = st.columns(2)
with left:
    fig = go.Figure()
    styles = {
        "model": {"color": ui.PALETTE[0], "width": 3},
        "random": {"color": "#999", "dash": "dash"},
        "perfect": {"color": ui.PALETTE[2], "dash": "dot"},
    }
    for curve in qini["curve"].unique(maintain_order=True).to_list():
        part = qini.filter(pl.col("curve") == curve).sort("fraction")
        fig.add_scatter(
            x=part["fraction"],
            y=part["incremental_gmv"],
            name=curve.capitalize(),
            mode="lines",
            line=styles.get(curve, {}),
        )
    fig.update_layout(
        title="Qini curve (holdout)",
        xaxis_title="share targeted, by predicted uplift",
        yaxis_title="incremental GMV",
    )
    ui.chart(ui.style(fig, x_format=".0%", y_format="$,.0s"), key="md_qini")
with right:
    fig = go.Figure()
    fig.add_bar(
        x=calibration["decile"],
        y=calibration["observed"],
        name="Observed (treated − control)",
        marker_color=ui.PALETTE[1],
    )
    fig.add_scatter(
        x=calibration["decile"],
        y=calibration["predicted"],
        name="Predicted",
        mode="lines+markers",
        line={"color": ui.PALETTE[0]},
    )
    fig.update_layout(title="Calibration by decile of predicted uplift", xaxis_title="decile (1 = lowest)")
    ui.chart(ui.style(fig, y_format="$,.0f"), key="md_calibration")

left, right = st.columns(2)
with left:
    head = importance.head(12).reverse()
    fig = go.Figure(
        go.Bar(
            x=head["mean_abs_shap"],
            y=head["label"],
            orientation="h",
            marker_color=ui.PALETTE[0],
            hovertemplate="%{y}: %{x:$,.0f}<extra></extra>",
        )
    )
    fig.update_layout(title="Global importance: mean |SHAP| (USD of uplift)")
    ui.chart(ui.style(fig, height=420, x_format="$,.0f", legend=False), key="md_importance")
with right:
    features = importance["feature"].to_list()
    labels = dict(zip(importance["feature"], importance["label"], strict=True))
    feature = st.selectbox(
        "Dependence of", features, key="md_feature", format_func=lambda x: labels.get(x, x)
    )
    part = dependence.filter(pl.col("feature") == feature)
    fig = go.Figure(
        go.Scattergl(
            x=part["value"],
            y=part["shap"],
            mode="markers",
            marker={"size": 5, "opacity": 0.5, "color": ui.PALETTE[0]},
            hovertemplate="value %{x:,.3g}: %{y:$,.0f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"SHAP dependence: {labels.get(feature, feature)}",
        xaxis_title=labels.get(feature),
        yaxis_title="SHAP (USD)",
        hovermode="closest",
    )
    ui.chart(ui.style(fig, height=380, y_format="$,.0f", legend=False), key="md_dependence")

if rules.height:
    st.markdown(
        "**Segments where the model expects the most lift** (readable rules from a shallow tree on the "
        "predictions)"
    )
    ui.table(rules.select("rule", "entities", "mean_predicted_lift"), key="md_rules")

st.markdown("**All learners compared**")
st.write(f"**Chosen: {learner_name(card['learner'])}.** " + selection_reason(runs, str(card["learner"])))
compared = learners_table(runs)
ui.table(
    compared,
    key="md_runs",
    overrides={
        "measure": st.column_config.TextColumn(
            "Measure (on the holdout; truth: simulator only)", pinned=True
        ),
        **{c: st.column_config.TextColumn(c) for c in compared.columns[1:]},
    },
)
ui.downloads(
    f"model_{strategy}",
    lambda: {
        "Metrics": runs,
        "Qini": qini,
        "Calibration": calibration,
        "Importance": importance,
        "Rules": rules,
    },
    key="dl_models",
    csv=False,
    label="Excel: all model tables",
)
with st.expander("How the metrics are normalized", icon=":material/info:"):
    st.markdown(app_data.evaluation_note())
