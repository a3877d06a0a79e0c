"""Pilots where the evidence is thin: their size follows the power formula, their strata are balanced,
only unproven strategies get one, and a bigger pilot does tighten the interval (on a simulated world)."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower

from analytics.sources import default_as_of, load_inputs
from core.config import Settings
from core.schema import table_spec
from datastore import db
from datastore.ingest import ingest_files
from datastore.lake import scan_table
from sim.simulate import write_inputs
from sim.worlds import effect_world
from strategies.catalog import load_catalog
from strategies.effects import average_effect
from strategies.pilots import (
    EVIDENCE_SCHEMA,
    PilotConfig,
    detectable_effect,
    outcome_sd,
    pilot_evidence,
    pilot_plans,
    propose_pilot,
    sample_size_per_arm,
    stratified_draw,
)
from strategies.pipeline import FeatureStore
from strategies.training import training_set

CATALOG = load_catalog()
AS_OF = date(2026, 11, 23)  # a Monday
WORLD_SEED = 42


def _features(n: int, seed: int = 0) -> pl.DataFrame:
    """Merchants' features as the build publishes them (the columns the pilots read)."""
    rng = np.random.default_rng(seed)
    gmv = rng.lognormal(6.0, 1.5, n).round(2)
    return pl.DataFrame(
        {
            "merchant_id": [f"m{i:05d}" for i in range(n)],
            "category": rng.choice(["beauty", "home", "toys", "food", "books"], n),
            "gmv_28d": gmv,
            "gmv_91d": np.where(rng.random(n) < 0.1, 0.0, gmv * 3),  # a tenth never sold: not eligible
            "cvr_28d": rng.random(n) * 0.1,
            "ships_in_days": rng.integers(1, 6, n).astype(float),
            "commission_rate_ratio_vs_category": rng.random(n) * 2,
        }
    )


def _evidence(strategy: str = "free_samples", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "entity_kind": CATALOG.get(strategy).target,
        "strategy": strategy,
        "ate_relative": 0.05,
        "ate_se": 0.12,
        "ate_low": -0.19,
        "ate_high": 0.29,
        "ate_n_treated": 40,
        "ate_n_control": 120,
        "ate_method": "randomized",
        "established": False,
        "outcome_sd": 0.8,
        "outcome_sd_rows": 160,
        "outcome_sd_source": "the strategy's randomized rows",
        "drivers": ["cvr_28d"],
        "drivers_source": "SHAP",
    }
    row.update(overrides)
    return row


# ------------------------------------------------------------------------------------------------
# Size
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sd", [0.5, 0.8, 2.5])
def test_sample_size_follows_the_power_formula(sd: float) -> None:
    expected = NormalIndPower().solve_power(effect_size=0.1 / sd, power=0.8, alpha=0.05, ratio=1.0)
    closed_form = 2 * ((norm.ppf(0.975) + norm.ppf(0.8)) * sd / 0.1) ** 2

    n = sample_size_per_arm(sd, 0.1)

    assert n == math.ceil(expected)
    assert n == pytest.approx(closed_form, abs=1.5)
    # half the detectable effect takes four times the rows
    assert sample_size_per_arm(sd, 0.05) / n == pytest.approx(4.0, rel=0.01)
    # and the detectable effect of that size is the MDE again
    assert detectable_effect(sd, n) == pytest.approx(0.1, rel=0.01)


def test_the_proposal_is_sized_by_the_formula_and_says_so() -> None:
    features = _features(12_000)
    strategy = CATALOG.get("free_samples")
    evidence = _evidence(outcome_sd=0.8)
    expected = math.ceil(NormalIndPower().solve_power(effect_size=0.1 / 0.8, power=0.8, alpha=0.05))

    proposal, entities = propose_pilot(evidence, features, strategy, AS_OF, PilotConfig(mde=0.1))
    halved, _ = propose_pilot(evidence, features, strategy, AS_OF, PilotConfig(mde=0.05))

    assert proposal.required_per_arm == proposal.per_arm == expected
    assert entities.group_by("arm").len().sort("arm")["len"].to_list() == [expected, expected]
    assert not proposal.capped
    assert halved.per_arm / proposal.per_arm == pytest.approx(4.0, rel=0.01)
    assert proposal.size().startswith(
        f"Size: {expected:,} merchants per arm ({2 * expected:,} in all) to detect a 10% change of 28-day "
        "net GMV with 80% power at 5% significance (two-sided)."
    )


