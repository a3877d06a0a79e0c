"""Benchmark: the analytics build on ``large``, and one computation in Polars, DuckDB SQL and pandas.

The compared computation, from the raw lake (orders, engagement, content, creators) as of the day
after the last order:

1. the creator daily fact (orders, engagement and content per creator, day and content kind);
2. weekly KPIs (ISO weeks) overall and by region, category, tier and content kind — base sums, active
   creators, the metric dictionary's ratios, each with the previous week and the same week 4 and 13
   weeks earlier, every (week, segment) present;
3. creator cohort retention and GMV per member by weeks since joining (join-week and first-activity
   cohorts) with the previous cohort's and the all-cohort average retention at the same age.

Each engine writes its two result tables to Parquet; the run checks that the three agree. Every
measurement runs in its own subprocess; wall time and peak RSS come from ``os.wait4``'s rusage.

Usage::

    .venv/bin/python bench/bench_build.py [--home /tmp/lb_large] [--scale large] [--skip-build]

The marketplace is generated into ``--home`` once (several minutes for ``large``) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BREAKDOWNS = ("overall", "region", "category", "tier", "content_kind")
SUMS = (
    "orders",
    "gmv",
    "refunded_gmv",
    "cancelled",
    "commission",
    "impressions",
    "views",
    "clicks",
    "add_to_carts",
    "videos",
    "lives",
)
COMPARED_METRICS = (
    "gmv",
    "net_gmv",
    "orders",
    "aov",
    "ctr",
    "cvr",
    "gpm",
    "commission",
    "take_rate",
    "refund_rate",
    "active_creators",
    "gmv_per_active_creator",
)


# ------------------------------------------------------------------------------------------------
# The three implementations (each runs in a subprocess: `--run <engine> --home … --out …`)
# ------------------------------------------------------------------------------------------------


def run_polars(home: Path, out: Path, as_of: date) -> dict[str, float]:
    """The computation with Liftboard's own Polars stages (streaming engine)."""
    import polars as pl

    from analytics import cohorts, kpis, sources
    from core.config import Settings

    settings = Settings.from_env(home=home)
    inputs = sources.load_inputs(settings)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    fact = out / "polars_creator_daily.parquet"
    sources.creator_daily(inputs, as_of).sink_parquet(fact, engine="streaming")
    timings["creator_daily"] = time.perf_counter() - started
    daily = pl.scan_parquet(fact)
    no_merchants = pl.LazyFrame(schema=dict(sources.MERCHANT_DAILY_SCHEMA))
    step = time.perf_counter()
    traits = sources.creator_traits(inputs.creators)  # as the SQL joins the creators table
    kpis.kpi_table(
        daily, no_merchants, "week", BREAKDOWNS, as_of, COMPARED_METRICS, traits=traits
    ).sink_parquet(out / "polars_kpis.parquet", engine="streaming")
    timings["weekly_kpis"] = time.perf_counter() - step
    step = time.perf_counter()
    cohorts.creator_cohorts(daily, inputs.creators, as_of, kinds=("joined", "first_active")).sink_parquet(
        out / "polars_cohorts.parquet", engine="streaming"
    )
    timings["cohorts"] = time.perf_counter() - step
    return timings


