"""Tables of the state DB besides the dimensions and the ingestion ledger (`datastore.db`): users, their
merchants, sign-in attempts, sessions and the accounts' audit trail, model runs, recommendation runs,
recommendations and the workflow of actions.

Declared once on the state DB's one `MetaData`, created and changed only by the Alembic migrations in
``datastore/migrations``; the modules that read and write them (`datastore.users`, `strategies.store`)
import them from here.
"""

from __future__ import annotations

import sqlalchemy as sa

from datastore import db

metadata = db.metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(128), primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("email", sa.String(320), nullable=True, unique=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('ops', 'merchant_success')", name="role"),
)

user_merchants = sa.Table(
    "user_merchants",
    metadata,
    sa.Column("username", sa.String(128), sa.ForeignKey("users.username"), primary_key=True),
    sa.Column("merchant_id", sa.String(64), primary_key=True),
)

# Every sign-in with a password, kept for throttling and "last sign-in"; no foreign key: unknown user
# names are recorded too (their failures count against the name and the client address).
sign_in_attempts = sa.Table(
    "sign_in_attempts",
    metadata,
    sa.Column("attempt_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("client", sa.String(128), nullable=True),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Index("ix_sign_in_attempts_username_at", "username", "at"),
    sa.Index("ix_sign_in_attempts_client_at", "client", "at"),
)

# Server-side sign-in sessions: only the SHA-256 of the opaque token the browser holds is stored.
user_sessions = sa.Table(
    "user_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(128), sa.ForeignKey("users.username"), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# Who changed which account, when and how; no foreign key: the rows outlive a removed user.
user_audit = sa.Table(
    "user_audit",
    metadata,
    sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON
)


model_runs = sa.Table(
    "model_runs",
    metadata,
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
    sa.Column("metrics", sa.Text, nullable=False),  # JSON
)

recommendation_runs = sa.Table(
    "recommendation_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("training_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("n_recommendations", sa.Integer, nullable=False),
    sa.Column("total_expected_uplift", sa.Float, nullable=False),
)

recommendations = sa.Table(
    "recommendations",
    metadata,
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

actions = sa.Table(
    "actions",
    metadata,
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
    sa.UniqueConstraint("run_id", "entity_kind", "entity_id", "strategy", name="uq_actions_recommendation"),
)

action_history = sa.Table(
    "action_history",
    metadata,
    sa.Column("history_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.String(64), sa.ForeignKey("actions.action_id"), nullable=False, index=True),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=True),
    sa.Column("from_status", sa.String(16), nullable=False),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
)
