"""Users, passwords and row-level scoping (liftboard.access), and the `liftboard users` commands."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from core import access
from core.config import Settings
from datastore import db, snapshots, users
from liftboard.cli import app as cli
from tests.builders import valid_tables

STRONG = "cobalt-lantern-47-orbit"


def _with_merchants(settings: Settings) -> Settings:
    """``settings`` with merchants m00001 and m00002 in the state DB (merchant ids are validated)."""
    with db.connect(settings) as connection:
        connection.execute(db.sql_table("merchants").insert(), valid_tables()["merchants"].to_dicts())
    return settings


def test_password_hash_is_salted_and_verifies() -> None:
    first, second = users.hash_password("s3cret"), users.hash_password("s3cret")
    assert first != second
    assert first.startswith("$argon2id$")
    assert users.verify_password("s3cret", first)
    assert not users.verify_password("wrong", first)
    assert not users.verify_password("s3cret", None)
    assert not users.verify_password("s3cret", "md5$abc")


def test_add_and_authenticate(sqlite_settings: Settings) -> None:
    _with_merchants(sqlite_settings)
    user = users.add_user(sqlite_settings, "ana", STRONG, "merchant_success", "Ana", ["m00002", "m00001"])
    assert user == access.User("ana", "Ana", "merchant_success", frozenset({"m00001", "m00002"}))
    assert users.authenticate(sqlite_settings, "ana", STRONG) == user
    assert users.authenticate(sqlite_settings, "ana", "nope") is None
    assert users.authenticate(sqlite_settings, "nobody", STRONG) is None
    assert users.get_user(sqlite_settings, "ana") == user
    ops = users.add_user(sqlite_settings, "olga", STRONG, "ops")
    assert ops.merchant_ids is None
    assert ops.is_ops
    with pytest.raises(access.AccessError, match="already exists"):
        users.add_user(sqlite_settings, "ana", STRONG, "ops")
    with pytest.raises(access.AccessError, match="unknown role"):
        users.add_user(sqlite_settings, "x", STRONG, "admin")
    with pytest.raises(access.AccessError, match="ops users see every merchant"):
        users.add_user(sqlite_settings, "y", STRONG, "ops", merchant_ids=["m00001"])


def test_oidc_email_maps_to_local_user(sqlite_settings: Settings) -> None:
    users.add_user(sqlite_settings, "bo", None, "ops", email="Bo@Example.com")
    assert users.user_for_email(sqlite_settings, "bo@example.com") == users.get_user(sqlite_settings, "bo")
    assert users.user_for_email(sqlite_settings, "eve@example.com") is None
    assert users.authenticate(sqlite_settings, "bo", "") is None  # no password: OIDC only


def test_scope_frame_filters_by_merchant_and_refuses_unkeyed() -> None:
    user = access.User("ms", "ms", "merchant_success", frozenset({"m1"}))
    by_merchant = pl.LazyFrame({"merchant_id": ["m1", "m2"], "gmv": [1.0, 2.0]})
    assert access.scope_frame(by_merchant, user).collect()["merchant_id"].to_list() == ["m1"]
    by_entity = pl.LazyFrame(
        {"entity_kind": ["merchant", "merchant", "creator"], "entity_id": ["m1", "m2", "m1"]}
    )
    assert access.scope_frame(by_entity, user).collect().rows() == [("merchant", "m1")]
    with pytest.raises(PermissionError, match="not scoped by merchant"):
        access.scope_frame(pl.LazyFrame({"creator_id": ["c1"]}), user)
    ops = access.User("o", "o", "ops", None)
    assert access.scope_frame(by_merchant, ops).collect().height == 2
    assert access.can_see_merchant(ops, "m2")
    assert access.can_see_merchant(user, "m1")
    assert not access.can_see_merchant(user, "m2")


def test_scoped_snapshots_on_the_tiny_build(app_settings: Settings) -> None:
    merchant = users.get_user(app_settings, "merchant")
    assert merchant is not None
    assert merchant.merchant_ids is not None
    assert len(merchant.merchant_ids) == 5
    daily = snapshots.scoped_snapshot("merchant_daily", app_settings, merchant).collect()
    assert set(daily["merchant_id"]) == set(merchant.merchant_ids)
    recs = snapshots.scoped_snapshot("recommendations", app_settings, merchant).collect()
    assert set(recs["entity_kind"]) <= {"merchant"}
    assert set(recs["entity_id"]) <= merchant.merchant_ids
    for name in (
        "creator_daily",
        "kpi_weekly",
        "creator_features",
        "qini_curves",
        "gmv_change_contributions",
    ):
        with pytest.raises(PermissionError):
            snapshots.scoped_snapshot(name, app_settings, merchant)
    assert snapshots.scoped_snapshot("strategy_catalog", app_settings, merchant).collect().height > 0
    ops = users.get_user(app_settings, "ops")
    assert ops is not None
    assert (
        snapshots.scoped_snapshot("merchant_daily", app_settings, ops)
        .select(pl.col("merchant_id").n_unique())
        .collect()
        .item()
        > 5
    )


def test_cli_users_add_list_and_seed(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTBOARD_HOME", str(sqlite_settings.home))
    _with_merchants(sqlite_settings)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "users",
            "add",
            "kim",
            "--role",
            "merchant_success",
            "--merchant",
            "m00001",
            "--merchant",
            "m00002",
            "--password-stdin",
        ],
        input=f"{STRONG}\n",
    )
    assert result.exit_code == 0, result.output
    assert "kim (merchant_success, 2 merchant(s)) created" in result.output
    assert users.authenticate(sqlite_settings, "kim", STRONG) is not None
    again = runner.invoke(
        cli, ["users", "add", "kim", "--role", "ops", "--password-stdin"], input=f"{STRONG}\n"
    )
    assert again.exit_code == 2
    assert "already exists" in again.output
    bad = runner.invoke(cli, ["users", "add", "z", "--role", "boss", "--password-stdin"], input=f"{STRONG}\n")
    assert bad.exit_code == 2
    assert "unknown role" in bad.output
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0
    assert "kim" in listed.output
    assert "m00002" in listed.output
    seeded = runner.invoke(cli, ["users", "seed-demo"])
    assert seeded.exit_code == 1
    assert "no analytics build" in seeded.output


def test_cli_seed_demo_on_a_build(app_settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["users", "seed-demo"])
    assert result.exit_code == 0
    assert "already exist" in result.output
