"""Rationales: drivers against similar entities, or the average effect when nothing sets an entity apart."""

from __future__ import annotations

from strategies.explain import Driver, rationale


def test_rationale_names_its_drivers() -> None:
    drivers = [Driver("gmv_28d", 1200.0, 800.0, 95.0)]
    text = rationale("Live coaching", 140.0, drivers, "creators", baseline_gmv=1200.0)
    assert text.startswith("Live coaching: expected +$140 GMV over 28 days.")
    assert "similar creators" in text
    assert "adds $95" in text


def test_rationale_without_drivers_is_the_average_effect_on_the_entity_gmv() -> None:
    text = rationale("Free samples", 250.0, [], "merchants", baseline_gmv=2500.0)
    assert text == (
        "Free samples: expected +$250 GMV over 28 days. No trait of its own moves this estimate: it is "
        "the average effect on similar merchants, +10% of GMV, applied to its GMV of the last 28 days "
        "($2,500)."
    )
    assert rationale("Free samples", 0.0, [], "merchants", baseline_gmv=0.0) == (
        "Free samples: expected +$0 GMV over 28 days."
    )


def test_values_read_alike_for_the_entity_and_its_cohort() -> None:
    """The format follows the feature's name, never the value's size: a ratio of 0.68 and a median of
    1.33 are both ratios; a GMV share is a share, not dollars."""
    cases = {
        ("commission_rate_ratio_vs_category", 0.684, 1.33): "is 0.68× (similar merchants: 1.33×)",
        ("commission_rate_gap_vs_category", -0.024, 0.0): "is -2.4 pts (similar merchants: +0.0 pts)",
        ("top_creator_gmv_share_91d", 0.101, 0.35): "is 10.1% (similar merchants: 35.0%)",
        ("median_commission_rate", 0.026, 0.051): "is 2.6% (similar merchants: 5.1%)",
        ("gmv_28d", 2_873_157.0, 8.5): "is $2,873,157 (similar merchants: $8.50)",
    }
    for (feature, value, median), expected in cases.items():
        assert expected in Driver(feature, value, median, 10.0).sentence("merchants"), feature
