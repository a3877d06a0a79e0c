"""A seeded, deterministic creator-commerce marketplace with known strategy effects.

The simulator generates every canonical table of `core.schema` at a named scale, writes them as
ordinary input files under ``$LIFTBOARD_HOME/incoming/<scale>-<seed>[-<world>]/`` and loads them through
the same ingest path as real data. What the strategies do is an *effect world* (`sim.worlds`): the
channel each effect works through (conversion, traffic, order value, refunds, retention), how it scales
with size, what drives it, who it harms, how large the pilots are and how confounded the rollouts.
``demo`` is the original world (every effect multiplies conversion) and the default.

Alongside the inputs it writes the *truth* (never read by models, only by evaluation) under
``$LIFTBOARD_HOME/truth/``, from the simulator's expected values with and without each treatment, in two
metrics: GMV (orders not cancelled, refunded ones included: ``true_lift``, ``baseline_gmv_28d``,
``true_uplift_gmv_28d``) and net GMV (orders neither cancelled nor refunded: ``true_lift_net``,
``baseline_net_gmv_28d``, ``true_uplift_net_gmv_28d``).

- ``effects.parquet``: for every creator and merchant and every strategy of its kind, the 28-day lift,
  baseline (the last 28 days of the data) and incremental GMV the strategy would bring if started at the
  end of the data;
- ``interventions.parquet``: for every intervention (treated or control) the expected GMV of the entity
  in the 28 days from ``assigned_on`` without the intervention, and the incremental GMV the treatment
  brings (or would have brought, for a control);
- ``entities.parquet``: the latent traits behind the effects (documentation and tests only);
- ``world.parquet``: the effect world's declaration.

How the marketplace works (see docs/simulator.md for the full story):

- creators have heavy-tailed followers (log-normal), a skill that drives conversion, an appetite for
  live streams, a posting rate and regularity, a lifecycle (join, ramp, plateau, optional decline and
  churn) and an interest that may drift from a primary to a secondary category mid-window;
- merchants have a quality that drives rating, shipping time, refunds and cancellations, a size that
  drives catalog size, a commission rate relative to their category, and a lifecycle;
- products carry their category and style in their titles; captions carry hashtags of the content's
  category and style; bios carry the creator's category;
- each piece of content features showcase products; engagement (impressions → views → clicks → add to
  carts) follows followers, content kind, weekday, day since publishing and mega-sale days; orders are
  binomial draws on clicks with a conversion that depends on skill, product appeal, price fit, region,
  merchant quality and **the active interventions**, which act for 28 days through their channel, so
  the effects flow through the generated data;
- interventions are assigned in randomized pilots (weeks 4-5 and 11-12, 50/50 arms) and a targeted
  rollout (weeks 18-19) whose treatment probability rises with the entity's size and with an observable
  signal of the effect (confounding), bounded in [0.1, 0.9] so that both arms exist everywhere.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from core.calendar import MEGA_SALE_DAYS
from core.config import Settings
from core.schema import CREATOR_STRATEGIES, MERCHANT_STRATEGIES, TABLES
from sim.incidents import Facts, incident_plan, plant_incidents
from sim.worlds import CHANNELS, DEFAULT_WORLD, EffectWorld, effect_world, world_split

Progress = Callable[[str, int, int], None]

# ---------------------------------------------------------------------------------------------------
# Scales and the world's constants
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """Sizes of one simulated marketplace."""

    name: str
    creators: int
    merchants: int
    products: int
    buyers: int
    content_rate: float  # expected content pieces per active creator-week, before traits
    weeks: int = 26
    end_date: date = date(2026, 11, 22)  # a Sunday: the data covers whole ISO weeks

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=7 * self.weeks - 1)

    @property
    def days(self) -> int:
        return 7 * self.weeks


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", creators=1_200, merchants=120, products=2_400, buyers=20_000, content_rate=1.6),
    "demo": Scale("demo", creators=5_000, merchants=500, products=12_000, buyers=150_000, content_rate=2.6),
    "large": Scale(
        "large", creators=200_000, merchants=20_000, products=500_000, buyers=3_000_000, content_rate=0.55
    ),
}

TRUTH_DAYS = 28
SIM_EPOCH = date(2026, 1, 1)  # day numbers are counted from the window start; this only names files

CATEGORIES: dict[str, dict] = {  # type: ignore[type-arg]
    # weight: share of creators/merchants; price: median USD; commission: typical rate; refund: base rate
    "beauty": dict(
        weight=0.17,
        price=22,
        commission=0.15,
        refund=0.04,
        nouns=["Serum", "Lipstick", "Foundation", "Face Mask", "Eyeliner", "Moisturizer"],
        adjectives=["Hydrating", "Glow", "Matte", "Vitamin C", "Silky", "Radiant"],
        hashtags=["#beauty", "#skincare", "#makeup", "#glowup"],
    ),
    "fashion": dict(
        weight=0.15,
        price=35,
        commission=0.12,
        refund=0.09,
        nouns=["Dress", "Hoodie", "Sneakers", "Denim Jacket", "Tote Bag", "Scarf"],
        adjectives=["Oversized", "Floral", "Linen", "Vintage", "Pleated", "Cropped"],
        hashtags=["#fashion", "#ootd", "#style", "#outfit"],
    ),
    "home": dict(
        weight=0.10,
        price=30,
        commission=0.10,
        refund=0.05,
        nouns=["Candle", "Throw Blanket", "Storage Box", "Vase", "Lamp", "Cushion"],
        adjectives=["Cozy", "Minimalist", "Ceramic", "Scented", "Woven", "Nordic"],
        hashtags=["#homedecor", "#cozyhome", "#interior", "#organize"],
    ),
    "electronics": dict(
        weight=0.08,
        price=75,
        commission=0.05,
        refund=0.06,
        nouns=["Earbuds", "Phone Case", "Charger", "Smartwatch", "Speaker", "Ring Light"],
        adjectives=["Wireless", "Fast-Charging", "Noise-Cancelling", "Portable", "Smart", "LED"],
        hashtags=["#tech", "#gadgets", "#techreview", "#unboxing"],
    ),
    "food": dict(
        weight=0.09,
        price=12,
        commission=0.08,
        refund=0.02,
        nouns=["Snack Box", "Hot Sauce", "Coffee Beans", "Matcha", "Granola", "Chocolate"],
        adjectives=["Spicy", "Organic", "Crunchy", "Roasted", "Sugar-Free", "Gourmet"],
        hashtags=["#foodie", "#snacks", "#tastetest", "#yummy"],
    ),
    "fitness": dict(
        weight=0.08,
        price=28,
        commission=0.12,
        refund=0.05,
        nouns=["Yoga Mat", "Resistance Bands", "Protein Powder", "Shaker", "Leggings", "Dumbbells"],
        adjectives=["Non-Slip", "Adjustable", "High-Protein", "Breathable", "Compact", "Pro"],
        hashtags=["#fitness", "#gymtok", "#workout", "#fitcheck"],
    ),
    "baby": dict(
        weight=0.05,
        price=25,
        commission=0.10,
        refund=0.03,
        nouns=["Onesie", "Teether", "Baby Carrier", "Bottle", "Swaddle", "Play Mat"],
        adjectives=["Soft", "BPA-Free", "Gentle", "Cotton", "Safe", "Tiny"],
        hashtags=["#momtok", "#babymusthaves", "#newmom", "#parenting"],
    ),
    "pets": dict(
        weight=0.06,
        price=18,
        commission=0.10,
        refund=0.03,
        nouns=["Dog Treats", "Cat Toy", "Pet Bed", "Leash", "Grooming Brush", "Litter Mat"],
        adjectives=["Chewy", "Durable", "Plush", "Reflective", "Natural", "Calming"],
        hashtags=["#dogsoftiktok", "#catlife", "#petlover", "#puppy"],
    ),
    "toys": dict(
        weight=0.05,
        price=20,
        commission=0.09,
        refund=0.04,
        nouns=["Building Blocks", "Plushie", "Puzzle", "RC Car", "Slime Kit", "Board Game"],
        adjectives=["Colorful", "Educational", "Giant", "Magnetic", "Glow-in-Dark", "Classic"],
        hashtags=["#toys", "#kidsplay", "#toyreview", "#fun"],
    ),
    "books": dict(
        weight=0.04,
        price=15,
        commission=0.07,
        refund=0.02,
        nouns=["Novel", "Journal", "Cookbook", "Planner", "Comic", "Sticker Book"],
        adjectives=["Bestselling", "Illustrated", "Hardcover", "Dotted", "Signed", "Collector's"],
        hashtags=["#booktok", "#reading", "#bookish", "#journaling"],
    ),
    "outdoors": dict(
        weight=0.06,
        price=45,
        commission=0.08,
        refund=0.05,
        nouns=["Tent", "Water Bottle", "Hiking Boots", "Backpack", "Camping Chair", "Headlamp"],
        adjectives=["Waterproof", "Ultralight", "Insulated", "Rugged", "Foldable", "Solar"],
        hashtags=["#outdoors", "#camping", "#hiking", "#adventure"],
    ),
    "jewelry": dict(
        weight=0.07,
        price=38,
        commission=0.18,
        refund=0.07,
        nouns=["Necklace", "Hoop Earrings", "Bracelet", "Ring", "Anklet", "Charm"],
        adjectives=["Gold-Plated", "Sterling", "Dainty", "Pearl", "Layered", "Minimal"],
        hashtags=["#jewelry", "#accessories", "#goldjewelry", "#stacking"],
    ),
}
CATEGORY_NAMES = tuple(CATEGORIES)

STYLES: dict[str, dict] = {  # type: ignore[type-arg]
    "luxury": dict(word="Luxe", hashtag="#luxury", price=2.2),
    "budget": dict(word="Budget", hashtag="#budgetfinds", price=0.55),
    "eco": dict(word="Eco", hashtag="#sustainable", price=1.2),
    "trendy": dict(word="Viral", hashtag="#trending", price=1.0),
    "classic": dict(word="Classic", hashtag="#timeless", price=1.15),
    "handmade": dict(word="Handmade", hashtag="#handmade", price=1.4),
}
STYLE_NAMES = tuple(STYLES)

REGIONS: dict[str, dict[str, float]] = {  # weight: share of entities; spend: conversion multiplier
    "US": dict(weight=0.28, spend=1.25),
    "UK": dict(weight=0.12, spend=1.15),
    "DE": dict(weight=0.08, spend=1.1),
    "FR": dict(weight=0.07, spend=1.05),
    "ES": dict(weight=0.06, spend=0.95),
    "BR": dict(weight=0.1, spend=0.8),
    "MX": dict(weight=0.08, spend=0.8),
    "ID": dict(weight=0.12, spend=0.65),
    "PH": dict(weight=0.09, spend=0.6),
}
REGION_NAMES = tuple(REGIONS)

TIER_BOUNDS = (
    10_000,
    100_000,
    500_000,
    1_000_000,
)  # nano < 10k ≤ micro < 100k ≤ mid < 500k ≤ macro < 1M ≤ mega
TIER_NAMES = ("nano", "micro", "mid", "macro", "mega")

WEEKDAY_TRAFFIC = np.array([0.92, 0.9, 0.95, 1.0, 1.05, 1.2, 1.15])  # Monday first
WEEKDAY_POSTING = WEEKDAY_TRAFFIC / WEEKDAY_TRAFFIC.sum()
VIDEO_DECAY = np.array([1.0, 0.5, 0.25, 0.12])  # share of a video's reach on publish day, day 1, 2, 3

# Assignment waves: (first week, last week + 1). Each entity may join both randomized pilot waves and
# the targeted rollout; a 28-day outcome window ends before the next wave starts, though the second
# pilot's 28-day pre-period may overlap the first pilot's window (balanced across arms: noise, not bias).
PILOT_WAVES = ((4, 6), (11, 13))
ROLLOUT_WEEKS = (18, 20)
PARTICIPATION = 0.85  # share of eligible entities enrolled in each assignment wave
EXPECTED_QUANTITY = 1.25  # E[quantity] of the order-size draw below (1 + Poisson(0.25))


def tier_of(followers: np.ndarray) -> np.ndarray:
    """Tier index (0 = nano … 4 = mega) of each follower count."""
    return np.searchsorted(np.array(TIER_BOUNDS), followers, side="right")


def _weights(table: dict[str, dict], key: str = "weight") -> np.ndarray:  # type: ignore[type-arg]
    w = np.array([v[key] for v in table.values()], dtype=float)
    return w / w.sum()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------------


@dataclass
class World:
    """The latent state of the simulated marketplace (numpy arrays indexed by entity position)."""

    scale: Scale
    # merchants
    m_region: np.ndarray
    m_category: np.ndarray
    m_quality: np.ndarray
    m_size: np.ndarray
    m_join: np.ndarray  # day number relative to the window start (negative: before it)
    m_churn: np.ndarray  # day the merchant stops selling (beyond the window: never)
    m_rating: np.ndarray
    m_ships: np.ndarray
    m_commission: np.ndarray
    # products
    p_merchant: np.ndarray
    p_category: np.ndarray
    p_style: np.ndarray
    p_price: np.ndarray
    p_commission: np.ndarray
    p_listed: np.ndarray
    p_appeal: np.ndarray
    p_title: np.ndarray
    # creators
    c_region: np.ndarray
    c_followers: np.ndarray
    c_category: np.ndarray
    c_second: np.ndarray
    c_drift: np.ndarray  # day the interest drifts to the second category (beyond window: never)
    c_join: np.ndarray
    c_ramp_weeks: np.ndarray
    c_decline: np.ndarray
    c_churn: np.ndarray
    c_skill: np.ndarray
    c_live: np.ndarray  # share of content that is live
    c_post_rate: np.ndarray
    c_regularity: np.ndarray
    c_price_pref: np.ndarray
    # showcase (sorted by creator, then added day)
    s_creator: np.ndarray
    s_product: np.ndarray
    s_added: np.ndarray
    s_removed: np.ndarray
    s_new_after_drift: np.ndarray  # per creator: how many trailing showcase rows were added at the drift


def _lifecycle(
    rng: np.random.Generator, n: int, days: int, join_share_before: float
) -> tuple[np.ndarray, ...]:
    """Join day, decline day and churn day of n entities (days relative to the window start)."""
    before = rng.random(n) < join_share_before
    join = np.where(before, -rng.integers(1, 720, n), (days * rng.random(n) ** 0.8).astype(np.int64))
    never = days + 10_000
    active_from = np.maximum(join, 0)
    churns = rng.random(n) < 0.35
    churn = np.where(
        churns, active_from + 28 + rng.integers(0, days, n), never
    )  # some churn after the window
    declines_only = rng.random(n) < 0.15
    decline = np.where(
        churns,
        churn - rng.integers(21, 90, n),
        np.where(declines_only, active_from + rng.integers(30, days, n), never),
    )
    decline = np.maximum(decline, join + 28)
    return join, decline, churn


def build_world(scale: Scale, seed: int) -> World:
    """Draw every entity and its latent traits."""
    ss = np.random.SeedSequence(seed)
    rng_m, rng_p, rng_c, rng_s = (np.random.default_rng(s) for s in ss.spawn(4))
    days = scale.days
    n_cat = len(CATEGORY_NAMES)
    cat_price = np.array([CATEGORIES[c]["price"] for c in CATEGORY_NAMES], dtype=float)
    cat_commission = np.array([CATEGORIES[c]["commission"] for c in CATEGORY_NAMES])

    # Merchants --------------------------------------------------------------------------------------
    nm = scale.merchants
    m_region = rng_m.choice(len(REGION_NAMES), nm, p=_weights(REGIONS))
    m_category = rng_m.choice(n_cat, nm, p=_weights(CATEGORIES))
    m_quality = rng_m.beta(5, 2, nm)
    m_size = rng_m.pareto(1.6, nm) + 1.0
    m_join, _, m_churn = _lifecycle(rng_m, nm, days, join_share_before=0.75)
    m_rating = np.clip(np.round(1.4 + 3.6 * m_quality + rng_m.normal(0, 0.25, nm), 1), 1.0, 5.0)
    m_ships = np.clip(np.round(1.0 + 9.0 * (1 - m_quality) ** 1.5 + rng_m.exponential(0.8, nm), 1), 0.5, 21.0)
    m_commission = np.clip(cat_commission[m_category] * rng_m.lognormal(0, 0.35, nm), 0.02, 0.45)

    # Products ---------------------------------------------------------------------------------------
    npr = scale.products
    # every merchant gets at least one product; the rest follow merchant size
    extra = rng_p.choice(nm, npr - nm, p=m_size / m_size.sum())
    p_merchant = np.sort(np.concatenate([np.arange(nm), extra]))
    same = rng_p.random(npr) < 0.9
    p_category = np.where(same, m_category[p_merchant], rng_p.integers(0, n_cat, npr))
    p_style = rng_p.choice(len(STYLE_NAMES), npr, p=[0.1, 0.22, 0.14, 0.26, 0.16, 0.12])
    style_price = np.array([STYLES[s]["price"] for s in STYLE_NAMES])
    p_price = np.round(cat_price[p_category] * style_price[p_style] * rng_p.lognormal(0, 0.45, npr), 0) - 0.01
    p_price = np.maximum(p_price, 0.99)
    p_commission = np.round(np.clip(m_commission[p_merchant] * rng_p.lognormal(0, 0.1, npr), 0.01, 0.5), 3)
    span = np.maximum(days - 14 - m_join[p_merchant], 1)
    p_listed = m_join[p_merchant] + (rng_p.random(npr) ** 1.8 * span).astype(np.int64)
    p_appeal = rng_p.lognormal(0, 0.5, npr)
    nouns = np.array([n for c in CATEGORY_NAMES for n in CATEGORIES[c]["nouns"]])
    adjectives = np.array([a for c in CATEGORY_NAMES for a in CATEGORIES[c]["adjectives"]])
    style_words = np.array([STYLES[s]["word"] for s in STYLE_NAMES])
    noun_idx = p_category * 6 + rng_p.integers(0, 6, npr)
    adj_idx = p_category * 6 + rng_p.integers(0, 6, npr)
    p_title = np.char.add(
        np.char.add(np.char.add(style_words[p_style], " "), np.char.add(adjectives[adj_idx], " ")),
        nouns[noun_idx],
    )

    # Creators ---------------------------------------------------------------------------------------
    nc = scale.creators
    c_region = rng_c.choice(len(REGION_NAMES), nc, p=_weights(REGIONS))
    c_followers = np.minimum(np.round(rng_c.lognormal(8.9, 1.75, nc)), 60_000_000).astype(np.int64) + 50
    c_category = rng_c.choice(n_cat, nc, p=_weights(CATEGORIES))
    c_second = (c_category + rng_c.integers(1, n_cat, nc)) % n_cat
    never = days + 10_000
    c_drift = np.where(rng_c.random(nc) < 0.3, rng_c.integers(days // 4, days - 21, nc), never)
    c_join, c_decline, c_churn = _lifecycle(rng_c, nc, days, join_share_before=0.65)
    c_ramp_weeks = rng_c.integers(2, 9, nc)
    c_skill = rng_c.lognormal(0, 0.4, nc)
    c_live = np.where(rng_c.random(nc) < 0.45, 0.0, rng_c.beta(1.5, 3.5, nc))
    c_post_rate = rng_c.gamma(2.5, 0.4, nc)
    c_regularity = rng_c.beta(2, 2, nc)
    c_price_pref = cat_price[c_category] * rng_c.lognormal(0, 0.5, nc)

    # Showcase ---------------------------------------------------------------------------------------
    popularity = p_appeal * np.sqrt(m_size[p_merchant])
    order = np.argsort(p_category, kind="stable")
    cum = np.cumsum(popularity[order])
    cat_bounds = np.searchsorted(p_category[order], np.arange(n_cat + 1))

    def pick_in_category(rng: np.random.Generator, cats: np.ndarray) -> np.ndarray:
        lo = np.where(cat_bounds[cats] > 0, cum[np.maximum(cat_bounds[cats] - 1, 0)], 0.0)
        lo = np.where(cat_bounds[cats] == 0, 0.0, lo)
        hi = cum[np.maximum(cat_bounds[cats + 1] - 1, 0)]
        u = lo + rng.random(len(cats)) * (hi - lo)
        pos = np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
        return order[pos]

    size = np.clip(rng_s.poisson(3 + 2.2 * np.log10(c_followers / 500.0)), 2, 40)
    s_creator = np.repeat(np.arange(nc), size)
    in_primary = rng_s.random(len(s_creator)) < 0.8
    cats = np.where(in_primary, c_category[s_creator], rng_s.integers(0, n_cat, len(s_creator)))
    s_product = pick_in_category(rng_s, cats)
    s_added = np.maximum(c_join[s_creator], p_listed[s_product]) + rng_s.exponential(
        25, len(s_creator)
    ).astype(np.int64)
    # drifting creators add products of their second category on the drift day
    drifters = np.flatnonzero(c_drift < days)
    n_new = rng_s.integers(3, 8, len(drifters))
    d_creator = np.repeat(drifters, n_new)
    d_product = pick_in_category(rng_s, c_second[d_creator])
    d_added = np.maximum(c_drift[d_creator], p_listed[d_product])
    s_creator = np.concatenate([s_creator, d_creator])
    s_product = np.concatenate([s_product, d_product])
    s_added = np.concatenate([s_added, d_added])
    # one row per (creator, product): keep the earliest addition
    key = s_creator.astype(np.int64) * (npr + 1) + s_product
    first = np.lexsort((s_added, key))
    keep = first[np.r_[True, key[first][1:] != key[first][:-1]]]
    s_creator, s_product, s_added = s_creator[keep], s_product[keep], s_added[keep]
    in_window = s_added < days - 1
    s_creator, s_product, s_added = s_creator[in_window], s_product[in_window], s_added[in_window]
    sort = np.lexsort((s_added, s_creator))
    s_creator, s_product, s_added = s_creator[sort], s_product[sort], s_added[sort]
    removed = rng_s.random(len(s_creator)) < 0.12
    s_removed = np.where(removed, s_added + 14 + rng_s.integers(0, 120, len(s_creator)), never)
    s_removed = np.where(s_removed >= days, never, s_removed)
    is_drift_row = (
        (c_drift[s_creator] < days)
        & (s_added >= c_drift[s_creator])
        & (p_category[s_product] == c_second[s_creator])
    )
    s_new_after_drift = np.bincount(s_creator[is_drift_row], minlength=nc)

    return World(
        scale=scale,
        m_region=m_region,
        m_category=m_category,
        m_quality=m_quality,
        m_size=m_size,
        m_join=m_join,
        m_churn=m_churn,
        m_rating=m_rating,
        m_ships=m_ships,
        m_commission=m_commission,
        p_merchant=p_merchant,
        p_category=p_category,
        p_style=p_style,
        p_price=p_price,
        p_commission=p_commission,
        p_listed=p_listed,
        p_appeal=p_appeal,
        p_title=p_title,
        c_region=c_region,
        c_followers=c_followers,
        c_category=c_category,
        c_second=c_second,
        c_drift=c_drift,
        c_join=c_join,
        c_ramp_weeks=c_ramp_weeks,
        c_decline=c_decline,
        c_churn=c_churn,
        c_skill=c_skill,
        c_live=c_live,
        c_post_rate=c_post_rate,
        c_regularity=c_regularity,
        c_price_pref=c_price_pref,
        s_creator=s_creator,
        s_product=s_product,
        s_added=s_added,
        s_removed=s_removed,
        s_new_after_drift=s_new_after_drift,
    )


def creator_activity(
    world: World, day: np.ndarray | int, clock: np.ndarray | float | None = None
) -> np.ndarray:
    """Each creator's activity level on a day: 0 before joining and after churn, ramping up over the
    first weeks, 1 on the plateau, decaying after the decline day.

    ``clock`` is the lifecycle clock that decline and churn follow (default: the day itself); a retention
    effect slows it down, a harmful one speeds it up.
    """
    day = np.asarray(day)
    clock = day if clock is None else np.asarray(clock)
    tenure_weeks = (day - world.c_join) / 7.0
    ramp = np.clip((tenure_weeks + 1) / world.c_ramp_weeks, 0.0, 1.0)
    decline = np.where(clock < world.c_decline, 1.0, np.exp(-(clock - world.c_decline) / 45.0))
    alive = (day >= world.c_join) & (clock < world.c_churn)
    return ramp * decline * alive


# ---------------------------------------------------------------------------------------------------
# True strategy effects
# ---------------------------------------------------------------------------------------------------


def creator_lifts(world: World) -> dict[str, np.ndarray]:
    """True relative GMV lift of each creator strategy for each creator.

    Every lift depends on traits the models can see through the data (live share, tier, posting
    regularity, showcase size, price point, interest drift): some creators gain a lot, some nothing,
    some lose.
    """
    tier = tier_of(world.c_followers)
    low_live = world.c_live < 0.12
    visual = np.isin(world.c_category, [CATEGORY_NAMES.index(c) for c in ("beauty", "fashion", "jewelry")])
    live_coaching = np.where(
        low_live,
        np.where((tier >= 1) & (tier <= 2), 0.6, 0.15) * np.where(visual, 1.3, 1.0),
        np.where(world.c_live > 0.35, -0.06, 0.03),
    )
    showcase_size = np.bincount(world.s_creator, minlength=world.scale.creators)
    high_price = world.c_price_pref > 1.2 * np.median(world.c_price_pref)
    commission_boost = np.where(tier <= 1, 0.08 + 0.35 * high_price, np.where(tier >= 3, -0.03, 0.05))
    drifted = world.c_drift < world.scale.days
    matched_product = 0.45 * (showcase_size < 9) + 0.2 * drifted - 0.04
    posting = 0.35 * (1 - world.c_regularity) ** 2 + 0.3 * (world.c_post_rate < 0.8) - 0.07
    return {
        "live_coaching": live_coaching,
        "commission_boost": commission_boost,
        "matched_product_showcase": matched_product,
        "posting_schedule_advice": posting,
    }


def merchant_lifts(world: World) -> dict[str, np.ndarray]:
    """True relative GMV lift of each merchant strategy for each merchant."""
    n_cat = len(CATEGORY_NAMES)
    cat_median = np.array(
        [
            np.median(world.m_commission[world.m_category == k]) if (world.m_category == k).any() else 0.1
            for k in range(n_cat)
        ]
    )
    gap = (cat_median[world.m_category] - world.m_commission) / cat_median[world.m_category]
    to_median = np.where(gap > 0, 1.0 * np.minimum(gap, 0.7), -0.03)
    catalog = np.bincount(world.p_merchant, minlength=world.scale.merchants)
    small = catalog <= np.median(catalog)
    recruitment = np.where(world.m_rating >= 3.8, np.where(small, 0.45, 0.06), np.where(small, 0.12, -0.05))
    sample_friendly = np.isin(
        world.m_category, [CATEGORY_NAMES.index(c) for c in ("beauty", "food", "baby", "pets")]
    )
    samples = np.where(world.m_rating >= 4.0, np.where(sample_friendly, 0.4, 0.08), -0.08)
    fulfilment = np.minimum(0.06 * np.maximum(world.m_ships - 3.0, 0.0), 0.6) - 0.01
    return {
        "commission_to_category_median": to_median,
        "matched_creator_recruitment": recruitment,
        "free_samples": samples,
        "fulfilment_fix": fulfilment,
    }


def creator_lifts_alternate(world: World) -> dict[str, np.ndarray]:
    """Another observable pattern of creator gains (the ``alternate`` traits of some worlds): other
    traits, other segments than `creator_lifts`."""
    tier = tier_of(world.c_followers)
    some_live = (world.c_live >= 0.12) & (world.c_live <= 0.5)
    region_spend = np.array([REGIONS[r]["spend"] for r in REGION_NAMES])[world.c_region]
    live_coaching = np.where(some_live, 0.45, np.where(world.c_live > 0.5, 0.1, -0.05)) * np.where(
        region_spend >= 1.05, 1.3, 1.0
    )
    cat_commission = np.array([CATEGORIES[c]["commission"] for c in CATEGORY_NAMES])
    thin_margin = cat_commission[world.c_category] < 0.1
    commission_boost = np.where(thin_margin, np.where(tier >= 2, 0.4, 0.15), np.where(tier == 0, -0.05, 0.03))
    showcase_size = np.bincount(world.s_creator, minlength=world.scale.creators)
    drifted = world.c_drift < world.scale.days
    matched_product = np.where(showcase_size >= 15, 0.35, 0.05) - 0.12 * drifted
    posting = 0.45 * world.c_regularity**2 + 0.2 * (world.c_post_rate > 1.5) - 0.08
    return {
        "live_coaching": live_coaching,
        "commission_boost": commission_boost,
        "matched_product_showcase": matched_product,
        "posting_schedule_advice": posting,
    }


def merchant_lifts_alternate(world: World) -> dict[str, np.ndarray]:
    """Another observable pattern of merchant gains (the ``alternate`` traits of some worlds)."""
    catalog = np.bincount(world.p_merchant, minlength=world.scale.merchants)
    big = catalog > np.median(catalog)
    to_median = np.where(big, 0.3, -0.04) * np.where(world.m_rating >= 3.5, 1.0, 0.5)
    rich = np.isin(world.m_region, [REGION_NAMES.index(r) for r in ("US", "UK", "DE")])
    recruitment = np.where(world.m_rating < 3.8, 0.35, 0.05) + 0.1 * rich - 0.06
    sample_friendly = np.isin(
        world.m_category, [CATEGORY_NAMES.index(c) for c in ("electronics", "fashion", "jewelry", "toys")]
    )
    samples = np.where(sample_friendly, np.where(world.m_rating >= 3.5, 0.35, -0.1), 0.04)
    fulfilment = np.where(world.m_ships <= 3.0, 0.25, 0.02) - 0.03
    return {
        "commission_to_category_median": to_median,
        "matched_creator_recruitment": recruitment,
        "free_samples": samples,
        "fulfilment_fix": fulfilment,
    }


def trait_patterns(world: World, traits: str = "planted") -> dict[str, dict[str, np.ndarray]]:
    """The observable lift pattern of every strategy, per entity kind."""
    if traits == "planted":
        return {"creator": creator_lifts(world), "merchant": merchant_lifts(world)}
    return {"creator": creator_lifts_alternate(world), "merchant": merchant_lifts_alternate(world)}


# Bounds of a planted lift in each channel's unit (see sim.worlds): relative change of conversion, content
# volume or impressions, order value; reduction of the cancel + refund rate; change of the lifecycle
# clock's speed, which runs at 1 / (1 + lift).
LIFT_BOUNDS: dict[str, tuple[float, float]] = {
    "conversion": (-0.8, 4.0),
    "traffic": (-0.8, 4.0),
    "order_value": (-0.8, 4.0),
    "refunds": (-0.7, 0.9),
    "retention": (-0.6, 9.0),
}
SIZE_FLOOR_QUANTILE = 0.05  # concave and flat effects: smaller recent sales count as this quantile's
LATENT_SHARE = 0.75  # latent drivers: share of the lift's variance from a trait the data does not show
SEGMENT_QUANTILE = 0.25  # sign 'segment': at least this least receptive share of entities is harmed
SIZE_EXPONENT = {"proportional": 1.0, "concave": 0.5, "flat": 0.0}  # uplift grows as size ** exponent


def size_factor(size: np.ndarray, exponent: float) -> np.ndarray:
    """``(size / median size) ** (exponent - 1)``: what a relative lift is multiplied by so that the
    uplift grows as ``size ** exponent``. Medians and floors are over entities that sold anything; sizes
    below the floor (the 5th percentile) count as the floor, so a new entity's lift stays finite."""
    positive = size[size > 0]
    if len(positive) == 0:
        return np.ones(len(size))
    floor, median = np.quantile(positive, SIZE_FLOOR_QUANTILE), np.median(positive)
    return (np.maximum(size, floor) / median) ** (exponent - 1.0)


