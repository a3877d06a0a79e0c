"""`evaluate_and_deliver` on a lake (the tiny world with its planted incidents, ingested), and the thin
`liftboard alerts` commands over the alerts it leaves."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from alerts.evaluate import evaluate_and_deliver
from alerts.state import list_alerts
from core.config import AlertDelivery, Settings
from datastore import db
from liftboard.cli import app
from sim.simulate import generate
from tests.alerts.conftest import Mailbox, Webhook

SEED = 7


@pytest.fixture(scope="module")
def incident_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pl.DataFrame]:
    settings = Settings.from_env(home=tmp_path_factory.mktemp("alerts") / "home")
    db.upgrade_db(settings)
    generate("tiny", SEED, settings, incidents=True)
    return settings, pl.read_parquet(settings.truth / "incidents.parquet")


def test_evaluate_and_deliver_opens_delivers_once_and_resolves(
    incident_home: tuple[Settings, pl.DataFrame], webhook: Webhook, smtp_server: Mailbox
) -> None:
    base, incidents = incident_home
    settings = replace(
        base,
        alert_delivery=AlertDelivery(
            webhook_url=webhook.url,
            smtp_host="127.0.0.1",
            smtp_port=smtp_server.port,
            email_to=("ops@x.test",),
        ),
    )
    spike = incidents.filter(pl.col("kind") == "refund_spike").row(0, named=True)
    during = spike["start"] + timedelta(hours=12)

    first = evaluate_and_deliver(settings, during)
    second = evaluate_and_deliver(settings, during + timedelta(hours=1))
    after = evaluate_and_deliver(settings, spike["end"] + timedelta(days=2))

    with db.connect(settings) as connection:
        rows = list_alerts(connection).filter(pl.col("rule_id") == "merchant_refund_rate_spike")
    assert first.as_of == during
    assert rows["entity_id"].to_list() == [spike["entity_id"]]
    alert_id = rows["alert_id"][0]
    assert alert_id in first.changes.opened
    assert alert_id in second.changes.updated
    assert alert_id in after.changes.resolved
    assert rows["status"].to_list() == ["resolved"]
    assert [hook["alert_id"] for hook in webhook.received].count(alert_id) == 1
    assert (alert_id, "webhook") in first.delivery.sent
    assert (alert_id, "email") in first.delivery.sent
    assert second.delivery.sent == []
    refund_mails = [m for m in smtp_server.messages if f"Merchant {spike['entity_id']}: refund rate" in m[2]]
    assert len(refund_mails) == 1


def test_cli_lists_acknowledges_and_resolves(
    incident_home: tuple[Settings, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, incidents = incident_home
    monkeypatch.setenv("LIFTBOARD_HOME", str(settings.home))
    drop = incidents.filter(pl.col("kind") == "region_gmv_drop").row(0, named=True)
    runner = CliRunner()
    at = (drop["start"] + timedelta(hours=5)).strftime("%Y-%m-%dT%H")
    evaluated = runner.invoke(app, ["alerts", "evaluate", "--as-of", at])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"alerts as of {at.replace('T', ' ')}:00 UTC:" in evaluated.output
    with db.connect(settings) as connection:
        region = list_alerts(connection, statuses=["open"]).filter(pl.col("entity_id") == drop["entity_id"])
    assert region.height >= 1
    alert_id = int(region.filter(pl.col("rule_id") == "region_gmv_below_expected")["alert_id"][0])

    monkeypatch.setenv("COLUMNS", "220")
    listed = runner.invoke(app, ["alerts", "list"])
    assert listed.exit_code == 0, listed.output
    assert "region_gmv_below_expected" in listed.output
    assert f"region {drop['entity_id']}" in listed.output

    acked = runner.invoke(app, ["alerts", "ack", str(alert_id), "--owner", "Dana", "--note", "checkout?"])
    assert acked.exit_code == 0, acked.output
    assert f"alert {alert_id}: acknowledged" in acked.output
    resolved = runner.invoke(app, ["alerts", "resolve", str(alert_id), "--user", "dana"])
    assert resolved.exit_code == 0
    missing = runner.invoke(app, ["alerts", "ack", "999999"])
    assert missing.exit_code == 1
    assert "no alert 999999" in missing.output
    with db.connect(settings) as connection:
        row = list_alerts(connection).filter(pl.col("alert_id") == alert_id).row(0, named=True)
    assert (row["status"], row["owner"], row["notes"], row["resolved_by"]) == (
        "resolved",
        "Dana",
        "checkout?",
        "dana",
    )


def test_empty_lake_evaluates_nothing(sqlite_settings: Settings, tmp_path: Path) -> None:
    evaluation = evaluate_and_deliver(sqlite_settings)
    assert evaluation.as_of is None
    assert evaluation.breaches == 0