def test_too_few_eligible_entities_cap_the_pilot_and_state_what_it_can_detect() -> None:
    features = _features(300)
    proposal, entities = propose_pilot(
        _evidence(outcome_sd=0.8), features, CATALOG.get("free_samples"), AS_OF
    )

    eligible = features.filter(pl.col("gmv_91d") > 0).height
    assert proposal.eligible == eligible
    assert proposal.per_arm == eligible // 2 < proposal.required_per_arm  # type: ignore[operator]
    assert entities.height == 2 * proposal.per_arm
    assert proposal.capped
    assert proposal.detectable_effect == pytest.approx(detectable_effect(0.8, proposal.per_arm))
    assert proposal.detectable_effect > 0.1  # type: ignore[operator]
    assert f"the most the {eligible:,} eligible merchants allow" in proposal.size()
    assert f"That detects a {proposal.detectable_effect:.0%} change" in proposal.size()


def test_the_outcome_spread_predicts_the_average_effects_standard_error() -> None:
    """The spread that sizes a pilot is the ratio-of-totals estimator's own: over many pilots of one
    design (log-normal sales, noisy 28-day windows) its standard error is sd·√(1/n_t + 1/n_c), and on
    each pilot that figure agrees with the bootstrap standard error the product states."""
    rng = np.random.default_rng(11)
    n = 300
    treated = np.arange(2 * n) < n
    estimates, predicted, ratio_to_bootstrap = [], [], []
    for replicate in range(200):
        level = rng.lognormal(4.0, 1.0, 2 * n)
        before = level * rng.gamma(2.0, 0.5, 2 * n)
        after = level * rng.gamma(2.0, 0.5, 2 * n) * np.where(treated, 1.1, 1.0)
        estimates.append(
            after[treated].sum() / before[treated].sum() / (after[~treated].sum() / before[~treated].sum())
        )
        predicted.append(outcome_sd(after, before, treated) * math.sqrt(2 / n))
        if replicate < 30:
            bootstrap = (
                average_effect(after, before, treated, seed=replicate).se / 1.1
            )  # relative to the truth
            ratio_to_bootstrap.append(predicted[-1] / bootstrap)
    true_se = float(np.std(np.array(estimates) / 1.1))
    assert np.median(predicted) == pytest.approx(true_se, rel=0.1)
    assert 0.9 < np.median(ratio_to_bootstrap) < 1.15


# ------------------------------------------------------------------------------------------------
# Design
# ------------------------------------------------------------------------------------------------


def _arm_counts(entities: pl.DataFrame) -> pl.DataFrame:
    counts = entities.pivot(on="arm", index="stratum", values="entity_id", aggregate_function="len")
    return counts.fill_null(0).with_columns(pl.col("treatment", "control").cast(pl.Int64))


def test_strata_are_balanced_between_arms_and_drawn_among_the_eligible() -> None:
    features = _features(2_000, seed=3)
    busy = set(features["merchant_id"].head(50).to_list())
    strategy = CATALOG.get("free_samples")
    cfg = PilotConfig(mde=0.3)

    proposal, entities = propose_pilot(
        _evidence(drivers=["cvr_28d", "category"]), features, strategy, AS_OF, cfg, busy
    )

    counts = _arm_counts(entities)
    assert (counts["treatment"] - counts["control"]).abs().max() <= 1
    assert entities.filter(pl.col("arm") == "treatment").height == proposal.per_arm
    assert entities.filter(pl.col("arm") == "control").height == proposal.per_arm
    assert proposal.strata == counts.height > 8  # GMV quartiles × CVR halves × categories
    drawn = features.filter(pl.col("merchant_id").is_in(entities["entity_id"].implode()))
    assert drawn.height == entities.height
    assert (drawn["gmv_91d"] > 0).all()  # the catalog's eligibility rule
    assert not busy & set(entities["entity_id"])
    # the strata read as the drivers: size band, CVR half, category
    assert entities["stratum"].str.contains(r"^GMV 28d Q[1-4] · CVR 28d [≤>] [\d.]+% · \w+").all()
    # seeded: the same call draws the same entities; another seed draws others
    again = propose_pilot(_evidence(drivers=["cvr_28d", "category"]), features, strategy, AS_OF, cfg, busy)[1]
    assert again.equals(entities)
    other = propose_pilot(
        _evidence(drivers=["cvr_28d", "category"]),
        features,
        strategy,
        AS_OF,
        dataclasses.replace(cfg, seed=8),
        busy,
    )[1]
    assert set(other["entity_id"]) != set(entities["entity_id"])


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=12),
    share=st.floats(min_value=0.05, max_value=1.0),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_any_stratified_draw_is_balanced(sizes: list[int], share: float, seed: int) -> None:
    labels = np.repeat([f"s{k}" for k in range(len(sizes))], sizes)
    total = 2 * int(len(labels) * share / 2)

    rows, treated = stratified_draw(labels, total, np.random.default_rng(seed))

    assert len(rows) == len(set(rows.tolist())) == total
    assert treated.sum() == total // 2
    for label in set(labels.tolist()):
        arms = treated[labels[rows] == label]
        assert abs(int(arms.sum()) - int((~arms).sum())) <= 1


