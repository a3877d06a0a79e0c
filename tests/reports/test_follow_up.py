"""The strategy board and the weekly review's follow-up show the same realized uplift for the same
accepted recommendation (both read `strategies.outcomes.realized_uplift`)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from reports.common import last_complete_week, week_label
from reports.weekly import weekly_review
from tests.reports.conftest import ReportWorld
from webapp import data as app_data

KEYS = ["entity_kind", "entity_id", "started_on"]


def test_board_and_weekly_review_agree(world: ReportWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTBOARD_HOME", str(world.settings.home))  # the app reads the environment
    board = app_data.accepted_outcomes(world.ops)
    # the review of the last complete week: the board is as of the build, the review as of that
    # week's end, so every action they both observe for as many days must show the same figures
    monday = last_complete_week(app_data.as_of())
    review = weekly_review(world.settings, week_label(monday), world.ops)
    follow = review.section("follow_up").table("follow_up").frame

    both = board.join(follow, on=KEYS, how="inner", suffix="_review")
    assert both.height == len(world.accepted)
    same_window = both.filter(pl.col("days_observed") == pl.col("days_observed_review"))
    assert same_window.filter(pl.col("complete")).height >= 1  # at least one complete 28-day window
    if app_data.last_day() == monday + timedelta(days=6):  # the build ends with that week: all agree
        assert same_window.height == both.height
    for column in ("realized_uplift", "gmv_before", "gmv_since", "predicted_so_far"):
        # the same sums, added up in whatever order Polars' parallel group-by takes
        assert same_window[column].to_list() == pytest.approx(same_window[f"{column}_review"].to_list())
    assert same_window["state"].to_list() == same_window["state_review"].to_list()
