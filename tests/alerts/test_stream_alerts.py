"""Alerts on a stream: a month replayed on a real ``redis-server`` with planted incidents, consumed in
micro-batches that each evaluate the hours they complete, raises the alerts an hourly evaluation of the
same lake raises, finds the planted refund spike and delivers it once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest

from alerts.evaluate import evaluate_hours
from alerts.state import list_alerts
from core.config import AlertDelivery, Settings
from datastore import db
from datastore.stream import StreamSource, parse_streams
from liftboard.replay import replay
from liftboard.stream import consume
from sim.simulate import generate
from tests.alerts.conftest import Webhook

SEED = 7
DAYS = 28  # the last 28 days are streamed: every planted incident falls in them


def _opened(settings: Settings) -> pl.DataFrame:
    """Every alert the evaluations left (open or resolved): rule, entity and the hour it opened."""
    with db.connect(settings) as connection:
        alerts = list_alerts(connection)
    return alerts.select("rule_id", "entity_kind", "entity_id", "opened_at", "status").sort(pl.all())


@pytest.mark.slow
def test_a_streamed_month_raises_the_alerts_of_an_hourly_evaluation_and_finds_the_refund_spike(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, webhook: Webhook
) -> None:
    base = Settings.from_env(home=tmp_path_factory.mktemp("streamed") / "home")
    settings = replace(base, alert_delivery=AlertDelivery(webhook_url=webhook.url))
    streams = parse_streams("content,engagement,orders", "")
    replayed = replay(
        redis_url, settings, streams=streams, scale="tiny", seed=SEED, days=DAYS, incidents=True
    )
    incidents = pl.read_parquet(settings.truth / "incidents.parquet")
    assert replayed.first_event is not None
    assert incidents["start"].min() >= replayed.first_event  # every incident is in the streamed days

    results = consume(StreamSource(redis_url, streams), settings, batch=3_000, block_ms=50, once=True)

    assert len(results) > 3  # several micro-batches, each evaluating the hours it completed
    published = sum(replayed.published.values())
    quarantined = [(r.run_id, r.rows_quarantined, r.quarantine_paths) for r in results if r.rows_quarantined]
    assert quarantined == []
    assert sum(r.rows_loaded for r in results) == published
    judged = [r for r in results if r.alert_hours]
    assert sum(r.alert_hours for r in results) >= 24 * (DAYS - 1)
    first_hour = judged[0].alerts_as_of - timedelta(hours=judged[0].alert_hours - 1)  # type: ignore[operator]
    last_hour = judged[-1].alerts_as_of
    assert last_hour is not None
    streamed = _opened(settings)

    # the same world ingested as files, evaluated hour by hour over the same hours
    files = Settings.from_env(home=tmp_path_factory.mktemp("files") / "home")
    db.upgrade_db(files)
    generate("tiny", SEED, files, incidents=True)
    evaluate_hours(files, first_hour, last_hour)
    by_files = _opened(files)
    with pl.Config(tbl_rows=40, tbl_width_chars=200, fmt_str_lengths=40):
        batches = "\n".join(r.line() + f" (alerts as of {r.alerts_as_of})" for r in results)
        assert streamed.equals(by_files), f"streamed:\n{streamed}\nhourly:\n{by_files}\nbatches:\n{batches}"

    # the planted refund spike is among them, and its alert reached the webhook once
    spiked = incidents.filter(pl.col("kind") == "refund_spike")["entity_id"][0]
    spike_alerts = streamed.filter(
        (pl.col("rule_id") == "merchant_refund_rate_spike") & (pl.col("entity_id") == spiked)
    )
    assert spike_alerts.height == 1
    with db.connect(settings) as connection:
        alert_id = list_alerts(connection).filter(pl.col("entity_id") == spiked)["alert_id"][0]
    assert [hook["alert_id"] for hook in webhook.received].count(alert_id) == 1
    # and each planted incident's rule fired on its entity (recall 4/4, as in the hourly replay test)
    for kind, rule_id in (
        ("refund_spike", "merchant_refund_rate_spike"),
        ("region_gmv_drop", "region_gmv_below_expected"),
        ("creator_quiet", "top_creator_quiet"),
        ("live_conversion_drop", "live_conversion_below_usual"),
    ):
        entity = incidents.filter(pl.col("kind") == kind)["entity_id"][0]
        assert (
            streamed.filter((pl.col("rule_id") == rule_id) & (pl.col("entity_id") == entity)).height >= 1
        ), kind
