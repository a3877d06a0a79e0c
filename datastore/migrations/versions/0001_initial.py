"""Dimension tables and the ingestion ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the dimension tables, then the ledger."""
    op.create_table(
        "creators",
        sa.Column("creator_id", sa.String(64), nullable=False),
        sa.Column("handle", sa.Text, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("followers", sa.BigInteger, nullable=False),
        sa.Column("primary_category", sa.Text, nullable=False),
        sa.Column("bio", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("creator_id", name="pk_creators"),
    )
    op.create_table(
        "merchants",
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("region", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("rating", sa.Double, nullable=False),
        sa.Column("ships_in_days", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", name="pk_merchants"),
    )
    op.create_table(
        "products",
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("commission_rate", sa.Double, nullable=False),
        sa.Column("listed_on", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("product_id", name="pk_products"),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.merchant_id"], name="fk_products_merchant_id_merchants"
        ),
    )
    op.create_index("ix_products_merchant_id", "products", ["merchant_id"])
    op.create_table(
        "showcase",
        sa.Column("creator_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("added_on", sa.Date, nullable=False),
        sa.Column("removed_on", sa.Date, nullable=True),
        sa.PrimaryKeyConstraint("creator_id", "product_id", "added_on", name="pk_showcase"),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["creators.creator_id"], name="fk_showcase_creator_id_creators"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.product_id"], name="fk_showcase_product_id_products"
        ),
    )
    op.create_index("ix_showcase_product_id", "showcase", ["product_id"])
    op.create_table(
        "interventions",
        sa.Column("intervention_id", sa.String(64), nullable=False),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("assigned_on", sa.Date, nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("assignment", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("intervention_id", name="pk_interventions"),
    )
    op.create_index("ix_interventions_entity_id", "interventions", ["entity_id"])
    op.create_table(
        "ingestion_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user", sa.Text, nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_ingestion_runs"),
        sa.CheckConstraint("status IN ('running', 'committed', 'failed')", name="ck_ingestion_runs_status"),
    )
    op.create_table(
        "ingestion_loads",
        sa.Column("load_id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
        sa.Column("rows_duplicate", sa.BigInteger, nullable=False),
        sa.Column("quarantine_path", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("load_id", name="pk_ingestion_loads"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingestion_runs.run_id"], name="fk_ingestion_loads_run_id_ingestion_runs"
        ),
        sa.CheckConstraint(
            "rows_read = rows_loaded + rows_quarantined + rows_duplicate",
            name="ck_ingestion_loads_rows_add_up",
        ),
    )
    op.create_index("ix_ingestion_loads_run_id", "ingestion_loads", ["run_id"])


def downgrade() -> None:
    """Refuse: dropping these tables would destroy users' data."""
    raise NotImplementedError("0001 cannot be downgraded: it would drop tables holding users' data")
