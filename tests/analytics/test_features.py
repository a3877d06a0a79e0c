"""Creator and merchant features as of a date: hand-computed values, empty input, no leakage."""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics.features import creator_features, merchant_features
from core.schema import CREATORS, MERCHANTS, PRODUCTS, SHOWCASE

from .conftest import FrameFactory

D = date
AS_OF = D(2026, 11, 23)


def _creators() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "creator_id": ["c1", "c2", "c3"],
            "handle": ["@a", "@b", "@c"],
            "joined_on": [D(2026, 1, 1), D(2026, 11, 20), AS_OF],
            "region": ["US", "UK", "US"],
            "followers": [5_000, 150_000, 10],
            "primary_category": ["beauty", "home", "toys"],
            "bio": [None, None, None],
        },
        schema=CREATORS.schema,
    )


def _products() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "product_id": ["p1", "p2", "p3", "p4"],
            "merchant_id": ["m1", "m1", "m9", "m1"],
            "title": ["a", "b", "c", "d"],
            "category": ["beauty"] * 4,
            "price": [10.0, 30.0, 40.0, 50.0],
            "commission_rate": [0.10, 0.20, 0.30, 0.5],
            "listed_on": [D(2026, 11, 1), D(2026, 1, 1), D(2026, 2, 1), AS_OF],
        },
        schema=PRODUCTS.schema,
    )


def _showcase() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "creator_id": ["c1", "c1", "c1", "c1"],
            "product_id": ["p1", "p2", "p3", "p4"],
            "added_on": [D(2026, 11, 1), D(2026, 6, 1), D(2026, 5, 1), AS_OF],
            "removed_on": [None, AS_OF, D(2026, 11, 1), None],
        },
        schema=SHOWCASE.schema,
    )


def _merchants() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "merchant_id": ["m1", "m2"],
            "name": ["One", "Two"],
            "joined_on": [D(2026, 1, 1), AS_OF],
            "region": ["US", "UK"],
            "category": ["beauty", "home"],
            "rating": [4.5, 3.0],
            "ships_in_days": [2.0, 5.0],
        },
        schema=MERCHANTS.schema,
    )


@pytest.fixture
def creator_daily(creator_daily_frame: FrameFactory) -> pl.DataFrame:
    return creator_daily_frame(
        [
            dict(
                date=D(2026, 11, 22),
                gmv=100.0,
                orders=2,
                views=1000,
                clicks=10,
                impressions=4000,
                videos=1,
                commission=10.0,
            ),
            dict(date=D(2026, 11, 10), content_kind="live", gmv=60.0, orders=1, views=500, clicks=5, lives=1),
            dict(date=D(2026, 10, 20), gmv=40.0, orders=1),
        ]
    )


@pytest.fixture
def merchant_daily(merchant_daily_frame: FrameFactory) -> pl.DataFrame:
    return merchant_daily_frame(
        [
            dict(
                date=D(2026, 11, 22),
                creator_id="c1",
                category="beauty",
                orders=2,
                gmv=100.0,
                refunded_gmv=10.0,
                cancelled=1,
                views=1000,
                clicks=20,
                commission=10.0,
            ),
            dict(date=D(2026, 11, 10), creator_id="c2", category="beauty", orders=1, gmv=50.0),
            dict(date=D(2026, 11, 10), merchant_id="m2", creator_id="c1", category="home", views=500),
            dict(date=D(2026, 10, 20), creator_id="c1", category="beauty", orders=1, gmv=40.0),
        ]
    )


def _creator_features(
    creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame, **tables: pl.DataFrame
) -> pl.DataFrame:
    return creator_features(
        creator_daily.lazy(),
        tables.get("creators", _creators()).lazy(),
        tables.get("showcase", _showcase()).lazy(),
        tables.get("products", _products()).lazy(),
        AS_OF,
        merchant_daily=merchant_daily.lazy(),
    ).collect()


def test_creator_features_by_hand(creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame) -> None:
    result = _creator_features(creator_daily, merchant_daily)

    # c3 joined on the as-of date: not yet a creator
    assert result["creator_id"].to_list() == ["c1", "c2"]
    weeks = 5  # data starts 2026-10-20: 34 observed days
    mean_posts = 2 / weeks
    expected = pl.DataFrame(
        {
            "creator_id": ["c1", "c2"],
            "tier": ["nano", "mid"],
            "tenure_days": [(AS_OF - D(2026, 1, 1)).days, 3],
            "days_since_last_activity": [1, None],
            "weeks_active_13w": [3, 0],
            "videos_per_week_13w": [1 / weeks, 0.0],
            "lives_per_week_13w": [1 / weeks, 0.0],
            "posting_cv_13w": [math.sqrt(2 / weeks - mean_posts**2) / mean_posts, None],
            "live_share_of_content_91d": [0.5, None],
            "views_per_content_28d": [750.0, None],
            "view_rate_28d": [1500 / 4000, None],
            "ctr_28d": [0.01, None],
            "cvr_28d": [0.2, None],
            "gpm_28d": [160 * 1000 / 1500, None],
            "gmv_7d": [100.0, 0.0],
            "gmv_28d": [160.0, 0.0],
            "gmv_prev_28d": [40.0, 0.0],
            "gmv_91d": [200.0, 0.0],
            "gmv_trend_28d": [3.0, None],
            "aov_91d": [50.0, None],
            "refund_rate_91d": [0.0, None],
            "commission_28d": [10.0, 0.0],
            "live_share_of_gmv_91d": [0.3, None],
            "top_category_91d": ["beauty", None],
            "top_category_share_91d": [2 / 3, None],
            "category_entropy_91d": [-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3), None],
            "categories_promoted_91d": [2, 0],
            "showcase_products": [2, 0],
            "showcase_added_28d": [1, 0],
            "showcase_median_age_days": [(22 + 175) / 2, None],
            "showcase_median_price": [20.0, None],
        },
        schema_overrides={"tenure_days": pl.Int64, "days_since_last_activity": pl.Int64},
    )
    assert_frame_equal(result.select(expected.columns), expected, check_dtypes=False)
    assert result["as_of"].unique().to_list() == [AS_OF]


