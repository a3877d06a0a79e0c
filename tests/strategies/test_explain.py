"""Rationales: the expected gain in parts that add up to it (the average effect, the top drivers against
the average entity, other factors), or the average effect when nothing sets an entity apart."""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from strategies.explain import Attribution, Driver, attributions, rationale


def _amounts(text: str) -> list[int]:
    """Every signed whole-dollar amount of a rationale, in order ("+$1,200" → 1200, "−$35" → -35)."""
    return [
        (-1 if sign == "−" else 1) * int(digits.replace(",", ""))
        for sign, digits in re.findall(r"([+−])\$([\d,]+)", text)
    ]


def test_rationale_names_its_drivers_and_adds_up() -> None:
    drivers = [Driver("gmv_28d", 1200.0, 800.0, 95.0)]
    text = rationale("Live coaching", 140.0, Attribution(60.0, drivers, -15.0), "creators", 1200.0)
    assert text == (
        "Live coaching: expected +$140 GMV over 28 days. Of this, +$60 is the average effect on creators at "
        "its sales of the last 28 days; against the average creator: GMV 28d is $1,200 (similar creators: "
        "$800): +$95; other factors: −$15."
    )
    headline, *parts = _amounts(text)
    assert sum(parts) == headline


def test_the_shown_parts_add_up_to_the_headline_in_whole_dollars() -> None:
    """Rounding each part on its own would lose dollars; "other factors" takes the difference."""
    drivers = [Driver("gmv_28d", 10.0, 5.0, 10.4), Driver("orders_28d", 3.0, 1.0, 10.4)]
    for expected, base in ((131.6, 100.4), (-52.5, -80.2), (20.8 + 3.0, 3.0)):
        other = expected - base - 20.8
        text = rationale("Free samples", expected, Attribution(base, drivers, other), "merchants", 50.0)
        headline, *parts = _amounts(text)
        assert headline == round(expected)
        assert sum(parts) == headline, text
    exact = rationale("Free samples", 30.0, Attribution(10.0, drivers[:1], 10.0 + 9.6 - 10.4), "merchants")
    assert "other factors" in exact


def test_a_driver_at_its_cohorts_median_is_credited_against_the_average_entity() -> None:
    """SHAP credits a feature against the model's base value (the average entity), not against the
    cohort: a value equal to its cohort's median must not read "(similar merchants: 38.0%), which adds
    $34,638" as if the amount were earned against those merchants."""
    at_median = Driver("view_rate_28d", 0.38, 0.38, 34_638.0)
    assert at_median.sentence("merchants") == "view rate 28d is 38.0%, as for similar merchants: +$34,638"
    text = rationale("Free samples", 40_000.0, Attribution(5_362.0, [at_median], 0.0), "merchants")
    assert "against the average merchant: view rate 28d is 38.0%, as for similar merchants: +$34,638" in text
    assert "(similar merchants: 38.0%)" not in text
    assert "which adds" not in text
    differs = Driver("view_rate_28d", 0.38, 0.21, 34_638.0).sentence("merchants")
    assert differs == "view rate 28d is 38.0% (similar merchants: 21.0%): +$34,638"


def test_rationale_without_drivers_is_the_average_effect_on_the_entity_gmv() -> None:
    text = rationale("Free samples", 250.0, Attribution(250.0, [], 0.0), "merchants", baseline_gmv=2500.0)
    assert text == (
        "Free samples: expected +$250 GMV over 28 days. No trait of its own moves this estimate: it is "
        "the average effect on similar merchants, +10% of GMV, applied to its GMV of the last 28 days "
        "($2,500)."
    )
    assert rationale("Free samples", 0.0, Attribution(0.0, [], 0.0), "merchants", baseline_gmv=0.0) == (
        "Free samples: expected +$0 GMV over 28 days."
    )


def test_attributions_keep_the_top_drivers_and_put_the_rest_in_other_factors() -> None:
    names = ["a", "b", "c", "d", "e"]
    contributions = np.array([[5.0, -40.0, 1.0, 30.0, -2.0, 100.0], [0.0, 0.0, 0.0, 0.0, 0.0, 7.0]])
    values = pl.DataFrame({n: [1.0, 2.0] for n in names})
    medians = pl.DataFrame({n: [1.5, 1.5] for n in names})
    shown = contributions.sum(axis=1)
    first, flat = attributions(contributions, names, values, medians, shown, k=3)
    assert [d.feature for d in first.drivers] == ["b", "d", "a"]
    assert first.base == 100.0
    assert first.other == -1.0  # c and e: +1 − 2
    assert first.total == shown[0]
    assert flat.drivers == []  # no trait moves it: all of it is the base
    assert (flat.base, flat.other) == (7.0, 0.0)


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
