"""Numbers that read right: one rule per quantity, from the metric dictionary (`core.metrics.display_of`),
in grids, cards and charts; the Models page says why its learner was chosen; the Strategy board sets its
totals against the platform's GMV, with the interval and the share the pilots establish."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from core import metrics
from core.config import Settings
from datastore.snapshots import latest_manifest, load_snapshot
from tests.app import test_pages
from webapp import ui

Open = Callable[..., AppTest]
open_page = test_pages.open_page  # the page tests' fixture: sign in, switch page
pytestmark = pytest.mark.usefixtures("explicit_routing")


def _columns(frame_element: object) -> dict[str, dict[str, object]]:
    """The column configs a grid was sent with, by column name."""
    return json.loads(frame_element.proto.columns)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------
# The rules
# ------------------------------------------------------------------------------------------------


def test_a_predicted_lift_is_a_share_not_money() -> None:
    """ "predicted" in a column's name made it money, rounded to whole dollars before the percent format:
    0% on every row. The dictionary says it is a share, shown with one decimal and never rounded away."""
    frame = pl.DataFrame({"rule": ["a", "b"], "entities": [3, 4], "mean_predicted_lift": [0.4598, 0.0091]})
    assert metrics.display_of("mean_predicted_lift") == metrics.Display("ratio", 1)
    assert ui.rounded(frame)["mean_predicted_lift"].to_list() == [0.4598, 0.0091]
    assert [metrics.display_of("mean_predicted_lift").text(v) for v in (0.4598, 0.0091)] == ["46.0%", "0.9%"]


def test_one_percent_column_has_one_number_of_decimals() -> None:
    """Streamlit's "percent" preset shows up to two decimals as they come (8%, 2.8%, 8.14%) unless its
    step fixes them: every percent column gets the dictionary's decimals as its step."""
    frame = pl.DataFrame(
        {"ctr_28d": [0.08, 0.028], "growth_pct": [0.1, -0.5], "refund_rate_91d": [0.01, 0.2], "x": [1.5, 2.0]}
    )
    config = ui.column_config(frame)
    formats = {
        c: (config[c]["type_config"]["format"], config[c]["type_config"]["step"]) for c in frame.columns
    }
    assert formats == {
        "ctr_28d": ("percent", pytest.approx(0.0001)),  # CTR: 2 decimals, as the dictionary's .2%
        "growth_pct": ("percent", pytest.approx(0.001)),
        "refund_rate_91d": ("percent", pytest.approx(0.0001)),
        "x": ("%.2f", pytest.approx(0.01)),  # unknown to the dictionary: by its type alone
    }
    assert [metrics.metric("ctr").display.text(v) for v in (0.08, 0.028, 0.0814)] == [
        "8.00%",
        "2.80%",
        "8.14%",
    ]


def test_formats_follow_the_dictionary_not_words_in_column_names() -> None:
    """A window or a reference of a metric reads as the metric; fields of the dictionary by their own
    rule; differences of shares in points, ratios of values as multiples."""
    cases = {
        "gmv_prev_28d": "$1,235",
        "previous_gmv": "$1,235",
        "aov": "$1,234.57",
        "orders_28d": "1,235",
        "qini_coefficient": "1234.568",
        "expected_uplift": "$1,235",
        "retention_vs_average": "+123456.8 pp",
        "gmv_per_member_vs_average": "1234.57×",
    }
    shown = {c: metrics.display_of(c).text(1234.5678) for c in cases}  # type: ignore[union-attr]
    assert shown == cases
    assert metrics.display_of("predicted_something_new") is None


def test_count_and_rate_axes_have_no_negative_ticks() -> None:
    """A flat series of zero orders made Plotly pad the axis to -1 (`-32` orders, `-1%` refunds): axes
    whose every value is at least zero start at zero; an axis with a negative value is left alone."""
    fig = go.Figure()
    fig.add_bar(x=["2026-01-01", "2026-01-02"], y=[0.0, 0.0], name="GMV")
    fig.add_scatter(x=["2026-01-01", "2026-01-02"], y=[0, 0], yaxis="y2", name="Orders")
    fig.update_layout(yaxis2={"overlaying": "y", "side": "right"})
    styled = ui.style(fig)
    assert styled.layout.yaxis.rangemode == "nonnegative"
    assert styled.layout.yaxis2.rangemode == "nonnegative"
    assert styled.layout.xaxis.rangemode is None  # dates
    signed = ui.style(go.Figure(go.Scatter(x=[1, 2], y=[-5.0, 3.0])))
    assert signed.layout.yaxis.rangemode is None


def test_value_segments_read_as_words() -> None:
    assert [ui.segment_label(s) for s in ("top_1pct", "top_10pct", "long_tail", None)] == [
        "top 1%",
        "top 10%",
        "long tail",
        ui.MISSING,
    ]


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------


