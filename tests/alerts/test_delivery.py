"""Delivery: an alert reaches a local webhook and a local SMTP server once each; a second evaluation does
not send again; the per-channel hourly limit holds; a failing channel is recorded and retried."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.policy import default

import pytest
import sqlalchemy as sa

from alerts.delivery import deliver_open_alerts
from alerts.rules import load_rules
from alerts.state import apply_breaches
from core.config import AlertDelivery, Settings
from datastore import db
from tests.alerts.conftest import Mailbox, Webhook, breach, breaches

RULES = load_rules()
T0 = datetime(2026, 11, 2, 15, tzinfo=UTC)
SPIKE = "merchant_refund_rate_spike"


def _config(webhook: Webhook, mailbox: Mailbox, **overrides: object) -> AlertDelivery:
    base = AlertDelivery(
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        email_from="alerts@liftboard.test",
        email_to=("ops@liftboard.test", "oncall@liftboard.test"),
        timeout_s=5.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def _open(settings: Settings, *merchants: str, at: datetime = T0) -> list[int]:
    rows = [
        breach(SPIKE, "merchant", m, at, merchant_id=m, observed=0.636, expected=0.092, high=0.301)
        for m in merchants
    ]
    with db.connect(settings) as connection:
        return apply_breaches(connection, breaches(*rows), RULES, at, at).opened


def _deliveries(settings: Settings) -> list[tuple[int, str, str]]:
    table = db.alert_deliveries
    with db.connect(settings) as connection:
        rows = connection.execute(
            sa.select(table.c.alert_id, table.c.channel, table.c.outcome).order_by(table.c.delivery_id)
        )
        return [tuple(row) for row in rows]


def test_alert_reaches_webhook_and_email_once(
    sqlite_settings: Settings, webhook: Webhook, smtp_server: Mailbox
) -> None:
    config = _config(webhook, smtp_server)
    (alert_id,) = _open(sqlite_settings, "m00043")
    with db.connect(sqlite_settings) as connection:
        first = deliver_open_alerts(connection, config, RULES, T0)
    with db.connect(sqlite_settings) as connection:  # the next evaluation: still open, already delivered
        apply_breaches(
            connection,
            breaches(breach(SPIKE, "merchant", "m00043", T0 + timedelta(hours=1), merchant_id="m00043")),
            RULES,
            T0 + timedelta(hours=1),
            T0 + timedelta(hours=1),
        )
        second = deliver_open_alerts(connection, config, RULES, T0 + timedelta(hours=1))

    assert sorted(first.sent) == [(alert_id, "email"), (alert_id, "webhook")]
    assert second.sent == []
    assert len(webhook.received) == 1
    payload = webhook.received[0]
    assert payload["alert_id"] == alert_id
    assert payload["rule"] == SPIKE
    assert payload["merchant_id"] == "m00043"
    assert payload["observed_text"] == "63.6%"
    assert payload["expected_range_text"] == "0.0% – 30.1%"
    assert payload["window_end"] == "2026-11-02 15:00 UTC"
    assert len(smtp_server.messages) == 1
    sender, recipients, content = smtp_server.messages[0]
    assert sender == "alerts@liftboard.test"
    assert recipients == ["ops@liftboard.test", "oncall@liftboard.test"]
    message = message_from_string(content, policy=default)
    assert str(message["Subject"]).startswith(
        "[Liftboard warning] Merchant m00043: refund rate 63.6% in the 24"
    )
    body = message.get_body()
    assert body is not None
    text = body.get_content()
    assert "Observed: 63.6%" in text
    assert "Expected range: 0.0% – 30.1%" in text
    assert "Window: 2026-11-01 15:00 UTC to 2026-11-02 15:00 UTC" in text
    assert _deliveries(sqlite_settings) == [(alert_id, "webhook", "sent"), (alert_id, "email", "sent")]


def test_hourly_limit_per_channel_holds(
    sqlite_settings: Settings, webhook: Webhook, smtp_server: Mailbox
) -> None:
    config = _config(webhook, smtp_server, max_per_hour=2, smtp_host=None)
    opened = _open(sqlite_settings, "m00001", "m00002", "m00003")
    with db.connect(sqlite_settings) as connection:
        first = deliver_open_alerts(connection, config, RULES, T0)
        same_hour = deliver_open_alerts(connection, config, RULES, T0 + timedelta(minutes=50))
        next_hour = deliver_open_alerts(connection, config, RULES, T0 + timedelta(minutes=61))
    assert len(first.sent) == 2
    assert len(first.waiting) == 1
    assert same_hour.sent == []
    assert same_hour.waiting == first.waiting
    assert next_hour.sent == first.waiting
    assert sorted(hook["alert_id"] for hook in webhook.received) == sorted(opened)
    assert smtp_server.messages == []  # email is off without an SMTP host


def test_failed_delivery_is_recorded_and_retried(
    sqlite_settings: Settings, webhook: Webhook, smtp_server: Mailbox
) -> None:
    (alert_id,) = _open(sqlite_settings, "m00007")
    broken = _config(webhook, smtp_server, webhook_url="http://127.0.0.1:9/nothing-listens", smtp_host=None)
    with db.connect(sqlite_settings) as connection:
        failed = deliver_open_alerts(connection, broken, RULES, T0)
        retried = deliver_open_alerts(connection, _config(webhook, smtp_server, smtp_host=None), RULES, T0)
    assert failed.failed == [(alert_id, "webhook")]
    assert retried.sent == [(alert_id, "webhook")]
    assert [outcome for *_, outcome in _deliveries(sqlite_settings)] == ["failed", "sent"]
    assert len(webhook.received) == 1


def test_delivery_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().alert_delivery == AlertDelivery()  # nothing set: both channels off
    monkeypatch.setenv("LIFTBOARD_ALERT_WEBHOOK_URL", "https://hooks.example/alerts")
    monkeypatch.setenv("LIFTBOARD_SMTP_HOST", "smtp.example")
    monkeypatch.setenv("LIFTBOARD_SMTP_PORT", "587")
    monkeypatch.setenv("LIFTBOARD_SMTP_STARTTLS", "1")
    monkeypatch.setenv("LIFTBOARD_SMTP_USER", "liftboard")
    monkeypatch.setenv("LIFTBOARD_SMTP_PASSWORD", "secret")
    monkeypatch.setenv("LIFTBOARD_ALERT_EMAIL_TO", "ops@example.com, oncall@example.com")
    monkeypatch.setenv("LIFTBOARD_ALERT_MAX_PER_HOUR", "5")
    config = Settings.from_env().alert_delivery
    assert config.webhook_url == "https://hooks.example/alerts"
    assert (config.smtp_host, config.smtp_port, config.smtp_starttls) == ("smtp.example", 587, True)
    assert config.email_to == ("ops@example.com", "oncall@example.com")
    assert config.email_enabled
    assert config.max_per_hour == 5
    assert "secret" not in repr(config)