@dataclass(frozen=True)
class PlantedEffect:
    """One strategy's true effect on every entity of its kind, in its channel's unit (see LIFT_BOUNDS)."""

    channel: str
    scaling: str
    base: np.ndarray  # the lift of every entity as if it had the median size
    latent: np.ndarray | None  # the latent trait behind it (latent drivers only)

    def lift(self, size: np.ndarray | None = None) -> np.ndarray:
        """The planted lift of every entity. Concave and flat effects are sized against ``size``, each
        entity's expected GMV over 28 days shortly before the effect starts (the last 28 days of data for
        the end-of-data truth); proportional ones ignore it."""
        lift = self.base
        if self.scaling != "proportional":
            if size is None:
                raise ValueError(f"a {self.scaling} effect needs the entities' recent GMV")
            lift = lift * size_factor(size, SIZE_EXPONENT[self.scaling])
        return np.clip(lift, *LIFT_BOUNDS[self.channel])


def planted_effects(spec: EffectWorld, world: World, seed: int) -> dict[str, dict[str, PlantedEffect]]:
    """Every strategy's planted effect for every entity, as the effect world declares it.

    The observable trait pattern (`trait_patterns`) is mixed with a latent trait (driver ``latent``) or
    replaced by its mean (``none``), shifted so that nobody loses (sign ``none``) or the least receptive
    quarter clearly loses (``segment``) and multiplied by the magnitude; `PlantedEffect.lift` then sizes
    concave and flat effects against the entity's recent GMV.
    """
    patterns = trait_patterns(world, spec.traits)
    out: dict[str, dict[str, PlantedEffect]] = {}
    for kind_index, (kind, strategies) in enumerate(
        (("creator", CREATOR_STRATEGIES), ("merchant", MERCHANT_STRATEGIES))
    ):
        out[kind] = {}
        for k, strategy in enumerate(strategies):
            effect = spec.effect(strategy)
            pattern = patterns[kind][strategy].astype(float)
            latent = None
            if effect.driver == "observable":
                x = pattern
            elif effect.driver == "latent":
                rng = np.random.default_rng(
                    np.random.SeedSequence([seed, 31, zlib.crc32(spec.name.encode()), kind_index, k])
                )
                latent = rng.standard_normal(len(pattern))
                mean, sd = pattern.mean(), pattern.std()
                observed = (pattern - mean) / sd if sd > 0 else np.zeros_like(pattern)
                x = mean + sd * (np.sqrt(1 - LATENT_SHARE) * observed + np.sqrt(LATENT_SHARE) * latent)
            else:
                x = np.full(len(pattern), pattern.mean())
            if effect.sign == "none":
                x = np.maximum(x, 0.0)
            elif effect.sign == "segment":
                x = x - (np.quantile(x, SEGMENT_QUANTILE, method="higher") + 0.5 * x.std())
            out[kind][strategy] = PlantedEffect(effect.channel, effect.scaling, effect.scale * x, latent)
    return out


