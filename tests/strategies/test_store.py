"""Recommendations persist with a run id; the workflow keeps every change (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from core.config import Settings
from strategies import store


def _recs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "entity_kind": ["creator", "creator", "merchant"],
            "entity_id": ["c000001", "c000001", "m00001"],
            "strategy": ["live_coaching", "commission_boost", "fulfilment_fix"],
            "team": ["creator_success", "creator_success", "merchant_ops"],
            "expected_uplift": [500.0, 100.0, 2000.0],
            "uplift_low": [200.0, -50.0, 900.0],
            "uplift_high": [800.0, 250.0, 3000.0],
            "cost": [60.0, 20.0, 200.0],
            "net_value": [-10.0, -10.0, 0.0],
            "rank": [1, 2, 1],
            "is_best": [True, False, True],
            "rationale": ["because", None, "ships slowly"],
        }
    )


def test_recommendations_and_workflow_history(settings: Settings) -> None:
    saved = store.save_recommendations(settings, _recs(), training_id="train-1", as_of=date(2026, 11, 23))
    assert saved.n_recommendations == 3
    assert store.latest_run(settings)["run_id"] == saved.run_id  # type: ignore[index]
    only_mine = store.read_recommendations(settings, saved.run_id, entity_ids=["m00001"])
    assert only_mine["entity_id"].to_list() == ["m00001"]

    key = dict(run_id=saved.run_id, entity_kind="creator", entity_id="c000001", strategy="live_coaching")
    action = store.set_status(
        settings, **key, status="accepted", user="ana", owner="ana", note="call Monday", on=date(2026, 11, 24)
    )
    store.set_status(settings, **key, status="in_progress", user="ana", note="coach booked")
    store.set_status(settings, **key, status="done", user="bo")
    history = store.read_history(settings, action)
    assert history.select("from_status", "to_status").rows() == [
        ("proposed", "accepted"),
        ("accepted", "in_progress"),
        ("in_progress", "done"),
    ]
    assert history["changed_by"].to_list() == ["ana", "ana", "bo"]
    current = store.read_actions(settings).row(0, named=True)
    assert current["status"] == "done"
    assert current["owner"] == "ana"
    assert current["note"] == "coach booked"
    assert current["started_on"] == date(2026, 11, 24)
    assert current["predicted_uplift"] == 500.0

    with pytest.raises(store.WorkflowError, match="cannot move from done to accepted"):
        store.set_status(settings, **key, status="accepted", user="ana")
    with pytest.raises(store.WorkflowError, match="no recommendation"):
        store.set_status(settings, **{**key, "entity_id": "c999999"}, status="accepted", user="ana")


def test_model_runs_are_recorded(settings: Settings) -> None:
    store.record_model_runs(
        settings,
        [
            {
                "model_run_id": "model-1",
                "training_id": "train-1",
                "entity_kind": "creator",
                "strategy": "live_coaching",
                "learner": "x_learner",
                "chosen": True,
                "data_start": date(2026, 6, 22),
                "data_end": date(2026, 10, 25),
                "n_train": 100,
                "n_holdout": 40,
                "metrics": {"qini_area": 12.5, "spearman": 0.7},
            }
        ],
    )
    runs = store.read_model_runs(settings, training_id="train-1")
    assert runs.height == 1
    assert runs["learner"][0] == "x_learner"
    assert '"qini_area": 12.5' in runs["metrics"][0]
