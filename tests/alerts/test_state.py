"""Alert state: an alert still open is updated, not duplicated; it resolves when its condition clears,
re-opens within its rule's cooldown, and users acknowledge, resolve and annotate it (scoped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alerts.rules import load_rules
from alerts.state import AlertNotFound, apply_breaches, list_alerts, update_alert
from core.config import Settings
from datastore import db
from tests.alerts.conftest import breach, breaches

RULES = load_rules()
T0 = datetime(2026, 11, 2, 15, tzinfo=UTC)
SPIKE = "merchant_refund_rate_spike"


def _count(settings: Settings) -> int:
    with db.connect(settings) as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(db.alerts)).scalar_one())


def test_open_alert_is_updated_then_resolved_when_clear(settings: Settings) -> None:
    with db.connect(settings) as connection:
        first = apply_breaches(
            connection, breaches(breach(SPIKE, "merchant", "m00043", T0, merchant_id="m00043")), RULES, T0, T0
        )
    later = T0 + timedelta(hours=1)
    with db.connect(settings) as connection:
        second = apply_breaches(
            connection,
            breaches(breach(SPIKE, "merchant", "m00043", later, merchant_id="m00043", observed=0.64)),
            RULES,
            later,
            later,
        )
    assert len(first.opened) == 1
    assert second.updated == first.opened
    assert second.opened == []
    assert _count(settings) == 1
    with db.connect(settings) as connection:
        row = list_alerts(connection).row(0, named=True)
    assert row["status"] == "open"
    assert row["observed"] == pytest.approx(0.64)
    assert row["last_seen_at"] == later
    assert row["opened_at"] == T0
    assert row["merchant_id"] == "m00043"
    assert row["summary"] == (
        "Merchant m00043: refund rate 64.0% in the 24 hours to 2026-11-02 16:00 UTC, "
        "above the expected 10.0% (at most 25.0%)"
    )

    cleared = later + timedelta(hours=1)
    with db.connect(settings) as connection:
        third = apply_breaches(connection, breaches(), RULES, cleared, cleared)
        row = list_alerts(connection).row(0, named=True)
    assert third.resolved == first.opened
    assert (row["status"], row["resolved_at"], row["resolved_by"]) == (
        "resolved",
        cleared,
        "condition cleared",
    )


def test_alert_reopens_within_cooldown_and_is_new_after_it(settings: Settings) -> None:
    cooldown = timedelta(hours={rule.id: rule for rule in RULES}[SPIKE].cooldown_hours)
    one = breaches(breach(SPIKE, "merchant", "m00001", T0, merchant_id="m00001"))
    with db.connect(settings) as connection:
        opened = apply_breaches(connection, one, RULES, T0, T0).opened
        apply_breaches(connection, breaches(), RULES, T0 + timedelta(hours=1), T0)
        back = T0 + timedelta(hours=3)
        again = breaches(breach(SPIKE, "merchant", "m00001", back, merchant_id="m00001"))
        reopened = apply_breaches(connection, again, RULES, back, back)
        apply_breaches(connection, breaches(), RULES, back + timedelta(hours=1), back)
        late = back + timedelta(hours=1) + cooldown
        new = apply_breaches(
            connection,
            breaches(breach(SPIKE, "merchant", "m00001", late, merchant_id="m00001")),
            RULES,
            late,
            late,
        )
        rows = list_alerts(connection)
    assert reopened.reopened == opened
    assert len(new.opened) == 1
    assert new.opened != opened
    assert rows.height == 2
    assert rows.filter(rows["alert_id"] == opened[0])["reopened"].to_list() == [1]


def test_users_acknowledge_annotate_and_resolve_within_scope(settings: Settings) -> None:
    with db.connect(settings) as connection:
        changes = apply_breaches(
            connection,
            breaches(
                breach(SPIKE, "merchant", "m00010", T0, merchant_id="m00010"),
                breach("region_gmv_below_expected", "region", "UK", T0, unit="USD", hours=3),
            ),
            RULES,
            T0,
            T0,
        )
    merchant_alert, region_alert = sorted(changes.opened)
    mine = frozenset({"m00010"})
    note = "Robert'); DROP TABLE alerts;--"
    with db.connect(settings) as connection:
        update_alert(
            connection,
            merchant_alert,
            "ana",
            status="acknowledged",
            owner="Ana",
            notes=note,
            merchant_ids=mine,
        )
        with pytest.raises(AlertNotFound):
            update_alert(connection, region_alert, "ana", status="resolved", merchant_ids=mine)
        with pytest.raises(ValueError, match="unknown status 'closed'"):
            update_alert(connection, merchant_alert, "ana", status="closed")
        scoped = list_alerts(connection, merchant_ids=mine)
        everything = list_alerts(connection)
    assert scoped["alert_id"].to_list() == [merchant_alert]
    assert scoped.row(0, named=True)["notes"] == note
    assert scoped.row(0, named=True)["owner"] == "Ana"
    assert scoped.row(0, named=True)["status"] == "acknowledged"
    assert sorted(everything["alert_id"].to_list()) == [merchant_alert, region_alert]
    # an acknowledged alert whose condition still holds stays acknowledged (updated, not re-opened)
    later = T0 + timedelta(hours=1)
    with db.connect(settings) as connection:
        apply_breaches(
            connection,
            breaches(breach(SPIKE, "merchant", "m00010", later, merchant_id="m00010")),
            RULES,
            later,
            later,
        )
        update_alert(connection, region_alert, "ops", status="resolved")
        rows = {row["alert_id"]: row for row in list_alerts(connection).iter_rows(named=True)}
    assert rows[merchant_alert]["status"] == "acknowledged"
    assert (rows[region_alert]["status"], rows[region_alert]["resolved_by"]) == ("resolved", "ops")