def test_models_page_mean_predicted_lift_is_not_zero(open_page: Open) -> None:
    at = open_page("models")
    rules = next(d for d in at.dataframe if "mean_predicted_lift" in d.value.columns)
    lifts = rules.value["mean_predicted_lift"].tolist()
    assert any(abs(v) >= 0.005 for v in lifts), lifts  # rounded to whole dollars, every one was 0
    config = _columns(rules)["mean_predicted_lift"]
    assert config["label"] == "Mean predicted lift"
    assert config["type_config"] == {"type": "number", "format": "percent", "step": pytest.approx(0.001)}


def test_models_page_says_why_its_learner_was_chosen(open_page: Open, app_settings: Settings) -> None:
    """The card's learner, and the rule in words with each challenger's share of resamples: the X-learner
    can score higher on this holdout and still not replace the average."""
    at = open_page("models")
    runs = load_snapshot("model_metrics", app_settings).collect()
    strategy = at.selectbox(key="md_strategy").value
    runs = runs.filter(pl.col("strategy") == strategy)
    chosen = runs.filter(pl.col("chosen"))["learner"].item()
    learner = next(m for m in at.metric if m.label == "Learner")
    expected_name = {"average": "Average", "x_learner": "X-learner"}.get(chosen, learner.value)
    assert learner.value == expected_name
    reason = next(md.value for md in at.markdown if md.value.startswith("**Chosen:"))
    assert "at least 99% of paired bootstrap resamples" in reason
    shares = runs.filter(pl.col("learner") != "average").drop_nulls("beats_default_share")
    for name, share in zip(shares["learner"], shares["beats_default_share"], strict=True):
        assert f"{share:.0%}" in reason, (name, reason)
    compared = next(d for d in at.dataframe if "measure" in d.value.columns)
    assert list(compared.value.columns) == [
        "measure",
        *[
            {"t_learner": "T-learner", "x_learner": "X-learner", "dr_learner": "DR-learner"}.get(r, "Average")
            + (" (chosen)" if r == chosen else "")
            for r in runs["learner"]
        ],
    ]  # one column per learner: fits the page, nothing clipped
    assert "Beats the average" in compared.value["measure"].tolist()


def test_strategy_board_sets_its_totals_against_the_platform_gmv(
    open_page: Open, app_settings: Settings
) -> None:
    at = open_page("strategy_board")
    recs = load_snapshot("recommendations", app_settings).filter(pl.col("is_best")).collect()
    manifest = latest_manifest(app_settings)
    assert manifest is not None
    last = date.fromisoformat(manifest["as_of"]) - timedelta(days=1)
    daily = load_snapshot("creator_daily", app_settings).filter(
        pl.col("date").is_between(last - timedelta(days=27), last)
    )
    platform = daily.select(pl.col("gmv").sum()).collect().item()
    by_label: dict[str, object] = {}
    for m in at.metric:  # the board's totals come first; the allocation's repeat them below
        by_label.setdefault(m.label, m)
    uplift: Any = by_label["Expected uplift"]
    assert uplift.value == ui.money_compact(recs["expected_uplift"].sum())
    assert uplift.delta == (
        f"80% interval {ui.money_compact(recs['uplift_low'].sum())} – "
        f"{ui.money_compact(recs['uplift_high'].sum())}"
    )
    share: Any = by_label["Share of the platform's GMV"]
    assert share.value == f"{recs['expected_uplift'].sum() / platform:.1%}"
    assert share.delta == f"of {ui.money_compact(platform)} over the last 28 days"
    established: Any = by_label["Established by pilots"]
    assert established.value == ui.money_compact(
        recs.filter(pl.col("established").fill_null(False))["expected_uplift"].sum()
    )
    assert any("By kind: creators" in c.value and "merchants" in c.value for c in at.caption)


def test_the_data_page_says_when_the_build_was_made_as_people_read_it(open_page: Open) -> None:
    at = open_page("data")
    caption = next(c.value for c in at.main.caption if c.value.startswith("Current build"))
    assert re.search(r"built \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$", caption), caption  # was raw ISO with +00:00


def test_funnel_labels_of_narrow_stages_are_drawn_beside_their_bars() -> None:
    # a creator's funnel: 6.57M impressions down to 5,129 orders; inside bars that narrow the labels of
    # the last stages were cut off
    counts = {
        "impressions": 6_570_000,
        "views": 2_500_000,
        "clicks": 63_300,
        "add_to_carts": 12_100,
        "orders": 5_129,
    }
    trace = ui.funnel_figure(counts, "Funnel").data[0]
    assert list(trace.y) == ["Impressions", "Views", "Clicks", "Add to carts", "Orders"]
    assert list(trace.textposition) == ["inside", "inside", "outside", "outside", "outside"]
    assert trace.texttemplate == "%{value:,.3~s} · %{percentPrevious:.1%}"