def _duckdb_sql(lake: Path, as_of: date, first_week: date, last_week: date) -> list[str]:
    orders, engagement = lake / "orders/*/*.parquet", lake / "engagement/*/*.parquet"
    content, creators = lake / "content/*/*.parquet", lake / "creators/creators.parquet"
    bound = f"TIMESTAMPTZ '{as_of.isoformat()} 00:00:00+00'"
    sums = ", ".join(SUMS)
    summed = ", ".join(f"sum({name}) AS {name}" for name in SUMS)
    coalesced = ", ".join(f"coalesce(sum({name}), 0) AS {name}" for name in SUMS)
    segment_case = """CASE WHEN GROUPING(region) = 0 THEN 'region' WHEN GROUPING(category) = 0 THEN 'category'
                        WHEN GROUPING(tier) = 0 THEN 'tier'
                        WHEN GROUPING(content_kind) = 0 THEN 'content_kind' ELSE 'overall' END"""
    sets = "(week), (week, region), (week, category), (week, tier), (week, content_kind)"

    def lag(alias: str, days: int) -> str:
        return (
            f"LEFT JOIN long {alias} ON {alias}.breakdown = l.breakdown AND {alias}.segment = l.segment "
            f"AND {alias}.metric = l.metric AND {alias}.week = l.week - INTERVAL {days} DAY"
        )

    metrics = """
        gmv, gmv - refunded_gmv AS net_gmv, orders,
        CASE WHEN orders > 0 THEN gmv / orders END AS aov,
        CASE WHEN views > 0 THEN least(greatest(clicks / views, 0), 1) END AS ctr,
        CASE WHEN clicks > 0 THEN least(greatest(orders / clicks, 0), 1) END AS cvr,
        CASE WHEN views > 0 THEN gmv * 1000 / views END AS gpm,
        commission,
        CASE WHEN gmv > 0 THEN least(greatest(commission / gmv, 0), 1) END AS take_rate,
        CASE WHEN gmv > 0 THEN least(greatest(refunded_gmv / gmv, 0), 1) END AS refund_rate,
        active_creators,
        CASE WHEN active_creators > 0 THEN gmv / active_creators END AS gmv_per_active_creator"""
    unpivoted = ", ".join(COMPARED_METRICS)
    return [
        f"""CREATE TEMP TABLE content AS
            SELECT content_id, creator_id, kind, published_at FROM read_parquet('{content}')""",
        f"""CREATE TEMP TABLE creators AS
            SELECT creator_id, joined_on, region, primary_category AS category,
                   CASE WHEN followers < 10000 THEN 'nano' WHEN followers < 100000 THEN 'micro'
                        WHEN followers < 500000 THEN 'mid' WHEN followers < 1000000 THEN 'macro'
                        ELSE 'mega' END AS tier
            FROM read_parquet('{creators}')""",
        f"""CREATE TEMP TABLE creator_daily AS
        WITH sales AS (
            SELECT CAST(o.ordered_at AS DATE) AS date, o.creator_id, coalesce(c.kind, 'none') AS content_kind,
                   sum(CAST(o.status <> 'cancelled' AS BIGINT)) AS orders,
                   sum(CASE WHEN o.status <> 'cancelled' THEN o.gmv ELSE 0 END) AS gmv,
                   sum(CASE WHEN o.status = 'refunded' THEN o.gmv ELSE 0 END) AS refunded_gmv,
                   sum(CAST(o.status = 'cancelled' AS BIGINT)) AS cancelled,
                   sum(CASE WHEN o.status <> 'cancelled' THEN o.commission ELSE 0 END) AS commission
            FROM read_parquet('{orders}') o LEFT JOIN content c USING (content_id)
            WHERE o.ordered_at < {bound}
            GROUP BY ALL),
        eng AS (
            SELECT e.date, c.creator_id, c.kind AS content_kind, sum(e.impressions) AS impressions,
                   sum(e.views) AS views, sum(e.clicks) AS clicks, sum(e.add_to_carts) AS add_to_carts
            FROM read_parquet('{engagement}') e JOIN content c USING (content_id)
            WHERE e.date < DATE '{as_of.isoformat()}'
            GROUP BY ALL),
        published AS (
            SELECT CAST(published_at AS DATE) AS date, creator_id, kind AS content_kind,
                   sum(CAST(kind = 'video' AS BIGINT)) AS videos, sum(CAST(kind = 'live' AS BIGINT)) AS lives
            FROM content WHERE published_at < {bound} GROUP BY ALL),
        unioned AS (
            SELECT * FROM sales UNION ALL BY NAME SELECT * FROM eng UNION ALL BY NAME SELECT * FROM published)
        SELECT date, creator_id, content_kind, {coalesced}
        FROM unioned GROUP BY ALL""",
        f"""CREATE TEMP TABLE weekly AS
        WITH base AS (
            SELECT date_trunc('week', d.date)::DATE AS week, d.creator_id, c.region, c.category, c.tier,
                   d.content_kind, {sums},
                   (videos + lives > 0 OR orders > 0) AS active
            FROM creator_daily d JOIN creators c USING (creator_id)),
        grouped AS (
            SELECT week,
                   {segment_case} AS breakdown,
                   coalesce(region, category, tier, content_kind, 'all') AS segment,
                   {summed}, count(DISTINCT CASE WHEN active THEN creator_id END) AS active_creators
            FROM base
            GROUP BY GROUPING SETS ({sets})),
        weeks AS (SELECT DISTINCT week FROM grouped),
        segments AS (SELECT DISTINCT breakdown, segment FROM grouped),
        grid AS (
            SELECT w.week, s.breakdown, s.segment,
                   {", ".join(f"coalesce(g.{n}, 0) AS {n}" for n in [*SUMS, "active_creators"])}
            FROM weeks w CROSS JOIN segments s LEFT JOIN grouped g USING (week, breakdown, segment)),
        valued AS (SELECT week, breakdown, segment, {metrics} FROM grid),
        long AS (SELECT * FROM valued UNPIVOT INCLUDE NULLS (value FOR metric IN ({unpivoted})))
        SELECT l.week, l.breakdown, l.segment, l.metric, l.value,
               p.value AS previous_value, l.value - p.value AS change,
               CASE WHEN abs(p.value) > 0 THEN (l.value - p.value) / abs(p.value) END AS change_pct,
               p4.value AS value_4w_ago, p13.value AS value_13w_ago
        FROM long l
        {lag("p", 7)}
        {lag("p4", 28)}
        {lag("p13", 91)}""",
        f"""CREATE TEMP TABLE cohorts AS
        WITH activity AS (
            SELECT date_trunc('week', date)::DATE AS week, creator_id,
                   bool_or(videos + lives > 0 OR orders > 0) AS active, sum(gmv) AS gmv
            FROM creator_daily GROUP BY ALL),
        members AS (
            SELECT 'joined' AS cohort_kind, creator_id, date_trunc('week', joined_on)::DATE AS cohort_week
            FROM creators
            WHERE joined_on < DATE '{as_of}'
              AND date_trunc('week', joined_on) BETWEEN DATE '{first_week}' AND DATE '{last_week}'
            UNION ALL
            SELECT 'first_active', creator_id, min(week) FROM activity WHERE active GROUP BY creator_id
            HAVING min(week) BETWEEN DATE '{first_week + timedelta(days=7)}' AND DATE '{last_week}'),
        sizes AS (SELECT cohort_kind, cohort_week, count(*) AS members FROM members GROUP BY ALL),
        weeks AS (SELECT DISTINCT week FROM activity WHERE week <= DATE '{last_week}'),
        counted AS (
            SELECT m.cohort_kind, m.cohort_week, a.week, sum(CAST(a.active AS BIGINT)) AS active_members,
                   sum(a.gmv) AS gmv
            FROM members m JOIN activity a USING (creator_id)
            WHERE a.week >= m.cohort_week AND a.week <= DATE '{last_week}'
            GROUP BY ALL),
        grid AS (
            SELECT s.cohort_kind, s.cohort_week, w.week, s.members,
                   coalesce(c.active_members, 0) AS active_members, coalesce(c.gmv, 0) AS gmv
            FROM sizes s JOIN weeks w ON w.week >= s.cohort_week
            LEFT JOIN counted c USING (cohort_kind, cohort_week, week)),
        rated AS (
            SELECT *, CAST(datediff('day', cohort_week, week) / 7 AS BIGINT) AS weeks_since,
                   active_members / members AS retention, gmv / members AS gmv_per_member FROM grid)
        SELECT *,
               sum(gmv_per_member) OVER (PARTITION BY cohort_kind, cohort_week ORDER BY weeks_since)
                   AS cumulative_gmv_per_member,
               lag(retention) OVER (PARTITION BY cohort_kind, weeks_since ORDER BY cohort_week)
                   AS previous_cohort_retention,
               avg(retention) OVER (PARTITION BY cohort_kind, weeks_since) AS average_retention
        FROM rated""",
    ]


