"""The alerts' state in the state DB: an evaluation's breaches open, update, re-open and resolve alerts;
users acknowledge, resolve and annotate them.

- A breach whose (rule, entity) has an open or acknowledged alert updates it (last seen, evidence,
  summary): never a second row.
- A breach whose (rule, entity) had an alert resolved less than the rule's ``cooldown_hours`` ago re-opens
  that alert (``reopened`` + 1; it was delivered already, so it is not delivered again).
- Otherwise it opens a new alert.
- An open or acknowledged alert whose condition no longer holds is resolved ("condition cleared").

Every value reaches SQL as a bound parameter (SQLAlchemy Core expressions only).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alerts.rules import Rule
from core.metrics import Display
from datastore.db import alerts as alerts_table

CLEARED = "condition cleared"
ACTIVE = ("open", "acknowledged")
_DISPLAY = {"USD": Display("USD", 0), "count": Display("count", 0), "ratio": Display("ratio", 1)}
_METRIC_WORDS = {
    "gmv": "GMV",
    "orders": "Orders",
    "refunded": "Refund rate",
    "cancelled": "Cancel rate",
    "cvr": "Conversion",
}


class AlertNotFound(LookupError):
    """No alert with that id (or not one the user may see)."""


@dataclass
class StateChanges:
    """What one evaluation did to the alerts (ids)."""

    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def dedup_key(rule_id: str, entity_kind: str, entity_id: str) -> str:
    """The key that finds the alert of one rule on one entity."""
    return f"{rule_id}:{entity_kind}:{entity_id}"


def format_value(value: float | None, unit: str) -> str:
    """A value as the app and the messages print it: money as money, rates as percents, counts."""
    return _DISPLAY.get(unit, Display("count", 1)).text(value)


def format_time(moment: datetime | None) -> str:
    """A UTC time with its zone, to the minute (``2026-11-09 16:00 UTC``)."""
    if moment is None:
        return "—"
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def alert_summary(rule: Rule, row: dict[str, Any]) -> str:
    """One sentence a person reads in a list, a message or a mail subject."""
    unit = row["unit"]
    subject = {
        "platform": "Platform",
        "region": f"Region {row['entity_id']}",
        "merchant": f"Merchant {row['entity_id']}",
        "creator": f"Top creator {row['entity_id']}",
        "live": f"Live stream {row['entity_id']}",
    }[rule.scope]
    what = _METRIC_WORDS[rule.metric]
    hours = f"the {rule.window_hours} hours to {format_time(row['window_end'])}"
    observed = format_value(row["observed"], unit)
    expected = format_value(row["expected"], unit)
    if rule.kind == "rate_spike":
        bound = format_value(row["expected_high"], unit)
        above = f"above the expected {expected} (at most {bound})"
        return f"{subject}: {what.lower()} {observed} in {hours}, {above}"
    bound = format_value(row["expected_low"], unit)
    if rule.kind == "live_conversion":
        day = format_time(row["window_start"]).removesuffix(" 00:00 UTC")
        return (
            f"{subject}: conversion {observed} of clicks on {day}, "
            f"the creator's lives usually convert {expected} (at least {bound} expected)"
        )
    if rule.kind == "quiet":
        return f"{subject} went quiet: no posts and {observed} orders in {hours}, usually {expected}"
    return f"{subject}: {what} {observed} in {hours}, below the expected {expected} (at least {bound})"


def _evidence(row: dict[str, Any]) -> str:
    keys = (
        "window_start",
        "window_end",
        "observed",
        "expected",
        "expected_low",
        "expected_high",
        "unit",
        "volume",
    )
    return json.dumps(
        {key: (row[key].isoformat() if isinstance(row[key], datetime) else row[key]) for key in keys},
        sort_keys=True,
    )


def _values(rule: Rule, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "severity": rule.severity,
        "summary": alert_summary(rule, row),
        "evidence": _evidence(row),
        "unit": row["unit"],
        "observed": row["observed"],
        "expected": row["expected"],
        "expected_low": row["expected_low"],
        "expected_high": row["expected_high"],
        "window_start": row["window_start"],
        "window_end": row["window_end"],
        "last_seen_at": row["window_end"],
        "updated_at": now,
    }


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def apply_breaches(
    connection: Connection, breaches: pl.DataFrame, rules: Sequence[Rule], as_of: datetime, now: datetime
) -> StateChanges:
    """Bring the alerts in line with one evaluation at ``as_of`` (``breaches``: `alerts.detect` rows
    whose ``window_end`` is ``as_of``)."""
    by_id = {rule.id: rule for rule in rules}
    table = alerts_table
    changes = StateChanges()
    active = {
        row.dedup_key: row for row in connection.execute(sa.select(table).where(table.c.status.in_(ACTIVE)))
    }
    seen: set[str] = set()
    for row in breaches.iter_rows(named=True):
        rule = by_id[row["rule_id"]]
        key = dedup_key(rule.id, row["entity_kind"], row["entity_id"])
        seen.add(key)
        values = _values(rule, row, now)
        if key in active:
            alert_id = active[key].alert_id
            connection.execute(table.update().where(table.c.alert_id == alert_id).values(**values))
            changes.updated.append(alert_id)
            continue
        latest = connection.execute(
            sa.select(table.c.alert_id, table.c.resolved_at)
            .where(table.c.dedup_key == key)
            .order_by(table.c.alert_id.desc())
            .limit(1)
        ).first()
        resolved_at = _aware(latest.resolved_at) if latest is not None else None
        if (
            latest is not None
            and resolved_at is not None
            and as_of - resolved_at < timedelta(hours=rule.cooldown_hours)
        ):
            connection.execute(
                table.update()
                .where(table.c.alert_id == latest.alert_id)
                .values(
                    status="open", resolved_at=None, resolved_by=None, reopened=table.c.reopened + 1, **values
                )
            )
            changes.reopened.append(latest.alert_id)
            continue
        inserted = connection.execute(
            table.insert().values(
                dedup_key=key,
                rule_id=rule.id,
                entity_kind=row["entity_kind"],
                entity_id=row["entity_id"],
                merchant_id=row["merchant_id"],
                status="open",
                opened_at=row["window_end"],
                **values,
            )
        )
        primary_key = inserted.inserted_primary_key
        assert primary_key is not None
        changes.opened.append(int(primary_key[0]))
    for key, current in active.items():
        if key not in seen:
            connection.execute(
                table.update()
                .where(table.c.alert_id == current.alert_id)
                .values(status="resolved", resolved_at=as_of, resolved_by=CLEARED, updated_at=now)
            )
            changes.resolved.append(current.alert_id)
    return changes


def _scoped(query: sa.Select[Any], merchant_ids: frozenset[str] | None) -> sa.Select[Any]:
    if merchant_ids is None:
        return query
    return query.where(alerts_table.c.merchant_id.in_(sorted(merchant_ids)))


def list_alerts(
    connection: Connection,
    *,
    statuses: Sequence[str] | None = None,
    merchant_ids: frozenset[str] | None = None,
) -> pl.DataFrame:
    """Alerts, newest first; ``merchant_ids`` (a merchant-success user's scope) keeps only their
    merchants' alerts (platform, region and creator alerts are not scoped by merchant, so they go)."""
    query = sa.select(alerts_table).order_by(alerts_table.c.opened_at.desc(), alerts_table.c.alert_id.desc())
    if statuses:
        query = query.where(alerts_table.c.status.in_(list(statuses)))
    rows = [dict(row._mapping) for row in connection.execute(_scoped(query, merchant_ids))]
    for row in rows:
        for column in (
            "window_start",
            "window_end",
            "opened_at",
            "last_seen_at",
            "resolved_at",
            "updated_at",
        ):
            row[column] = _aware(row[column])
    schema = {column.name: _polars_type(column) for column in alerts_table.columns}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _polars_type(column: sa.Column[Any]) -> pl.DataType:
    if isinstance(column.type, sa.DateTime):
        return pl.Datetime("us", "UTC")
    if isinstance(column.type, sa.Integer):
        return pl.Int64()
    if isinstance(column.type, sa.Double | sa.Float):
        return pl.Float64()
    return pl.String()


def update_alert(
    connection: Connection,
    alert_id: int,
    user: str,
    *,
    status: str | None = None,
    owner: str | None = None,
    notes: str | None = None,
    merchant_ids: frozenset[str] | None = None,
    now: datetime | None = None,
) -> None:
    """A user's change to an alert: acknowledge or resolve it, set its owner or notes.

    Raises:
        AlertNotFound: no such alert, or one outside ``merchant_ids``.
        ValueError: an unknown status.
    """
    now = now or datetime.now(UTC)
    found = connection.execute(
        _scoped(sa.select(alerts_table.c.alert_id), merchant_ids).where(alerts_table.c.alert_id == alert_id)
    ).first()
    if found is None:
        raise AlertNotFound(f"no alert {alert_id}")
    values: dict[str, Any] = {"updated_at": now}
    if status is not None:
        if status not in ("open", "acknowledged", "resolved"):
            raise ValueError(f"unknown status {status!r}; use open, acknowledged or resolved")
        values["status"] = status
        values["resolved_at"] = now if status == "resolved" else None
        values["resolved_by"] = user if status == "resolved" else None
    if owner is not None:
        values["owner"] = owner.strip() or None
    if notes is not None:
        values["notes"] = notes
    connection.execute(alerts_table.update().where(alerts_table.c.alert_id == alert_id).values(**values))
