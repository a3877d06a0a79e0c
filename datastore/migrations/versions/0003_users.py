"""App users: local accounts with a role and, for merchant-success users, their assigned merchants.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the users and user_merchants tables."""
    op.create_table(
        "users",
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("email", sa.String(320), nullable=True, unique=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('ops', 'merchant_success')", name="role"),
    )
    op.create_table(
        "user_merchants",
        sa.Column("username", sa.String(128), sa.ForeignKey("users.username"), primary_key=True),
        sa.Column("merchant_id", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    """Drop the users tables."""
    op.drop_table("user_merchants")
    op.drop_table("users")