def _week_bounds(home: Path, as_of: date) -> tuple[date, date]:
    import polars as pl

    from analytics.cohorts import last_complete_week

    first = (
        pl.scan_parquet(home / "lake/orders/*/*.parquet").select(pl.col("ordered_at").min()).collect().item()
    )
    first_day = first.date()
    return first_day - timedelta(days=first_day.weekday()), last_complete_week(as_of)


def run_duckdb(home: Path, out: Path, as_of: date) -> dict[str, float]:
    """The computation in DuckDB SQL over the same Parquet files."""
    import duckdb

    first_week, last_week = _week_bounds(home, as_of)
    connection = duckdb.connect()
    connection.execute(f"SET temp_directory = '{out / 'duckdb_tmp'}'")
    timings: dict[str, float] = {}
    names = ("content", "creators", "creator_daily", "weekly_kpis", "cohorts")
    for name, statement in zip(names, _duckdb_sql(home / "lake", as_of, first_week, last_week), strict=True):
        started = time.perf_counter()
        connection.execute(statement)
        timings[name] = time.perf_counter() - started
    started = time.perf_counter()
    connection.execute(f"COPY weekly TO '{out / 'duckdb_kpis.parquet'}' (FORMAT parquet)")
    connection.execute(f"COPY cohorts TO '{out / 'duckdb_cohorts.parquet'}' (FORMAT parquet)")
    timings["write"] = time.perf_counter() - started
    return timings


