"""Named effect worlds: how each strategy's true effect works in one simulated marketplace.

The simulator (`sim.simulate`) draws one marketplace per seed; an *effect world* decides what the
strategies do in it. Worlds differ along the axes that broke models tuned on a single world:

- **channel**: what a strategy moves — ``conversion`` (orders per click), ``traffic`` (content volume
  for creators: more posts; impressions of its products for merchants), ``order_value`` (quantity per
  order, or the price paid when negative), ``refunds`` (the cancel and refund rates) or ``retention``
  (the lifecycle clock: slower decline and later churn);
- **scaling**: how the effect grows with the entity's sales potential — ``proportional`` (a relative
  lift), ``concave`` (the lift shrinks with the square root of size) or ``flat`` (a similar absolute
  amount for everyone, so the lift shrinks in proportion to size);
- **driver**: what makes entities differ — ``observable`` traits, ``latent`` (half of the variation from
  a trait the data does not show) or ``none`` (the same lift for everyone);
- **sign**: ``planted`` (the trait pattern's own small harms), ``none`` (nobody loses) or ``segment`` (the
  least receptive segment is clearly harmed);
- **traits** (per world): which observable traits the pattern follows — ``planted`` (the demo's) or
  ``alternate`` (other traits, other segments);
- **pilot_share**: the share of eligible entities enrolled in each randomized pilot wave;
- **target_on_size** and **target_on_signal**: how strongly the targeted rollout picks large entities
  and entities with an observable signal of the effect (1.0 = the demo's confounding, 0 = none).

``magnitude`` multiplies the trait pattern in the channel's own unit: the relative change of conversion,
content volume or impressions, order value, the cancel + refund rate (a reduction), or the speed of the
lifecycle clock (``1 / (1 + lift)``). The truth is always stated in GMV (`truth/` columns, see
docs/simulator.md), so worlds with different channels are compared in one metric.

The split into development and held-out worlds lives in ``sim/worlds.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from core.schema import CREATOR_STRATEGIES, MERCHANT_STRATEGIES, STRATEGIES

Channel = Literal["conversion", "traffic", "order_value", "refunds", "retention"]
Scaling = Literal["proportional", "concave", "flat"]
Driver = Literal["observable", "latent", "none"]
Sign = Literal["planted", "none", "segment"]
Traits = Literal["planted", "alternate"]
Group = Literal["development", "held_out"]

CHANNELS: tuple[str, ...] = get_args(Channel)
SCALINGS: tuple[str, ...] = get_args(Scaling)
DRIVERS: tuple[str, ...] = get_args(Driver)
SIGNS: tuple[str, ...] = get_args(Sign)
TRAITS: tuple[str, ...] = get_args(Traits)
GROUPS: tuple[str, ...] = get_args(Group)

SPLIT_FILE = Path(__file__).with_name("worlds.toml")

# A magnitude of 1 means the trait pattern as planted in the demo world (lifts of -8% … +78%). Channels
# whose unit moves GMV less per point get larger default magnitudes, so that every world's effects are
# of the same order in GMV.
DEFAULT_MAGNITUDE: dict[str, float] = {
    "conversion": 1.0,
    "traffic": 1.0,
    "order_value": 0.8,
    "refunds": 2.5,
    "retention": 6.0,
}


@dataclass(frozen=True)
class StrategyEffect:
    """How one strategy works in one world."""

    channel: Channel = "conversion"
    scaling: Scaling = "proportional"
    driver: Driver = "observable"
    sign: Sign = "planted"
    magnitude: float | None = None  # None: the channel's DEFAULT_MAGNITUDE

    def __post_init__(self) -> None:
        for value, allowed, axis in (
            (self.channel, CHANNELS, "channel"),
            (self.scaling, SCALINGS, "scaling"),
            (self.driver, DRIVERS, "driver"),
            (self.sign, SIGNS, "sign"),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {axis} {value!r}; choose one of {', '.join(allowed)}")
        if self.driver == "none" and self.sign == "segment":
            raise ValueError("a homogeneous effect (driver 'none') cannot harm only a segment")

    @property
    def scale(self) -> float:
        """The magnitude, with the channel's default filled in."""
        return DEFAULT_MAGNITUDE[self.channel] if self.magnitude is None else self.magnitude


