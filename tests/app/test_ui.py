"""Rendering helpers shared by the pages (pages/_ui.py), tested without running a page."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.testing.v1 import AppTest

from webapp import ui


def test_drivers_chart_adds_up_to_the_expected_uplift(monkeypatch: pytest.MonkeyPatch) -> None:
    """A waterfall read top-down: the average effect at the entity's sales, the drivers (labels worded as
    in the rationale: GPM in dollars, rates as percentages, ratios with ×; a value at its peers' median
    says so), the other factors, and the expected uplift they add up to."""
    drawn: list[go.Figure] = []
    monkeypatch.setattr(ui, "chart", lambda fig, key: drawn.append(fig))
    drivers = pl.DataFrame(
        {
            "position": [4, 0, 1, 2, 3],
            "part": ["other", "base", "driver", "driver", "driver"],
            "feature": [None, None, "view_rate_28d", "gpm_28d", "commission_rate_ratio_vs_category"],
            "value": [None, None, 0.38, 177.0, 0.684],
            "cohort_median": [None, None, 0.38, 51.66, 1.33],
            "contribution": [-300.0, 5_000.0, 34_638.0, -15_999.0, 1_200.0],
        }
    )
    ui.drivers_chart(drivers, "Expected uplift", key="k")
    (fig,) = drawn
    bars = fig.data[0]
    assert list(bars.y) == [
        "Average effect at its sales",
        "view rate 28d = 38.0% (the median)",
        "GPM 28d = $177 (median $52)",
        "commission rate ratio vs category = 0.68× (median 1.33×)",
        "Other factors",
        "Expected uplift",
    ]
    assert list(bars.measure) == ["absolute", "relative", "relative", "relative", "relative", "total"]
    assert list(bars.x)[-1] == 5_000.0 + 34_638.0 - 15_999.0 + 1_200.0 - 300.0
    assert sum(list(bars.x)[:-1]) == list(bars.x)[-1]


def test_a_negative_net_value_has_no_up_arrow() -> None:
    """The recommendation's headline is its net value (what it is ranked by), said in words in its help;
    the delta is where the figure comes from, with no arrow and no colour."""
    at = AppTest.from_string(
        """
import streamlit as st
from webapp import ui
rec = {"net_value": -120.0, "expected_uplift": 800.0, "uplift_low": 500.0, "uplift_high": 1100.0,
       "cost": 200.0}
ui.recommendation_metric(st, rec)
"""
    )
    at.run()
    assert not at.exception
    (metric,) = at.metric
    assert metric.label == "Net value to the platform"
    assert metric.value == "-$120"
    assert metric.proto.direction == MetricProto.MetricDirection.NONE
    assert metric.delta == "from $800 expected GMV uplift (80% interval $500 – $1,100) and $200 cost"
    assert metric.help.startswith(
        "Net value to the platform: what it keeps of the expected 28-day GMV uplift"
    )
    assert "minus the strategy's cost" in metric.help
