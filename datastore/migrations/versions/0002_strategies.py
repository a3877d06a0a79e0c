"""Strategy tables: model runs, recommendation runs, recommendations, actions and their history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the strategy tables."""
    op.create_table(
        "model_runs",
        sa.Column("model_run_id", sa.String(64), primary_key=True),
        sa.Column("training_id", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("learner", sa.String(32), nullable=False),
        sa.Column("chosen", sa.Boolean, nullable=False),
        sa.Column("data_start", sa.Date, nullable=False),
        sa.Column("data_end", sa.Date, nullable=False),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("n_holdout", sa.Integer, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
    )
    op.create_table(
        "recommendation_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("training_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("n_recommendations", sa.Integer, nullable=False),
        sa.Column("total_expected_uplift", sa.Float, nullable=False),
    )
    op.create_table(
        "recommendations",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("recommendation_runs.run_id"), primary_key=True),
        sa.Column("entity_kind", sa.String(16), primary_key=True),
        sa.Column("entity_id", sa.String(64), primary_key=True),
        sa.Column("strategy", sa.String(64), primary_key=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("expected_uplift", sa.Float, nullable=False),
        sa.Column("uplift_low", sa.Float, nullable=False),
        sa.Column("uplift_high", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("net_value", sa.Float, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("is_best", sa.Boolean, nullable=False),
        sa.Column("rationale", sa.Text, nullable=True),
    )
    op.create_table(
        "actions",
        sa.Column("action_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("recommendation_runs.run_id"), nullable=False),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False, index=True),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("predicted_uplift", sa.Float, nullable=False),
        sa.Column("uplift_low", sa.Float, nullable=False),
        sa.Column("uplift_high", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("started_on", sa.Date, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "run_id", "entity_kind", "entity_id", "strategy", name="uq_actions_recommendation"
        ),
    )
    op.create_table(
        "action_history",
        sa.Column("history_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(64), sa.ForeignKey("actions.action_id"), nullable=False, index=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=True),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
    )


def downgrade() -> None:
    """Drop the strategy tables (they hold users' workflow: only for development databases)."""
    for name in ("action_history", "actions", "recommendations", "recommendation_runs", "model_runs"):
        op.drop_table(name)
