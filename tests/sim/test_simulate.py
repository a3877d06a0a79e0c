"""The simulator: deterministic, schema-true, realistic, with effects that flow through the orders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.schema import CREATOR_STRATEGIES, MERCHANT_STRATEGIES, TABLES
from sim.simulate import MEGA_SALE_DAYS, SCALES, TRUTH_DAYS, _commission_boosted, tier_of, write_inputs

SEED = 42
SCALE = "tiny"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The tiny marketplace's input files read back, plus its truth (prefixed ``truth_``)."""
    out = tmp_path_factory.mktemp("sim") / "tiny"
    _, truth = write_inputs(SCALE, SEED, out)
    tables = {name: pl.read_parquet(sorted(out.glob(f"{name}*.parquet"))) for name in TABLES}
    tables.update({f"truth_{name}": frame for name, frame in truth.items()})
    return tables


@pytest.fixture(scope="module")
def completed(sim: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Orders that count towards GMV: every order not cancelled."""
    return sim["orders"].filter(pl.col("status") != "cancelled")


def _read_dir(path: Path) -> dict[str, pl.DataFrame]:
    return {p.name: pl.read_parquet(p) for p in sorted(path.glob("*.parquet"))}


def test_same_seed_same_marketplace_other_seed_another(tmp_path: Path) -> None:
    write_inputs(SCALE, SEED, tmp_path / "a")
    write_inputs(SCALE, SEED, tmp_path / "b")
    write_inputs(SCALE, SEED + 1, tmp_path / "c")
    a, b, c = _read_dir(tmp_path / "a"), _read_dir(tmp_path / "b"), _read_dir(tmp_path / "c")
    assert a.keys() == b.keys()
    for name in a:
        assert_frame_equal(a[name], b[name])
    assert not a["orders-w10.parquet"].equals(c["orders-w10.parquet"])


def test_every_table_matches_its_spec(sim: dict[str, pl.DataFrame]) -> None:
    for name, spec in TABLES.items():
        frame = sim[name]
        assert frame.schema == spec.schema, name
        assert frame.height > 0, name
        assert frame.select(spec.primary_key).is_duplicated().sum() == 0, f"{name}: duplicate primary keys"
        for column in set(spec.columns) - spec.nullable:
            assert frame[column].null_count() == 0, f"{name}.{column} has nulls"
        for column, allowed in spec.allowed.items():
            assert set(frame[column].unique()) <= set(allowed), f"{name}.{column}"
        for catalog in spec.catalog_columns:  # catalog ids (no aliases), each with its own entity kind
            pairs = set(frame.select(catalog.column, catalog.kind_column).unique().rows())
            assert pairs <= set(catalog.kinds.items()), f"{name}.{catalog.column}"
        for column, (low, high) in spec.ranges.items():
            if low is not None:
                assert frame[column].min() >= low, f"{name}.{column} below {low}"  # type: ignore[operator]
            if high is not None:
                assert frame[column].max() <= high, f"{name}.{column} above {high}"  # type: ignore[operator]


def test_foreign_keys_hold(sim: dict[str, pl.DataFrame]) -> None:
    for name, spec in TABLES.items():
        for fk in spec.foreign_keys:
            rows = sim[name]
            if fk.when is not None:
                rows = rows.filter(pl.col(fk.when[0]) == fk.when[1])
            values = rows[fk.column].drop_nulls()
            known = sim[fk.table][fk.ref_column]
            assert values.is_in(known.implode()).all(), f"{name}.{fk.column} → {fk.table}"


def test_data_covers_whole_weeks_and_ends_before_today(sim: dict[str, pl.DataFrame]) -> None:
    scale = SCALES[SCALE]
    days = sim["orders"]["ordered_at"].dt.date()
    assert days.min() == scale.start_date
    assert days.max() == scale.end_date
    assert scale.start_date.weekday() == 0
    assert scale.end_date.weekday() == 6


def test_sales_are_heavy_tailed_and_tiers_span_nano_to_macro(
    sim: dict[str, pl.DataFrame], completed: pl.DataFrame
) -> None:
    gmv = completed.group_by("creator_id").agg(pl.col("gmv").sum())["gmv"].sort(descending=True)
    top_1pct = gmv.head(sim["creators"].height // 100).sum() / gmv.sum()
    assert top_1pct > 0.25, f"top 1% of creators bring {top_1pct:.0%} of GMV"
    tiers = set(tier_of(sim["creators"]["followers"].to_numpy()))
    assert {0, 1, 2, 3} <= tiers


def test_regions_categories_prices_and_commissions_vary(sim: dict[str, pl.DataFrame]) -> None:
    creators, products = sim["creators"], sim["products"]
    assert creators["region"].n_unique() >= 8
    assert products["category"].n_unique() >= 10
    by_category = products.group_by("category").agg(
        price=pl.col("price").median(), commission=pl.col("commission_rate").median()
    )
    assert by_category["price"].max() > 3 * by_category["price"].min()  # type: ignore[operator]
    assert by_category["commission"].max() > 2 * by_category["commission"].min()  # type: ignore[operator]


def test_creators_join_ramp_and_churn(sim: dict[str, pl.DataFrame], completed: pl.DataFrame) -> None:
    scale = SCALES[SCALE]
    creators, content = sim["creators"], sim["content"]
    joined_inside = creators.filter(pl.col("joined_on") >= scale.start_date).height / creators.height
    assert 0.15 < joined_inside < 0.6
    first_weeks = content.filter(pl.col("published_at").dt.date() < scale.start_date + timedelta(days=56))
    last_weeks = content.filter(pl.col("published_at").dt.date() >= scale.end_date - timedelta(days=27))
    early = set(first_weeks["creator_id"])
    churned = early - set(last_weeks["creator_id"])
    assert len(churned) / len(early) > 0.1, "some early creators must stop posting"
    # ramp-up: creators who join in the window sell more in their weeks 6-9 than in their first 2 weeks
    new = creators.filter(
        pl.col("joined_on").is_between(scale.start_date, scale.end_date - timedelta(days=70))
    )
    tenure_week = (
        completed.join(new.select("creator_id", "joined_on"), on="creator_id")
        .with_columns(week=((pl.col("ordered_at").dt.date() - pl.col("joined_on")).dt.total_days() // 7))
        .group_by("week")
        .agg(pl.col("gmv").sum())
    )
    early_gmv = tenure_week.filter(pl.col("week") < 2)["gmv"].sum() / 2
    plateau_gmv = tenure_week.filter(pl.col("week").is_between(6, 9))["gmv"].sum() / 4
    assert plateau_gmv > 1.5 * early_gmv


def test_weekly_cycle_mega_sales_and_content_kinds(
    sim: dict[str, pl.DataFrame], completed: pl.DataFrame
) -> None:
    by_day = completed.group_by(day=pl.col("ordered_at").dt.date()).agg(pl.col("gmv").sum()).sort("day")
    weekday = by_day.group_by(wd=pl.col("day").dt.weekday()).agg(pl.col("gmv").mean()).sort("wd")
    assert weekday["gmv"][5] > 1.1 * weekday["gmv"][1], "Saturday should out-sell Tuesday"
    for sale_day in MEGA_SALE_DAYS:
        around = by_day.filter(
            pl.col("day").is_between(sale_day - timedelta(days=7), sale_day + timedelta(days=7))
            & (pl.col("day") != sale_day)
        )["gmv"].mean()
        on_day = by_day.filter(pl.col("day") == sale_day)["gmv"].item()
        assert on_day > 1.5 * around, f"{sale_day} is a mega-sale day"  # type: ignore[operator]
    kinds = sim["engagement"].join(sim["content"].select("content_id", "kind"), on="content_id")
    funnel = kinds.group_by("kind").agg(
        view_rate=pl.col("views").sum() / pl.col("impressions").sum(),
        ctr=pl.col("clicks").sum() / pl.col("views").sum(),
    )
    live, video = (funnel.filter(pl.col("kind") == k).row(0, named=True) for k in ("live", "video"))
    assert live["ctr"] > 1.4 * video["ctr"]
    assert live["view_rate"] < video["view_rate"]


def test_text_carries_category_and_interests_drift(sim: dict[str, pl.DataFrame]) -> None:
    from sim.simulate import CATEGORIES

    products = sim["products"]
    nouns = pl.DataFrame(
        [(c, n) for c, spec in CATEGORIES.items() for n in spec["nouns"]],
        schema=["category", "noun"],
        orient="row",
    )
    matched = products.join(nouns, on="category").filter(pl.col("title").str.ends_with(pl.col("noun")))
    assert matched["product_id"].n_unique() == products.height, "every title names a noun of its category"
    tags = pl.DataFrame(
        [(c, spec["hashtags"][0]) for c, spec in CATEGORIES.items()], schema=["cat", "tag"], orient="row"
    )
    content = sim["content"].join(sim["creators"].select("creator_id", "primary_category"), on="creator_id")
    tagged = content.join(tags, left_on="primary_category", right_on="cat").with_columns(
        own=pl.col("caption").str.contains(pl.col("tag"), literal=True)
    )
    assert tagged["own"].mean() > 0.6, "captions mostly carry the creator's category hashtag"  # type: ignore[operator]
    half = SCALES[SCALE].start_date + timedelta(days=SCALES[SCALE].days // 2)
    share = tagged.group_by("creator_id", late=pl.col("published_at").dt.date() >= half).agg(
        pl.col("own").mean()
    )
    wide = share.pivot(on="late", index="creator_id", values="own").drop_nulls()
    drifted = wide.filter(pl.col("true") < pl.col("false") - 0.4).height / wide.height
    assert drifted > 0.05, f"{drifted:.1%} of creators drift away from their primary category"


def test_refunds_follow_merchant_quality_and_buyers_return(sim: dict[str, pl.DataFrame]) -> None:
    orders = sim["orders"].join(sim["merchants"].select("merchant_id", "rating"), on="merchant_id")
    refund = orders.group_by(good=pl.col("rating") >= 4.3).agg((pl.col("status") != "completed").mean())
    good = refund.filter(pl.col("good"))["status"].item()
    poor = refund.filter(~pl.col("good"))["status"].item()
    assert poor > 1.3 * good
    per_buyer = sim["orders"].group_by("buyer_id").len()
    assert (per_buyer["len"] >= 2).mean() > 0.3  # type: ignore[operator]


def test_interventions_are_randomized_and_targeted_with_confounding(sim: dict[str, pl.DataFrame]) -> None:
    iv = sim["interventions"]
    assert set(iv["strategy"]) == set(CREATOR_STRATEGIES + MERCHANT_STRATEGIES)
    counts = iv.group_by("assignment", "arm").len()
    assert counts.height == 4
    assert counts["len"].min() > 50
    size = iv.filter(pl.col("entity_kind") == "creator").join(
        sim["creators"].select("creator_id", pl.col("followers").log().alias("log_followers")),
        left_on="entity_id",
        right_on="creator_id",
    )
    gap = size.group_by("assignment").agg(
        pl.col("log_followers").filter(pl.col("arm") == "treatment").mean()
        - pl.col("log_followers").filter(pl.col("arm") == "control").mean()
    )
    assert gap.filter(pl.col("assignment") == "targeted")["log_followers"].item() > 0.3, (
        "targeting favours size"
    )
    assert abs(gap.filter(pl.col("assignment") == "randomized")["log_followers"].item()) < 0.3


def test_truth_covers_every_pair_and_effects_are_heterogeneous(sim: dict[str, pl.DataFrame]) -> None:
    effects = sim["truth_effects"]
    expected = sim["creators"].height * len(CREATOR_STRATEGIES) + sim["merchants"].height * len(
        MERCHANT_STRATEGIES
    )
    assert effects.height == expected
    assert effects.select("entity_id", "strategy").is_duplicated().sum() == 0
    spread = effects.group_by("strategy").agg(
        lo=pl.col("true_lift").min(),
        hi=pl.col("true_lift").max(),
        gainers=(pl.col("true_lift") >= 0.1).mean(),
    )
    assert (spread["hi"] - spread["lo"] >= 0.2).all(), (
        "every strategy helps some entities much more than others"
    )
    assert (spread["gainers"] > 0.05).all()
    assert (spread["lo"] < 0).sum() >= 6, "most strategies hurt someone"
    assert sim["truth_interventions"].height == sim["interventions"].height


def _window_gmv(sim: dict[str, pl.DataFrame], completed: pl.DataFrame) -> pl.DataFrame:
    """Realized completed GMV of each intervention's entity in the 28 days before and after assignment."""
    daily = pl.concat(
        [
            completed.select(
                entity_kind=pl.lit("creator"),
                entity_id="creator_id",
                day=pl.col("ordered_at").dt.date(),
                gmv="gmv",
            ),
            completed.select(
                entity_kind=pl.lit("merchant"),
                entity_id="merchant_id",
                day=pl.col("ordered_at").dt.date(),
                gmv="gmv",
            ),
        ]
    )
    offset = (pl.col("day") - pl.col("assigned_on")).dt.total_days()
    return (
        sim["interventions"]
        .join(daily, on=["entity_kind", "entity_id"], how="left")
        .group_by("intervention_id")
        .agg(
            post=pl.col("gmv").filter(offset.is_between(0, 27)).sum(),
            pre=pl.col("gmv").filter(offset.is_between(-28, -1)).sum(),
        )
        .join(sim["interventions"], on="intervention_id")
        .join(
            sim["truth_interventions"].select(
                "intervention_id", "true_lift", "baseline_gmv_28d", "true_uplift_gmv_28d"
            ),
            on="intervention_id",
        )
    )


def test_effects_flow_through_the_orders(sim: dict[str, pl.DataFrame], completed: pl.DataFrame) -> None:
    """Realized GMV over the untreated expectation is 1 for controls and 1 + the true lift for the treated
    (GMV-weighted), within 5%: the treated entities really sell more, by the planted amount."""
    windows = _window_gmv(sim, completed)
    ratios = windows.group_by("entity_kind", "arm").agg(
        realized=pl.col("post").sum() / pl.col("baseline_gmv_28d").sum(),
        planted=1 + pl.col("true_uplift_gmv_28d").sum() / pl.col("baseline_gmv_28d").sum(),
    )
    for row in ratios.iter_rows(named=True):
        target = row["planted"] if row["arm"] == "treatment" else 1.0
        assert row["realized"] == pytest.approx(target, rel=0.05), row
    creator_treated = ratios.filter((pl.col("entity_kind") == "creator") & (pl.col("arm") == "treatment"))
    assert creator_treated["realized"].item() > 1.1


def test_randomized_pilots_recover_the_mean_effect(
    sim: dict[str, pl.DataFrame], completed: pl.DataFrame
) -> None:
    """A difference in means of the pre/post change between arms estimates the mean true uplift: within
    three standard errors for each entity kind. GMV is heavy-tailed and bursty, so on `tiny` the standard
    error is of the order of the effect itself: the tight check of the mechanism is the test above."""
    windows = _window_gmv(sim, completed).filter(pl.col("assignment") == "randomized")
    change = pl.col("post") - pl.col("pre")
    treated, control = pl.col("arm") == "treatment", pl.col("arm") == "control"
    estimates = windows.group_by("entity_kind").agg(
        diff=change.filter(treated).mean() - change.filter(control).mean(),
        se=(
            change.filter(treated).var() / treated.sum() + change.filter(control).var() / control.sum()
        ).sqrt(),
        truth=pl.col("true_uplift_gmv_28d").mean(),
    )
    for row in estimates.iter_rows(named=True):
        assert abs(row["diff"] - row["truth"]) < 3 * row["se"], row
        assert row["truth"] > 0


def test_targeted_rollouts_are_confounded(sim: dict[str, pl.DataFrame], completed: pl.DataFrame) -> None:
    """In targeted rollouts a naive difference in post-period means overstates the true effect, because
    larger entities were treated more often; in randomized pilots the pre-period means agree."""
    windows = _window_gmv(sim, completed).filter(pl.col("entity_kind") == "creator")
    pre_gap = windows.group_by("assignment").agg(
        gap=pl.col("pre").filter(pl.col("arm") == "treatment").mean()
        / pl.col("pre").filter(pl.col("arm") == "control").mean()
    )
    targeted = pre_gap.filter(pl.col("assignment") == "targeted")["gap"].item()
    randomized = pre_gap.filter(pl.col("assignment") == "randomized")["gap"].item()
    assert targeted > 1.5
    assert targeted > 1.3 * randomized
    assert np.isfinite(randomized)


def test_every_commission_boost_window_pays_the_extra_commission() -> None:
    """A creator boosted in two waves is paid the extra commission in both windows, not only the last."""
    interventions = pl.DataFrame(
        {
            "entity_kind": ["creator", "creator", "creator", "creator"],
            "entity_index": [3, 3, 5, 7],
            "strategy": ["commission_boost", "commission_boost", "commission_boost", "live_coaching"],
            "assigned_day": [30, 80, 40, 30],
            "arm": ["treatment", "treatment", "control", "treatment"],
        }
    )
    creator = np.array([3, 3, 3, 3, 3, 3, 5, 7, 0])
    day = np.array([29, 30, 30 + TRUTH_DAYS - 1, 30 + TRUTH_DAYS, 85, 80 + TRUTH_DAYS, 45, 35, 35])
    expected = [False, True, True, False, True, False, False, False, False]
    assert _commission_boosted(interventions, creator, day).tolist() == expected
