"""The rules file: loaded into frozen rules, bad declarations refused with the rule named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from alerts.rules import Rule, RuleError, load_rules


def test_rules_file_declares_each_watch() -> None:
    rules = load_rules()
    by_id = {rule.id: rule for rule in rules}
    assert {rule.kind for rule in rules} == {"below_expected", "rate_spike", "quiet", "live_conversion"}
    assert {(r.scope, r.metric) for r in rules if r.kind == "below_expected"} == {
        ("platform", "gmv"),
        ("platform", "orders"),
        ("region", "gmv"),
        ("region", "orders"),
    }
    assert by_id["merchant_refund_rate_spike"].scope == "merchant"
    assert by_id["top_creator_quiet"].entity_kind == "creator"
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_id["top_creator_quiet"].threshold = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('kind = "nonsense"', "unknown kind 'nonsense'"),
        ('kind = "rate_spike"\nmetric = "gmv"', "watches cancelled or refunded"),
        ('severity = "loud"', "severity is one of info, warning, critical"),
        ("colour = 1", r"unknown field\(s\) \['colour'\]"),
    ],
)
def test_bad_rule_is_refused_with_its_id(tmp_path: Path, body: str, message: str) -> None:
    base = {
        "id": '"r1"',
        "kind": '"below_expected"',
        "metric": '"gmv"',
        "scope": '"region"',
        "window_hours": "3",
        "threshold": "3.0",
        "min_change": "0.3",
        "min_volume": "10",
        "severity": '"warning"',
        "cooldown_hours": "6",
    }
    for line in body.splitlines():
        key, value = (part.strip() for part in line.split("=", 1))
        base[key] = value
    path = tmp_path / "rules.toml"
    path.write_text("[[rule]]\n" + "\n".join(f"{k} = {v}" for k, v in base.items()) + "\n")
    with pytest.raises(RuleError, match=message):
        load_rules(path)


def test_rule_rejects_out_of_range_window() -> None:
    with pytest.raises(RuleError, match="window_hours"):
        Rule("x", "quiet", "orders", "creator", 0, 3.0, 0.5, 1, "info", 1)
