"""Ingestion ledger: rows that changed a stored row are counted as updated, apart from new rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Loads recorded before this revision counted updates as loaded; they keep ``rows_updated = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_RULE = "rows_read = rows_loaded + rows_quarantined + rows_duplicate"
_NEW_RULE = "rows_read = rows_loaded + rows_updated + rows_quarantined + rows_duplicate"
# 0001 named it through the naming convention twice; the new one has the name the metadata gives it
_OLD_CHECK = "ck_ingestion_loads_ck_ingestion_loads_rows_add_up"
_CHECK = "ck_ingestion_loads_rows_add_up"


def _loads(*extra: sa.Column[Any], rule: str, name: str) -> sa.Table:
    """The table as it stands (SQLite does not report CHECK constraints, so batch mode copies from this)."""
    return sa.Table(
        "ingestion_loads",
        sa.MetaData(),
        sa.Column("load_id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
        sa.Column("rows_duplicate", sa.BigInteger, nullable=False),
        sa.Column("quarantine_path", sa.Text, nullable=True),
        *extra,
        sa.PrimaryKeyConstraint("load_id", name="pk_ingestion_loads"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingestion_runs.run_id"], name="fk_ingestion_loads_run_id_ingestion_runs"
        ),
        sa.CheckConstraint(rule, name=op.f(name)),
        sa.Index("ix_ingestion_loads_run_id", "run_id"),
    )


def upgrade() -> None:
    """Add ingestion_loads.rows_updated (0 for earlier loads) and make the rows add up with it."""
    old = _loads(rule=_OLD_RULE, name=_OLD_CHECK)
    with op.batch_alter_table("ingestion_loads", copy_from=old) as batch:
        batch.add_column(sa.Column("rows_updated", sa.BigInteger, nullable=False, server_default="0"))
        batch.drop_constraint(op.f(_OLD_CHECK), type_="check")
        batch.create_check_constraint(op.f(_CHECK), _NEW_RULE)


def downgrade() -> None:
    """Fold rows_updated back into rows_loaded and drop the column."""
    op.execute("UPDATE ingestion_loads SET rows_loaded = rows_loaded + rows_updated")
    updated = sa.Column("rows_updated", sa.BigInteger, nullable=False, server_default="0")
    new = _loads(updated, rule=_NEW_RULE, name=_CHECK)
    with op.batch_alter_table("ingestion_loads", copy_from=new) as batch:
        batch.drop_constraint(op.f(_CHECK), type_="check")
        batch.create_check_constraint(op.f(_OLD_CHECK), _OLD_RULE)
        batch.drop_column("rows_updated")
