"""The metric dictionary: formulas on hand-computed frames, null-safety, rates in [0, 1]."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.metrics import METRIC_NAMES, METRICS, RATE_METRICS, describe_metrics, metric, with_metrics


def _base(**values: list[float]) -> pl.LazyFrame:
    columns = {
        name: [0.0]
        for name in ("gmv", "refunded_gmv", "orders", "clicks", "views", "commission", "active_creators")
    }
    columns.update(values)
    return pl.LazyFrame(columns)


def test_every_metric_on_hand_computed_totals() -> None:
    base = _base(
        gmv=[1000.0],
        refunded_gmv=[100.0],
        orders=[20.0],
        clicks=[200.0],
        views=[10_000.0],
        commission=[150.0],
        active_creators=[4.0],
        active_merchants=[2.0],
    )

    result = with_metrics(base).select(METRIC_NAMES).collect()

    expected = pl.DataFrame(
        {
            "gmv": [1000.0],
            "net_gmv": [900.0],
            "orders": [20.0],
            "aov": [50.0],
            "ctr": [0.02],
            "cvr": [0.1],
            "gpm": [100.0],
            "commission": [150.0],
            "take_rate": [0.15],
            "refund_rate": [0.1],
            "active_creators": [4.0],
            "active_merchants": [2.0],
            "gmv_per_active_creator": [250.0],
        }
    )
    assert_frame_equal(result, expected)


def test_zero_denominators_give_null_not_inf() -> None:
    result = with_metrics(_base()).select("aov", "ctr", "cvr", "gpm", "take_rate", "refund_rate").collect()

    assert result.null_count().row(0) == (1, 1, 1, 1, 1, 1)


def test_missing_activity_counts_are_null() -> None:
    result = with_metrics(_base().drop("active_creators"), ["active_creators", "active_merchants"]).collect()

    assert result["active_creators"].to_list() == [None]
    assert result["active_merchants"].to_list() == [None]


def test_rates_are_clipped_to_one() -> None:
    # orders that no click preceded (storefront) can outnumber clicks
    result = with_metrics(_base(orders=[5.0], clicks=[2.0]), ["cvr"]).collect()

    assert result["cvr"].to_list() == [1.0]


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown metric 'ltv'.*gmv"):
        metric("ltv")


def test_dictionary_describes_every_metric_once() -> None:
    described = describe_metrics()

    assert described["name"].to_list() == list(METRICS)
    assert described["name"].n_unique() == described.height
    assert described.null_count().sum_horizontal().item() == 0
    assert set(described.filter(pl.col("unit") == "ratio")["name"]) == set(RATE_METRICS)
    assert set(described.filter(pl.col("unit") == "ratio")["format"]) == {"percent"}


counts = st.integers(min_value=0, max_value=10**9)
money = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    gmv=money,
    refund_share=st.floats(min_value=0, max_value=1),
    commission_share=st.floats(min_value=0, max_value=1),
    orders=counts,
    clicks=counts,
    views=counts,
)
def test_rates_stay_in_unit_interval(
    gmv: float, refund_share: float, commission_share: float, orders: int, clicks: int, views: int
) -> None:
    base = _base(
        gmv=[gmv],
        refunded_gmv=[gmv * refund_share],
        commission=[gmv * commission_share],
        orders=[float(orders)],
        clicks=[float(clicks)],
        views=[float(views)],
    )

    rates = with_metrics(base, RATE_METRICS).select(RATE_METRICS).collect().row(0)

    assert all(value is None or 0.0 <= value <= 1.0 for value in rates)


def test_a_metric_over_suffixed_columns_is_the_same_formula() -> None:
    frame = pl.DataFrame({"clicks_28d": [5, 0, 30], "views_28d": [100, 0, 20], "orders_28d": [1, 0, 2]})

    result = frame.select(
        METRICS["ctr"].over("_28d").alias("ctr"),
        METRICS["cvr"].over("_28d").alias("cvr"),
    )

    # 30 clicks on 20 views is clipped to 1 like the unsuffixed metric
    expected = pl.DataFrame({"ctr": [0.05, None, 1.0], "cvr": [0.2, None, 2 / 30]})
    assert_frame_equal(result, expected)
    plain = frame.rename(lambda name: name.removesuffix("_28d")).select(METRICS["ctr"].expr.alias("ctr"))
    assert_frame_equal(plain, result.select("ctr"))