# ---------------------------------------------------------------------------------------------------
# Interventions
# ---------------------------------------------------------------------------------------------------


def _observable_signal(world: World, kind: str, strategy: str) -> np.ndarray:
    """What an operations team would target on: a noisy, observable proxy of the effect (confounding)."""
    if kind == "creator":
        signals = {
            "live_coaching": (world.c_live < 0.12).astype(float),
            "commission_boost": (tier_of(world.c_followers) <= 1).astype(float),
            "matched_product_showcase": (np.bincount(world.s_creator, minlength=world.scale.creators) < 9)
            * 1.0,
            "posting_schedule_advice": 1.0 - world.c_regularity,
        }
    else:
        catalog = np.bincount(world.p_merchant, minlength=world.scale.merchants)
        signals = {
            "commission_to_category_median": (world.m_commission < np.median(world.m_commission)) * 1.0,
            "matched_creator_recruitment": (catalog <= np.median(catalog)) * 1.0,
            "free_samples": (world.m_rating >= 4.0) * 1.0,
            "fulfilment_fix": np.minimum(world.m_ships / 10.0, 1.0),
        }
    return signals[strategy]


def _targeting_signal(world: World, kind: str, strategy: str, traits: str) -> np.ndarray:
    """The observable signal a targeted rollout follows: the demo's proxies for the planted traits, the
    pattern itself (scaled to [0, 1]) for the alternate ones."""
    if traits == "planted":
        return _observable_signal(world, kind, strategy)
    pattern = trait_patterns(world, traits)[kind][strategy]
    span = pattern.max() - pattern.min()
    return (pattern - pattern.min()) / span if span > 0 else np.zeros_like(pattern)


