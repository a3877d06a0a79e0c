"""State DB tables of the strategies: model runs, recommendation runs, recommendations and the workflow
of actions taken on them (status, owner, notes) with a full history of changes.

The tables are declared in `datastore.tables` and created by Alembic migration 0002. Every write goes
through SQLAlchemy Core with bound parameters.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from core.config import Settings
from datastore import db
from datastore.tables import action_history, actions, model_runs, recommendation_runs, recommendations

STATUSES = ("proposed", "accepted", "in_progress", "done", "dismissed")
OPEN_STATUSES = ("accepted", "in_progress")
# allowed moves of the workflow; a recommendation becomes an action when it is first moved
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "proposed": ("accepted", "dismissed"),
    "accepted": ("in_progress", "done", "dismissed"),
    "in_progress": ("done", "dismissed"),
    "done": (),
    "dismissed": ("proposed",),
}


class WorkflowError(ValueError):
    """A workflow change that is not allowed (unknown recommendation, forbidden status move)."""


def _now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def record_model_runs(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Insert model-run rows (metrics as a dict, stored as JSON)."""
    db.require_current(settings)
    payload = [
        {**row, "metrics": json.dumps(row["metrics"], default=float), "created_at": _now()} for row in rows
    ]
    with db.connect(settings) as connection:
        connection.execute(model_runs.insert(), payload)


def read_model_runs(settings: Settings, training_id: str | None = None) -> pl.DataFrame:
    """Model runs (newest training first, or one training), metrics decoded into a struct column."""
    db.require_current(settings)
    query = sa.select(model_runs).order_by(model_runs.c.created_at.desc(), model_runs.c.strategy)
    if training_id is not None:
        query = query.where(model_runs.c.training_id == training_id)
    with db.connect(settings) as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    if not rows:
        return pl.DataFrame(schema={c.name: pl.String for c in model_runs.columns})
    return pl.DataFrame(rows, infer_schema_length=None)


@dataclass(frozen=True)
class SavedRun:
    run_id: str
    n_recommendations: int


def save_recommendations(
    settings: Settings, recs: pl.DataFrame, *, training_id: str, as_of: date, chunk: int = 20_000
) -> SavedRun:
    """Persist one recommendation run and all its rows in one transaction."""
    db.require_current(settings)
    run_id = new_id("rec")
    columns = [c.name for c in recommendations.columns if c.name != "run_id"]
    rows = recs.select(columns).with_columns(run_id=pl.lit(run_id))
    with db.connect(settings) as connection:
        connection.execute(
            recommendation_runs.insert(),
            [
                {
                    "run_id": run_id,
                    "training_id": training_id,
                    "created_at": _now(),
                    "as_of": as_of,
                    "n_recommendations": rows.height,
                    "total_expected_uplift": float(recs.filter(pl.col("is_best"))["expected_uplift"].sum()),
                }
            ],
        )
        for part in rows.iter_slices(chunk):
            connection.execute(recommendations.insert(), part.to_dicts())
    return SavedRun(run_id, rows.height)


def latest_run(settings: Settings) -> dict[str, Any] | None:
    """The newest recommendation run, or None."""
    db.require_current(settings)
    query = sa.select(recommendation_runs).order_by(recommendation_runs.c.created_at.desc()).limit(1)
    with db.connect(settings) as connection:
        row = connection.execute(query).first()
    return dict(row._mapping) if row else None


def read_recommendations(
    settings: Settings, run_id: str, *, entity_kind: str | None = None, entity_ids: list[str] | None = None
) -> pl.DataFrame:
    """One run's recommendations, optionally for one kind and a set of entities (bound parameters)."""
    query = sa.select(recommendations).where(recommendations.c.run_id == run_id)
    if entity_kind is not None:
        query = query.where(recommendations.c.entity_kind == entity_kind)
    if entity_ids is not None:
        query = query.where(recommendations.c.entity_id.in_(entity_ids))
    with db.connect(settings) as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def set_status(
    settings: Settings,
    *,
    run_id: str,
    entity_kind: str,
    entity_id: str,
    strategy: str,
    status: str,
    user: str | None,
    owner: str | None = None,
    note: str | None = None,
    on: date | None = None,
) -> str:
    """Move a recommendation through the workflow; returns the action id. Every change is kept in
    ``action_history``. Accepting starts the 28-day clock (``started_on``, default today)."""
    if status not in STATUSES:
        raise WorkflowError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    db.require_current(settings)
    key = (
        (actions.c.run_id == run_id)
        & (actions.c.entity_kind == entity_kind)
        & (actions.c.entity_id == entity_id)
        & (actions.c.strategy == strategy)
    )
    now = _now()
    with db.connect(settings) as connection:
        current = connection.execute(sa.select(actions).where(key)).first()
        if current is None:
            rec = connection.execute(
                sa.select(recommendations).where(
                    (recommendations.c.run_id == run_id)
                    & (recommendations.c.entity_kind == entity_kind)
                    & (recommendations.c.entity_id == entity_id)
                    & (recommendations.c.strategy == strategy)
                )
            ).first()
            if rec is None:
                raise WorkflowError(
                    f"no recommendation of {strategy} for {entity_kind} {entity_id} in run {run_id}"
                )
            action_id = new_id("act")
            from_status = "proposed"
            connection.execute(
                actions.insert(),
                [
                    {
                        "action_id": action_id,
                        "run_id": run_id,
                        "entity_kind": entity_kind,
                        "entity_id": entity_id,
                        "strategy": strategy,
                        "predicted_uplift": rec.expected_uplift,
                        "uplift_low": rec.uplift_low,
                        "uplift_high": rec.uplift_high,
                        "status": from_status,
                        "owner": None,
                        "note": None,
                        "started_on": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
        else:
            action_id, from_status = current.action_id, current.status
        if status != from_status and status not in TRANSITIONS[from_status]:
            raise WorkflowError(f"cannot move from {from_status} to {status}")
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if owner is not None:
            values["owner"] = owner
        if note is not None:
            values["note"] = note
        if status == "accepted" and from_status != "accepted":
            values["started_on"] = on or now.date()
        connection.execute(actions.update().where(actions.c.action_id == action_id).values(**values))
        connection.execute(
            action_history.insert(),
            [
                {
                    "action_id": action_id,
                    "changed_at": now,
                    "changed_by": user,
                    "from_status": from_status,
                    "to_status": status,
                    "owner": owner,
                    "note": note,
                }
            ],
        )
    return action_id


def read_actions(settings: Settings, *, entity_ids: list[str] | None = None) -> pl.DataFrame:
    """Every action (optionally for a set of entities), newest first."""
    db.require_current(settings)
    query = sa.select(actions).order_by(actions.c.updated_at.desc())
    if entity_ids is not None:
        query = query.where(actions.c.entity_id.in_(entity_ids))
    with db.connect(settings) as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    return (
        pl.DataFrame(rows, infer_schema_length=None)
        if rows
        else pl.DataFrame(schema={c.name: pl.String for c in actions.columns})
    )


def read_history(settings: Settings, action_id: str) -> pl.DataFrame:
    """The full change history of one action, oldest first."""
    db.require_current(settings)
    query = (
        sa.select(action_history)
        .where(action_history.c.action_id == action_id)
        .order_by(action_history.c.history_id)
    )
    with db.connect(settings) as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
    return pl.DataFrame(rows, infer_schema_length=None)
