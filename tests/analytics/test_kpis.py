"""KPIs by period and breakdown, comparisons, and KPI cards, on hand-computed frames."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.kpis import KPI_COLUMNS, creator_totals, kpi_cards, kpi_table

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
