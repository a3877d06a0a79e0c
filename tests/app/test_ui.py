"""Rendering helpers shared by the pages (pages/_ui.py), tested without running a page."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import pytest

from webapp import ui


def test_drivers_chart_words_values_as_the_rationale_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bar labels read like the rationale: GPM in dollars, rates as percentages, ratios with ×, the
    median in the same unit as the value; bars sorted by contribution."""
    drawn: list[go.Figure] = []
    monkeypatch.setattr(ui, "chart", lambda fig, key: drawn.append(fig))
    drivers = pl.DataFrame(
        {
            "feature": ["gpm_28d", "view_rate_28d", "commission_rate_ratio_vs_category"],
            "value": [177.0, 0.38, 0.684],
            "cohort_median": [51.66, 0.38, 1.33],
            "contribution": [-15_999.0, 34_638.0, 1_200.0],
        }
    )
    ui.drivers_chart(drivers, "SHAP drivers", key="k")
    (fig,) = drawn
    assert list(fig.data[0].y) == [
        "GPM 28d = $177 (median $52)",
        "commission rate ratio vs category = 0.68× (median 1.33×)",
        "view rate 28d = 38.0% (median 38.0%)",
    ]
    assert list(fig.data[0].x) == [-15_999.0, 1_200.0, 34_638.0]
