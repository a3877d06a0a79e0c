"""Alerts: the alerts the rules raise (status, owner, notes, evidence) and their deliveries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create alerts and alert_deliveries."""
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("observed", sa.Double, nullable=True),
        sa.Column("expected", sa.Double, nullable=True),
        sa.Column("expected_low", sa.Double, nullable=True),
        sa.Column("expected_high", sa.Double, nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Text, nullable=True),
        sa.Column("reopened", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.Text, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_status")),
    )
    op.create_index(op.f("ix_alerts_dedup_key"), "alerts", ["dedup_key"])
    op.create_index(op.f("ix_alerts_merchant_id"), "alerts", ["merchant_id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_alert_deliveries")),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert_id"], name=op.f("fk_alert_deliveries_alert_id_alerts")
        ),
        sa.CheckConstraint("outcome IN ('sent', 'failed')", name=op.f("ck_alert_deliveries_outcome")),
    )
    op.create_index(op.f("ix_alert_deliveries_alert_id"), "alert_deliveries", ["alert_id"])


def downgrade() -> None:
    """Drop the alert tables (they hold users' owners and notes: only for development databases)."""
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
