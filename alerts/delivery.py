"""Delivering alerts: a webhook (HTTP POST of JSON) and email (SMTP), de-duplicated and rate-limited.

- **Once per alert and channel**: an alert with a ``sent`` delivery on a channel is not sent there again
  (an alert re-opened within its rule's cooldown is the same alert, so it is not sent again either).
- **A rule's cooldown**: an alert is not sent on a channel while an earlier alert of the same rule and
  entity was sent there less than ``cooldown_hours`` ago (a condition that flaps sends once).
- **Per channel per hour**: at most ``max_per_hour`` sends per channel in any hour; the rest wait, still
  open, for a later evaluation (most severe first).
- A failed attempt is recorded (``failed``, with the error) and retried at the next evaluation.

Only open alerts are delivered (acknowledged ones have someone on them; resolved ones are over).
"""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alerts.rules import Rule
from alerts.state import format_time, format_value
from core.config import AlertDelivery
from datastore.db import alert_deliveries, alerts

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class DeliveryReport:
    """What one round of delivery did: (alert_id, channel) pairs per outcome."""

    sent: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    waiting: list[tuple[int, str]] = field(default_factory=list)  # held back by the hourly limit


def alert_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The JSON a webhook receives for an alert (values raw, plus how a person reads them)."""
    unit = alert["unit"]
    return {
        "alert_id": alert["alert_id"],
        "rule": alert["rule_id"],
        "entity_kind": alert["entity_kind"],
        "entity_id": alert["entity_id"],
        "merchant_id": alert["merchant_id"],
        "severity": alert["severity"],
        "status": alert["status"],
        "summary": alert["summary"],
        "unit": unit,
        "observed": alert["observed"],
        "expected": alert["expected"],
        "expected_low": alert["expected_low"],
        "expected_high": alert["expected_high"],
        "observed_text": format_value(alert["observed"], unit),
        "expected_range_text": (
            f"{format_value(alert['expected_low'], unit)} – {format_value(alert['expected_high'], unit)}"
        ),
        "window_start": format_time(alert["window_start"]),
        "window_end": format_time(alert["window_end"]),
        "opened_at": format_time(alert["opened_at"]),
    }


def send_webhook(url: str, payload: dict[str, Any], timeout_s: float) -> None:
    """POST ``payload`` as JSON; raises on a non-2xx answer or a network error."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "liftboard-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (configured URL)
        if not 200 <= response.status < 300:
            raise OSError(f"webhook answered {response.status}")


def send_email(config: AlertDelivery, payload: dict[str, Any]) -> None:
    """Mail the alert to the configured recipients over SMTP."""
    message = EmailMessage()
    message["Subject"] = f"[Liftboard {payload['severity']}] {payload['summary']}"
    message["From"] = config.email_from
    message["To"] = ", ".join(config.email_to)
    message.set_content(
        "\n".join(
            [
                payload["summary"],
                "",
                f"Rule: {payload['rule']}",
                f"Entity: {payload['entity_kind']} {payload['entity_id']}",
                f"Observed: {payload['observed_text']}",
                f"Expected range: {payload['expected_range_text']}",
                f"Window: {payload['window_start']} to {payload['window_end']}",
                f"Opened: {payload['opened_at']}",
            ]
        )
    )
    assert config.smtp_host is not None
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_s) as smtp:
        if config.smtp_starttls:
            smtp.starttls()
        if config.smtp_user:
            smtp.login(config.smtp_user, config.smtp_password or "")
        smtp.send_message(message)


Sender = Callable[[dict[str, Any]], None]


def channels(config: AlertDelivery) -> dict[str, tuple[str, Sender]]:
    """The configured channels: name → (target, send function)."""
    found: dict[str, tuple[str, Sender]] = {}
    if config.webhook_url:
        url = config.webhook_url
        found["webhook"] = (url, lambda payload: send_webhook(url, payload, config.timeout_s))
    if config.email_enabled:
        found["email"] = (", ".join(config.email_to), lambda payload: send_email(config, payload))
    return found


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def deliver_open_alerts(
    connection: Connection, config: AlertDelivery, rules: Sequence[Rule], now: datetime
) -> DeliveryReport:
    """Send every open alert not yet sent on each configured channel, within the limits above."""
    report = DeliveryReport()
    cooldowns = {rule.id: timedelta(hours=rule.cooldown_hours) for rule in rules}
    pending = sorted(
        (
            dict(row._mapping)
            for row in connection.execute(sa.select(alerts).where(alerts.c.status == "open"))
        ),
        key=lambda alert: (SEVERITY_ORDER.get(alert["severity"], 9), alert["opened_at"], alert["alert_id"]),
    )
    for channel, (target, send) in channels(config).items():
        sent_rows = connection.execute(
            sa.select(alert_deliveries.c.alert_id, alert_deliveries.c.attempted_at, alerts.c.dedup_key)
            .join(alerts, alerts.c.alert_id == alert_deliveries.c.alert_id)
            .where((alert_deliveries.c.channel == channel) & (alert_deliveries.c.outcome == "sent"))
        ).all()
        delivered = {row.alert_id for row in sent_rows}
        last_sent: dict[str, datetime] = {}
        for row in sent_rows:
            at = _aware(row.attempted_at)
            last_sent[row.dedup_key] = max(at, last_sent.get(row.dedup_key, at))
        in_last_hour = sum(1 for row in sent_rows if now - _aware(row.attempted_at) < timedelta(hours=1))
        for alert in pending:
            if alert["alert_id"] in delivered:
                continue
            previous = last_sent.get(alert["dedup_key"])
            if previous is not None and now - previous < cooldowns.get(alert["rule_id"], timedelta(0)):
                continue
            if in_last_hour >= config.max_per_hour:
                report.waiting.append((alert["alert_id"], channel))
                continue
            detail: str | None = None
            try:
                send(alert_payload(alert))
            except (OSError, smtplib.SMTPException) as error:
                outcome, detail = "failed", f"{type(error).__name__}: {error}"
                report.failed.append((alert["alert_id"], channel))
            else:
                outcome = "sent"
                in_last_hour += 1
                last_sent[alert["dedup_key"]] = now
                report.sent.append((alert["alert_id"], channel))
            connection.execute(
                alert_deliveries.insert().values(
                    alert_id=alert["alert_id"],
                    channel=channel,
                    target=target,
                    attempted_at=now,
                    outcome=outcome,
                    detail=detail,
                )
            )
    return report
