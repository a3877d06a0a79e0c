"""The Alerts page's data: the alerts a user may see, formatted to read, and their changes.

Not cached: alerts change with every evaluation and every click. Scoped like every read of the app: a
merchant-success user sees only the alerts about their merchants (platform, region and creator alerts
are not about a merchant, so only ops see them), and may change only those.
"""

from __future__ import annotations

import polars as pl

from alerts.state import AlertNotFound, format_time, format_value, list_alerts, update_alert
from core.access import User
from core.config import Settings
from datastore import db

STATUSES: tuple[str, ...] = ("open", "acknowledged", "resolved")
SEVERITY_LABELS = {"critical": "🔴 Critical", "warning": "🟠 Warning", "info": "🔵 Info"}
ENTITY_LABELS = {
    "platform": "Platform",
    "region": "Region",
    "merchant": "Merchant",
    "creator": "Creator",
    "live": "Live stream",
}
COLUMNS: tuple[str, ...] = (
    "alert_id",
    "Severity",
    "Alert",
    "Entity",
    "Observed",
    "Expected",
    "Expected range",
    "Opened",
    "Last seen",
    "Resolved",
    "Owner",
    "Notes",
)


def alert_rows(settings: Settings, user: User, status: str) -> pl.DataFrame:
    """The alerts of one status that ``user`` may see, newest first, as the page shows them: values in
    their unit (money as money, rates as percents), times in UTC with the zone (`COLUMNS`)."""
    with db.connect(settings) as connection:
        frame = list_alerts(connection, statuses=[status], merchant_ids=user.merchant_ids)
    rows = []
    for row in frame.iter_rows(named=True):
        unit = row["unit"]
        rows.append(
            {
                "alert_id": row["alert_id"],
                "Severity": SEVERITY_LABELS.get(row["severity"], row["severity"]),
                "Alert": row["summary"],
                "Entity": f"{ENTITY_LABELS.get(row['entity_kind'], row['entity_kind'])} {row['entity_id']}"
                if row["entity_kind"] != "platform"
                else "Platform",
                "Observed": format_value(row["observed"], unit),
                "Expected": format_value(row["expected"], unit),
                "Expected range": f"{format_value(row['expected_low'], unit)} – "
                f"{format_value(row['expected_high'], unit)}",
                "Opened": format_time(row["opened_at"]),
                "Last seen": format_time(row["last_seen_at"]),
                "Resolved": format_time(row["resolved_at"]) if row["resolved_at"] else "",
                "Owner": row["owner"] or "",
                "Notes": row["notes"] or "",
            }
        )
    schema = {name: (pl.Int64() if name == "alert_id" else pl.String()) for name in COLUMNS}
    return pl.DataFrame(rows, schema=schema, orient="row")


def save_alert(settings: Settings, user: User, alert_id: int, *, status: str, owner: str, notes: str) -> None:
    """Change an alert the user may see (status, owner, notes).

    Raises:
        PermissionError: the alert does not exist or is outside the user's merchants ("not found").
    """
    try:
        with db.connect(settings) as connection:
            update_alert(
                connection,
                alert_id,
                user.username,
                status=status,
                owner=owner,
                notes=notes,
                merchant_ids=user.merchant_ids,
            )
    except AlertNotFound:
        raise PermissionError("not found") from None


def status_counts(settings: Settings, user: User) -> dict[str, int]:
    """How many alerts of each status the user may see."""
    with db.connect(settings) as connection:
        frame = list_alerts(connection, merchant_ids=user.merchant_ids)
    counts = dict(frame.group_by("status").len().iter_rows()) if frame.height else {}
    return {status: int(counts.get(status, 0)) for status in STATUSES}
