"""Creator interests: decay by hand, incremental update == full recompute, drift on the simulator."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.schema import TABLES
from matching.interests import (
    EVENT_SCHEMA,
    InterestConfig,
    InterestState,
    creator_interests,
    hashtag_categories,
    interest_drift,
    interest_events,
    interest_profiles,
    interest_state,
    update_interest_state,
)
from matching.relations import MarketFrames
from sim.simulate import SCALES, build_world, creator_ids, write_inputs

T0 = datetime(2026, 6, 1, tzinfo=UTC)
CFG = InterestConfig()


def _events(rows: list[tuple[str, float, str, str, float]]) -> pl.DataFrame:
    """(creator, hours after T0, dimension, key, weight) → events."""
    return pl.DataFrame(
        {
            "creator_id": [r[0] for r in rows],
            "at": [T0 + timedelta(hours=r[1]) for r in rows],
            "dimension": [r[2] for r in rows],
            "key": [r[3] for r in rows],
            "weight": [r[4] for r in rows],
        },
        schema=EVENT_SCHEMA,
    )


def test_decayed_sums_match_hand_computed_values() -> None:
    events = _events([("c1", 0, "category", "beauty", 1.0), ("c1", 7 * 24, "category", "beauty", 2.0)])
    state = interest_state(events.lazy(), T0 + timedelta(days=7), CFG)
    expected = pl.DataFrame(
        {
            "creator_id": ["c1"],
            "dimension": ["category"],
            "key": ["beauty"],
            "score_1d": [2.0**-7 + 2.0],
            "score_7d": [0.5 + 2.0],
            "score_30d": [2.0 ** (-7 / 30) + 2.0],
        }
    )
    assert_frame_equal(state.sums, expected)


def test_events_after_as_of_are_ignored_by_the_full_recompute() -> None:
    events = _events([("c1", 0, "category", "beauty", 1.0), ("c1", 48, "category", "home", 1.0)])
    state = interest_state(events.lazy(), T0 + timedelta(hours=1), CFG)
    assert state.sums["key"].to_list() == ["beauty"]


rows = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2", "c3"]),
        st.floats(min_value=0, max_value=24 * 60, allow_nan=False),
        st.sampled_from(["category", "hashtag"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.floats(min_value=0.1, max_value=5.0, allow_nan=False),
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows,
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=4),
    shuffle_seed=st.integers(0, 9),
)
def test_incremental_update_equals_full_recompute(rows: list, cuts: list[int], shuffle_seed: int) -> None:
    events = _events(rows).sample(fraction=1.0, shuffle=True, seed=shuffle_seed)  # late events included
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    state = InterestState(as_of=T0, sums=interest_state(events.head(0).lazy(), T0, CFG).sums)
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        state = update_interest_state(state, events.slice(lo, hi - lo), CFG)
    final = T0 + timedelta(days=61)
    state = update_interest_state(state, events.head(0), CFG, as_of=final)
    full = interest_state(events.lazy(), final, CFG)
    assert state.as_of == final
    assert_frame_equal(state.sums, full.sums, rel_tol=1e-9, abs_tol=1e-12)


def test_update_refuses_to_go_back_in_time() -> None:
    state = interest_state(_events([("c1", 10, "category", "a", 1.0)]).lazy(), T0 + timedelta(days=1), CFG)
    with pytest.raises(ValueError, match="before the state's"):
        update_interest_state(state, _events([]), CFG, as_of=T0)
    with pytest.raises(ValueError, match="events after as_of"):
        update_interest_state(
            state, _events([("c1", 72, "category", "a", 1.0)]), CFG, as_of=T0 + timedelta(days=2)
        )


def test_profiles_shares_sum_to_one_and_drift_flags_a_switch() -> None:
    # c1: beauty for two months, then home for the last 5 days; c2: beauty throughout
    rows = [("c1", 24.0 * d, "category", "beauty", 1.0) for d in range(0, 60)]
    rows += [("c1", 24.0 * d, "category", "home", 3.0) for d in range(55, 60)]
    rows += [("c2", 24.0 * d, "category", "beauty", 1.0) for d in range(0, 60)]
    state = interest_state(_events(rows).lazy(), T0 + timedelta(days=60), CFG)
    profiles = interest_profiles(state, CFG).collect()
    sums = profiles.group_by("creator_id", "dimension", "half_life_days").agg(pl.col("share").sum())
    assert sums["share"].is_between(1 - 1e-9, 1 + 1e-9).all()
    drift = interest_drift(profiles.lazy(), CFG).collect()
    assert drift.select("creator_id", "top_category_short", "top_category_long", "drifting").rows() == [
        ("c1", "home", "beauty", True),
        ("c2", "beauty", "beauty", False),
    ]


def test_interest_events_from_captions_showcase_and_orders() -> None:
    content = pl.DataFrame(
        {
            "content_id": ["t1"],
            "creator_id": ["c1"],
            "kind": ["video"],
            "published_at": [T0],
            "duration_s": [30],
            "caption": ["Love this #Skincare #fyp #skincare"],
        },
        schema=TABLES["content"].schema,
    )
    products = pl.DataFrame(
        {
            "product_id": ["p1"],
            "merchant_id": ["m1"],
            "title": ["Glow Serum"],
            "category": ["beauty"],
            "price": [20.0],
            "commission_rate": [0.1],
            "listed_on": [date(2026, 5, 1)],
        },
        schema=TABLES["products"].schema,
    )
    showcase = pl.DataFrame(
        {"creator_id": ["c1"], "product_id": ["p1"], "added_on": [date(2026, 6, 2)], "removed_on": [None]},
        schema=TABLES["showcase"].schema,
    )
    tag_map = pl.LazyFrame({"hashtag": ["#skincare"], "category": ["beauty"]})
    events = interest_events(
        content.lazy(), showcase.lazy(), TABLES["orders"].empty().lazy(), products.lazy(), tag_map, CFG
    ).collect()
    assert events.sort("dimension", "key", "weight").select("dimension", "key", "weight").rows() == [
        ("category", "beauty", 1.0),  # the caption, through its mapped hashtag (counted once)
        ("category", "beauty", CFG.showcase_weight),
        ("hashtag", "#fyp", 1.0),
        ("hashtag", "#skincare", 1.0),
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> MarketFrames:
    directory = tmp_path_factory.mktemp("tiny") / "inputs"
    write_inputs("tiny", 7, directory)
    return MarketFrames.from_input_dir(directory)


def test_hashtags_map_to_the_simulator_categories(tiny: MarketFrames) -> None:
    from sim.simulate import CATEGORIES

    mapping = dict(hashtag_categories(tiny, CFG).collect().iter_rows())
    planted = {tag: category for category, spec in CATEGORIES.items() for tag in spec["hashtags"]}
    assert mapping == planted  # generic tags (#fyp, #live, style tags) map to nothing


def test_drift_flags_creators_whose_interest_drifted_recently(tiny: MarketFrames) -> None:
    as_of = date(2026, 10, 1)
    moment = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC)
    _, _, drift = creator_interests(tiny.before(as_of), moment, CFG)
    scale = SCALES["tiny"]
    world = build_world(scale, 7)
    truth = pl.DataFrame(
        {"creator_id": creator_ids(scale.creators), "drift_day": world.c_drift}
    ).with_columns(drift_on=pl.lit(scale.start_date) + pl.duration(days="drift_day"))
    flagged = drift.join(truth, on="creator_id").with_columns(
        recent=pl.col("drift_on").is_between(as_of - timedelta(days=21), as_of, closed="left")
    )
    rate = dict(flagged.group_by("recent").agg(pl.col("drifting").mean()).iter_rows())
    assert rate[True] > 0.3
    assert rate[True] > 5 * rate[False]
    assert math.isfinite(rate[False])


def test_watch_ingests_dropped_files_and_keeps_interests_equal_to_a_full_recompute(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from core.config import Settings
    from datastore.db import upgrade_db
    from datastore.lake import scan_table
    from liftboard.cli import app
    from liftboard.watch import load_interest_state, watch_folder
    from tests.builders import valid_tables, write

    settings = Settings.from_env()  # the isolated LIFTBOARD_HOME of this test
    upgrade_db(settings)
    cfg = InterestConfig(hashtag_min_content=1)  # the builder's marketplace has three pieces of content
    tables = valid_tables()
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("creators", "merchants", "products", "showcase", "engagement"):
        write(tables[name], drop / f"{name}.parquet")
    write(tables["content"].head(2), drop / "content-1.parquet")
    write(tables["orders"].head(2), drop / "orders-1.parquet")
    (first,) = watch_folder(drop, settings, once=True, cfg=cfg)
    assert first.events == -1
    assert first.error is None
    write(tables["content"].tail(1), drop / "content-2.parquet")
    write(tables["orders"].tail(2), drop / "orders-2.parquet")
    (second,) = watch_folder(drop, settings, once=True, cfg=cfg)
    # #home (not in the map learned from the first batch) and the refunded order (cancelled: no signal)
    assert second.error is None
    assert second.events == 2
    assert sorted(p.name for p in (drop / "processed").iterdir()) == sorted(
        [
            "creators.parquet",
            "merchants.parquet",
            "products.parquet",
            "showcase.parquet",
            "engagement.parquet",
        ]
        + ["content-1.parquet", "orders-1.parquet", "content-2.parquet", "orders-2.parquet"]
    )
    loaded = load_interest_state(settings)
    assert loaded is not None
    state, tag_map = loaded
    assert not tag_map.is_empty()
    events = interest_events(
        scan_table("content", settings),
        scan_table("showcase", settings),
        scan_table("orders", settings),
        scan_table("products", settings),
        tag_map.lazy(),
        cfg,
    )
    assert_frame_equal(state.sums, interest_state(events, state.as_of, cfg).sums, rel_tol=1e-9, abs_tol=1e-12)
    runner = CliRunner()
    nothing = runner.invoke(app, ["watch", str(drop), "--once"])
    assert nothing.exit_code == 0
    assert "nothing to ingest" in nothing.output
    write(tables["orders"].head(1), drop / "bad.csv")
    missing = runner.invoke(app, ["watch", str(tmp_path / "nowhere"), "--once"])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
