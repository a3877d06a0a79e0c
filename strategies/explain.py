"""Why a strategy is expected to work for an entity: SHAP drivers in plain language, global importance
and dependence, and readable segment rules from a shallow tree fitted to the predicted uplift.

The contributions themselves come from the learners' ``explain`` (exact tree SHAP through LightGBM's
``pred_contrib``); this module only ranks, labels and phrases them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.tree import DecisionTreeRegressor

from strategies.wording import feature_label, format_value


def signed_money(amount: float) -> str:
    """Whole dollars with their sign: "+$1,200", "−$35" (rounded once, so rounded parts add up)."""
    whole = round(amount)
    return f"{'+' if whole >= 0 else '−'}${abs(whole):,}"


@dataclass(frozen=True)
class Driver:
    """One feature's part in one entity's predicted uplift. SHAP credits a feature relative to the
    model's base value (what it predicts for the average entity), not relative to the entity's cohort:
    the cohort's median is shown beside the value for context only."""

    feature: str
    value: float | str | None
    cohort_median: float | str | None
    contribution: float

    def sentence(self, peers: str) -> str:
        """The driver and its contribution against the average entity: "rating is 4.5 (similar merchants:
        4.2): +$1,000"; a value that reads as its cohort's median says so ("…, as for similar merchants")
        instead of quoting the median as if the amount were earned against it."""
        amount = signed_money(self.contribution)
        if "=" in self.feature:
            column, level = self.feature.split("=", 1)
            state = "is" if isinstance(self.value, int | float) and self.value >= 0.5 else "is not"
            return f"{feature_label(column)} {state} {level}: {amount}"
        value = format_value(self.feature, self.value)
        median = format_value(self.feature, self.cohort_median)
        if value == median:
            return f"{feature_label(self.feature)} is {value}, as for similar {peers}: {amount}"
        return f"{feature_label(self.feature)} is {value} (similar {peers}: {median}): {amount}"


@dataclass(frozen=True)
class Attribution:
    """One prediction in parts that add up to it: the base value (the model's prediction for the average
    entity, at this entity's sales), the top drivers, and the rest of the features ("other factors")."""

    base: float
    drivers: list[Driver]
    other: float

    @property
    def total(self) -> float:
        return self.base + sum(d.contribution for d in self.drivers) + self.other


def top_drivers(
    contributions: np.ndarray,
    feature_names: list[str],
    values: pl.DataFrame,
    medians: pl.DataFrame,
    k: int = 3,
) -> list[list[Driver]]:
    """The k features with the largest absolute contribution for each row (contributions: n × (F + 1))."""
    shap = contributions[:, : len(feature_names)]
    order = np.argsort(-np.abs(shap), axis=1)[:, :k]
    out: list[list[Driver]] = []
    value_rows = values.select(feature_names).rows()
    median_rows = medians.select(feature_names).rows()
    for i in range(len(shap)):
        out.append(
            [
                Driver(feature_names[j], value_rows[i][j], median_rows[i][j], float(shap[i, j]))
                for j in order[i]
                if shap[i, j] != 0
            ]
        )
    return out


def attributions(
    contributions: np.ndarray,
    feature_names: list[str],
    values: pl.DataFrame,
    medians: pl.DataFrame,
    shown: np.ndarray,
    k: int = 3,
) -> list[Attribution]:
    """Each row's base value (the last column of ``contributions``), its k top drivers and "other
    factors": what is left of the figure ``shown`` (the prediction), so the parts add up to it exactly."""
    drivers = top_drivers(contributions, feature_names, values, medians, k)
    base = contributions[:, -1]
    return [
        Attribution(float(base[i]), row, float(shown[i] - base[i] - sum(d.contribution for d in row)))
        for i, row in enumerate(drivers)
    ]