@dataclass(frozen=True)
class EffectWorld:
    """One named effect world: every strategy's effect, the pilots' size and the rollout's targeting."""

    name: str
    description: str
    effects: Mapping[str, StrategyEffect]
    traits: Traits = "planted"
    pilot_share: float = 0.85
    target_on_size: float = 1.0
    target_on_signal: float = 1.0

    def __post_init__(self) -> None:
        missing = set(STRATEGIES) - set(self.effects)
        extra = set(self.effects) - set(STRATEGIES)
        if missing or extra:
            raise ValueError(
                f"world {self.name}: strategies missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        if self.traits not in TRAITS:
            raise ValueError(f"unknown traits {self.traits!r}; choose one of {', '.join(TRAITS)}")
        if not 0.0 < self.pilot_share <= 1.0:
            raise ValueError(f"world {self.name}: pilot_share must be in (0, 1]")
        if self.target_on_size < 0 or self.target_on_signal < 0:
            raise ValueError(f"world {self.name}: targeting strengths must be >= 0")

    def effect(self, strategy: str) -> StrategyEffect:
        return self.effects[strategy]

    @property
    def group(self) -> str:
        """``development`` or ``held_out``, from the split file."""
        return world_split()[self.name]


def _all(effect: StrategyEffect, **overrides: StrategyEffect) -> dict[str, StrategyEffect]:
    """The same effect for every strategy, with per-strategy overrides."""
    return {s: overrides.get(s, effect) for s in STRATEGIES}


S = StrategyEffect

WORLDS: tuple[EffectWorld, ...] = (
    # -------------------------------------------------------------------- development
    EffectWorld(
        "demo",
        "The original world: every strategy multiplies conversion by (1 + lift), lifts follow observable "
        "traits, small harms where the pattern has them; large pilots, moderate confounding.",
        _all(S("conversion", "proportional", "observable", "planted", 1.0)),
    ),
    EffectWorld(
        "traffic_volume",
        "Strategies bring volume, not conversion: creators post more, merchants' products get more "
        "impressions (about +30% on average, as measured on an independent marketplace). Observable "
        "drivers, nobody harmed; targeted rollouts are not confounded.",
        _all(S("traffic", "proportional", "observable", "none", 1.5)),
        pilot_share=0.6,
        target_on_size=0.0,
        target_on_signal=0.0,
    ),
    EffectWorld(
        "refund_quality",
        "Strategies work through fewer cancellations and refunds; the effect follows other observable "
        "traits and partly a latent one, grows with the square root of size; rollouts favour big sellers.",
        _all(S("refunds", "concave", "latent", "planted")),
        traits="alternate",
        pilot_share=0.5,
        target_on_size=2.0,
        target_on_signal=0.5,
    ),
    EffectWorld(
        "flat_homogeneous",
        "Every entity gains about the same dollar amount (creators through conversion, merchants through "
        "order value): no heterogeneity beyond size; small pilots; rollouts target size only.",
        _all(
            S("conversion", "flat", "none", "none", 0.6),
            **{m: S("order_value", "flat", "none", "none", 0.6) for m in MERCHANT_STRATEGIES},
        ),
        pilot_share=0.3,
        target_on_size=1.5,
        target_on_signal=0.0,
    ),
    EffectWorld(
        "retention_decline",
        "Strategies slow the lifecycle clock (later decline and churn), so only entities near their end "
        "gain; the least receptive segment is pushed out faster. Rollouts target the signal strongly.",
        _all(S("retention", "proportional", "observable", "segment")),
        target_on_size=0.5,
        target_on_signal=2.0,
    ),
    EffectWorld(
        "mixed_realistic",
        "Each strategy works the way an operator would expect (coaching converts, a commission boost and "
        "schedule advice bring posts, showcases raise order value, recruitment brings traffic, the "
        "fulfilment fix cuts refunds), with mixed scaling, drivers and harms; small pilots.",
        {
            "live_coaching": S("conversion", "proportional", "observable", "segment"),
            "commission_boost": S("traffic", "flat", "latent", "none"),
            "matched_product_showcase": S("order_value", "concave", "observable", "none"),
            "posting_schedule_advice": S("traffic", "proportional", "none", "none", 0.8),
            "commission_to_category_median": S("traffic", "concave", "observable", "planted"),
            "matched_creator_recruitment": S("traffic", "proportional", "observable", "segment"),
            "free_samples": S("conversion", "flat", "latent", "planted"),
            "fulfilment_fix": S("refunds", "proportional", "observable", "none"),
        },
        pilot_share=0.2,
    ),
    # -------------------------------------------------------------------- held out
    EffectWorld(
        "traffic_latent_harm",
        "Volume effects driven half by a latent trait, with a harmed segment, on other observable traits; "
        "concave in size; small pilots and strongly confounded rollouts.",
        _all(S("traffic", "concave", "latent", "segment")),
        traits="alternate",
        pilot_share=0.25,
        target_on_size=2.0,
        target_on_signal=2.0,
    ),
    EffectWorld(
        "conversion_alternate",
        "Conversion effects on other observable traits, nobody harmed; unconfounded rollouts.",
        _all(S("conversion", "proportional", "observable", "none")),
        traits="alternate",
        pilot_share=0.5,
        target_on_size=0.0,
        target_on_signal=0.0,
    ),
    EffectWorld(
        "order_value_latent",
        "Order-value effects (bigger baskets, or discounts where negative), half latent, a similar dollar "
        "amount for everyone; large pilots, moderate confounding.",
        _all(S("order_value", "flat", "latent", "planted")),
    ),
    EffectWorld(
        "refunds_homogeneous",
        "Every strategy cuts cancellations and refunds by the same share for everyone; small pilots; "
        "rollouts target size only.",
        _all(S("refunds", "proportional", "none", "none")),
        pilot_share=0.2,
        target_on_size=1.5,
        target_on_signal=0.0,
    ),
    EffectWorld(
        "retention_flat_latent",
        "Retention effects on other traits and a latent one, a similar dollar amount for everyone.",
        _all(S("retention", "flat", "latent", "none")),
        traits="alternate",
        pilot_share=0.5,
    ),
    EffectWorld(
        "mixed_shifted",
        "Each strategy works through another channel than in mixed_realistic (coaching brings viewers, "
        "the commission boost and the showcase convert, schedule advice retains; merchants convert, "
        "raise order value, bring traffic or cut refunds), on other traits; rollouts target the signal.",
        {
            "live_coaching": S("traffic", "concave", "observable", "none"),
            "commission_boost": S("conversion", "proportional", "latent", "segment"),
            "matched_product_showcase": S("conversion", "flat", "observable", "planted"),
            "posting_schedule_advice": S("retention", "proportional", "observable", "segment"),
            "commission_to_category_median": S("conversion", "proportional", "none", "none", 0.8),
            "matched_creator_recruitment": S("order_value", "concave", "latent", "none"),
            "free_samples": S("traffic", "proportional", "observable", "segment"),
            "fulfilment_fix": S("refunds", "flat", "latent", "segment"),
        },
        traits="alternate",
        pilot_share=0.35,
        target_on_size=0.5,
        target_on_signal=2.0,
    ),
    EffectWorld(
        "conversion_concave_harm",
        "Conversion effects concave in size, with a clearly harmed segment; very small pilots and "
        "rollouts that favour big sellers.",
        _all(S("conversion", "concave", "observable", "segment")),
        pilot_share=0.15,
        target_on_size=2.0,
    ),
)

EFFECT_WORLDS: dict[str, EffectWorld] = {w.name: w for w in WORLDS}
DEFAULT_WORLD = "demo"


def world_split(path: Path = SPLIT_FILE) -> dict[str, str]:
    """World name → ``development`` or ``held_out``, as declared once in the split file."""
    with path.open("rb") as handle:
        split: dict[str, str] = tomllib.load(handle)["split"]
    bad = {name: group for name, group in split.items() if group not in GROUPS}
    if bad:
        raise ValueError(f"{path.name}: unknown groups {bad}; use {' or '.join(GROUPS)}")
    return split


def world_names(group: str | None = None) -> list[str]:
    """The worlds of a group (every world when ``group`` is None), in declaration order."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUPS)}")
    split = world_split()
    return [w.name for w in WORLDS if group is None or split.get(w.name) == group]


def effect_world(name: str) -> EffectWorld:
    """The world called ``name``, with an error naming the known worlds."""
    try:
        return EFFECT_WORLDS[name]
    except KeyError:
        raise ValueError(f"unknown world {name!r}; choose one of {', '.join(EFFECT_WORLDS)}") from None


def kind_of(strategy: str) -> str:
    """``creator`` or ``merchant``."""
    return "creator" if strategy in CREATOR_STRATEGIES else "merchant"