def test_creator_features_without_merchant_daily_leave_category_focus_null(
    creator_daily: pl.DataFrame,
) -> None:
    result = creator_features(
        creator_daily.lazy(), _creators().lazy(), _showcase().lazy(), _products().lazy(), AS_OF
    ).collect()

    assert result["top_category_91d"].null_count() == result.height
    assert result["gmv_28d"].to_list() == [160.0, 0.0]


def test_merchant_features_by_hand(merchant_daily: pl.DataFrame) -> None:
    result = merchant_features(
        merchant_daily.lazy(), _merchants().lazy(), _products().lazy(), AS_OF
    ).collect()

    expected = pl.DataFrame(
        {
            "merchant_id": ["m1"],
            "rating": [4.5],
            "ships_in_days": [2.0],
            "tenure_days": [(AS_OF - D(2026, 1, 1)).days],
            "days_since_last_order": [1],
            "catalog_products": [2],
            "products_listed_28d": [1],
            "catalog_median_age_days": [(22 + 326) / 2],
            "median_price": [20.0],
            "category_median_price": [30.0],
            "price_index_vs_category": [20 / 30],
            "median_commission_rate": [0.15],
            "category_median_commission_rate": [0.2],
            "commission_rate_ratio_vs_category": [0.75],
            "commission_rate_gap_vs_category": [-0.05],
            "active_creators_28d": [2],
            "active_creators_91d": [2],
            "top_creator_gmv_share_91d": [140 / 190],
            "ctr_28d": [0.02],
            "cvr_28d": [0.15],
            "gmv_7d": [100.0],
            "gmv_28d": [150.0],
            "gmv_prev_28d": [40.0],
            "gmv_91d": [190.0],
            "gmv_trend_28d": [2.75],
            "aov_91d": [47.5],
            "refund_rate_91d": [10 / 190],
            "cancellation_rate_91d": [0.2],
            "take_rate_91d": [10 / 190],
        }
    )
    assert_frame_equal(result.select(expected.columns), expected, check_dtypes=False)


def test_features_on_empty_facts(
    creator_daily_frame: FrameFactory, merchant_daily_frame: FrameFactory
) -> None:
    creators = _creator_features(creator_daily_frame([]), merchant_daily_frame([]))
    merchants = merchant_features(
        merchant_daily_frame([]).lazy(), _merchants().lazy(), _products().lazy(), AS_OF
    ).collect()

    assert creators["creator_id"].to_list() == ["c1", "c2"]
    assert creators["gmv_28d"].to_list() == [0.0, 0.0]
    assert creators["ctr_28d"].null_count() == 2
    assert merchants["merchant_id"].to_list() == ["m1"]
    assert merchants["gmv_91d"].to_list() == [0.0]


def test_features_with_no_entities(creator_daily: pl.DataFrame, merchant_daily: pl.DataFrame) -> None:
    result = _creator_features(creator_daily, merchant_daily, creators=CREATORS.empty())

    assert result.is_empty()
    assert "gmv_28d" in result.columns


# --- no leakage: rows dated on or after the as-of date change nothing ------------------------------

future_days = st.integers(min_value=0, max_value=60).map(lambda days: AS_OF + timedelta(days=days))
amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    days=st.lists(future_days, min_size=1, max_size=5),
    gmv=amounts,
    views=st.integers(min_value=0, max_value=10**6),
)
def test_future_rows_do_not_change_features(
    creator_daily: pl.DataFrame,
    merchant_daily: pl.DataFrame,
    creator_daily_frame: FrameFactory,
    merchant_daily_frame: FrameFactory,
    days: list[date],
    gmv: float,
    views: int,
) -> None:
    future_creator = creator_daily_frame(
        [
            dict(date=day, creator_id=c, gmv=gmv, orders=1, views=views, videos=1, lives=1)
            for day in days
            for c in ("c1", "c2")
        ]
    )
    future_merchant = merchant_daily_frame(
        [dict(date=day, creator_id="c2", category="toys", gmv=gmv, orders=1, views=views) for day in days]
    )
    later_showcase = pl.concat(
        [
            _showcase(),
            pl.DataFrame(
                {"creator_id": ["c2"], "product_id": ["p1"], "added_on": [days[0]], "removed_on": [None]},
                schema=SHOWCASE.schema,
            ),
        ]
    )
    later_products = pl.concat(
        [
            _products(),
            pl.DataFrame(
                {
                    "product_id": ["p9"],
                    "merchant_id": ["m1"],
                    "title": ["new"],
                    "category": ["beauty"],
                    "price": [999.0],
                    "commission_rate": [0.9],
                    "listed_on": [days[0]],
                },
                schema=PRODUCTS.schema,
            ),
        ]
    )

    before = _creator_features(creator_daily, merchant_daily)
    after = _creator_features(
        pl.concat([creator_daily, future_creator]),
        pl.concat([merchant_daily, future_merchant]),
        showcase=later_showcase,
        products=later_products,
    )
    assert_frame_equal(before, after)

    merchants_before = merchant_features(
        merchant_daily.lazy(), _merchants().lazy(), _products().lazy(), AS_OF
    )
    merchants_after = merchant_features(
        pl.concat([merchant_daily, future_merchant]).lazy(), _merchants().lazy(), later_products.lazy(), AS_OF
    )
    assert_frame_equal(merchants_before.collect(), merchants_after.collect())
