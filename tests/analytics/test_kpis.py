"""KPIs by period and breakdown, comparisons, and KPI cards, on hand-computed frames."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics import sources
from analytics.kpis import KPI_COLUMNS, creator_totals, kpi_cards, kpi_table
from analytics.sources import Inputs, default_as_of
from core.schema import CONTENT, CREATORS, ENGAGEMENT, MERCHANTS, ORDERS, PRODUCTS, SHOWCASE, TABLES

from .conftest import FrameFactory

D = date


@pytest.fixture
def creator_daily(creator_daily_frame: FrameFactory) -> pl.DataFrame:
    return creator_daily_frame(
        [
            dict(date=D(2026, 11, 2), creator_id="c1", gmv=100.0, orders=2, views=1000, clicks=20, videos=1),
            dict(
                date=D(2026, 11, 3),
                creator_id="c2",
                content_kind="live",
                region="UK",
                tier="micro",
                gmv=50.0,
                refunded_gmv=10.0,
                orders=1,
                views=500,
                clicks=5,
                lives=1,
            ),
            dict(date=D(2026, 11, 10), creator_id="c1", gmv=30.0, orders=1, views=300, clicks=3),
            # engagement without content or orders: not an active creator
            dict(date=D(2026, 11, 11), creator_id="c3", content_kind="none", impressions=10),
        ]
    )


@pytest.fixture
def merchant_daily(merchant_daily_frame: FrameFactory) -> pl.DataFrame:
    return merchant_daily_frame(
        [
            dict(date=D(2026, 11, 2), merchant_id="m1", creator_id="c1", gmv=100.0, orders=2),
            dict(date=D(2026, 11, 3), merchant_id="m2", creator_id="c2", gmv=50.0, orders=1),
            dict(date=D(2026, 11, 10), merchant_id="m1", creator_id="c1", gmv=30.0, orders=1),
        ]
    )


def _pick(result: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    return (
        result.filter(pl.col("metric").is_in(metrics))
        .select("period_start", "segment", "metric", "value", "previous_value", "change", "change_pct")
        .sort("segment", "metric", "period_start")
    )


def test_weekly_overall_with_previous_week(creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame) -> None:
    result = kpi_table(
        creator_daily.lazy(), merchant_daily.lazy(), "week", ["overall"], D(2026, 11, 16)
    ).collect()

    expected = pl.DataFrame(
        {
            "period_start": [D(2026, 11, 2), D(2026, 11, 9)] * 4,
            "segment": ["all"] * 8,
            "metric": ["active_creators"] * 2 + ["active_merchants"] * 2 + ["gmv"] * 2 + ["net_gmv"] * 2,
            "value": [2.0, 1.0, 2.0, 1.0, 150.0, 30.0, 140.0, 30.0],
            "previous_value": [None, 2.0, None, 2.0, None, 150.0, None, 140.0],
            "change": [None, -1.0, None, -1.0, None, -120.0, None, -110.0],
            "change_pct": [None, -0.5, None, -0.5, None, -0.8, None, -110.0 / 140.0],
        }
    )
    assert_frame_equal(_pick(result, ["gmv", "net_gmv", "active_creators", "active_merchants"]), expected)
    assert result.columns == list(KPI_COLUMNS)
    assert result["complete"].all()
    assert set(result["period_end"].to_list()) == {D(2026, 11, 8), D(2026, 11, 15)}


def test_breakdown_fills_missing_periods_with_zero(
    creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame
) -> None:
    result = kpi_table(creator_daily.lazy(), merchant_daily.lazy(), "week", ["region"]).collect()

    expected = pl.DataFrame(
        {
            "period_start": [D(2026, 11, 2), D(2026, 11, 9)] * 2,
            "segment": ["UK", "UK", "US", "US"],
            "metric": ["gmv"] * 4,
            "value": [50.0, 0.0, 100.0, 30.0],
            "previous_value": [None, 50.0, None, 100.0],
            "change": [None, -50.0, None, -70.0],
            "change_pct": [None, -1.0, None, -0.7],
        }
    )
    assert_frame_equal(_pick(result, ["gmv"]), expected)
    # merchants have no region of the creator's: unknown, not zero
    assert result.filter(pl.col("metric") == "active_merchants")["value"].null_count() == 4


def test_same_week_four_and_thirteen_weeks_earlier(
    creator_daily_frame: FrameFactory, merchant_daily_frame: FrameFactory
) -> None:
    daily = creator_daily_frame(
        [
            dict(date=D(2026, 8, 3), gmv=5.0, orders=1),
            dict(date=D(2026, 10, 5), gmv=10.0, orders=1),
            dict(date=D(2026, 11, 2), gmv=100.0, orders=1),
        ]
    )

    result = (
        kpi_table(daily.lazy(), merchant_daily_frame([]).lazy(), "week", ["overall"])
        .filter(pl.col("metric") == "gmv", pl.col("period_start") == D(2026, 11, 2))
        .select("value", "value_4w_ago", "change_pct_4w", "value_13w_ago", "change_pct_13w")
        .collect()
    )

    expected = pl.DataFrame(
        {
            "value": [100.0],
            "value_4w_ago": [10.0],
            "change_pct_4w": [9.0],
            "value_13w_ago": [5.0],
            "change_pct_13w": [19.0],
        }
    )
    assert_frame_equal(result, expected)


def test_daily_periods_and_partial_last_week(
    creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame
) -> None:
    daily = kpi_table(creator_daily.lazy(), merchant_daily.lazy(), "day", ["overall"]).collect()
    gmv = daily.filter(pl.col("metric") == "gmv").sort("period_start")

    assert gmv.height == 10  # 2 .. 11 November, every day present
    assert gmv.filter(pl.col("period_start") == D(2026, 11, 3)).select("value", "previous_value").row(0) == (
        50.0,
        100.0,
    )

    weekly = kpi_table(
        creator_daily.lazy(), merchant_daily.lazy(), "week", ["overall"], D(2026, 11, 12)
    ).collect()
    complete = weekly.group_by("period_start").agg(pl.col("complete").first()).sort("period_start")
    assert complete["complete"].to_list() == [True, False]


def test_merchant_and_product_category_breakdowns(
    creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame, product_daily_frame: FrameFactory
) -> None:
    products = product_daily_frame(
        [
            dict(
                date=D(2026, 11, 2), product_id="p1", merchant_id="m1", category="home", gmv=100.0, orders=2
            ),
            dict(date=D(2026, 11, 3), product_id="p2", merchant_id="m2", category="home", gmv=50.0, orders=1),
        ]
    )

    result = kpi_table(
        creator_daily.lazy(),
        merchant_daily.lazy(),
        "week",
        ["merchant", "product_category"],
        product_daily=products.lazy(),
    ).collect()

    first_week = result.filter(pl.col("period_start") == D(2026, 11, 2))
    merchant_m1 = first_week.filter(pl.col("breakdown") == "merchant", pl.col("segment") == "m1")
    values = dict(zip(merchant_m1["metric"], merchant_m1["value"], strict=True))
    assert (values["gmv"], values["active_creators"], values["active_merchants"]) == (100.0, 1.0, 1.0)
    home = first_week.filter(pl.col("breakdown") == "product_category", pl.col("segment") == "home")
    values = dict(zip(home["metric"], home["value"], strict=True))
    assert (values["gmv"], values["active_merchants"], values["active_creators"]) == (150.0, 2.0, None)


def test_empty_input_gives_empty_table(
    creator_daily_frame: FrameFactory, merchant_daily_frame: FrameFactory
) -> None:
    result = kpi_table(creator_daily_frame([]).lazy(), merchant_daily_frame([]).lazy(), "week").collect()

    assert result.is_empty()
    assert result.columns == list(KPI_COLUMNS)


def test_unknown_breakdown_and_period(creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown breakdown 'country'"):
        kpi_table(creator_daily.lazy(), merchant_daily.lazy(), "week", ["country"])
    with pytest.raises(ValueError, match="unknown period 'month'"):
        kpi_table(creator_daily.lazy(), merchant_daily.lazy(), "month", ["overall"]).collect()  # type: ignore[arg-type]


def test_creator_totals_count_active_creators_once(creator_daily_frame: FrameFactory) -> None:
    daily = creator_daily_frame(
        [
            dict(date=D(2026, 11, 2), creator_id="c1", videos=1),
            dict(date=D(2026, 11, 3), creator_id="c1", content_kind="none", orders=1, gmv=9.0),
            dict(date=D(2026, 11, 3), creator_id="c2", views=100),
        ]
    )

    result = creator_totals(daily.lazy(), []).select("gmv", "orders", "views", "active_creators").collect()

    assert result.row(0) == (9.0, 1, 100, 1)


def test_kpi_cards_against_previous_range(creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame) -> None:
    cards = kpi_cards(creator_daily, D(2026, 11, 9), D(2026, 11, 15), merchant_daily=merchant_daily)

    gmv = cards.filter(pl.col("metric") == "gmv").row(0, named=True)
    assert (gmv["value"], gmv["previous_value"], gmv["change"], gmv["change_pct"]) == (
        30.0,
        150.0,
        -120.0,
        -0.8,
    )
    assert (gmv["previous_start"], gmv["previous_end"]) == (D(2026, 11, 2), D(2026, 11, 8))
    merchants = cards.filter(pl.col("metric") == "active_merchants").row(0, named=True)
    assert (merchants["value"], merchants["previous_value"]) == (1.0, 2.0)
    assert cards["label"].null_count() == 0


def test_kpi_cards_with_filters(creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame) -> None:
    cards = kpi_cards(
        creator_daily,
        D(2026, 11, 9),
        D(2026, 11, 15),
        regions=["UK"],
        tiers=["micro"],
        merchant_daily=merchant_daily,
    )

    values = {row["metric"]: (row["value"], row["previous_value"]) for row in cards.iter_rows(named=True)}
    assert values["gmv"] == (0.0, 50.0)
    assert values["refund_rate"] == (None, 0.2)
    assert values["active_creators"] == (0.0, 1.0)
    assert values["active_merchants"] == (None, None)


def test_kpi_cards_reject_reversed_range(creator_daily: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="before start"):
        kpi_cards(creator_daily, D(2026, 11, 9), D(2026, 11, 1))


def test_kpi_cards_on_empty_facts(creator_daily_frame: FrameFactory) -> None:
    cards = kpi_cards(creator_daily_frame([]), D(2026, 11, 9), D(2026, 11, 15))

    assert cards.filter(pl.col("metric") == "gmv").select("value", "previous_value").row(0) == (0.0, 0.0)


# --- the daily facts, from raw canonical tables ------------------------------------------------------


def _raw_inputs() -> Inputs:
    at = lambda day, hour: datetime(2026, 11, day, hour, tzinfo=UTC)  # noqa: E731
    tables = {
        "creators": pl.DataFrame(
            {
                "creator_id": ["c1", "c2"],
                "handle": ["@a", "@b"],
                "joined_on": [D(2026, 1, 1)] * 2,
                "region": ["US", "UK"],
                "followers": [500, 200_000],
                "primary_category": ["beauty", "home"],
                "bio": [None, None],
            },
            schema=CREATORS.schema,
        ),
        "merchants": pl.DataFrame(
            {
                "merchant_id": ["m1", "m2"],
                "name": ["One", "Two"],
                "joined_on": [D(2026, 1, 1)] * 2,
                "region": ["US", "ID"],
                "category": ["beauty", "home"],
                "rating": [4.0, 3.0],
                "ships_in_days": [2.0, 3.0],
            },
            schema=MERCHANTS.schema,
        ),
        "products": pl.DataFrame(
            {
                "product_id": ["p1", "p2"],
                "merchant_id": ["m1", "m2"],
                "title": ["Serum", "Lamp"],
                "category": ["beauty", "home"],
                "price": [10.0, 30.0],
                "commission_rate": [0.1, 0.2],
                "listed_on": [D(2026, 1, 1)] * 2,
            },
            schema=PRODUCTS.schema,
        ),
        "showcase": SHOWCASE.empty(),
        "content": pl.DataFrame(
            {
                "content_id": ["t1", "t2", "t3"],
                "creator_id": ["c1", "c1", "c2"],
                "kind": ["video", "live", "video"],
                "published_at": [at(2, 10), at(2, 20), at(3, 9)],
                "duration_s": [30, 3600, 20],
                "caption": [None, None, None],
            },
            schema=CONTENT.schema,
        ),
        "engagement": pl.DataFrame(
            {
                "date": [D(2026, 11, 2), D(2026, 11, 2), D(2026, 11, 3), D(2026, 11, 3)],
                "content_id": ["t1", "t2", "t1", "t3"],
                "product_id": ["p1", "p2", "p1", "p2"],
                "impressions": [100, 40, 20, 15],
                "views": [50, 20, 10, 7],
                "clicks": [5, 2, 1, 0],
                "add_to_carts": [1, 0, 0, 0],
            },
            schema=ENGAGEMENT.schema,
        ),
        "orders": pl.DataFrame(
            {
                "order_id": ["o1", "o2", "o3", "o4", "o5"],
                "ordered_at": [at(2, 11), at(2, 12), at(2, 21), at(2, 22), at(23, 1)],
                "buyer_id": ["b1"] * 5,
                "creator_id": ["c1"] * 5,
                "content_id": ["t1", "t1", "t2", None, "t1"],
                "product_id": ["p1", "p1", "p2", "p1", "p1"],
                "merchant_id": ["m1", "m1", "m2", "m1", "m1"],
                "quantity": [1] * 5,
                "gmv": [10.0, 20.0, 30.0, 5.0, 99.0],
                "commission": [1.0, 2.0, 6.0, 0.5, 9.9],
                "status": ["completed", "refunded", "cancelled", "completed", "completed"],
            },
            schema=ORDERS.schema,
        ),
    }
    return Inputs(**{name: frame.lazy() for name, frame in tables.items()})


def test_creator_daily_from_raw_tables() -> None:
    result = (
        sources.creator_daily(_raw_inputs(), D(2026, 11, 23))
        .sort("date", "creator_id", "content_kind")
        .select(
            "date",
            "creator_id",
            "content_kind",
            "category",
            "region",
            "tier",
            "views",
            "clicks",
            "orders",
            "gmv",
            "refunded_gmv",
            "cancelled",
            "commission",
            "videos",
            "lives",
        )
        .collect()
    )

    expected = pl.DataFrame(
        {
            "date": [D(2026, 11, 2)] * 3 + [D(2026, 11, 3)] * 2,
            "creator_id": ["c1", "c1", "c1", "c1", "c2"],
            "content_kind": ["live", "none", "video", "video", "video"],
            "category": ["beauty"] * 4 + ["home"],
            "region": ["US"] * 4 + ["UK"],
            "tier": ["nano"] * 4 + ["mid"],
            "views": [20, 0, 50, 10, 7],
            "clicks": [2, 0, 5, 1, 0],
            "orders": [0, 1, 2, 0, 0],
            "gmv": [0.0, 5.0, 30.0, 0.0, 0.0],
            "refunded_gmv": [0.0, 0.0, 20.0, 0.0, 0.0],
            "cancelled": [1, 0, 0, 0, 0],
            "commission": [0.0, 0.5, 3.0, 0.0, 0.0],
            "videos": [0, 0, 1, 0, 1],
            "lives": [1, 0, 0, 0, 0],
        }
    )
    assert_frame_equal(result, expected)


def test_merchant_and_product_daily_from_raw_tables() -> None:
    inputs = _raw_inputs()

    merchants = (
        sources.merchant_daily(inputs, D(2026, 11, 23))
        .sort("date", "merchant_id", "creator_id")
        .select(
            "date", "merchant_id", "creator_id", "category", "region", "views", "orders", "gmv", "cancelled"
        )
        .collect()
    )
    products = (
        sources.product_daily(inputs, D(2026, 11, 23))
        .sort("date", "product_id")
        .select("date", "product_id", "merchant_id", "category", "views", "orders", "gmv")
        .collect()
    )

    assert merchants.rows() == [
        (D(2026, 11, 2), "m1", "c1", "beauty", "US", 50, 3, 35.0, 0),
        (D(2026, 11, 2), "m2", "c1", "home", "ID", 20, 0, 0.0, 1),
        (D(2026, 11, 3), "m1", "c1", "beauty", "US", 10, 0, 0.0, 0),
        (D(2026, 11, 3), "m2", "c2", "home", "ID", 7, 0, 0.0, 0),
    ]
    assert products.rows() == [
        (D(2026, 11, 2), "p1", "m1", "beauty", 50, 3, 35.0),
        (D(2026, 11, 2), "p2", "m2", "home", 20, 0, 0.0),
        (D(2026, 11, 3), "p1", "m1", "beauty", 10, 0, 0.0),
        (D(2026, 11, 3), "p2", "m2", "home", 7, 0, 0.0),
    ]


def test_daily_facts_of_an_empty_lake() -> None:
    empty = Inputs(**{name: TABLES[name].empty().lazy() for name in Inputs.__dataclass_fields__})

    for fact in (sources.creator_daily, sources.merchant_daily, sources.product_daily):
        assert fact(empty, D(2026, 11, 23)).collect().is_empty()
    assert default_as_of(empty.orders) is None
    assert default_as_of(_raw_inputs().orders) == D(2026, 11, 24)


def test_daily_comparisons_are_28_and_91_days_earlier_within_the_grid(
    creator_daily_frame: FrameFactory, merchant_daily_frame: FrameFactory
) -> None:
    daily = creator_daily_frame(
        [
            dict(date=D(2026, 10, 5), gmv=10.0, orders=1),
            dict(date=D(2026, 11, 2), gmv=100.0, orders=1),
        ]
    )

    gmv = (
        kpi_table(daily.lazy(), merchant_daily_frame([]).lazy(), "day", ["overall"])
        .filter(pl.col("metric") == "gmv", pl.col("period_start").is_in([D(2026, 11, 1), D(2026, 11, 2)]))
        .select("period_start", "value", "previous_value", "value_4w_ago", "value_13w_ago")
        .collect()
    )

    expected = pl.DataFrame(
        {
            "period_start": [D(2026, 11, 1), D(2026, 11, 2)],
            "value": [0.0, 100.0],
            "previous_value": [0.0, 0.0],
            "value_4w_ago": [None, 10.0],  # 4 October is before the first day of the data
            "value_13w_ago": [None, None],
        },
        schema_overrides={"value_13w_ago": pl.Float64},
    )
    assert_frame_equal(gmv, expected)


def test_table_order_and_traits_from_the_creators_table(
    creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame
) -> None:
    breakdowns = ["tier", "overall", "region", "merchant", "category"]
    derived = kpi_table(creator_daily.lazy(), merchant_daily.lazy(), "week", breakdowns).collect()
    traits = creator_daily.select("creator_id", "region", "category", "tier").unique().lazy()
    given = kpi_table(
        creator_daily.lazy(), merchant_daily.lazy(), "week", breakdowns, traits=traits
    ).collect()

    assert_frame_equal(derived, given)
    assert_frame_equal(derived, derived.sort("breakdown", "segment", "metric", "period_start"))
    assert derived["breakdown"].unique().sort().to_list() == sorted(breakdowns)
