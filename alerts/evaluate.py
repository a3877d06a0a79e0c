"""One call that evaluates the alert rules on the lake, updates the alerts and delivers the new ones.

`evaluate_and_deliver` is what `liftboard build` calls at its end, what `liftboard alerts evaluate` runs,
and what a stream consumer calls after each micro-batch it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from alerts.delivery import DeliveryReport, deliver_open_alerts
from alerts.detect import floor_hour, rule_breaches
from alerts.rules import Rule, load_rules
from alerts.state import StateChanges, apply_breaches
from analytics.sources import load_inputs
from core.calendar import MEGA_SALE_DAYS
from core.config import Settings
from datastore import db


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found and did."""

    as_of: datetime | None  # None: the lake holds no orders, nothing was evaluated
    breaches: int
    changes: StateChanges
    delivery: DeliveryReport


def evaluation_hour(orders: pl.LazyFrame, now: datetime) -> datetime | None:
    """The hour to evaluate when none is given: the end of the last hour with orders, not after ``now``
    (a lake whose data stops earlier is judged as of its last hour, not as if everything had stopped)."""
    last = orders.select(pl.col("ordered_at").max()).collect().item()
    if last is None:
        return None
    return min(floor_hour(last) + timedelta(hours=1), floor_hour(now))


def evaluate_and_deliver(
    settings: Settings,
    as_of: datetime | None = None,
    *,
    rules: Sequence[Rule] | None = None,
    now: datetime | None = None,
) -> Evaluation:
    """Evaluate every rule for the window ending at ``as_of`` (default: `evaluation_hour`), bring the
    alerts' state in line and deliver the open alerts not delivered yet (`alerts.delivery`)."""
    db.require_current(settings)
    rules = tuple(rules) if rules is not None else load_rules()
    now = now or datetime.now(UTC)
    inputs = load_inputs(settings)
    hour = floor_hour(as_of) if as_of is not None else evaluation_hour(inputs.orders, now)
    if hour is None:
        return Evaluation(None, 0, StateChanges(), DeliveryReport())
    breaches = rule_breaches(
        inputs.orders, inputs.creators, inputs.content, inputs.engagement, rules, hour, hour, MEGA_SALE_DAYS
    )
    with db.connect(settings) as connection:
        changes = apply_breaches(connection, breaches, rules, hour, now)
    with db.connect(settings) as connection:
        delivery = deliver_open_alerts(connection, settings.alert_delivery, rules, now)
    return Evaluation(hour, breaches.height, changes, delivery)