def assign_interventions(world: World, seed: int, spec: EffectWorld | None = None) -> pl.DataFrame:
    """Randomized pilots and targeted rollouts for creators and merchants.

    Each enrolled entity gets one strategy of its kind per wave; waves are 9 weeks apart so that a
    28-day outcome window never overlaps the next wave's. The effect world sets the share of entities
    enrolled in the pilots and how strongly the rollout targets size and the observable signal.
    """
    spec = spec or effect_world(DEFAULT_WORLD)
    size_weight, signal_weight = 0.9 * spec.target_on_size, 1.6 * spec.target_on_signal
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    frames = []
    for kind, strategies, n, join, churn, size in (
        (
            "creator",
            CREATOR_STRATEGIES,
            world.scale.creators,
            world.c_join,
            world.c_churn,
            np.log(world.c_followers),
        ),
        (
            "merchant",
            MERCHANT_STRATEGIES,
            world.scale.merchants,
            world.m_join,
            world.m_churn,
            np.log(np.bincount(world.p_merchant, minlength=world.scale.merchants) + 1.0),
        ),
    ):
        size_z = (size - size.mean()) / (size.std() + 1e-9)
        # every entity may join each randomized pilot wave (with probability PARTICIPATION)
        waves: list[tuple[str, np.ndarray]] = [
            ("randomized", rng.integers(7 * w0, 7 * w1, n)) for w0, w1 in PILOT_WAVES
        ]
        waves.append(("targeted", rng.integers(7 * ROLLOUT_WEEKS[0], 7 * ROLLOUT_WEEKS[1], n)))
        for assignment, day in waves:
            share = spec.pilot_share if assignment == "randomized" else PARTICIPATION
            eligible = (day >= 0) & (join <= day - 28) & (churn > day + 7) & (rng.random(n) < share)
            strategy = rng.integers(0, len(strategies), n)
            if assignment == "randomized":
                p_treat = np.full(n, 0.5)
            else:
                signal = np.zeros(n)
                for k, name in enumerate(strategies):
                    signal = np.where(
                        strategy == k, _targeting_signal(world, kind, name, spec.traits), signal
                    )
                p_treat = np.clip(_sigmoid(-0.9 + size_weight * size_z + signal_weight * signal), 0.1, 0.9)
            treated = rng.random(n) < p_treat
            idx = np.flatnonzero(eligible)
            frames.append(
                pl.DataFrame(
                    {
                        "entity_kind": kind,
                        "entity_index": idx.astype(np.int64),
                        "strategy": np.array(strategies)[strategy[idx]],
                        "assigned_day": day[idx].astype(np.int64),
                        "arm": np.where(treated[idx], "treatment", "control"),
                        "assignment": assignment,
                        "propensity": p_treat[idx],
                    }
                )
            )
    out = pl.concat(frames).sort("assigned_day", "entity_kind", "entity_index")
    return out.with_columns(
        intervention_id=pl.format("i{}", (pl.int_range(pl.len()) + 1).cast(pl.String).str.zfill(6))
    )


# ---------------------------------------------------------------------------------------------------
# Dimension tables
# ---------------------------------------------------------------------------------------------------


def _ids(prefix: str, n: int, width: int) -> pl.Series:
    return pl.select(
        pl.format(prefix + "{}", (pl.int_range(n) + 1).cast(pl.String).str.zfill(width))
    ).to_series()


def _day_to_date(start: date, days: np.ndarray, nullable_after: int | None = None) -> pl.Series:
    values = pl.Series("d", days.astype(np.int64)) + (start - date(1970, 1, 1)).days
    series = values.cast(pl.Int32).cast(pl.Date)
    if nullable_after is not None:
        series = pl.select(
            pl.when(values < (start - date(1970, 1, 1)).days + nullable_after).then(series)
        ).to_series()
    return series


def creator_ids(n: int) -> pl.Series:
    return _ids("c", n, 6)


def merchant_ids(n: int) -> pl.Series:
    return _ids("m", n, 5)


def product_ids(n: int) -> pl.Series:
    return _ids("p", n, 7)


def dimension_tables(world: World, interventions: pl.DataFrame, seed: int) -> dict[str, pl.DataFrame]:
    """The creators, merchants, products, showcase and interventions tables."""
    scale = world.scale
    start = scale.start_date
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    cats = np.array(CATEGORY_NAMES)
    regions = np.array(REGION_NAMES)
    cids, mids, pids = creator_ids(scale.creators), merchant_ids(scale.merchants), product_ids(scale.products)

    handles_a = np.array(
        ["glow", "daily", "thrifty", "cozy", "urban", "happy", "real", "tiny", "bold", "sunny"]
    )
    handles_b = np.array(
        ["finds", "haul", "picks", "vibes", "life", "corner", "club", "studio", "lab", "diary"]
    )
    hashtag_of = np.array([CATEGORIES[c]["hashtags"][0] for c in CATEGORY_NAMES])
    creators = pl.DataFrame(
        {
            "creator_id": cids,
            "handle": np.char.add(
                np.char.add(
                    handles_a[rng.integers(0, 10, scale.creators)],
                    handles_b[rng.integers(0, 10, scale.creators)],
                ),
                np.arange(1, scale.creators + 1).astype(str),
            ),
            "joined_on": _day_to_date(start, world.c_join),
            "region": regions[world.c_region],
            "followers": world.c_followers,
            "primary_category": cats[world.c_category],
            "bio": np.char.add(
                np.char.add(
                    np.char.add(cats[world.c_category], " lover sharing honest reviews | "),
                    regions[world.c_region],
                ),
                np.char.add(" | ", hashtag_of[world.c_category]),
            ),
        }
    ).with_columns(handle=pl.format("@{}", "handle"))
    name_a = np.array(
        ["North", "Blue", "Golden", "Urban", "Pure", "Little", "Bright", "Wild", "Silver", "Maple"]
    )
    name_b = np.array(
        ["Goods", "Co", "Supply", "Studio", "House", "Market", "Labs", "Trading", "Brands", "Works"]
    )
    merchants = pl.DataFrame(
        {
            "merchant_id": mids,
            "name": np.char.add(
                np.char.add(name_a[rng.integers(0, 10, scale.merchants)], " "),
                np.char.add(
                    np.char.add(cats[world.m_category], " "), name_b[rng.integers(0, 10, scale.merchants)]
                ),
            ),
            "joined_on": _day_to_date(start, world.m_join),
            "region": regions[world.m_region],
            "category": cats[world.m_category],
            "rating": world.m_rating,
            "ships_in_days": world.m_ships,
        }
    )
    products = pl.DataFrame(
        {
            "product_id": pids,
            "merchant_id": mids.gather(world.p_merchant),
            "title": world.p_title,
            "category": cats[world.p_category],
            "price": world.p_price,
            "commission_rate": world.p_commission,
            "listed_on": _day_to_date(start, world.p_listed),
        }
    )
    showcase = pl.DataFrame(
        {
            "creator_id": cids.gather(world.s_creator),
            "product_id": pids.gather(world.s_product),
            "added_on": _day_to_date(start, world.s_added),
            "removed_on": _day_to_date(start, world.s_removed, nullable_after=scale.days),
        }
    )
    entity_id = (
        pl.when(pl.col("entity_kind") == "creator")
        .then(pl.format("c{}", (pl.col("entity_index") + 1).cast(pl.String).str.zfill(6)))
        .otherwise(pl.format("m{}", (pl.col("entity_index") + 1).cast(pl.String).str.zfill(5)))
    )
    intervention_table = interventions.select(
        "intervention_id",
        "entity_kind",
        entity_id=entity_id,
        strategy="strategy",
        assigned_on=pl.lit(start) + pl.duration(days="assigned_day"),
        arm="arm",
        assignment="assignment",
    ).with_columns(pl.col("assigned_on").cast(pl.Date))
    tables = {
        "creators": creators,
        "merchants": merchants,
        "products": products,
        "showcase": showcase,
        "interventions": intervention_table,
    }
    return {
        name: frame.select(TABLES[name].columns).cast(TABLES[name].schema) for name, frame in tables.items()
    }


# ---------------------------------------------------------------------------------------------------
# Facts: content, engagement, orders — one week at a time
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekFacts:
    """One simulated week of fact rows, plus the expected GMV used to write the truth."""

    content: pl.DataFrame
    engagement: pl.DataFrame
    orders: pl.DataFrame
    expected: pl.DataFrame  # entity_kind, entity_index, day and the EXPECTED_COLUMNS


EXPECTED_COLUMNS = ("all_untreated", "gmv_untreated", "net_untreated", "gmv_treated", "net_treated")
"""Expected values per entity and day, from the simulator's probabilities (not from drawn orders):
the value of all orders (cancelled ones included), GMV (orders not cancelled, refunds included) and net
GMV (orders neither cancelled nor refunded), without the entity's own treatment; and GMV and net GMV
with the entity's intervention of that day applied (the actual treatment, or the one a control was
denied). Outside intervention windows treated equals untreated. The other kind's treatments stay as
they were."""

CHANNEL_CODE = {channel: code for code, channel in enumerate(CHANNELS)}
CONTENT_CHANNELS = ("traffic", "retention")  # creator effects that change how much content is published


