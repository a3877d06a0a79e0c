"""Cohorts: retention and GMV per member by weeks since the cohort's start, and the comparison."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics.cohorts import COHORT_COLUMNS, creator_cohorts, last_complete_week, merchant_cohorts
from core.schema import CREATORS, MERCHANTS

from .conftest import FrameFactory

D = date
AS_OF = D(2026, 11, 23)


def _creators(joined: dict[str, date]) -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "creator_id": list(joined),
            "handle": [f"@{key}" for key in joined],
            "joined_on": list(joined.values()),
            "region": ["US"] * len(joined),
            "followers": [100] * len(joined),
            "primary_category": ["beauty"] * len(joined),
            "bio": [None] * len(joined),
        },
        schema=CREATORS.schema,
    ).lazy()


def _daily(factory: FrameFactory) -> pl.DataFrame:
    return factory(
        [
            dict(date=D(2026, 10, 26), creator_id="c0", videos=1),
            dict(date=D(2026, 11, 2), creator_id="c1", videos=1, orders=1, gmv=10.0),
            dict(date=D(2026, 11, 16), creator_id="c1", orders=1, gmv=20.0),
            dict(date=D(2026, 11, 10), creator_id="c2", videos=1),
            dict(date=D(2026, 11, 10), creator_id="c3", views=100),
            dict(date=D(2026, 11, 17), creator_id="c3", lives=1, orders=1, gmv=5.0),
            # on the as-of date: never counted
            dict(date=AS_OF, creator_id="c2", orders=9, gmv=900.0),
        ]
    )


CREATORS_JOINED = {"c0": D(2026, 1, 1), "c1": D(2026, 11, 2), "c2": D(2026, 11, 4), "c3": D(2026, 11, 10)}


def test_last_complete_week() -> None:
    assert last_complete_week(D(2026, 11, 23)) == D(2026, 11, 16)  # a Monday
    assert last_complete_week(D(2026, 11, 22)) == D(2026, 11, 9)  # a Sunday: its week is not over


def test_join_week_cohorts_by_hand(creator_daily_frame: FrameFactory) -> None:
    result = (
        creator_cohorts(
            _daily(creator_daily_frame).lazy(), _creators(CREATORS_JOINED), AS_OF, kinds=("joined",)
        )
        .select(
            "cohort_week",
            "weeks_since",
            "members",
            "active_members",
            "retention",
            "gmv_per_member",
            "cumulative_gmv_per_member",
        )
        .collect()
    )

    expected = pl.DataFrame(
        {
            "cohort_week": [D(2026, 11, 2)] * 3 + [D(2026, 11, 9)] * 2,
            "weeks_since": [0, 1, 2, 0, 1],
            "members": [2, 2, 2, 1, 1],
            "active_members": [1, 1, 1, 0, 1],
            "retention": [0.5, 0.5, 0.5, 0.0, 1.0],
            "gmv_per_member": [5.0, 0.0, 10.0, 0.0, 5.0],
            "cumulative_gmv_per_member": [5.0, 5.0, 15.0, 0.0, 5.0],
        }
    )
    assert_frame_equal(result, expected, check_dtypes=False)


def test_first_active_and_first_sale_cohorts(creator_daily_frame: FrameFactory) -> None:
    result = creator_cohorts(_daily(creator_daily_frame).lazy(), _creators(CREATORS_JOINED), AS_OF).collect()

    first_active = result.filter(pl.col("cohort_kind") == "first_active").select(
        "cohort_week", "weeks_since", "members", "retention", "previous_cohort_retention", "average_retention"
    )
    expected = pl.DataFrame(
        {
            # c0's first activity is in the first week of data: left-censored, no cohort
            "cohort_week": [D(2026, 11, 2)] * 3 + [D(2026, 11, 9)] * 2 + [D(2026, 11, 16)],
            "weeks_since": [0, 1, 2, 0, 1, 0],
            "members": [1, 1, 1, 1, 1, 1],
            "retention": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
            "previous_cohort_retention": [None, None, None, 1.0, 0.0, 1.0],
            "average_retention": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
        }
    )
    assert_frame_equal(first_active, expected, check_dtypes=False)
    first_sale = result.filter(pl.col("cohort_kind") == "first_sale")
    assert first_sale.select("cohort_week", "weeks_since", "retention").rows() == [
        (D(2026, 11, 2), 0, 1.0),
        (D(2026, 11, 2), 1, 0.0),
        (D(2026, 11, 2), 2, 1.0),
        (D(2026, 11, 16), 0, 1.0),
    ]
    assert result.columns[: len(COHORT_COLUMNS)] == list(COHORT_COLUMNS)


def test_merchant_cohorts(merchant_daily_frame: FrameFactory) -> None:
    daily = merchant_daily_frame(
        [
            dict(date=D(2026, 10, 27), merchant_id="m0", orders=1, gmv=1.0),
            dict(date=D(2026, 11, 3), merchant_id="m1", orders=2, gmv=30.0),
            dict(date=D(2026, 11, 4), merchant_id="m1", creator_id="c2", orders=1, gmv=10.0),
            dict(date=D(2026, 11, 17), merchant_id="m1", views=50),
        ]
    )
    merchants = pl.DataFrame(
        {
            "merchant_id": ["m0", "m1"],
            "name": ["a", "b"],
            "joined_on": [D(2026, 1, 1), D(2026, 11, 1)],
            "region": ["US", "US"],
            "category": ["home", "home"],
            "rating": [4.0, 4.0],
            "ships_in_days": [2.0, 2.0],
        },
        schema=MERCHANTS.schema,
    ).lazy()

    result = merchant_cohorts(daily.lazy(), merchants, AS_OF).collect()

    joined = result.filter(pl.col("cohort_kind") == "joined").select(
        "cohort_week", "weeks_since", "retention", "gmv"
    )
    assert joined.rows() == [
        (D(2026, 10, 26), 0, 0.0, 0.0),
        (D(2026, 10, 26), 1, 1.0, 40.0),
        (D(2026, 10, 26), 2, 0.0, 0.0),
        (D(2026, 10, 26), 3, 0.0, 0.0),
    ]
    first_sale = result.filter(pl.col("cohort_kind") == "first_sale").select(
        "cohort_week", "weeks_since", "retention"
    )
    assert first_sale.rows() == [(D(2026, 11, 2), 0, 1.0), (D(2026, 11, 2), 1, 0.0), (D(2026, 11, 2), 2, 0.0)]


def test_cohorts_of_empty_facts(creator_daily_frame: FrameFactory) -> None:
    result = creator_cohorts(creator_daily_frame([]).lazy(), _creators(CREATORS_JOINED), AS_OF).collect()

    assert result.is_empty()
    assert result.columns[: len(COHORT_COLUMNS)] == list(COHORT_COLUMNS)


activity = st.fixed_dictionaries(
    {
        "creator_id": st.sampled_from([f"c{i}" for i in range(6)]),
        "day": st.integers(min_value=0, max_value=69),
        "videos": st.integers(min_value=0, max_value=2),
        "orders": st.integers(min_value=0, max_value=2),
        "views": st.integers(min_value=0, max_value=50),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(activity, max_size=30), joined_days=st.lists(st.integers(-30, 69), min_size=6, max_size=6)
)
def test_week_zero_retention_is_full_for_activity_cohorts(
    creator_daily_frame: FrameFactory, rows: list[dict[str, int]], joined_days: list[int]
) -> None:
    start = D(2026, 9, 14)  # a Monday
    daily = creator_daily_frame(
        [
            dict(
                date=start + timedelta(days=row["day"]),
                creator_id=row["creator_id"],
                videos=row["videos"],
                orders=row["orders"],
                gmv=float(row["orders"]) * 10,
                views=row["views"],
            )
            for row in rows
        ]
    )
    creators = _creators({f"c{i}": start + timedelta(days=day) for i, day in enumerate(joined_days)})

    result = creator_cohorts(daily.lazy(), creators, start + timedelta(days=70)).collect()

    week_zero = result.filter(pl.col("weeks_since") == 0, pl.col("cohort_kind") != "joined")
    assert (week_zero["retention"] == 1.0).all()
    assert result["retention"].is_between(0.0, 1.0).all()
    assert (result["active_members"] <= result["members"]).all()