# ------------------------------------------------------------------------------------------------
# Which strategies, when, at what cost
# ------------------------------------------------------------------------------------------------


def test_only_unproven_strategies_get_a_pilot() -> None:
    features = {"merchant": _features(2_000)}
    evidence = pl.DataFrame(
        [
            _evidence("free_samples"),
            _evidence("fulfilment_fix", established=True, ate_low=0.05, ate_high=0.4, ate_relative=0.2),
        ],
        schema=EVIDENCE_SCHEMA,
    )

    plans = pilot_plans(evidence, features, CATALOG, AS_OF, PilotConfig(mde=0.3))

    assert [p.strategy for p in plans.proposals] == ["free_samples"]
    assert plans.headline == "1 pilot(s) to run: Free samples to creators."
    status = dict(zip(plans.precision["strategy"], plans.precision["status"], strict=True))
    assert status == {
        "free_samples": "unproven: interval includes zero",
        "fulfilment_fix": "established: interval excludes zero",
    }
    assert plans.precision.filter(pl.col("strategy") == "fulfilment_fix")["pilot_per_arm"].item() is None
    assert plans.proposals[0].why() == (
        "Why: its average effect on 28-day net GMV, +5%, is unproven: the 95% interval -19% to +29% includes "
        "zero (40 treated and 120 control rows so far)."
    )
    # asked for by name, an established strategy gets its pilot too, and says it is established
    named = pilot_plans(
        evidence, features, CATALOG, AS_OF, PilotConfig(mde=0.3), strategies=["fulfilment_fix"]
    )
    assert [p.strategy for p in named.proposals] == ["fulfilment_fix"]
    assert "is established" in named.proposals[0].why()
    with pytest.raises(ValueError, match="unknown strategy bogus"):
        pilot_plans(evidence, features, CATALOG, AS_OF, strategies=["bogus"])


def test_with_every_effect_established_there_is_nothing_to_propose() -> None:
    evidence = pl.DataFrame(
        [_evidence(s, established=True, ate_low=0.02) for s in ("free_samples", "fulfilment_fix")],
        schema=EVIDENCE_SCHEMA,
    )

    plans = pilot_plans(evidence, {"merchant": _features(500)}, CATALOG, AS_OF)

    assert plans.proposals == ()
    assert plans.entities.height == 0
    assert plans.headline == (
        "No pilot to propose: every strategy's 95% interval of its average effect on 28-day net GMV excludes "
        "zero."
    )
    assert plans.precision.height == 2


