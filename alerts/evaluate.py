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
from alerts.detect import HOUR, floor_hour, rule_breaches
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
    now = now or datetime.now(UTC)
    if as_of is None:
        hour = evaluation_hour(load_inputs(settings).orders, now)
        if hour is None:
            db.require_current(settings)
            return Evaluation(None, 0, StateChanges(), DeliveryReport())
        as_of = hour
    return evaluate_hours(settings, floor_hour(as_of), floor_hour(as_of), rules=rules, now=now)[0]


def evaluate_hours(
    settings: Settings,
    first: datetime,
    last: datetime,
    *,
    rules: Sequence[Rule] | None = None,
    now: datetime | None = None,
) -> list[Evaluation]:
    """`evaluate_and_deliver` for each hour from ``first`` to ``last`` (inclusive), oldest first, as that
    many hourly evaluations would have done; the rules read the lake once for all of them."""
    db.require_current(settings)
    rules = tuple(rules) if rules is not None else load_rules()
    now = now or datetime.now(UTC)
    inputs = load_inputs(settings)
    breaches = rule_breaches(
        inputs.orders, inputs.creators, inputs.content, inputs.engagement, rules, first, last, MEGA_SALE_DAYS
    )
    evaluations = []
    hour = first
    while hour <= last:
        judged = breaches.filter(pl.col("window_end") == hour)
        with db.connect(settings) as connection:
            changes = apply_breaches(connection, judged, rules, hour, now)
        with db.connect(settings) as connection:
            delivery = deliver_open_alerts(connection, settings.alert_delivery, rules, now)
        evaluations.append(Evaluation(hour, judged.height, changes, delivery))
        hour += HOUR
    return evaluations


def last_complete_hour(settings: Settings, now: datetime | None = None) -> datetime | None:
    """The end of the last hour the lake's orders have gone past: the start of the newest order's hour,
    not after ``now`` (None: no orders). A stream consumer starts judging after it."""
    last = load_inputs(settings).orders.select(pl.col("ordered_at").max()).collect().item()
    if last is None:
        return None
    return min(floor_hour(last), floor_hour(now or datetime.now(UTC)))


MAX_CATCH_UP_HOURS = 7 * 24
"""At most this many hours are evaluated after a gap (a stream that was stopped for longer starts again
from the latest week; `liftboard alerts evaluate --at` judges any earlier hour)."""


def evaluate_new_hours(
    settings: Settings,
    after: datetime | None,
    *,
    rules: Sequence[Rule] | None = None,
    now: datetime | None = None,
) -> list[Evaluation]:
    """Evaluate every hour the stream has completed since the hour ``after`` (exclusive; None: only the
    latest), oldest first: what a stream consumer calls after each micro-batch, so that a batch covering
    several hours (a replay, a catch-up) judges each of them, as an hourly build would have.

    An hour is complete once an order of a later hour has arrived (events arrive in time order): the
    window judged last ends at the start of the newest order's hour, never inside it, so a half-received
    hour is not taken for a quiet one. Returns the evaluations (an empty list: no new complete hour).
    """
    now = now or datetime.now(UTC)
    latest = last_complete_hour(settings, now)
    if latest is None:
        return []
    first = (
        latest if after is None else max(floor_hour(after) + HOUR, latest - HOUR * (MAX_CATCH_UP_HOURS - 1))
    )
    if first > latest:
        return []
    return evaluate_hours(settings, first, latest, rules=rules, now=now)