def run_pandas(home: Path, out: Path, as_of: date) -> dict[str, float]:
    """The computation in pandas (pyarrow-backed reads, merges and group-bys)."""
    import numpy as np
    import pandas as pd

    first_week, last_week = _week_bounds(home, as_of)
    lake = home / "lake"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def read(table: str, columns: list[str]) -> pd.DataFrame:
        files = sorted((lake / table).glob("date=*/*.parquet")) or [lake / table / f"{table}.parquet"]
        return pd.concat([pd.read_parquet(path, columns=columns) for path in files], ignore_index=True)

    content = read("content", ["content_id", "creator_id", "kind", "published_at"])
    creators = read("creators", ["creator_id", "joined_on", "region", "primary_category", "followers"])
    creators = creators.rename(columns={"primary_category": "category"})
    creators["tier"] = pd.cut(
        creators["followers"],
        [-np.inf, 10_000, 100_000, 500_000, 1_000_000, np.inf],
        right=False,
        labels=["nano", "micro", "mid", "macro", "mega"],
    ).astype(str)
    bound = pd.Timestamp(as_of, tz="UTC")
    orders = read("orders", ["ordered_at", "creator_id", "content_id", "gmv", "commission", "status"])
    orders = orders[orders["ordered_at"] < bound]
    kept = orders["status"] != "cancelled"
    sales = pd.DataFrame(
        {
            "date": orders["ordered_at"].dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None),
            "creator_id": orders["creator_id"],
            "content_id": orders["content_id"],
            "orders": kept.astype("int64"),
            "gmv": orders["gmv"].where(kept, 0.0),
            "refunded_gmv": orders["gmv"].where(orders["status"] == "refunded", 0.0),
            "cancelled": (~kept).astype("int64"),
            "commission": orders["commission"].where(kept, 0.0),
        }
    )
    del orders, kept
    sales = sales.merge(content[["content_id", "kind"]], on="content_id", how="left")
    sales["content_kind"] = sales["kind"].fillna("none")
    sales = sales.drop(columns=["kind", "content_id"])
    sales = sales.groupby(["date", "creator_id", "content_kind"], as_index=False, sort=False).sum()
    engagement = read("engagement", ["date", "content_id", "impressions", "views", "clicks", "add_to_carts"])
    engagement = engagement[engagement["date"] < as_of]
    engagement = engagement.merge(content[["content_id", "creator_id", "kind"]], on="content_id", how="inner")
    engagement = engagement.rename(columns={"kind": "content_kind"}).drop(columns=["content_id"])
    engagement["date"] = pd.to_datetime(engagement["date"])
    engagement = engagement.groupby(["date", "creator_id", "content_kind"], as_index=False, sort=False).sum()
    published = content[content["published_at"] < bound]
    published = pd.DataFrame(
        {
            "date": published["published_at"].dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None),
            "creator_id": published["creator_id"],
            "content_kind": published["kind"],
            "videos": (published["kind"] == "video").astype("int64"),
            "lives": (published["kind"] == "live").astype("int64"),
        }
    )
    daily = pd.concat([sales, engagement, published], ignore_index=True).fillna(0)
    del sales, engagement, published
    sums = [
        "orders",
        "gmv",
        "refunded_gmv",
        "cancelled",
        "commission",
        "impressions",
        "views",
        "clicks",
        "add_to_carts",
        "videos",
        "lives",
    ]
    daily = daily.groupby(["date", "creator_id", "content_kind"], as_index=False, sort=False)[sums].sum()
    daily = daily.merge(creators[["creator_id", "region", "category", "tier"]], on="creator_id", how="left")
    timings["creator_daily"] = time.perf_counter() - started

    step = time.perf_counter()
    daily["week"] = daily["date"] - pd.to_timedelta(daily["date"].dt.day_of_week, unit="D")
    daily["active"] = (daily["videos"] + daily["lives"] > 0) | (daily["orders"] > 0)
    daily["active_creator"] = daily["creator_id"].where(daily["active"])
    frames = []
    for breakdown in BREAKDOWNS:
        keys = ["week"] if breakdown == "overall" else ["week", breakdown]
        grouped = (
            daily.groupby(keys, sort=False)
            .agg(**{name: (name, "sum") for name in sums}, active_creators=("active_creator", "nunique"))
            .reset_index()
        )
        grouped["segment"] = "all" if breakdown == "overall" else grouped[breakdown].astype(str)
        grouped["breakdown"] = breakdown
        weeks = pd.DataFrame({"week": sorted(daily["week"].unique())})
        segments = grouped[["segment"]].drop_duplicates()
        grid = weeks.merge(segments, how="cross").merge(
            grouped.drop(columns=[c for c in (breakdown,) if c in grouped.columns and c != "segment"]),
            on=["week", "segment"],
            how="left",
        )
        grid["breakdown"] = breakdown
        grid[[*sums, "active_creators"]] = grid[[*sums, "active_creators"]].fillna(0)
        frames.append(grid)
    grid = pd.concat(frames, ignore_index=True)

    def ratio(numerator: pd.Series, denominator: pd.Series, clip: bool = False) -> pd.Series:
        value = (numerator / denominator.where(denominator > 0)).astype("float64")
        return value.clip(0, 1) if clip else value

    values = pd.DataFrame(
        {
            "week": grid["week"],
            "breakdown": grid["breakdown"],
            "segment": grid["segment"],
            "gmv": grid["gmv"],
            "net_gmv": grid["gmv"] - grid["refunded_gmv"],
            "orders": grid["orders"],
            "aov": ratio(grid["gmv"], grid["orders"]),
            "ctr": ratio(grid["clicks"], grid["views"], True),
            "cvr": ratio(grid["orders"], grid["clicks"], True),
            "gpm": ratio(grid["gmv"] * 1000, grid["views"]),
            "commission": grid["commission"],
            "take_rate": ratio(grid["commission"], grid["gmv"], True),
            "refund_rate": ratio(grid["refunded_gmv"], grid["gmv"], True),
            "active_creators": grid["active_creators"],
            "gmv_per_active_creator": ratio(grid["gmv"], grid["active_creators"]),
        }
    )
    long = values.melt(id_vars=["week", "breakdown", "segment"], var_name="metric", value_name="value")
    long["value"] = long["value"].astype("float64")
    keys = ["week", "breakdown", "segment", "metric"]
    for days, name in ((7, "previous_value"), (28, "value_4w_ago"), (91, "value_13w_ago")):
        shifted = long[keys + ["value"]].rename(columns={"value": name})
        shifted["week"] = shifted["week"] + pd.Timedelta(days=days)
        long = long.merge(shifted, on=keys, how="left")
    long["change"] = long["value"] - long["previous_value"]
    long["change_pct"] = long["change"] / long["previous_value"].abs().where(long["previous_value"].abs() > 0)
    long.to_parquet(out / "pandas_kpis.parquet")
    timings["weekly_kpis"] = time.perf_counter() - step

    step = time.perf_counter()
    activity = daily.groupby(["week", "creator_id"], as_index=False, sort=False).agg(
        active=("active", "any"), gmv=("gmv", "sum")
    )
    last = pd.Timestamp(last_week)
    joined = creators[creators["joined_on"] < as_of].copy()
    joined["cohort_week"] = pd.to_datetime(joined["joined_on"])
    joined["cohort_week"] = joined["cohort_week"] - pd.to_timedelta(
        joined["cohort_week"].dt.day_of_week, unit="D"
    )
    joined = joined[(joined["cohort_week"] >= pd.Timestamp(first_week)) & (joined["cohort_week"] <= last)]
    joined = joined[["creator_id", "cohort_week"]].assign(cohort_kind="joined")
    first = activity[activity["active"]].groupby("creator_id", as_index=False)["week"].min()
    first = first[(first["week"] >= pd.Timestamp(first_week + timedelta(days=7))) & (first["week"] <= last)]
    first = first.rename(columns={"week": "cohort_week"}).assign(cohort_kind="first_active")
    members = pd.concat([joined, first], ignore_index=True)
    sizes = (
        members.groupby(["cohort_kind", "cohort_week"], as_index=False)
        .size()
        .rename(columns={"size": "members"})
    )
    counted = members.merge(activity[activity["week"] <= last], on="creator_id")
    counted = counted[counted["week"] >= counted["cohort_week"]]
    counted = counted.groupby(["cohort_kind", "cohort_week", "week"], as_index=False).agg(
        active_members=("active", "sum"), gmv=("gmv", "sum")
    )
    weeks = pd.DataFrame({"week": sorted(activity.loc[activity["week"] <= last, "week"].unique())})
    grid = sizes.merge(weeks, how="cross")
    grid = grid[grid["week"] >= grid["cohort_week"]].merge(
        counted, on=["cohort_kind", "cohort_week", "week"], how="left"
    )
    grid[["active_members", "gmv"]] = grid[["active_members", "gmv"]].fillna(0)
    grid["weeks_since"] = ((grid["week"] - grid["cohort_week"]).dt.days // 7).astype("int64")
    grid["retention"] = grid["active_members"] / grid["members"]
    grid["gmv_per_member"] = grid["gmv"] / grid["members"]
    grid = grid.sort_values(["cohort_kind", "cohort_week", "weeks_since"])
    grid["cumulative_gmv_per_member"] = grid.groupby(["cohort_kind", "cohort_week"])[
        "gmv_per_member"
    ].cumsum()
    grid = grid.sort_values(["cohort_kind", "weeks_since", "cohort_week"])
    grid["previous_cohort_retention"] = grid.groupby(["cohort_kind", "weeks_since"])["retention"].shift(1)
    grid["average_retention"] = grid.groupby(["cohort_kind", "weeks_since"])["retention"].transform("mean")
    grid.to_parquet(out / "pandas_cohorts.parquet")
    timings["cohorts"] = time.perf_counter() - step
    return timings


def run_build(home: Path, out: Path, as_of: date) -> dict[str, float]:
    """The whole analytics build: every analytics stage, Parquet snapshots and SQL tables.

    The strategies and matching stages (benchmarked in bench/bench_strategies.py and
    bench/bench_matching.py by their owners) are left out.
    """
    from core.config import Settings
    from liftboard.build import BuildConfig, build

    config = BuildConfig(with_strategies=False, with_matching=False)
    result = build(Settings.from_env(home=home), as_of, config=config)
    return dict(result.timings)


RUNNERS = {"build": run_build, "polars": run_polars, "duckdb": run_duckdb, "pandas": run_pandas}


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------


def measure(engine: str, home: Path, out: Path, as_of: date) -> dict[str, Any]:
    """Run one engine in a subprocess; wall time and peak RSS of that process alone."""
    command = [
        sys.executable,
        __file__,
        "--run",
        engine,
        "--home",
        str(home),
        "--out",
        str(out),
        "--as-of",
        as_of.isoformat(),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    output = process.stdout.read().decode() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{engine} failed (exit {os.waitstatus_to_exitcode(status)}):\n{output}")
    steps = json.loads(output.strip().splitlines()[-1])
    return {"engine": engine, "wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 1024**2, "steps": steps}


def compare(out: Path) -> dict[str, float]:
    """Largest differences between the engines' results (they should all be ~0)."""
    import polars as pl

    kpi = {
        name: pl.read_parquet(out / f"{name}_kpis.parquet")
        .rename({"period_start": "week"}, strict=False)
        .select(
            pl.col("week").cast(pl.Date),
            "breakdown",
            "segment",
            "metric",
            "value",
            "previous_value",
            "value_13w_ago",
        )
        for name in ("polars", "duckdb", "pandas")
    }
    cohort = {
        name: pl.read_parquet(out / f"{name}_cohorts.parquet").select(
            pl.col("cohort_kind"),
            pl.col("cohort_week").cast(pl.Date),
            pl.col("weeks_since").cast(pl.Int64),
            "members",
            "retention",
            "gmv_per_member",
            "previous_cohort_retention",
        )
        for name in ("polars", "duckdb", "pandas")
    }
    differences: dict[str, float] = {}
    for other in ("duckdb", "pandas"):
        joined = kpi["polars"].join(
            kpi[other], on=["week", "breakdown", "segment", "metric"], how="full", coalesce=True
        )
        for column in ("value", "previous_value", "value_13w_ago"):
            gap = (joined[column] - joined[f"{column}_right"]).abs() / joined[column].abs().clip(
                lower_bound=1
            )
            differences[f"kpi {column} polars vs {other} (max rel)"] = float(gap.fill_nan(0).max() or 0.0)
        differences[f"kpi rows polars/{other}"] = kpi["polars"].height / max(kpi[other].height, 1)
        joined = cohort["polars"].join(
            cohort[other], on=["cohort_kind", "cohort_week", "weeks_since"], how="full", coalesce=True
        )
        for column in ("members", "retention", "gmv_per_member", "previous_cohort_retention"):
            gap = (joined[column].cast(pl.Float64) - joined[f"{column}_right"].cast(pl.Float64)).abs()
            differences[f"cohort {column} polars vs {other} (max abs)"] = float(gap.fill_nan(0).max() or 0.0)
        differences[f"cohort rows polars/{other}"] = cohort["polars"].height / max(cohort[other].height, 1)
    return differences


def ensure_data(home: Path, scale: str) -> None:
    """Generate the marketplace into ``home`` unless a previous run did."""
    marker = home / f".bench-{scale}-complete"
    if marker.exists() or (home / "lake/orders").is_dir():
        return
    from core.config import Settings
    from datastore.db import upgrade_db
    from sim import simulate

    print(f"generating {scale} into {home} (several minutes) …", flush=True)
    upgrade_db(Settings.from_env(home=home))  # a new installation, as `liftboard demo` makes it
    simulate.generate(scale, 42, Settings.from_env(home=home))
    marker.touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/lb_large"))
    parser.add_argument("--scale", default="large")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None)
    parser.add_argument("--skip-build", action="store_true", help="Only the three-engine comparison.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per engine (the best wall time is kept).")
    parser.add_argument(
        "--engines", default="polars,duckdb,pandas", help="Comma-separated engines to compare (default: all)."
    )
    parser.add_argument("--run", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        print(json.dumps(RUNNERS[args.run](args.home, args.out, args.as_of)), flush=True)
        return

    ensure_data(args.home, args.scale)
    import polars as pl

    from analytics.sources import default_as_of
    from core.config import Settings
    from datastore.lake import scan_table

    settings = Settings.from_env(home=args.home)
    as_of = args.as_of or default_as_of(scan_table("orders", settings))
    rows = {
        name: scan_table(name, settings).select(pl.len()).collect().item()
        for name in ("orders", "engagement", "content", "creators")
    }
    print(f"{args.scale}: {rows}, as of {as_of}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as scratch:
        out = Path(scratch)
        engines = [name for name in args.engines.split(",") if name] + ([] if args.skip_build else ["build"])
        for engine in engines:
            runs = [measure(engine, args.home, out, as_of) for _ in range(args.repeat)]
            best = min(runs, key=lambda run: run["wall_s"])
            best["peak_rss_gib"] = max(run["peak_rss_gib"] for run in runs)
            best["all_wall_s"] = [round(run["wall_s"], 2) for run in runs]
            results.append(best)
            print(json.dumps(best), flush=True)
        compared = {"polars", "duckdb", "pandas"} <= set(engines)
        differences = compare(out) if compared else {}
    by_engine = {result["engine"]: result for result in results}

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator in by_engine and denominator in by_engine:
            return by_engine[numerator]["wall_s"] / by_engine[denominator]["wall_s"]
        return None

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    summary = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {memory_gib:.0f} GiB, "
        f"Python {platform.python_version()}",
        "load_average_at_end": os.getloadavg(),
        "rows": rows,
        "as_of": as_of.isoformat(),
        "results": results,
        "polars_over_duckdb": ratio("polars", "duckdb"),
        "pandas_over_polars": ratio("pandas", "polars"),
        "differences": differences,
    }
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
