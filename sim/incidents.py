"""Planted incidents: things going wrong in a simulated marketplace, for the alerts to find.

`plant_incidents` takes a world's fact tables and changes them as four incidents would, all inside the
last 28 days of the data, on entities chosen from the data itself (deterministic for a seed):

- ``refund_spike``: a large merchant (the 3rd by orders in the last 28 days) sees 60 % of its otherwise
  completed orders refunded for 36 hours;
- ``region_gmv_drop``: in a mid-sized region (the 2nd by orders), 95 % of the orders of its creators are
  lost for 6 hours (a checkout outage);
- ``creator_quiet``: a top creator (the 3rd by GMV in the 28 days before it starts, outside that region)
  publishes nothing and sells nothing for 8 days;
- ``live_conversion_drop``: the live stream with the most clicks between 12 and 3 days before the end,
  by a creator outside that region with at least 3 lives in the 28 days before it, loses all of its
  orders (its checkout link broke): the incident covers the live's day.

The incidents (kind, entity_kind, entity_id, start, end; times UTC, end exclusive) are written to
``truth/incidents.parquet`` next to the other truth: never read by the product, only by evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

INCIDENT_SCHEMA = pl.Schema(
    [
        ("kind", pl.String()),
        ("entity_kind", pl.String()),
        ("entity_id", pl.String()),
        ("start", pl.Datetime("us", "UTC")),
        ("end", pl.Datetime("us", "UTC")),
    ]
)
REFUND_SHARE = 0.6
REGION_LOSS = 0.95
LIVE_LOSS = 1.0


@dataclass(frozen=True)
class Facts:
    """The fact tables of a world (content, engagement, orders)."""

    content: pl.DataFrame
    engagement: pl.DataFrame
    orders: pl.DataFrame


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _ranked(frame: pl.DataFrame, key: str, by: pl.Expr) -> list[str]:
    return (
        frame.group_by(key).agg(by.alias("size")).sort("size", key, descending=[True, False])[key].to_list()
    )


def incident_plan(facts: Facts, creators: pl.DataFrame, end_date: date) -> pl.DataFrame:
    """Which incidents to plant where and when, chosen from the data (`INCIDENT_SCHEMA`)."""
    last_start = _at(end_date - timedelta(days=27), 0)
    recent = facts.orders.filter(pl.col("ordered_at") >= last_start)
    merchant = _ranked(recent, "merchant_id", pl.len())[2]
    regions = _ranked(
        recent.join(creators.select("creator_id", "region"), on="creator_id"), "region", pl.len()
    )
    region = regions[1]
    quiet_start = _at(end_date - timedelta(days=24), 0)
    before = facts.orders.filter(
        pl.col("ordered_at").is_between(quiet_start - timedelta(days=28), quiet_start, closed="left")
        & (pl.col("status") != "cancelled")
    )
    outside = creators.filter(pl.col("region") != region).select("creator_id")
    creator = _ranked(before.join(outside, on="creator_id"), "creator_id", pl.col("gmv").sum())[2]
    spike_start = _at(end_date - timedelta(days=20), 10)
    drop_start = _at(end_date - timedelta(days=13), 12)
    live, live_day = _busiest_live(facts, outside, end_date)
    return pl.DataFrame(
        {
            "kind": ["creator_quiet", "refund_spike", "region_gmv_drop", "live_conversion_drop"],
            "entity_kind": ["creator", "merchant", "region", "live"],
            "entity_id": [creator, merchant, region, live],
            "start": [quiet_start, spike_start, drop_start, _at(live_day, 0)],
            "end": [
                quiet_start + timedelta(days=8),
                spike_start + timedelta(hours=36),
                drop_start + timedelta(hours=6),
                _at(live_day + timedelta(days=1), 0),
            ],
        },
        schema=INCIDENT_SCHEMA,
    )


def _busiest_live(facts: Facts, creators: pl.DataFrame, end_date: date) -> tuple[str, date]:
    """The live stream with the most clicks between 12 and 3 days before the end, by one of
    ``creators`` with at least 3 earlier lives in the 28 days before it."""
    lives = facts.content.filter(pl.col("kind") == "live").select(
        "content_id", "creator_id", pl.col("published_at").dt.date().alias("day")
    )
    candidates = lives.filter(
        pl.col("day").is_between(end_date - timedelta(days=12), end_date - timedelta(days=3))
    ).join(creators, on="creator_id", how="semi")
    earlier = (
        candidates.join(lives.rename({"content_id": "past", "day": "past_day"}), on="creator_id")
        .filter(
            pl.col("past_day").is_between(
                pl.col("day") - timedelta(days=28), pl.col("day") - timedelta(days=1)
            )
        )
        .group_by("content_id")
        .len()
        .filter(pl.col("len") >= 3)
    )
    sold = (
        facts.orders.filter(pl.col("status") != "cancelled").group_by("content_id").agg(pl.len().alias("n"))
    )
    best = (
        candidates.join(earlier, on="content_id", how="semi")
        .join(sold, on="content_id")
        .sort("n", "content_id", descending=[True, False])
        .row(0, named=True)
    )
    return best["content_id"], best["day"]


def _during(column: str, start: datetime, end: datetime) -> pl.Expr:
    return pl.col(column).is_between(start, end, closed="left")


def plant_incidents(facts: Facts, creators: pl.DataFrame, plan: pl.DataFrame, seed: int) -> Facts:
    """The fact tables as they would read had the planned incidents happened."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7_001]))
    content, engagement, orders = facts.content, facts.engagement, facts.orders
    orders = orders.with_columns(_u=pl.Series(rng.random(orders.height)))
    for incident in plan.iter_rows(named=True):
        start, end, entity = incident["start"], incident["end"], incident["entity_id"]
        if incident["kind"] == "refund_spike":
            flipped = (
                (pl.col("merchant_id") == entity)
                & _during("ordered_at", start, end)
                & (pl.col("status") == "completed")
                & (pl.col("_u") < REFUND_SHARE)
            )
            orders = orders.with_columns(status=pl.when(flipped).then(pl.lit("refunded")).otherwise("status"))
        elif incident["kind"] == "region_gmv_drop":
            members = creators.filter(pl.col("region") == entity)["creator_id"].implode()
            lost = (
                pl.col("creator_id").is_in(members)
                & _during("ordered_at", start, end)
                & (pl.col("_u") < REGION_LOSS)
            )
            orders = orders.filter(~lost)
        elif incident["kind"] == "live_conversion_drop":
            lost = (pl.col("content_id") == entity) & (pl.col("_u") < LIVE_LOSS)
            orders = orders.filter(~lost)
        else:
            silent = content.filter((pl.col("creator_id") == entity) & _during("published_at", start, end))
            content = content.join(silent.select("content_id"), on="content_id", how="anti")
            engagement = engagement.join(silent.select("content_id"), on="content_id", how="anti")
            orders = orders.filter(
                ~((pl.col("creator_id") == entity) & _during("ordered_at", start, end))
                & ~pl.col("content_id").is_in(silent["content_id"].implode())
            )
    return Facts(content, engagement, orders.drop("_u"))
