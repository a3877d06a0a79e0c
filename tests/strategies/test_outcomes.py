"""Realized against predicted uplift (`strategies.outcomes`) on tiny hand-computed frames."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from strategies.outcomes import OUTCOME_SCHEMA, followed_up_actions, realized_uplift

START = date(2026, 3, 2)  # a Monday
DAYS = [START - timedelta(days=28) + timedelta(days=i) for i in range(56)]


def _merchant_daily() -> pl.DataFrame:
    """m1 sells 10 a day before START and 15 a day from it, in two rows a day (two creators)."""
    return pl.DataFrame(
        {
            "merchant_id": ["m1"] * (2 * len(DAYS)),
            "creator_id": ["c1", "c2"] * len(DAYS),
            "date": [day for day in DAYS for _ in range(2)],
            "gmv": [(5.0 if day < START else 7.5) for day in DAYS for _ in range(2)],
        }
    )


def _actions(**columns: list[object]) -> pl.DataFrame:
    return pl.DataFrame(columns, schema_overrides={"started_on": pl.Date, "predicted_uplift": pl.Float64})


def test_complete_and_partial_windows() -> None:
    actions = _actions(
        action_id=["a1", "a2", "a3", "a4"],
        entity_kind=["merchant", "merchant", "merchant", "merchant"],
        entity_id=["m1", "m1", "m2", "m1"],
        started_on=[START, START, START, START + timedelta(days=40)],
        predicted_uplift=[140.0, 140.0, 28.0, 28.0],
    )
    # all 28 days observed; then 7 days observed (as of START + 7): GMV since 7 × 15, before 7 × 10
    complete = realized_uplift(actions.head(1), None, _merchant_daily(), START + timedelta(days=28))
    partial = realized_uplift(actions, None, _merchant_daily().lazy(), START + timedelta(days=7))

    expected = pl.DataFrame(
        {
            "action_id": ["a1"],
            "entity_kind": ["merchant"],
            "entity_id": ["m1"],
            "started_on": [START],
            "predicted_uplift": [140.0],
            "days_observed": [28],
            "predicted_so_far": [140.0],
            "gmv_before": [280.0],
            "gmv_since": [420.0],
            "realized_uplift": [140.0],
            "complete": [True],
            "state": ["complete (28 days)"],
        },
        schema_overrides=OUTCOME_SCHEMA,
    )
    assert_frame_equal(complete, expected)
    assert partial.select(
        "action_id", "days_observed", "realized_uplift", "predicted_so_far", "state"
    ).rows() == [
        ("a1", 7, 35.0, 35.0, "so far (7 of 28 days)"),
        ("a2", 7, 35.0, 35.0, "so far (7 of 28 days)"),
        ("a3", 7, 0.0, 7.0, "so far (7 of 28 days)"),  # no sales at all: 0, not unknown
        ("a4", 0, None, 0.0, "no data yet"),  # starts after the data
    ]
    assert not partial["complete"].any()


def test_the_baseline_is_as_long_as_the_days_observed() -> None:
    """After one day the baseline is the one day before, not the 28-day pre-period."""
    daily = pl.DataFrame(
        {
            "creator_id": ["c1"] * 3,
            "date": [START - timedelta(days=2), START - timedelta(days=1), START],
            "gmv": [100.0, 4.0, 6.0],
        }
    )
    actions = _actions(entity_kind=["creator"], entity_id=["c1"], started_on=[START], predicted_uplift=[28.0])

    result = realized_uplift(actions, daily, None, START + timedelta(days=1)).row(0, named=True)

    assert (result["gmv_before"], result["gmv_since"], result["realized_uplift"]) == (4.0, 6.0, 2.0)
    assert result["days_observed"] == 1
    assert result["predicted_so_far"] == 1.0


def test_an_empty_frame_gets_the_outcome_columns() -> None:
    actions = _actions(action_id=[], entity_kind=[], entity_id=[], started_on=[], predicted_uplift=[])

    result = realized_uplift(actions, None, _merchant_daily(), START)

    assert result.height == 0
    assert result.schema == pl.Schema({**actions.schema, **OUTCOME_SCHEMA})


def test_a_kind_without_daily_facts_has_no_figures() -> None:
    """A reader without the creator facts (a merchant-scoped one) gets nulls, never zeros."""
    actions = _actions(entity_kind=["creator"], entity_id=["c1"], started_on=[START], predicted_uplift=[28.0])

    result = realized_uplift(actions, None, _merchant_daily(), START + timedelta(days=3)).row(0, named=True)

    assert result["days_observed"] == 3
    assert result["gmv_before"] is None
    assert result["realized_uplift"] is None


def test_followed_up_actions_are_accepted_and_not_dismissed() -> None:
    actions = pl.DataFrame(
        {
            "status": ["proposed", "accepted", "in_progress", "done", "dismissed", "accepted"],
            "started_on": [None, "2026-03-02", "2026-03-09", "2026-03-16", "2026-03-02", None],
        }
    )

    followed = followed_up_actions(actions)
    by_week = followed_up_actions(actions, started_by=date(2026, 3, 10))

    assert followed["status"].to_list() == ["accepted", "in_progress", "done"]
    assert followed.schema["started_on"] == pl.Date
    assert by_week["status"].to_list() == ["accepted", "in_progress"]
    assert followed_up_actions(actions.clear()).height == 0
