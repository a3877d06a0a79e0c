"""The alert rules, loaded once from ``alerts/rules.toml`` into frozen, validated objects."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

RuleKind = Literal["below_expected", "rate_spike", "quiet", "live_conversion"]
Scope = Literal["platform", "region", "merchant", "creator", "live"]
Severity = Literal["info", "warning", "critical"]
Metric = Literal["gmv", "orders", "refunded", "cancelled", "cvr"]

RULES_FILE = Path(__file__).with_name("rules.toml")
SEVERITIES: tuple[str, ...] = get_args(Severity)

_ALLOWED: dict[str, tuple[set[str], set[str]]] = {
    # kind: (metrics, scopes)
    "below_expected": ({"gmv", "orders"}, {"platform", "region"}),
    "rate_spike": ({"refunded", "cancelled"}, {"merchant"}),
    "quiet": ({"orders"}, {"creator"}),
    "live_conversion": ({"cvr"}, {"live"}),
}


class RuleError(ValueError):
    """A rules file that cannot be used (unknown kind, scope or field, a value out of range)."""


@dataclass(frozen=True)
class Rule:
    """One alert rule (see the comments at the top of ``rules.toml`` for each field)."""

    id: str
    kind: RuleKind
    metric: Metric
    scope: Scope
    window_hours: int
    threshold: float
    min_change: float
    min_volume: float
    severity: Severity
    cooldown_hours: int
    baseline_days: int = 28
    reference_weeks: int = 4
    top_n: int = 20
    spread_days: int = 28
    for_hours: int = 1
    min_history: int = 3

    def __post_init__(self) -> None:
        metrics, scopes = _ALLOWED.get(self.kind, (set(), set()))
        if not metrics:
            raise RuleError(f"rule {self.id}: unknown kind {self.kind!r}; use one of {', '.join(_ALLOWED)}")
        if self.metric not in metrics:
            raise RuleError(f"rule {self.id}: a {self.kind} rule watches {' or '.join(sorted(metrics))}")
        if self.scope not in scopes:
            raise RuleError(f"rule {self.id}: a {self.kind} rule's scope is {' or '.join(sorted(scopes))}")
        if self.severity not in SEVERITIES:
            raise RuleError(f"rule {self.id}: severity is one of {', '.join(SEVERITIES)}")
        if not 1 <= self.window_hours <= 168:
            raise RuleError(f"rule {self.id}: window_hours must be between 1 and 168")
        if self.threshold <= 0 or self.min_volume < 0 or self.min_change < 0 or self.cooldown_hours < 0:
            raise RuleError(f"rule {self.id}: threshold must be > 0; min_volume, min_change, cooldown >= 0")
        if self.reference_weeks < 2 or self.baseline_days < 7 or self.top_n < 1 or self.for_hours < 1:
            raise RuleError(
                f"rule {self.id}: reference_weeks >= 2, baseline_days >= 7, top_n and for_hours >= 1"
            )

    @property
    def entity_kind(self) -> str:
        """What the rule's alerts are about: ``platform``, ``region``, ``merchant``, ``creator`` or ``live``
        (a live stream, by its content id)."""
        return self.scope


def load_rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    """Every rule of a rules file, in file order.

    Raises:
        RuleError: an unknown field, a duplicate id or a value a rule cannot take.
    """
    with path.open("rb") as handle:
        declared = tomllib.load(handle).get("rule", [])
    fields = set(Rule.__dataclass_fields__)
    rules: list[Rule] = []
    for entry in declared:
        unknown = set(entry) - fields
        if unknown:
            raise RuleError(f"rule {entry.get('id', '?')} in {path.name}: unknown field(s) {sorted(unknown)}")
        try:
            rules.append(Rule(**entry))
        except TypeError as error:
            raise RuleError(f"rule {entry.get('id', '?')} in {path.name}: {error}") from None
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise RuleError(f"{path.name}: duplicate rule ids")
    return tuple(rules)
