"""Rationales: drivers against similar entities, or the average effect when nothing sets an entity apart."""

from __future__ import annotations

from strategies.explain import Driver, rationale


def test_rationale_names_its_drivers() -> None:
    drivers = [Driver("gmv_28d", 1200.0, 800.0, 95.0)]
    text = rationale("Live coaching", 140.0, drivers, "creators", baseline_gmv=1200.0)
    assert text.startswith("Live coaching: expected +$140 GMV over 28 days.")
    assert "similar creators" in text and "adds $95" in text


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