def test_pilots_of_one_kind_share_no_entity_and_skip_busy_ones() -> None:
    features = {"merchant": _features(600)}
    evidence = pl.DataFrame(
        [_evidence(s) for s in ("matched_creator_recruitment", "free_samples")], schema=EVIDENCE_SCHEMA
    )
    busy_id = features["merchant"].filter(pl.col("gmv_91d") > 0)["merchant_id"][0]
    interventions = pl.DataFrame(
        {
            "intervention_id": ["i1", "i2"],
            "entity_kind": ["merchant", "merchant"],
            "entity_id": [busy_id, "m00599"],
            "strategy": ["free_samples", "free_samples"],
            "assigned_on": [AS_OF - timedelta(days=10), AS_OF - timedelta(days=40)],  # open, closed
            "arm": ["treatment", "control"],
            "assignment": ["randomized", "randomized"],
        }
    )

    plans = pilot_plans(evidence, features, CATALOG, AS_OF, interventions=interventions)

    first, second = plans.proposals
    assert first.shared_with == 1  # each takes its fair part of the eligible merchants
    assert first.per_arm == (first.eligible // 2) // 2
    ids = plans.entities.group_by("strategy").agg(pl.col("entity_id"))
    a, b = (set(x) for x in ids["entity_id"].to_list())
    assert not a & b
    assert busy_id not in a | b
    assert plans.interventions().columns == table_spec("interventions").columns


def test_timing_and_cost_follow_the_catalog() -> None:
    wednesday = date(2026, 11, 25)
    features = _features(3_000)
    fixed = CATALOG.get("free_samples")

    proposal, entities = propose_pilot(_evidence(), features, fixed, wednesday, PilotConfig(mde=0.3))

    assert proposal.start == date(2026, 11, 30)  # the next Monday
    assert proposal.read_on == date(2026, 12, 28)
    assert set(entities["assigned_on"]) == {date(2026, 11, 30)}
    assert proposal.when() == (
        "When: assign on Monday 2026-11-30; the outcome is the 28 days to 2026-12-27, so results can be read "
        "in a build on or after 2026-12-28."
    )
    assert proposal.expected_cost == pytest.approx(fixed.cost.amount * proposal.per_arm)
    assert proposal.cost() == (
        f"Cost: ${proposal.expected_cost:,.0f} expected, ${fixed.cost.amount:,.0f} per merchant × "
        f"{proposal.per_arm:,} treated."
    )


# ------------------------------------------------------------------------------------------------
# A bigger pilot tightens the interval (a simulated world)
# ------------------------------------------------------------------------------------------------


def _creator_training_set(
    world_name: str, pilot_share: float, home: Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The tiny marketplace of one world (with this pilot share) written, ingested and turned into the
    creators' training set, as the strategies pipeline does it; also its interventions."""
    settings = Settings.from_env(home=home)
    db.upgrade_db(settings)
    world = dataclasses.replace(effect_world(world_name), pilot_share=pilot_share)
    folder = settings.incoming / "world"
    write_inputs("tiny", WORLD_SEED, folder, world=world)
    ingest_files(sorted(folder.glob("*.parquet")), settings, source="test world", user="test")
    inputs = load_inputs(settings)
    as_of = default_as_of(inputs.orders)
    assert as_of is not None
    interventions = scan_table("interventions", settings).filter(pl.col("assigned_on") < as_of).collect()
    features = FeatureStore(inputs, as_of)
    train = training_set(
        interventions, inputs, "creator", features, as_of - timedelta(days=1), daily=features.daily("creator")
    )
    db.dispose_engine(settings)
    return train, interventions


@pytest.mark.slow
def test_a_bigger_pilot_tightens_the_interval_on_a_world(tmp_path: Path) -> None:
    """`mixed_realistic` enrolls 20% of eligible entities in each pilot wave; the same marketplace with 85%
    is that pilot plus more randomized rows (same seed: the same entities, strategies and arms, and
    others besides), i.e. the first pilot with another one run and ingested. The commission boost's
    95% interval is unproven with the small pilot and narrower by more than a fifth with the larger."""
    strategy = "commission_boost"
    small_train, small_iv = _creator_training_set("mixed_realistic", 0.2, tmp_path / "small")
    large_train, large_iv = _creator_training_set("mixed_realistic", 0.85, tmp_path / "large")

    key = ["entity_kind", "entity_id", "strategy", "assigned_on", "arm"]
    randomized = pl.col("assignment") == "randomized"
    small_rows, large_rows = small_iv.filter(randomized).select(key), large_iv.filter(randomized).select(key)
    assert small_rows.join(large_rows, on=key, how="anti").height == 0  # the small pilot is part of the large
    assert large_rows.height > 3 * small_rows.height

    small = pilot_evidence(small_train, "creator").filter(pl.col("strategy") == strategy).row(0, named=True)
    large = pilot_evidence(large_train, "creator").filter(pl.col("strategy") == strategy).row(0, named=True)

    assert not small["established"]  # the small pilot leaves it unproven: a pilot is proposed
    assert large["ate_n_treated"] > 3 * small["ate_n_treated"]
    width = {name: row["ate_high"] - row["ate_low"] for name, row in (("small", small), ("large", large))}
    assert width["large"] / width["small"] < 0.8
