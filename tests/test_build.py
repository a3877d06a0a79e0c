"""The analytics build on the ``tiny`` simulator: snapshots, manifest, LATEST, SQL tables, CLI."""

from __future__ import annotations

import fcntl
import functools
import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.kpis import kpi_cards
from core.config import Settings
from core.metrics import RATE_METRICS
from core.schema import TABLES
from core.snapshots import CATALOG
from datastore import db, lake
from datastore.db import dispose_engine, engine_for, upgrade_db
from datastore.lake import scan_table
from datastore.snapshots import LATEST, SnapshotNotFound, latest_build_id, latest_manifest, load_snapshot
from liftboard import build as build_module
from liftboard.build import SQL_PREFIX, BuildConfig, BuildResult, build
from liftboard.cli import app
from sim import simulate

AS_OF = date(2026, 11, 23)  # the day after the simulator's last day


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The ``tiny`` marketplace (seed 42), generated once and shared by the xdist workers."""
    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "master" else base.parent
    home = root / "liftboard-tiny-42"
    with open(root / "liftboard-tiny-42.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".complete").exists():
            shutil.rmtree(home, ignore_errors=True)
            upgrade_db(Settings.from_env(home=home))
            simulate.generate("tiny", 42, Settings.from_env(home=home))
            dispose_engine(Settings.from_env(home=home))
            (home / ".complete").touch()
    return home


def _copy_home(source: Path, target: Path) -> Settings:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("incoming", "truth", ".complete"))
    return Settings.from_env(home=target)


@pytest.fixture(scope="module")
def built(
    tiny_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, BuildResult, list]]:
    settings = _copy_home(tiny_home, tmp_path_factory.mktemp("build") / "home")
    events: list[tuple[str, int, int]] = []
    # matching is published by the same mechanism; its own tests cover it (it is the slowest stage)
    result = build(
        settings,
        progress=lambda stage, done, total: events.append((stage, done, total)),
        config=BuildConfig(with_matching=False),
    )
    yield settings, result, events
    dispose_engine(settings)


def test_build_publishes_every_snapshot(built: tuple[Settings, BuildResult, list]) -> None:
    settings, result, events = built

    assert result.as_of == AS_OF
    assert latest_build_id(settings) == result.build_id
    assert (settings.snapshots / LATEST).read_text().strip() == result.build_id
    manifest = latest_manifest(settings)
    assert manifest is not None
    assert manifest["build_id"] == result.build_id
    assert manifest["as_of"] == AS_OF.isoformat()
    published = {snapshot.name: snapshot for snapshot in CATALOG if snapshot.stage != "matching"}
    assert set(manifest["row_counts"]) == set(published)
    for name, snapshot in published.items():
        frame = load_snapshot(name, settings).collect()
        assert frame.height == manifest["row_counts"][name]
        # the catalog's key columns exist and identify a row
        assert set(snapshot.key) <= set(frame.columns), (name, frame.columns)
        assert frame.select(snapshot.key).is_duplicated().sum() == 0, name
    assert (
        result.row_counts["creator_features"]
        == scan_table("creators", settings)
        .filter(pl.col("joined_on") < AS_OF)
        .select(pl.len())
        .collect()
        .item()
    )
    assert events[-1][1] == events[-1][2]  # progress reached its total
    assert not list(settings.snapshots.glob(".*.tmp"))
    # the build read one run's version of every table, and says which
    read = lake.lake_version(settings)
    assert manifest["lake"] == read.as_dict() == dict(result.lake)
    assert set(manifest["lake"]["versions"]) == set(TABLES)


def test_facts_reconcile_with_the_lake(built: tuple[Settings, BuildResult, list]) -> None:
    settings, _, _ = built
    orders = scan_table("orders", settings).filter(pl.col("status") != "cancelled")

    creator_daily = load_snapshot("creator_daily", settings)
    totals = creator_daily.select(
        pl.col("gmv").sum(),
        pl.col("orders").sum(),
        pl.col("views").sum(),
        (pl.col("videos") + pl.col("lives")).sum(),
    ).collect()
    raw_gmv, raw_orders = orders.select(pl.col("gmv").sum(), pl.len()).collect().row(0)
    raw_views = scan_table("engagement", settings).select(pl.col("views").sum()).collect().item()
    raw_content = scan_table("content", settings).select(pl.len()).collect().item()

    assert totals.row(0) == pytest.approx((raw_gmv, raw_orders, raw_views, raw_content))
    for fact in ("merchant_daily", "product_daily"):
        assert load_snapshot(fact, settings).select(pl.col("gmv").sum()).collect().item() == pytest.approx(
            raw_gmv
        )


def test_kpis_contributions_and_cards_agree(built: tuple[Settings, BuildResult, list]) -> None:
    settings, _, _ = built
    weekly = load_snapshot("kpi_weekly", settings).filter(
        pl.col("breakdown") == "overall", pl.col("metric") == "gmv"
    )
    last = weekly.sort("period_start").collect().row(-1, named=True)

    contributions = load_snapshot("gmv_change_contributions", settings).collect()
    for _, part in contributions.group_by("dimension"):
        assert part["contribution"].sum() == pytest.approx(last["change"], abs=0.01)
        assert part["contribution_cents"].sum() == part["total_change_cents"][0]
    assert contributions["start"][0] == last["period_start"]

    daily = load_snapshot("creator_daily", settings).collect()
    cards = kpi_cards(daily, last["period_start"], last["period_end"])
    gmv = cards.filter(pl.col("metric") == "gmv").row(0, named=True)
    assert (gmv["value"], gmv["previous_value"]) == pytest.approx((last["value"], last["previous_value"]))

    rates = load_snapshot("kpi_weekly", settings).filter(pl.col("metric").is_in(RATE_METRICS)).collect()
    assert rates["value"].drop_nulls().is_between(0.0, 1.0).all()


def test_features_segments_and_cohorts_are_sane(built: tuple[Settings, BuildResult, list]) -> None:
    settings, _, _ = built
    creators = load_snapshot("creator_features", settings).collect()
    merchants = load_snapshot("merchant_features", settings).collect()

    assert creators["creator_id"].is_unique().all()
    assert merchants["merchant_id"].is_unique().all()
    for frame in (creators, merchants):
        for column in ("ctr_28d", "cvr_28d", "refund_rate_91d"):
            assert frame[column].drop_nulls().is_between(0.0, 1.0).all()
    assert (creators["gmv_28d"] <= creators["gmv_91d"] + 1e-6).all()
    segments = load_snapshot("creator_segments", settings).collect()
    assert segments["lifecycle_stage"].null_count() == 0
    assert segments.height == creators.height
    cohorts = load_snapshot("creator_cohorts", settings).filter(pl.col("weeks_since") == 0).collect()
    assert (cohorts.filter(pl.col("cohort_kind") != "joined")["retention"] == 1.0).all()
    assert set(cohorts["cohort_kind"]) == {"joined", "first_active", "first_sale"}


def test_sql_tables_are_replaced_per_build(built: tuple[Settings, BuildResult, list], tmp_path: Path) -> None:
    settings, result, _ = built
    engine = engine_for(settings)
    table = sa.Table(SQL_PREFIX + "kpi_weekly", sa.MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(sa.func.count(), sa.func.min(table.c.build_id), sa.func.max(table.c.as_of))
        ).one()
    assert rows == (result.row_counts["kpi_weekly"], result.build_id, AS_OF)
    assert set(result.sql_tables) == {SQL_PREFIX + name for name in build_module.SQL_SNAPSHOTS}

    earlier = build(
        settings,
        date(2026, 10, 5),
        config=BuildConfig(sql_snapshots=("kpi_weekly",), with_strategies=False, with_matching=False),
    )

    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(table.c.build_id)))
        ).one()
    assert rows == (earlier.row_counts["kpi_weekly"], 1)
    assert latest_build_id(settings) == earlier.build_id
    assert load_snapshot("kpi_weekly", settings).select(pl.col("period_start").max()).collect().item() < date(
        2026, 10, 5
    )
    # the earlier build is still there and can be read by id
    assert (
        load_snapshot("kpi_weekly", settings, build_id=result.build_id).select(pl.len()).collect().item() > 0
    )


def test_a_failed_build_leaves_the_current_one(
    built: tuple[Settings, BuildResult, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _, _ = built
    current = latest_build_id(settings)

    def broken(*args: object, **kwargs: object) -> pl.LazyFrame:
        raise RuntimeError("stage failed")

    monkeypatch.setattr(build_module.cohorts, "creator_cohorts", broken)
    with pytest.raises(RuntimeError, match="stage failed"):
        build(settings, config=BuildConfig(publish_sql=False, with_strategies=False, with_matching=False))

    assert latest_build_id(settings) == current
    assert not list(settings.snapshots.glob(".*.tmp"))
    assert len([path for path in settings.snapshots.iterdir() if path.is_dir()]) <= BuildConfig().keep_builds


def test_no_build_yet(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "empty")

    assert latest_manifest(settings) is None
    with pytest.raises(SnapshotNotFound, match="run `liftboard build` first"):
        load_snapshot("kpi_weekly", settings)


def test_build_of_an_empty_lake(tmp_path: Path) -> None:
    settings = Settings.from_env(home=tmp_path / "empty")
    upgrade_db(settings)

    result = build(settings, date(2026, 1, 5))

    assert result.as_of == date(2026, 1, 5)
    # every data snapshot is empty; the strategy catalog is configuration, not data
    assert {n for name, n in result.row_counts.items() if name != "strategy_catalog"} == {0}
    with pytest.raises(SnapshotNotFound, match="'nope' is not a published snapshot"):
        load_snapshot("nope", settings)
    dispose_engine(settings)


def test_cli_build(tiny_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _copy_home(tiny_home, tmp_path / "home")
    # the strategies stage has its own tests; here the command's wiring is what is tested
    monkeypatch.setattr(
        build_module,
        "BuildConfig",
        functools.partial(BuildConfig, with_strategies=False, with_matching=False),
    )
    runner = CliRunner()
    env = {"LIFTBOARD_HOME": str(settings.home), "COLUMNS": "200"}

    result = runner.invoke(app, ["build", "--as-of", "2026-10-05", "--no-sql"], env=env)

    assert result.exit_code == 0, result.output
    assert "as of 2026-10-05" in result.output
    assert "creator_features" in result.output
    manifest = json.loads((settings.snapshots / latest_build_id(settings) / "manifest.json").read_text())  # type: ignore[operator]
    assert manifest["as_of"] == "2026-10-05"
    assert manifest["sql_tables"] == []

    bad = runner.invoke(app, ["build", "--as-of", "next week"], env=env)
    assert bad.exit_code == 2
    assert "not a date" in bad.output

    # time travel: rebuild as the first committed run left the lake
    with engine_for(settings).connect() as connection:
        runs = db.ingestion_runs
        first = connection.execute(
            sa.select(runs.c.run_id).where(runs.c.status == "committed").order_by(runs.c.finished_at).limit(1)
        ).scalar_one()
    old = runner.invoke(app, ["build", "--no-sql", "--lake-version", first], env=env)
    assert old.exit_code == 0, old.output
    assert f"lake read as of run {first}" in old.output
    manifest = json.loads((settings.snapshots / latest_build_id(settings) / "manifest.json").read_text())  # type: ignore[operator]
    assert manifest["lake"] == lake.lake_version(settings, first).as_dict()
    unknown = runner.invoke(app, ["build", "--lake-version", "no-such-run"], env=env)
    assert unknown.exit_code == 2
    assert "not a committed ingestion run" in unknown.output
    dispose_engine(settings)


# ------------------------------------------------------------------------------------------------
# liftboard export uplift: every prediction of the build, the figures the Strategy board shows
# ------------------------------------------------------------------------------------------------

EXPORT_SCHEMA = {
    "entity_kind": pl.String,
    "entity_id": pl.String,
    "strategy": pl.String,
    "eligible": pl.Boolean,
    "predicted_uplift_28d": pl.Float64,
    "low": pl.Float64,
    "high": pl.Float64,
    "established": pl.Boolean,
    "learner": pl.String,
    "run_id": pl.String,
    "as_of": pl.Date,
}


@pytest.fixture
def strategies_build(built: tuple[Settings, BuildResult, list], tmp_path: Path) -> Settings:
    """A home whose current build is the `built` one, strategies included (other tests of this module
    publish later builds, without strategies, in the shared home)."""
    _, result, _ = built
    settings = Settings.from_env(home=tmp_path / "home")
    shutil.copytree(result.path, settings.snapshots / result.build_id)
    (settings.snapshots / LATEST).write_text(result.build_id, encoding="utf-8")
    return settings


def test_cli_export_uplift_writes_every_entity_and_strategy(
    strategies_build: Settings, tmp_path: Path
) -> None:
    settings = strategies_build
    runner = CliRunner()
    env = {"LIFTBOARD_HOME": str(settings.home), "COLUMNS": "200"}
    target = tmp_path / "out" / "uplift.parquet"

    done = runner.invoke(app, ["export", "uplift", "--out", str(target)], env=env)

    assert done.exit_code == 0, done.output
    exported = pl.read_parquet(target)
    assert dict(exported.schema) == EXPORT_SCHEMA
    recs = load_snapshot("recommendations", settings).collect()
    (run_id,) = recs["run_id"].unique().to_list()
    assert f"wrote {exported.height:,} predictions" in done.output
    assert f"as of {AS_OF}, run {run_id}" in done.output
    # one row per entity × strategy of its kind, eligible or not
    catalog = load_snapshot("strategy_catalog", settings).collect()
    entities = {
        "creator": set(load_snapshot("creator_features", settings).collect()["creator_id"]),
        "merchant": set(load_snapshot("merchant_features", settings).collect()["merchant_id"]),
    }
    for kind, ids in entities.items():
        strategies = set(catalog.filter(pl.col("target") == kind)["strategy"])
        rows = exported.filter(pl.col("entity_kind") == kind)
        assert set(rows.select("entity_id", "strategy").rows()) == {(e, s) for e in ids for s in strategies}
        assert rows.height == len(ids) * len(strategies)
    assert (~exported["eligible"]).any(), "ineligible pairs are exported too"
    assert exported["as_of"].unique().to_list() == [AS_OF]
    assert exported["run_id"].unique().to_list() == [run_id]
    assert exported["learner"].null_count() == 0
    # the eligible pairs are the recommendations, with the same figures
    keys = ["entity_kind", "entity_id", "strategy"]
    eligible = exported.filter(pl.col("eligible"))
    same = eligible.join(recs, on=keys, how="full", coalesce=True)
    assert same.height == eligible.height == recs.height
    assert (same["predicted_uplift_28d"] == same["expected_uplift"]).all()
    assert (same["low"] == same["uplift_low"]).all()
    assert (same["high"] == same["uplift_high"]).all()
    assert (same["established"] == same["established_right"]).all()

    as_csv = tmp_path / "uplift.csv"
    done = runner.invoke(app, ["export", "uplift", "--out", str(as_csv)], env=env)
    assert done.exit_code == 0, done.output
    back = pl.read_csv(as_csv, schema=EXPORT_SCHEMA)
    assert_frame_equal(back, exported)


def test_cli_export_uplift_without_a_build_or_with_a_bad_file_name(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"LIFTBOARD_HOME": str(tmp_path / "empty"), "COLUMNS": "200"}

    missing = runner.invoke(app, ["export", "uplift", "--out", str(tmp_path / "u.parquet")], env=env)
    assert missing.exit_code == 1
    assert "error: no build in" in missing.output
    assert "run `liftboard build` first" in missing.output
    assert not (tmp_path / "u.parquet").exists()

    bad = runner.invoke(app, ["export", "uplift", "--out", str(tmp_path / "u.xlsx")], env=env)
    assert bad.exit_code == 2
    assert "must end in .parquet or .csv" in bad.output