@dataclass(frozen=True)
class TreatmentWindows:
    """The 28-day windows of every intervention of one entity kind (both arms), sorted by entity and start
    day, each with its strategy's channel and planted lift for that entity.

    An entity has at most one window on any day: waves are further apart than a window is long. The lifts
    of concave and flat effects are unknown (NaN) until `size_windows` sizes them against the entity's
    recent GMV, a week before the week the window starts in (`iter_weeks`).
    """

    intervention_id: np.ndarray
    entity: np.ndarray
    start: np.ndarray
    strategy: np.ndarray
    channel: np.ndarray  # code in CHANNEL_CODE
    lift: np.ndarray  # filled in place by size_windows
    treated: np.ndarray  # True: treatment arm (the effect happens); False: control (it is hypothetical)
    effects: dict[str, PlantedEffect]

    @classmethod
    def of(
        cls, interventions: pl.DataFrame, effects: dict[str, dict[str, PlantedEffect]], kind: str
    ) -> TreatmentWindows:
        rows = interventions.filter(pl.col("entity_kind") == kind).sort("entity_index", "assigned_day")
        entity = rows["entity_index"].to_numpy().astype(np.int64)
        start = rows["assigned_day"].to_numpy().astype(np.int64)
        strategy = rows["strategy"].to_numpy()
        lift, channel = np.full(len(entity), np.nan), np.zeros(len(entity), dtype=np.int64)
        for name, effect in effects[kind].items():
            on = strategy == name
            channel[on] = CHANNEL_CODE[effect.channel]
            if effect.scaling == "proportional":
                lift[on] = effect.lift()[entity[on]]
        if ((entity[1:] == entity[:-1]) & (start[1:] < start[:-1] + TRUTH_DAYS)).any():
            raise ValueError(f"two {kind} intervention windows of one entity overlap")
        treated = (rows["arm"] == "treatment").to_numpy()
        return cls(
            rows["intervention_id"].to_numpy(), entity, start, strategy, channel, lift, treated, effects[kind]
        )

    def unsized(self, day_lo: int, day_hi: int) -> bool:
        """Whether a window starting in [day_lo, day_hi) still waits for its size."""
        return bool(np.isnan(self.lift[(self.start >= day_lo) & (self.start < day_hi)]).any())

    def size_windows(self, day_lo: int, day_hi: int, recent_gmv: np.ndarray) -> None:
        """Set the lifts of the concave and flat effects whose windows start in [day_lo, day_hi), sized
        against ``recent_gmv`` (every entity's expected untreated GMV over the 28 days before)."""
        starting = (self.start >= day_lo) & (self.start < day_hi) & np.isnan(self.lift)
        for name, effect in self.effects.items():
            on = starting & (self.strategy == name)
            if on.any():
                self.lift[on] = effect.lift(recent_gmv)[self.entity[on]]

    def planted(self) -> pl.DataFrame:
        """intervention_id and the planted lift of its window."""
        return pl.DataFrame(
            {"intervention_id": self.intervention_id, "planted_lift": self.lift},
            schema={"intervention_id": pl.String, "planted_lift": pl.Float64},
        )

    def uses(self, *channels: str) -> bool:
        """Whether any window acts through one of these channels."""
        return bool(np.isin(self.channel, [CHANNEL_CODE[c] for c in channels]).any())

    def latest(self, entity: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Index of each entity's last window starting on or before ``day`` (-1: none)."""
        if len(self.entity) == 0:
            return np.full(len(entity), -1)
        span = 1_000_000  # > any day number: (entity, day) pairs sort as one integer key
        pos = (
            np.searchsorted(self.entity * span + self.start, entity.astype(np.int64) * span + day, "right")
            - 1
        )
        return np.where((pos >= 0) & (self.entity[np.maximum(pos, 0)] == entity), pos, -1)

    def active(self, entity: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Index of the window covering each (entity, day), -1 where none does."""
        window = self.latest(entity, day)
        found = np.maximum(window, 0)
        if len(self.entity) == 0:
            return window
        return np.where((window >= 0) & (day < self.start[found] + TRUTH_DAYS), window, -1)

    def in_treatment_arm(self, window: np.ndarray) -> np.ndarray:
        """Whether each row's window exists and belongs to the treatment arm."""
        if len(self.entity) == 0:
            return np.zeros(len(window), dtype=bool)
        return (window >= 0) & self.treated[np.maximum(window, 0)]

    def acts_through(self, window: np.ndarray, channel: str) -> np.ndarray:
        """Whether each row's window exists and acts through ``channel``."""
        if len(self.entity) == 0:
            return np.zeros(len(window), dtype=bool)
        return (window >= 0) & (self.channel[np.maximum(window, 0)] == CHANNEL_CODE[channel])

    def factors(self, window: np.ndarray, channel: str, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the multiplier ``1 + sign * lift`` of a window acting through ``channel`` (1 elsewhere):
        as if treated, and as it actually happened (only the treatment arm is treated)."""
        on = self.acts_through(window, channel)
        if not on.any():
            return np.ones(len(window)), np.ones(len(window))
        found = np.maximum(window, 0)
        treated = np.where(on, 1.0 + sign * self.lift[found], 1.0)
        return treated, np.where(on & self.treated[found], treated, 1.0)

    def slowed_clock(self, window: np.ndarray, day: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose window acts through retention, and the lifecycle clock as if treated: it runs at
        ``1 / (1 + lift)`` from the window's start (the plain day elsewhere)."""
        on = self.acts_through(window, "retention")
        day = np.broadcast_to(np.asarray(day, dtype=float), window.shape)
        if not on.any():
            return on, day
        found = np.maximum(window, 0)
        start = self.start[found]
        return on, np.where(on, start + (day - start) / (1.0 + self.lift[found]), day)


@dataclass(frozen=True)
class ContentLevels:
    """Creators' publishing levels in one week when some effects act on content volume.

    Content is drawn at the ``peak`` level (the larger of untreated and treated) and each piece is
    published with probability ``actual / peak``. In the expected values, a published piece counts once
    in the world as it happened and ``other / actual`` times in the other world (with or without the
    treatment); a piece that could not be published counts ``other / peak`` times. Exact in expectation,
    also for content that only one of the two worlds would have.
    """

    untreated: np.ndarray  # (creators,) the activity level
    treated: np.ndarray  # (creators, 7) per weekday, with the creator's window applied
    actual: np.ndarray  # (creators, 7)
    peak: np.ndarray  # (creators,)


def content_levels(world: World, windows: TreatmentWindows, day0: int, activity: np.ndarray) -> ContentLevels:
    """Publishing levels of the week starting on ``day0``: a traffic effect multiplies the level on the
    days its window covers; a retention effect slows the lifecycle clock at mid-week."""
    creators = np.arange(world.scale.creators)
    mid = day0 + 3
    window = windows.latest(creators, np.full(len(creators), day0 + 6))
    found = np.maximum(window, 0)
    start = windows.start[found] if len(windows.entity) else np.zeros(len(creators), dtype=np.int64)
    in_week = (window >= 0) & (start + TRUTH_DAYS > day0)
    window = np.where(in_week, window, -1)
    covers_mid = in_week & (mid >= start) & (mid < start + TRUTH_DAYS)
    retained, clock = windows.slowed_clock(np.where(covers_mid, window, -1), mid)
    level = np.where(retained, creator_activity(world, mid, clock), activity)
    days = day0 + np.arange(7)
    traffic = (
        windows.acts_through(window, "traffic")[:, None]
        & (days[None, :] >= start[:, None])
        & (days[None, :] < start[:, None] + TRUTH_DAYS)
    )
    lift = windows.lift[found] if len(windows.entity) else np.zeros(len(creators))
    treated = level[:, None] * np.where(traffic, 1.0 + lift[:, None], 1.0)
    actual = np.where(windows.in_treatment_arm(window)[:, None], treated, activity[:, None])
    return ContentLevels(activity, treated, actual, np.maximum(activity, treated.max(axis=1)))


def simulate_week(
    world: World,
    week: int,
    interventions: pl.DataFrame,
    windows: dict[str, TreatmentWindows],
    seed: int,
    content_offset: int,
    order_offset: int,
) -> WeekFacts:
    """Content published in ``week`` and the engagement and orders it brings (up to 3 days later)."""
    scale = world.scale
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1000 + week]))
    day0 = 7 * week
    start = scale.start_date
    mid_week = day0 + 3
    activity = creator_activity(world, mid_week)
    creator_windows, merchant_windows = windows["creator"], windows["merchant"]

    # Content ----------------------------------------------------------------------------------------
    levels = (
        content_levels(world, creator_windows, day0, activity)
        if creator_windows.uses(*CONTENT_CHANNELS)
        else None
    )
    level = activity if levels is None else levels.peak
    burst = rng.gamma(2.0 + 8.0 * world.c_regularity, 1.0 / (2.0 + 8.0 * world.c_regularity))
    n_videos = rng.poisson(scale.content_rate * world.c_post_rate * (1 - world.c_live) * level * burst)
    n_lives = rng.poisson(scale.content_rate * 0.6 * world.c_post_rate * world.c_live * level * burst)
    creator = np.concatenate(
        [np.repeat(np.arange(scale.creators), n_videos), np.repeat(np.arange(scale.creators), n_lives)]
    )
    is_live = np.concatenate([np.zeros(n_videos.sum(), bool), np.ones(n_lives.sum(), bool)])
    n_content = len(creator)
    weekday = rng.choice(7, n_content, p=WEEKDAY_POSTING)
    pub_day = day0 + weekday
    # whether each piece is published, and its weight in the expected values without and with the
    # creator's treatment and as it happened (see ContentLevels); every piece is published, with weight 1,
    # when no effect acts on content
    w_untreated: np.ndarray | float = 1.0
    w_treated: np.ndarray | float = 1.0
    w_actual: np.ndarray | float = 1.0
    published = np.ones(n_content, dtype=bool)
    if levels is not None:
        peak = levels.peak[creator]
        keep = levels.actual[creator, weekday] / peak
        coin = np.random.default_rng(np.random.SeedSequence([seed, 3000 + week])).random(n_content)
        published = coin < keep
        # published pieces stand for the world as it happened: a piece's weight in another world is the
        # ratio of the two worlds' levels (unbiased, and exact for what was published); pieces that
        # could not be published (level 0 as it happened) count with their level in the other world
        possible = keep > 0
        w_actual = published.astype(float)
        w_untreated, w_treated = (
            np.where(possible, published * level / np.where(possible, keep, 1.0), level)
            for level in (levels.untreated[creator] / peak, levels.treated[creator, weekday] / peak)
        )
    hour = np.where(is_live, rng.integers(18, 23, n_content), rng.integers(7, 23, n_content))
    seconds = hour * 3600 + rng.integers(0, 3600, n_content)
    duration = np.where(
        is_live, rng.integers(1800, 10800, n_content), np.clip(rng.lognormal(3.7, 0.6, n_content), 8, 600)
    )
    drifted = pub_day >= world.c_drift[creator]
    caption_cat = np.where(
        drifted & (rng.random(n_content) < 0.75), world.c_second[creator], world.c_category[creator]
    )

    # Products featured: from the creator's showcase as it stood on the publishing day
    sc_key = world.s_creator.astype(np.int64) * 1_000_000 + world.s_added + 100_000
    first = np.searchsorted(world.s_creator, creator, side="left")
    last = np.searchsorted(sc_key, creator.astype(np.int64) * 1_000_000 + pub_day + 100_000, side="right")
    available = last - first
    n_featured = np.where(is_live, rng.integers(3, 7, n_content), rng.integers(1, 3, n_content))
    n_featured = np.where(available > 0, n_featured, 0)
    cf_content = np.repeat(np.arange(n_content), n_featured)
    new_items = np.minimum(world.s_new_after_drift[creator[cf_content]], available[cf_content])
    prefer_new = drifted[cf_content] & (new_items > 0) & (rng.random(len(cf_content)) < 0.7)
    lo = np.where(prefer_new, last[cf_content] - new_items, first[cf_content])
    pick = lo + (rng.random(len(cf_content)) * (last[cf_content] - lo)).astype(np.int64)
    product = world.s_product[pick]
    still_listed = world.s_removed[pick] > pub_day[cf_content]
    pair = np.unique(cf_content.astype(np.int64)[still_listed] * (scale.products + 1) + product[still_listed])
    cf_content, product = pair // (scale.products + 1), pair % (scale.products + 1)
    n_in_content = np.bincount(cf_content, minlength=n_content)

    # Engagement: videos reach over 4 days, lives on the day --------------------------------------------
    n_days = np.where(is_live[cf_content], 1, len(VIDEO_DECAY))
    row_pair = np.repeat(np.arange(len(cf_content)), n_days)
    offset = np.arange(len(row_pair)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    row_content = cf_content[row_pair]
    row_product = product[row_pair]
    row_creator = creator[row_content]
    row_merchant = world.p_merchant[row_product]
    row_day = pub_day[row_content] + offset
    inside = row_day < scale.days
    row_pair, offset, row_content, row_product, row_creator, row_merchant, row_day = (
        a[inside] for a in (row_pair, offset, row_content, row_product, row_creator, row_merchant, row_day)
    )
    c_window = creator_windows.active(row_creator, row_day)
    m_window = merchant_windows.active(row_merchant, row_day)
    row_live = is_live[row_content]
    weekday_of = (np.array([start.weekday()]) + row_day) % 7
    sale = np.isin(row_day, [(d - start).days for d in MEGA_SALE_DAYS])
    reach = (
        np.where(row_live, 0.5, 1.5)
        * VIDEO_DECAY[offset]
        * WEEKDAY_TRAFFIC[weekday_of]
        * np.where(sale, 1.6, 1.0)
    )
    imp_mean = 1.5 * world.c_followers[row_creator] ** 0.8 * reach / np.sqrt(n_in_content[row_content])
    m_traffic_treated, m_traffic = merchant_windows.factors(m_window, "traffic")
    impressions = rng.poisson(imp_mean * m_traffic * rng.lognormal(-0.08, 0.4, len(row_day)))
    views = rng.binomial(impressions, np.where(row_live, 0.15, 0.38))
    ctr = np.clip(
        0.022
        * world.p_appeal[row_product] ** 0.7
        * np.where(row_live, 1.8, 1.0)
        * world.c_skill[row_creator] ** 0.3,
        0,
        0.6,
    )
    clicks = rng.binomial(views, ctr)
    add_to_carts = rng.binomial(clicks, 0.32)

    price = world.p_price[row_product]
    fit = np.exp(-0.5 * (np.log(price / world.c_price_pref[row_creator]) / 0.9) ** 2)
    region_spend = np.array([REGIONS[r]["spend"] for r in REGION_NAMES])[world.c_region[row_creator]]
    quality = world.m_quality[row_merchant]
    base_p = (  # conversion before the merchant's selling level
        0.055
        * world.c_skill[row_creator]
        * world.p_appeal[row_product] ** 0.3
        * (0.3 + 0.7 * fit)
        * region_spend
        * np.where(row_live, 1.5, 1.0)
        * np.where(sale, 1.8, 1.0)
        * (0.6 + 0.6 * quality)
    )
    m_level = _merchant_activity_rows(world, row_merchant, row_day)
    m_retained, m_clock = merchant_windows.slowed_clock(m_window, row_day)
    m_level_treated = np.where(
        m_retained, _merchant_activity_rows(world, row_merchant, row_day, m_clock), m_level
    )
    m_level_actual = np.where(
        m_retained & merchant_windows.in_treatment_arm(m_window), m_level_treated, m_level
    )
    c_conv_treated, c_conv = creator_windows.factors(c_window, "conversion")
    m_conv_treated, m_conv = merchant_windows.factors(m_window, "conversion")
    p_order = np.clip(base_p * m_level_actual * c_conv * m_conv, 0.0, 1.0)
    n_orders = rng.binomial(clicks, p_order)
    shown = published[row_content]
    if levels is not None:
        n_orders = np.where(shown, n_orders, 0)

    p_cancel = 0.015 + 0.05 * (1 - quality)
    cat_refund = np.array([CATEGORIES[c]["refund"] for c in CATEGORY_NAMES])[world.p_category[row_product]]
    p_refund = cat_refund + 0.1 * (1 - quality) + 0.02 * (world.m_ships[row_merchant] > 7)
    c_value_treated, c_value = creator_windows.factors(c_window, "order_value")
    m_value_treated, m_value = merchant_windows.factors(m_window, "order_value")
    c_bad_treated, c_bad = creator_windows.factors(c_window, "refunds", sign=-1.0)
    m_bad_treated, m_bad = merchant_windows.factors(m_window, "refunds", sign=-1.0)
    cw = (w_untreated, w_treated, w_actual)
    if isinstance(w_untreated, np.ndarray):
        cw = tuple(np.asarray(w)[row_content] for w in cw)  # type: ignore[assignment]
    per_click = clicks * price * EXPECTED_QUANTITY

    def expected(
        content: np.ndarray | float,
        c_conversion: np.ndarray,
        c_order_value: np.ndarray,
        c_bad_rate: np.ndarray,
        m_impressions: np.ndarray,
        m_conversion: np.ndarray,
        m_order_value: np.ndarray,
        m_bad_rate: np.ndarray,
        m_selling: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expected value of all orders, GMV and net GMV of each row in one state of the treatments."""
        p = np.clip(base_p * m_selling * c_conversion * m_conversion, 0.0, 1.0)
        bad = c_bad_rate * m_bad_rate
        cancel, refund = p_cancel * bad, p_refund * bad
        factor = p * content * (m_impressions / m_traffic) * c_order_value * m_order_value
        return (
            per_click * factor,
            per_click * (1 - cancel) * factor,
            per_click * (1 - cancel - refund) * factor,
        )

    one = np.ones(len(row_day))
    c_untreated = expected(cw[0], one, one, one, m_traffic, m_conv, m_value, m_bad, m_level_actual)
    c_treated = expected(
        cw[1],
        c_conv_treated,
        c_value_treated,
        c_bad_treated,
        m_traffic,
        m_conv,
        m_value,
        m_bad,
        m_level_actual,
    )
    m_untreated = expected(cw[2], c_conv, c_value, c_bad, one, one, one, one, m_level)
    m_treated = expected(
        cw[2],
        c_conv,
        c_value,
        c_bad,
        m_traffic_treated,
        m_conv_treated,
        m_value_treated,
        m_bad_treated,
        m_level_treated,
    )
    expected_frame = (
        pl.concat(
            [
                pl.DataFrame(
                    {
                        "entity_kind": kind,
                        "entity_index": entity,
                        "day": row_day,
                        **dict(zip(EXPECTED_COLUMNS, (*untreated, *treated[1:]), strict=True)),
                    }
                )
                for kind, entity, untreated, treated in (
                    ("creator", row_creator, c_untreated, c_treated),
                    ("merchant", row_merchant, m_untreated, m_treated),
                )
            ]
        )
        .group_by("entity_kind", "entity_index", "day")
        .agg(pl.col(EXPECTED_COLUMNS).sum())
    )

    # Orders -----------------------------------------------------------------------------------------
    o_row = np.repeat(np.arange(len(row_day)), n_orders)
    n_o = len(o_row)
    o_price = price[o_row]
    if creator_windows.uses("order_value") or merchant_windows.uses("order_value"):
        # bigger baskets where order value rises (E[quantity] = 1.25 x factor), a lower price where it falls
        value_factor = (c_value * m_value)[o_row]
        basket = np.where(
            value_factor >= 1.0, EXPECTED_QUANTITY * value_factor - 1.0, EXPECTED_QUANTITY - 1.0
        )
        quantity = 1 + rng.poisson(basket)
        o_price = o_price * np.minimum(value_factor, 1.0)
    else:
        quantity = 1 + rng.poisson(0.25, n_o)
    gmv = np.round(o_price * quantity, 2)
    o_creator = row_creator[o_row]
    commission_rate = world.p_commission[row_product[o_row]]
    # a commission boost pays the creator 5 points more while it runs: the platform's cost
    boosted = _commission_boosted(interventions, o_creator, row_day[o_row])
    commission = np.round(gmv * (commission_rate + 0.05 * boosted), 2)
    u = rng.random(n_o)
    o_bad = (c_bad * m_bad)[o_row]
    o_cancel, o_refund = p_cancel[o_row] * o_bad, p_refund[o_row] * o_bad
    status = np.where(u < o_cancel, "cancelled", np.where(u < o_cancel + o_refund, "refunded", "completed"))
    o_live = row_live[o_row]
    o_content = row_content[o_row]
    o_seconds = np.where(
        o_live & (offset[o_row] == 0),
        np.minimum(seconds[o_content] + (rng.random(n_o) * duration[o_content]).astype(np.int64), 86_399),
        rng.integers(6 * 3600, 86_400, n_o),
    )
    storefront = rng.random(n_o) < 0.07  # orders through the creator's showcase, not a piece of content
    buyer = (scale.buyers * rng.random(n_o) ** 2.5).astype(np.int64)  # returning buyers: a skewed pool

    # only published content, numbered in publishing order, goes into the tables
    number = np.cumsum(published) - 1
    content_ids = pl.Series((np.arange(int(published.sum())) + content_offset + 1).astype(np.int64))
    content = pl.DataFrame(
        {
            "content_index": np.arange(n_content),
            "creator_index": creator,
            "kind": np.where(is_live, "live", "video"),
            "day": pub_day,
            "seconds": seconds,
            "duration_s": duration.astype(np.int64),
            "caption_cat": caption_cat,
            "style": world.p_style[world.s_product[np.minimum(first, len(world.s_product) - 1)]],
            "word": rng.integers(0, 6, n_content),
            "opener": rng.integers(0, len(CAPTION_OPENERS), n_content),
            "has_products": n_in_content > 0,
        }
    ).filter(pl.Series(published))
    facts = WeekFacts(
        content=_content_table(content, content_ids, start),
        engagement=_engagement_table(
            start,
            row_day[shown],
            content_offset + number[row_content[shown]],
            row_product[shown],
            impressions[shown],
            views[shown],
            clicks[shown],
            add_to_carts[shown],
        ),
        orders=_orders_table(
            start,
            order_offset,
            row_day[o_row],
            o_seconds,
            buyer,
            o_creator,
            np.where(storefront, -1, content_offset + number[o_content]),
            row_product[o_row],
            row_merchant[o_row],
            quantity,
            gmv,
            commission,
            status,
        ),
        expected=expected_frame,
    )
    return facts


def _merchant_activity_rows(
    world: World, merchant: np.ndarray, day: np.ndarray | int, clock: np.ndarray | None = None
) -> np.ndarray:
    """Each merchant's selling level on a day (``clock``: the lifecycle clock churn follows)."""
    ramp = np.clip((day - world.m_join[merchant] + 7) / 28.0, 0.0, 1.0)
    churn_clock = day if clock is None else clock
    return ramp * ((day >= world.m_join[merchant]) & (churn_clock < world.m_churn[merchant]))


def _commission_boosted(interventions: pl.DataFrame, creator: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether each (creator, day) falls in one of that creator's commission boosts (a creator may have
    had several, one per wave)."""
    boosts = interventions.filter(
        (pl.col("entity_kind") == "creator")
        & (pl.col("arm") == "treatment")
        & (pl.col("strategy") == "commission_boost")
    )
    out = np.zeros(len(creator), dtype=bool)
    if boosts.height == 0 or len(creator) == 0:
        return out
    span = 1_000_000  # > any day number: (creator, day) pairs sort as one integer key
    key = boosts["entity_index"].to_numpy().astype(np.int64) * span + boosts["assigned_day"].to_numpy()
    key.sort()
    # the latest boost of the same creator that started on or before the day
    pos = np.searchsorted(key, creator.astype(np.int64) * span + day, side="right") - 1
    found = np.maximum(pos, 0)
    return (pos >= 0) & (key[found] // span == creator) & (day < key[found] % span + TRUTH_DAYS)


CAPTION_OPENERS = np.array(
    [
        "Obsessed with this",
        "Honest review:",
        "You need this",
        "My new favourite",
        "Haul time!",
        "Try-on:",
        "Before vs after",
        "Don't sleep on this",
        "Live deal alert:",
        "Restock!",
    ]
)


def _content_table(content: pl.DataFrame, content_ids: pl.Series, start: date) -> pl.DataFrame:
    cat_tags = pl.Series([CATEGORIES[c]["hashtags"] for c in CATEGORY_NAMES])
    nouns = pl.Series([CATEGORIES[c]["nouns"] for c in CATEGORY_NAMES])
    style_tags = pl.Series([STYLES[s]["hashtag"] for s in STYLE_NAMES])
    epoch = (start - date(1970, 1, 1)).days
    return content.select(
        content_id=pl.format("t{}", pl.Series(content_ids).cast(pl.String).str.zfill(8)),
        creator_id=pl.format("c{}", (pl.col("creator_index") + 1).cast(pl.String).str.zfill(6)),
        kind=pl.col("kind"),
        published_at=(
            (pl.col("day") + epoch).cast(pl.Int64) * 86_400_000_000 + pl.col("seconds") * 1_000_000
        ).cast(pl.Datetime("us", "UTC")),
        duration_s=pl.col("duration_s"),
        caption=pl.concat_str(
            [
                pl.lit(CAPTION_OPENERS).get(pl.col("opener")),
                pl.lit(" "),
                pl.lit(nouns).get(pl.col("caption_cat")).list.get(pl.col("word")).str.to_lowercase(),
                pl.lit(" "),
                pl.lit(cat_tags).get(pl.col("caption_cat")).list.get(0),
                pl.lit(" "),
                pl.lit(cat_tags).get(pl.col("caption_cat")).list.get(pl.col("word") % 3 + 1),
                pl.lit(" "),
                pl.lit(style_tags).get(pl.col("style")),
                pl.when(pl.col("kind") == "live").then(pl.lit(" #live #shopnow")).otherwise(pl.lit(" #fyp")),
            ]
        ),
    )


def _engagement_table(
    start: date,
    day: np.ndarray,
    content: np.ndarray,
    product: np.ndarray,
    impressions: np.ndarray,
    views: np.ndarray,
    clicks: np.ndarray,
    add_to_carts: np.ndarray,
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": _day_to_date(start, day),
            "content_id": pl.Series(content + 1).cast(pl.String).str.zfill(8),
            "product_id": pl.Series(product + 1).cast(pl.String).str.zfill(7),
            "impressions": impressions.astype(np.int64),
            "views": views.astype(np.int64),
            "clicks": clicks.astype(np.int64),
            "add_to_carts": add_to_carts.astype(np.int64),
        }
    ).with_columns(content_id="t" + pl.col("content_id"), product_id="p" + pl.col("product_id"))


def _orders_table(
    start: date,
    order_offset: int,
    day: np.ndarray,
    seconds: np.ndarray,
    buyer: np.ndarray,
    creator: np.ndarray,
    content: np.ndarray,
    product: np.ndarray,
    merchant: np.ndarray,
    quantity: np.ndarray,
    gmv: np.ndarray,
    commission: np.ndarray,
    status: np.ndarray,
) -> pl.DataFrame:
    epoch = (start - date(1970, 1, 1)).days
    frame = pl.DataFrame(
        {
            "n": np.arange(len(day), dtype=np.int64) + order_offset + 1,
            "day": day.astype(np.int64),
            "seconds": seconds.astype(np.int64),
            "buyer": buyer + 1,
            "creator": creator.astype(np.int64) + 1,
            "content": content.astype(np.int64) + 1,
            "product": product.astype(np.int64) + 1,
            "merchant": merchant.astype(np.int64) + 1,
            "quantity": quantity.astype(np.int64),
            "gmv": gmv,
            "commission": commission,
            "status": status,
        }
    ).sort("day", "seconds", "n")
    return frame.select(
        order_id=pl.format("o{}", (pl.int_range(pl.len()) + order_offset + 1).cast(pl.String).str.zfill(9)),
        ordered_at=((pl.col("day") + epoch) * 86_400_000_000 + pl.col("seconds") * 1_000_000).cast(
            pl.Datetime("us", "UTC")
        ),
        buyer_id=pl.format("b{}", pl.col("buyer").cast(pl.String).str.zfill(7)),
        creator_id=pl.format("c{}", pl.col("creator").cast(pl.String).str.zfill(6)),
        content_id=pl.when(pl.col("content") > 0).then(
            pl.format("t{}", pl.col("content").cast(pl.String).str.zfill(8))
        ),
        product_id=pl.format("p{}", pl.col("product").cast(pl.String).str.zfill(7)),
        merchant_id=pl.format("m{}", pl.col("merchant").cast(pl.String).str.zfill(5)),
        quantity="quantity",
        gmv="gmv",
        commission="commission",
        status="status",
    )


def treatment_windows(
    interventions: pl.DataFrame, effects: dict[str, dict[str, PlantedEffect]]
) -> dict[str, TreatmentWindows]:
    """Every intervention's window, per entity kind."""
    return {kind: TreatmentWindows.of(interventions, effects, kind) for kind in ("creator", "merchant")}


def _recent_gmv(parts: list[pl.DataFrame], kind: str, n: int, day_lo: int, day_hi: int) -> np.ndarray:
    """Every entity's expected untreated GMV over [day_lo, day_hi), from the weeks simulated so far."""
    gmv = np.zeros(n)
    if parts:
        sums = (
            pl.concat(parts[-6:])  # rows of a day come from content at most 3 days older
            .filter((pl.col("entity_kind") == kind) & pl.col("day").is_between(day_lo, day_hi - 1))
            .group_by("entity_index")
            .agg(pl.col("gmv_untreated").sum())
        )
        gmv[sums["entity_index"].to_numpy()] = sums["gmv_untreated"].to_numpy()
    return gmv


def iter_weeks(
    world: World,
    interventions: pl.DataFrame,
    seed: int,
    effects: dict[str, dict[str, PlantedEffect]] | None = None,
    windows: dict[str, TreatmentWindows] | None = None,
) -> Iterator[WeekFacts]:
    """Every week's facts, in order (content and order ids run on across weeks).

    ``effects`` defaults to the demo world's; ``windows`` (built from them by default) get the lifts of
    their concave and flat effects a week before the week they start in, sized against the entity's
    expected GMV over the 28 days before that week.
    """
    effects = effects or planted_effects(effect_world(DEFAULT_WORLD), world, seed)
    windows = windows or treatment_windows(interventions, effects)
    sizes = {"creator": world.scale.creators, "merchant": world.scale.merchants}
    content_offset = order_offset = 0
    parts: list[pl.DataFrame] = []
    for week in range(world.scale.weeks):
        # a week's rows reach 3 days into the next week: size the windows of this week and the next
        day0 = 7 * week
        for kind, kind_windows in windows.items():
            if kind_windows.unsized(day0, day0 + 14):
                recent = _recent_gmv(parts, kind, sizes[kind], day0 - TRUTH_DAYS, day0)
                kind_windows.size_windows(day0, day0 + 14, recent)
        facts = simulate_week(world, week, interventions, windows, seed, content_offset, order_offset)
        content_offset += facts.content.height
        order_offset += facts.orders.height
        parts = [*parts[-5:], facts.expected]
        yield facts


# ---------------------------------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------------------------------

MULTIPLICATIVE_CHANNELS = ("conversion", "traffic", "order_value")  # GMV moves by the planted lift itself


def retention_projection(world: World, kind: str, lift: np.ndarray) -> np.ndarray:
    """Relative GMV change of starting a retention effect at the end of the data: the extra selling level
    over the next 28 days (the clock slowed by ``1 / (1 + lift)``) over the level of the last 28 days."""
    end = world.scale.days
    entities = np.arange(len(lift))

    def level(day: int, clock: np.ndarray | None = None) -> np.ndarray:
        if kind == "creator":
            return creator_activity(world, day, clock)
        return _merchant_activity_rows(world, entities, day, clock)

    past = sum((level(day) for day in range(end - TRUTH_DAYS, end)), np.zeros(len(lift)))
    gain = sum(
        (level(day, end + (day - end) / (1.0 + lift)) - level(day) for day in range(end, end + TRUTH_DAYS)),
        np.zeros(len(lift)),
    )
    return np.where(past > 0, gain / np.where(past > 0, past, 1.0), 0.0)


def _relative(uplift: pl.Expr, baseline: pl.Expr) -> pl.Expr:
    """uplift / baseline; where the baseline is 0, the planted lift for multiplicative channels, else 0."""
    fallback = pl.when(pl.col("channel").is_in(MULTIPLICATIVE_CHANNELS)).then(pl.col("planted_lift"))
    return pl.when(baseline > 0).then(uplift / baseline).otherwise(fallback.otherwise(0.0))


def truth_tables(
    world: World,
    interventions: pl.DataFrame,
    expected: pl.DataFrame,
    spec: EffectWorld | None = None,
    effects: dict[str, dict[str, PlantedEffect]] | None = None,
    windows: dict[str, TreatmentWindows] | None = None,
) -> dict[str, pl.DataFrame]:
    """The true effects: per entity–strategy pair at the end of the data, and per intervention.

    Two metrics, from the simulator's expected values: GMV (orders not cancelled, refunds included:
    ``true_lift``, ``baseline_gmv_28d``, ``true_uplift_gmv_28d``) and net GMV (orders neither cancelled nor
    refunded: ``true_lift_net``, ``baseline_net_gmv_28d``, ``true_uplift_net_gmv_28d``). ``effects`` and
    ``windows`` must be the ones the facts were simulated with (by default the demo world's, which has
    neither latent draws nor sized windows).
    """
    scale = world.scale
    spec = spec or effect_world(DEFAULT_WORLD)
    effects = effects or planted_effects(spec, world, 0)
    windows = windows or treatment_windows(interventions, effects)
    last_28 = (
        expected.filter(pl.col("day") >= scale.days - TRUTH_DAYS)
        .group_by("entity_kind", "entity_index")
        .agg(
            baseline_gmv_28d=pl.col("gmv_untreated").sum(),
            baseline_net_gmv_28d=pl.col("net_untreated").sum(),
            baseline_all_28d=pl.col("all_untreated").sum(),
        )
    )
    effect_frames = []
    for kind, n, ids in (
        ("creator", scale.creators, creator_ids),
        ("merchant", scale.merchants, merchant_ids),
    ):
        recent = np.zeros(n)
        kind_28 = last_28.filter(pl.col("entity_kind") == kind)
        recent[kind_28["entity_index"].to_numpy()] = kind_28["baseline_gmv_28d"].to_numpy()
        for strategy, effect in effects[kind].items():
            lift = effect.lift(recent)
            projection = retention_projection(world, kind, lift) if effect.channel == "retention" else None
            effect_frames.append(
                pl.DataFrame(
                    {
                        "entity_kind": kind,
                        "entity_index": np.arange(n),
                        "entity_id": ids(n),
                        "strategy": strategy,
                        "channel": effect.channel,
                        "planted_lift": lift.astype(float),
                        "latent_trait": effect.latent,
                        "retention_lift": projection,
                    },
                    schema_overrides={"latent_trait": pl.Float64, "retention_lift": pl.Float64},
                )
            )
    planted = pl.concat(effect_frames)
    channel = pl.col("channel")
    gmv, net, every = (pl.col(c) for c in ("baseline_gmv_28d", "baseline_net_gmv_28d", "baseline_all_28d"))
    refunds_uplift_gmv = pl.col("planted_lift") * (every - gmv)
    refunds_uplift_net = pl.col("planted_lift") * (every - net)
    effects_table = (
        planted.join(last_28, on=["entity_kind", "entity_index"], how="left")
        .with_columns(pl.col("^baseline_.*$").fill_null(0.0))
        .with_columns(
            true_lift=pl.when(channel.is_in(MULTIPLICATIVE_CHANNELS))
            .then(pl.col("planted_lift"))
            .when(channel == "retention")
            .then(pl.col("retention_lift"))
            .otherwise(_relative(refunds_uplift_gmv, gmv)),
            true_lift_net=pl.when(channel.is_in(MULTIPLICATIVE_CHANNELS))
            .then(pl.col("planted_lift"))
            .when(channel == "retention")
            .then(pl.col("retention_lift"))
            .otherwise(_relative(refunds_uplift_net, net)),
        )
        .with_columns(
            true_uplift_gmv_28d=pl.col("true_lift") * gmv,
            true_uplift_net_gmv_28d=pl.col("true_lift_net") * net,
        )
        .select(
            "entity_kind",
            "entity_id",
            "strategy",
            "true_lift",
            "baseline_gmv_28d",
            "true_uplift_gmv_28d",
            "true_lift_net",
            "baseline_net_gmv_28d",
            "true_uplift_net_gmv_28d",
            "channel",
            "planted_lift",
            "latent_trait",
            world=pl.lit(spec.name),
        )
    )
    window_days = interventions.select(
        "intervention_id",
        "entity_kind",
        "entity_index",
        day=pl.int_ranges("assigned_day", pl.col("assigned_day") + TRUTH_DAYS),
    ).explode("day")
    window_sums = (
        window_days.join(
            expected.with_columns(pl.col("day").cast(pl.Int64)),
            on=["entity_kind", "entity_index", "day"],
        )
        .group_by("intervention_id")
        .agg(
            baseline_gmv_28d=pl.col("gmv_untreated").sum(),
            baseline_net_gmv_28d=pl.col("net_untreated").sum(),
            true_uplift_gmv_28d=(pl.col("gmv_treated") - pl.col("gmv_untreated")).sum(),
            true_uplift_net_gmv_28d=(pl.col("net_treated") - pl.col("net_untreated")).sum(),
        )
    )
    channel_of = {
        name: effect.channel for kind_effects in effects.values() for name, effect in kind_effects.items()
    }
    per_intervention = (
        interventions.join(pl.concat(w.planted() for w in windows.values()), on="intervention_id", how="left")
        .with_columns(channel=pl.col("strategy").replace_strict(channel_of, return_dtype=pl.String))
        .join(window_sums, on="intervention_id", how="left")
        .with_columns(pl.col("^baseline_.*$", "^true_uplift_.*$").fill_null(0.0))
        .with_columns(
            true_lift=_relative(pl.col("true_uplift_gmv_28d"), pl.col("baseline_gmv_28d")),
            true_lift_net=_relative(pl.col("true_uplift_net_gmv_28d"), pl.col("baseline_net_gmv_28d")),
        )
        .select(
            "intervention_id",
            "entity_kind",
            "strategy",
            "arm",
            "assignment",
            "propensity",
            "true_lift",
            "baseline_gmv_28d",
            "true_uplift_gmv_28d",
            "true_lift_net",
            "baseline_net_gmv_28d",
            "true_uplift_net_gmv_28d",
            "channel",
            "planted_lift",
            world=pl.lit(spec.name),
        )
    )
    tiers = np.array(TIER_NAMES)
    entities = pl.concat(
        [
            pl.DataFrame(
                {
                    "entity_kind": "creator",
                    "entity_id": creator_ids(scale.creators),
                    "tier": tiers[tier_of(world.c_followers)],
                    "skill": world.c_skill,
                    "live_share": world.c_live,
                    "posting_rate": world.c_post_rate,
                    "regularity": world.c_regularity,
                    "drift_day": world.c_drift,
                    "churn_day": world.c_churn,
                    "decline_day": world.c_decline,
                    "quality": None,
                }
            ),
            pl.DataFrame(
                {
                    "entity_kind": "merchant",
                    "entity_id": merchant_ids(scale.merchants),
                    "tier": None,
                    "skill": None,
                    "live_share": None,
                    "posting_rate": None,
                    "regularity": None,
                    "drift_day": None,
                    "churn_day": world.m_churn,
                    "decline_day": None,
                    "quality": world.m_quality,
                }
            ),
        ],
        how="vertical_relaxed",
    ).with_columns(world=pl.lit(spec.name))
    return {
        "effects": effects_table,
        "interventions": per_intervention,
        "entities": entities,
        "world": world_table(spec),
    }


def world_table(spec: EffectWorld) -> pl.DataFrame:
    """The effect world's declaration, one row per strategy (written to ``truth/world.parquet``)."""
    group = world_split().get(spec.name)
    rows = []
    for kind, strategies in (("creator", CREATOR_STRATEGIES), ("merchant", MERCHANT_STRATEGIES)):
        for strategy in strategies:
            effect = spec.effect(strategy)
            rows.append(
                {
                    "world": spec.name,
                    "group": group,
                    "entity_kind": kind,
                    "strategy": strategy,
                    "channel": effect.channel,
                    "scaling": effect.scaling,
                    "driver": effect.driver,
                    "sign": effect.sign,
                    "magnitude": effect.scale,
                    "traits": spec.traits,
                    "pilot_share": spec.pilot_share,
                    "target_on_size": spec.target_on_size,
                    "target_on_signal": spec.target_on_signal,
                }
            )
    return pl.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation wrote and loaded."""

    scale: str
    seed: int
    input_dir: Path
    truth_dir: Path
    rows: dict[str, int]
    ingest_report: object | None
    world: str = DEFAULT_WORLD

    @property
    def source(self) -> str:
        """What the ingest records as the run's source."""
        world = "" if self.world == DEFAULT_WORLD else f" world={self.world}"
        return f"simulator scale={self.scale} seed={self.seed}{world}"


def write_inputs(
    scale_name: str | Scale,
    seed: int,
    out_dir: Path,
    progress: Progress | None = None,
    world: str | EffectWorld = DEFAULT_WORLD,
    incidents: bool = False,
) -> tuple[dict[str, int], dict[str, pl.DataFrame]]:
    """Generate the marketplace of one effect world and write it as input files (one Parquet per
    dimension, one per week for facts) plus the truth tables; returns row counts and the truth.

    ``incidents`` plants a merchant's refund spike, a region's GMV drop, a top creator going quiet and a
    live stream that sells nothing in the last 28 days (`sim.incidents`); the truth then has an ``incidents``
    table.

    ``scale_name`` names one of SCALES (or is a `Scale`, for tests); ``world`` names one of
    `sim.worlds.EFFECT_WORLDS` (or is an `EffectWorld`, for tests and one-off experiments).
    """
    scale = scale_name if isinstance(scale_name, Scale) else SCALES[scale_name]
    spec = world if isinstance(world, EffectWorld) else effect_world(world)
    population = build_world(scale, seed)
    interventions = assign_interventions(population, seed, spec)
    effects = planted_effects(spec, population, seed)
    dims = dimension_tables(population, interventions, seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    rows: dict[str, int] = {}
    for name, frame in dims.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
        rows[name] = frame.height
    expected_parts = []
    rows.update(content=0, engagement=0, orders=0)
    windows = treatment_windows(interventions, effects)
    held: list[WeekFacts] = []
    for week, facts in enumerate(iter_weeks(population, interventions, seed, effects, windows)):
        if incidents:
            held.append(facts)
        else:
            _write_week(out_dir, week, facts, rows)
        expected_parts.append(facts.expected)
        if progress:
            progress("simulate", week + 1, scale.weeks)
    plan = _plant(held, dims["creators"], scale, seed, out_dir, rows) if incidents else None
    expected = (
        pl.concat(expected_parts)
        .group_by("entity_kind", "entity_index", "day")
        .agg(pl.col(EXPECTED_COLUMNS).sum())
    )
    truth = truth_tables(population, interventions, expected, spec, effects, windows)
    if plan is not None:
        truth["incidents"] = plan
    return rows, truth


def _write_week(out_dir: Path, week: int, facts: WeekFacts, rows: dict[str, int]) -> None:
    for name in ("content", "engagement", "orders"):
        part: pl.DataFrame = getattr(facts, name)
        part.write_parquet(out_dir / f"{name}-w{week:02d}.parquet")
        rows[name] += part.height


def _plant(
    held: list[WeekFacts],
    creators: pl.DataFrame,
    scale: Scale,
    seed: int,
    out_dir: Path,
    rows: dict[str, int],
) -> pl.DataFrame:
    """Plant the incidents in the held weeks, write them, and return the plan (the incidents' truth)."""
    whole = Facts(
        *(pl.concat([getattr(f, name) for f in held]) for name in ("content", "engagement", "orders"))
    )
    plan = incident_plan(whole, creators, scale.end_date)
    planted = plant_incidents(whole, creators, plan, seed)
    for week, facts in enumerate(held):
        ids = {name: getattr(facts, name) for name in ("content", "engagement", "orders")}
        kept = WeekFacts(
            content=planted.content.join(
                ids["content"].select("content_id"), on="content_id", how="semi", maintain_order="left"
            ),
            engagement=planted.engagement.join(
                ids["engagement"].select("date", "content_id", "product_id"),
                on=["date", "content_id", "product_id"],
                how="semi",
                maintain_order="left",
            ),
            orders=planted.orders.join(
                ids["orders"].select("order_id"), on="order_id", how="semi", maintain_order="left"
            ),
            expected=facts.expected,
        )
        _write_week(out_dir, week, kept, rows)
    return plan


def generate(
    scale: str = "demo",
    seed: int = 42,
    settings: Settings | None = None,
    progress: Progress | None = None,
    world: str = DEFAULT_WORLD,
    incidents: bool = False,
) -> SimulationResult:
    """Generate the marketplace of one effect world, load it through ingest, and write its truth under
    ``settings.truth`` (``world.parquet`` names the world and its axes; ``incidents.parquet`` the planted
    incidents when ``incidents`` is set, see `sim.incidents`)."""
    from datastore.ingest import ingest_files  # ingest depends on the DB layer; keep import local

    settings = settings or Settings.from_env()
    result = simulate_inputs(scale, seed, settings, progress, world, incidents)
    files = sorted(result.input_dir.glob("*.parquet"))
    report = ingest_files(files, settings, source=result.source, user="simulator", progress=progress)
    return replace(result, ingest_report=report)


def simulate_inputs(
    scale: str = "demo",
    seed: int = 42,
    settings: Settings | None = None,
    progress: Progress | None = None,
    world: str = DEFAULT_WORLD,
    incidents: bool = False,
) -> SimulationResult:
    """``generate`` without the ingest: the input files under ``settings.incoming`` and the truth under
    ``settings.truth`` (the stream replay publishes the facts instead of ingesting their files)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    effect_world(world)  # an unknown world fails before anything is written
    settings = settings or Settings.from_env()
    suffix = "" if world == DEFAULT_WORLD else f"-{world}"
    suffix += "-incidents" if incidents else ""
    input_dir = settings.incoming / f"{scale}-{seed}{suffix}"
    rows, truth = write_inputs(scale, seed, input_dir, progress, world, incidents)
    settings.truth.mkdir(parents=True, exist_ok=True)
    (settings.truth / "incidents.parquet").unlink(missing_ok=True)  # an earlier world's incidents
    for name, frame in truth.items():
        frame.write_parquet(settings.truth / f"{name}.parquet")
    return SimulationResult(scale, seed, input_dir, settings.truth, rows, None, world)