def rationale(
    strategy_name: str,
    expected: float,
    attribution: Attribution,
    peers: str,
    baseline_gmv: float | None = None,
) -> str:
    """One paragraph: the expected gain, then its parts, which add up to it in whole dollars: the average
    effect at the entity's sales (the model's base value) and what sets the entity apart from the average
    entity (its top drivers and other factors). Without drivers (the model found no trait that moves the
    effect), the average effect on similar entities applied to the entity's GMV of the last 28 days
    (``baseline_gmv``)."""
    head = f"{strategy_name}: expected {signed_money(expected)} GMV over 28 days."
    if not attribution.drivers:
        if baseline_gmv is None or baseline_gmv <= 0 or expected == 0:
            return head
        return (
            f"{head} No trait of its own moves this estimate: it is the average effect on similar {peers}, "
            f"{expected / baseline_gmv:+.0%} of GMV, applied to its GMV of the last 28 days "
            f"(${baseline_gmv:,.0f})."
        )
    # "other factors" takes what rounding and the features not shown leave, so the text adds up
    shown = round(attribution.base) + sum(round(d.contribution) for d in attribution.drivers)
    other = round(expected) - shown
    parts = [d.sentence(peers) for d in attribution.drivers]
    if other != 0:
        parts.append(f"other factors: {signed_money(other)}")
    peer = peers.removesuffix("s")
    return (
        f"{head} Of this, {signed_money(attribution.base)} is the average effect on {peers} at its sales "
        f"of the last 28 days; against the average {peer}: " + "; ".join(parts) + "."
    )


def cohort_medians(features: pl.DataFrame, numeric: list[str], cohort: str) -> pl.DataFrame:
    """Each row's cohort median of every numeric feature (categoricals are repeated as they are)."""
    medians = features.group_by(cohort).agg([pl.col(c).median() for c in numeric])
    return features.select(cohort).join(medians, on=cohort, how="left", maintain_order="left")


def global_importance(contributions: np.ndarray, feature_names: list[str]) -> pl.DataFrame:
    """Mean |SHAP| of every feature, largest first."""
    mean_abs = np.abs(contributions[:, : len(feature_names)]).mean(axis=0)
    return (
        pl.DataFrame({"feature": feature_names, "mean_abs_shap": mean_abs})
        .with_columns(label=pl.col("feature").map_elements(feature_label, return_dtype=pl.String))
        .sort("mean_abs_shap", descending=True)
    )


def dependence(
    contributions: np.ndarray, feature_names: list[str], values: pl.DataFrame, features: list[str]
) -> pl.DataFrame:
    """(feature value, SHAP value) pairs of the given features, long format (for dependence plots)."""
    frames = []
    for name in features:
        j = feature_names.index(name)
        column = values[name]
        if column.dtype.is_numeric():
            frames.append(
                pl.DataFrame({"feature": name, "value": column.cast(pl.Float64), "shap": contributions[:, j]})
            )
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"feature": pl.String, "value": pl.Float64, "shap": pl.Float64})
    )


def segment_rules(
    features: pl.DataFrame,
    predicted: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    peers: str,
    max_depth: int = 2,
    min_share: float = 0.05,
) -> pl.DataFrame:
    """Readable rules from a shallow regression tree fitted to the predicted uplift: one row per leaf with
    its rule, size and mean predicted uplift, best first (e.g. "tier is micro and lives per week < 0.5")."""
    dummies = features.select(categorical).to_dummies(separator="=") if categorical else pl.DataFrame()
    design = pl.concat(
        [
            features.select(pl.col(numeric).cast(pl.Float64).fill_nan(None)).select(
                pl.all().fill_null(pl.all().median()).fill_null(0.0)
            ),
            dummies,
        ],
        how="horizontal",
    )
    names = design.columns
    x = design.to_numpy().astype(float)
    tree = DecisionTreeRegressor(
        max_depth=max_depth, min_samples_leaf=max(int(min_share * len(x)), 1), random_state=0
    )
    tree.fit(x, predicted)
    t = tree.tree_
    rules: list[tuple[str, int, float]] = []

    def walk(node: int, conditions: list[str]) -> None:
        if t.children_left[node] == -1:
            rules.append(
                (
                    " and ".join(conditions) or f"all {peers}",
                    int(t.n_node_samples[node]),
                    float(t.value[node][0][0]),
                )
            )
            return
        name, threshold = names[t.feature[node]], t.threshold[node]
        if "=" in name:
            column, level = name.split("=", 1)
            left, right = f"{feature_label(column)} is not {level}", f"{feature_label(column)} is {level}"
        else:
            shown = format_value(name, float(threshold))
            left, right = f"{feature_label(name)} ≤ {shown}", f"{feature_label(name)} > {shown}"
        walk(t.children_left[node], [*conditions, left])
        walk(t.children_right[node], [*conditions, right])

    walk(0, [])
    return pl.DataFrame(rules, schema=["rule", "entities", "mean_predicted_uplift"], orient="row").sort(
        "mean_predicted_uplift", descending=True
    )
