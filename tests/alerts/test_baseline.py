"""The seasonal baseline knows mega-sale days: a sale day is expected at the sale-day level measured on
the previous sale day, so a sale day selling like a normal day is an alert and a busy sale day is not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from alerts.detect import rule_breaches, sale_day_factors
from alerts.rules import Rule

START = date(2026, 8, 3)  # a Monday
FIRST_SALE = START + timedelta(days=37)  # a Wednesday
SALE = START + timedelta(days=65)  # a Wednesday, 4 weeks later
RULE = Rule(
    "platform_orders_below_expected",
    "below_expected",
    "orders",
    "platform",
    window_hours=3,
    threshold=3.0,
    min_change=0.3,
    min_volume=5,
    severity="critical",
    cooldown_hours=6,
)


def _orders(last_sale_multiple: int) -> pl.LazyFrame:
    """Orders every hour from 06:00 to 23:00: 9, 10 or 11 an hour (by hour) on normal days, 3 times that
    on the first sale day and ``last_sale_multiple`` times that on the last one."""
    rows = []
    for offset in range(70):
        day = START + timedelta(days=offset)
        multiple = last_sale_multiple if day == SALE else 3 if day == FIRST_SALE else 1
        for hour in range(6, 24):
            count = multiple * (9 + hour % 3)
            moment = datetime(day.year, day.month, day.day, hour, 10, tzinfo=UTC)
            rows += [(f"o{offset}-{hour}-{n}", moment, "c1", 10.0, "completed") for n in range(count)]
    return (
        pl.DataFrame(rows, schema=["order_id", "ordered_at", "creator_id", "gmv", "status"], orient="row")
        .with_columns(pl.col("ordered_at").cast(pl.Datetime("us", "UTC")), merchant_id=pl.lit("m1"))
        .lazy()
    )


CREATORS = pl.LazyFrame({"creator_id": ["c1"], "region": ["UK"]})
CONTENT = pl.LazyFrame(
    schema={"content_id": pl.String(), "creator_id": pl.String(), "published_at": pl.Datetime("us", "UTC")}
)
ENGAGEMENT = pl.LazyFrame(schema={"date": pl.Date(), "content_id": pl.String(), "clicks": pl.Int64()})
SALE_HOURS = (
    datetime(SALE.year, SALE.month, SALE.day, 10, tzinfo=UTC),
    datetime(SALE.year, SALE.month, SALE.day, 20, tzinfo=UTC),
)


def test_sale_day_factor_is_measured_on_the_earlier_sale_day() -> None:
    factors = sale_day_factors(_orders(3), CREATORS, "platform", "orders", (FIRST_SALE, SALE)).collect()
    first = factors.filter(pl.col("sale_day") == FIRST_SALE)
    # three times the median of its 4 previous Wednesdays
    assert first["factor"].to_list() == [3.0]


def test_busy_sale_day_is_not_an_alert() -> None:
    breaches = rule_breaches(
        _orders(3), CREATORS, CONTENT, ENGAGEMENT, [RULE], *SALE_HOURS, (FIRST_SALE, SALE)
    )
    assert breaches.is_empty()


def test_sale_day_selling_like_a_normal_day_is_an_alert() -> None:
    breaches = rule_breaches(
        _orders(1), CREATORS, CONTENT, ENGAGEMENT, [RULE], *SALE_HOURS, (FIRST_SALE, SALE)
    )
    assert breaches.height == 11  # every window ending 10:00 … 20:00
    assert (breaches["observed"] == 30.0).all()
    assert (breaches["expected"] == 90.0).all()  # 3 hours of 9 + 10 + 11 orders × the sale-day factor 3
    assert (breaches["expected_low"] < 90.0).all()


def test_same_day_without_a_calendar_entry_is_judged_as_a_normal_day() -> None:
    """Without the day in the calendar, the quiet sale day is judged as the normal Wednesday it looks like."""
    assert rule_breaches(
        _orders(1), CREATORS, CONTENT, ENGAGEMENT, [RULE], *SALE_HOURS, (FIRST_SALE,)
    ).is_empty()
