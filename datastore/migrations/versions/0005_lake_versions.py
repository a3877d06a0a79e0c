"""Delta lake: each committed ingestion run records the Delta version of every lake table it left.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ingestion_runs.lake_versions (JSON text: table -> Delta version)."""
    with op.batch_alter_table("ingestion_runs") as batch:
        batch.add_column(sa.Column("lake_versions", sa.Text, nullable=True))


def downgrade() -> None:
    """Drop ingestion_runs.lake_versions."""
    with op.batch_alter_table("ingestion_runs") as batch:
        batch.drop_column("lake_versions")
