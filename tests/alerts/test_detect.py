"""Alert rules on a replayed month of the tiny world: planted incidents found, a world without them quiet.

The replay evaluates every rule at every hour of the world's last 28 days (672 evaluations per rule and
entity) and merges the hours that hold into alerts as the alert state does (`alert_episodes`).

Measured on seed 7 (the seed of these tests), world with the four planted incidents:

- recall 4/4: the refund spike raises ``merchant_refund_rate_spike`` for the merchant, the region's GMV
  drop ``region_gmv_below_expected`` for the region, the quiet creator ``top_creator_quiet`` for them,
  the live whose checkout broke ``live_conversion_below_usual`` for that live;
- precision of the platform, region, merchant and live rules 3/5 (two one-to-three-hour dips in other
  regions, MX and BR); of ``top_creator_quiet`` 1/11: the other 10 alerts are real week-long silences of
  top creators who had published every week (nothing published for 7 days, under 5 % of their usual
  orders: this simulator's creators decline and churn), which the test checks from the data; they are
  right by the rule's definition, but not planted.

World without incidents (same seed): one platform/region/merchant/live alert (BR, 1 hour); the quiet
rule raises only on real week-long silences, checked the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from alerts.detect import alert_episodes, rule_breaches
from alerts.rules import Rule, load_rules
from alerts.state import alert_summary
from core.calendar import MEGA_SALE_DAYS
from sim.simulate import SCALES, write_inputs

SEED = 7
END = SCALES["tiny"].end_date
FIRST = datetime(END.year, END.month, END.day, tzinfo=UTC) - timedelta(days=27) + timedelta(hours=1)
LAST = datetime(END.year, END.month, END.day, tzinfo=UTC) + timedelta(days=1)
EXPECTED_RULES = {  # incident kind -> the rules that must raise an alert for its entity
    "refund_spike": {"merchant_refund_rate_spike"},
    "region_gmv_drop": {"region_gmv_below_expected"},
    "creator_quiet": {"top_creator_quiet"},
    "live_conversion_drop": {"live_conversion_below_usual"},
}
ALSO_RIGHT = {"region_gmv_drop": {"region_orders_below_expected"}}  # a consequence, not a false alarm
# platform/region/merchant/live alerts on an unplanted entity per replayed month: 2 measured with the
# incidents, 1 without (the seed is fixed, so this is the measured figure, not a margin)
MAX_UNPLANTED = 2
MAX_REAL_SILENCES = 10  # quiet-rule alerts on real, unplanted silences in the month (measured, as above)


def _replay(directory: Path, rules: tuple[Rule, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    orders = pl.scan_parquet(directory / "orders-*.parquet")
    content = pl.scan_parquet(directory / "content-*.parquet")
    creators = pl.scan_parquet(directory / "creators.parquet")
    engagement = pl.scan_parquet(directory / "engagement-*.parquet")
    breaches = rule_breaches(orders, creators, content, engagement, rules, FIRST, LAST, MEGA_SALE_DAYS)
    return breaches, alert_episodes(breaches, rules)


@pytest.fixture(scope="module")
def incident_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    directory = tmp_path_factory.mktemp("incidents") / "inputs"
    _, truth = write_inputs("tiny", SEED, directory, incidents=True)
    return directory, truth["incidents"]


def _real_silences(episodes: pl.DataFrame, directory: Path) -> pl.DataFrame:
    """Quiet alerts whose creator published nothing in the week before the alert opened."""
    content = pl.read_parquet(directory / "content-*.parquet")
    quiet = episodes.filter(pl.col("rule_id") == "top_creator_quiet")
    posted = quiet.join(content, left_on="entity_id", right_on="creator_id").filter(
        pl.col("published_at").is_between(
            pl.col("opened") - timedelta(days=7), pl.col("opened"), closed="left"
        )
    )
    return quiet.join(posted.select("entity_id", "opened").unique(), on=["entity_id", "opened"], how="anti")


def test_planted_incidents_raise_their_alerts(incident_world: tuple[Path, pl.DataFrame]) -> None:
    """Recall 4/4; precision 3/5 for platform/region/merchant/live rules, 1/11 for the quiet one (see top)."""
    directory, incidents = incident_world
    assert incidents.height == 4
    assert set(incidents["kind"]) == set(EXPECTED_RULES)
    rules = load_rules()
    _, episodes = _replay(directory, rules)

    matched: list[tuple[str, str, datetime]] = []
    for incident in incidents.iter_rows(named=True):
        window = {rule.id: rule for rule in rules}
        for rule_id in EXPECTED_RULES[incident["kind"]] | ALSO_RIGHT.get(incident["kind"], set()):
            late = timedelta(hours=window[rule_id].window_hours + window[rule_id].cooldown_hours)
            found = episodes.filter(
                (pl.col("rule_id") == rule_id)
                & (pl.col("entity_id") == incident["entity_id"])
                & pl.col("opened").is_between(incident["start"], incident["end"] + late)
            )
            if rule_id in EXPECTED_RULES[incident["kind"]]:
                assert found.height == 1, (
                    f"{incident['kind']} on {incident['entity_id']}: {rule_id} not raised"
                )
            matched += [(rule_id, incident["entity_id"], opened) for opened in found["opened"]]
    found_keys = pl.DataFrame(matched, schema=["rule_id", "entity_id", "opened"], orient="row").with_columns(
        pl.col("opened").cast(episodes.schema["opened"])
    )
    unplanted = episodes.join(found_keys, on=["rule_id", "entity_id", "opened"], how="anti")
    other = unplanted.filter(pl.col("rule_id") != "top_creator_quiet")
    assert other.height <= MAX_UNPLANTED, other
    # the refund spike is the merchant's only alert, and the drop raises nothing on the platform
    spiked = incidents.filter(pl.col("kind") == "refund_spike")["entity_id"][0]
    assert episodes.filter(pl.col("merchant_id") == spiked).height == 1
    assert episodes.filter(pl.col("entity_kind") == "platform").height == 0
    # unplanted quiet alerts are real week-long silences in the data, not noise
    assert (
        _real_silences(unplanted, directory).height
        == unplanted.filter(pl.col("rule_id") == "top_creator_quiet").height
    )


def test_refund_spike_evidence_reads_as_rates(incident_world: tuple[Path, pl.DataFrame]) -> None:
    directory, incidents = incident_world
    spike = incidents.filter(pl.col("kind") == "refund_spike").row(0, named=True)
    breaches, _ = _replay(directory, load_rules())
    rows = breaches.filter(
        (pl.col("rule_id") == "merchant_refund_rate_spike") & (pl.col("entity_id") == spike["entity_id"])
    )
    assert rows["unit"].unique().to_list() == ["ratio"]
    # 60 % of completed orders were made refunds: the observed share is far above the baseline's range
    assert rows["observed"].max() > 0.4
    assert (rows["expected"] < 0.2).all()
    assert (rows["observed"] > rows["expected_high"]).all()
    assert (rows["volume"] >= 40).all()


def test_world_without_incidents_stays_quiet(tmp_path: Path) -> None:
    """At most MAX_UNPLANTED platform/region/merchant/live alerts in a month (1 measured on this seed: 672
    hourly evaluations of 2 platform, 18 region and 240 merchant series and ~500 lives at thresholds of
    3.5-4 deviations, with a 3-hour persistence for platform and region rules); quiet-rule alerts only on
    real silences."""
    directory = tmp_path / "inputs"
    _, truth = write_inputs("tiny", SEED, directory)
    assert "incidents" not in truth
    _, episodes = _replay(directory, load_rules())
    other = episodes.filter(pl.col("rule_id") != "top_creator_quiet")
    assert other.height <= MAX_UNPLANTED, other
    assert episodes.filter(pl.col("entity_kind") == "platform").height == 0
    quiet = episodes.filter(pl.col("rule_id") == "top_creator_quiet")
    assert _real_silences(quiet, directory).height == quiet.height
    assert quiet.height <= MAX_REAL_SILENCES  # 9 measured


def test_broken_live_reads_as_conversion_against_the_creators_usual(
    incident_world: tuple[Path, pl.DataFrame],
) -> None:
    directory, incidents = incident_world
    live = incidents.filter(pl.col("kind") == "live_conversion_drop").row(0, named=True)
    rules = load_rules()
    breaches, _ = _replay(directory, rules)
    rows = breaches.filter(pl.col("entity_id") == live["entity_id"])
    assert set(rows["rule_id"]) == {"live_conversion_below_usual"}
    # judged the 24 hours after its day: evaluations ending 01:00 … 24:00 of the next day
    assert rows.height == 24
    assert rows["window_start"].unique().to_list() == [live["start"]]
    first = rows.row(0, named=True)
    assert first["unit"] == "ratio"
    assert first["observed"] == 0.0
    assert 0.01 < first["expected"] < 0.2  # the creator's lives convert a few percent of clicks
    assert first["volume"] >= 100  # clicks on the live's day
    rule = next(rule for rule in rules if rule.id == "live_conversion_below_usual")
    day = live["start"].strftime("%Y-%m-%d")
    assert alert_summary(rule, first).startswith(
        f"Live stream {live['entity_id']}: conversion 0.0% of clicks on {day}"
    )
