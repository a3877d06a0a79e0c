"""The weekly business review of one ISO week, assembled once for every format.

Sections, in meeting order (the same layout every week):

1. ``headline`` — headline KPIs with week-over-week change, change against the mean of the four
   previous weeks and against the same week 13 weeks earlier;
2. ``trends_volume`` and ``trends_activity`` — a "6/12" chart per headline metric (6 weeks beside
   6 months, see `reports.common`);
3. ``contributions`` — how the GMV change splits across regions, categories, tiers, content kinds
   and merchants (exact, from `analytics.movers`);
4. ``movers`` — rising and declining creators and merchants;
5. ``cohorts`` — cohort health: this week's retention and GMV per member of recent cohorts against
   the average at the same age;
6. ``follow_up`` — the follow-up loop: recommendations accepted earlier (the workflow in
   `strategies.store`), predicted against realized uplift so far;
7. ``recommendations`` — the new top recommendations by net value;
8. ``notes`` — the meeting notes typed for this week (`reports.notes`).

A merchant-success user's review covers only their merchants: KPIs, trends, contributions and
movers are computed from their merchants' daily facts, cohorts (marketplace-wide) are left out, and
recommendations and follow-ups are their merchants' only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from analytics import movers as movers_lib
from core.access import User, scope_frame
from core.config import Settings
from reports.common import (
    complete_weeks,
    dimension,
    headline_kpis,
    is_scoped,
    last_complete_week,
    manifest_or_raise,
    monthly_series_overall,
    parse_week,
    series_from_merchant_daily,
    snapshot_for,
    trend_chart,
    week_label,
    week_period,
    weekly_series_from_kpis,
)
from reports.model import Chart, NoReportData, Report, ReportError, Section, Table, kpi_table
from reports.notes import read_notes
from strategies.catalog import load_catalog
from strategies.outcomes import WINDOW_DAYS, followed_up_actions, realized_uplift
from strategies.store import read_actions
from strategies.wording import EVIDENCE_UNPROVEN, NET_VALUE_HELP, evidence_label

HEADLINE_METRICS: tuple[str, ...] = (
    "gmv",
    "net_gmv",
    "orders",
    "aov",
    "active_creators",
    "active_merchants",
    "ctr",
    "cvr",
)
VOLUME_METRICS = HEADLINE_METRICS[:4]
ACTIVITY_METRICS = HEADLINE_METRICS[4:]
FOLLOW_UP_DAYS = WINDOW_DAYS
"""Uplift is predicted over 28 days; a follow-up is "so far" until that many days have passed."""
MOVERS_SHOWN = 15
RECOMMENDATIONS_SHOWN = 20

_MONEY = {"gmv": "usd", "previous_gmv": "usd", "change": "usd", "net_gmv": "usd", "growth_pct": "pct_change"}


def notes_owner(user: User | None) -> str | None:
    """Whose notes a review shows: the shared ones (``None``) for everyone who sees every merchant,
    a merchant-success user's own for their scoped review (their notes may name their merchants)."""
    return user.username if is_scoped(user) and user is not None else None


def resolve_week(settings: Settings, week: str | date | None) -> date:
    """The Monday of the week to review: ``week`` (``2026-W47`` or a date in it), default the last
    complete week of the current build.

    Raises:
        NoReportData: no build.
        ReportError: the week is not a complete week of the data.
    """
    manifest = manifest_or_raise(settings)
    as_of = date.fromisoformat(str(manifest["as_of"]))
    if week is None:
        return last_complete_week(as_of)
    monday = parse_week(week) if isinstance(week, str) else week - timedelta(days=week.weekday())
    weeks = complete_weeks(settings)
    if not weeks:
        raise NoReportData("the current build has no complete week of data")
    if monday not in weeks:
        raise ReportError(
            f"week {week_label(monday)} is not a complete week of the data "
            f"({week_label(weeks[0])} to {week_label(weeks[-1])})"
        )
    return monday


def weekly_review(settings: Settings, week: str | date | None = None, user: User | None = None) -> Report:
    """Assemble the weekly review of ``week`` (default: the last complete week) as ``user`` may see it.

    Raises:
        NoReportData: no build, or the build has no data.
        ReportError: unknown week.
    """
    manifest = manifest_or_raise(settings)
    monday = resolve_week(settings, week)
    sunday = monday + timedelta(days=6)
    scoped = is_scoped(user)
    merchant_daily = snapshot_for("merchant_daily", settings, user)
    if scoped:
        weekly = series_from_merchant_daily(merchant_daily, HEADLINE_METRICS, "1w", sunday)
        monthly = series_from_merchant_daily(merchant_daily, HEADLINE_METRICS, "1mo", sunday)
        creator_daily = None
    else:
        weekly = weekly_series_from_kpis(snapshot_for("kpi_weekly", settings, user), HEADLINE_METRICS, "all")
        creator_daily = snapshot_for("creator_daily", settings, user)
        monthly = monthly_series_overall(creator_daily, merchant_daily, HEADLINE_METRICS, sunday)
    kpis = headline_kpis(weekly, monday, HEADLINE_METRICS)

    sections = [
        _headline(kpis),
        Section(
            key="trends_volume",
            short_title="Trends volume",
            title="Trends: GMV, net GMV, orders, AOV",
            summary=("Each chart: the last 6 weeks beside the last 6 months.",),
            charts=tuple(trend_chart(weekly, monthly, monday, name) for name in VOLUME_METRICS),
        ),
        Section(
            key="trends_activity",
            short_title="Trends activity",
            title="Trends: active creators and merchants, CTR, CVR",
            summary=("Each chart: the last 6 weeks beside the last 6 months.",),
            charts=tuple(trend_chart(weekly, monthly, monday, name) for name in ACTIVITY_METRICS),
        ),
        _contributions(creator_daily, merchant_daily, monday, sunday, settings),
        _movers(creator_daily, merchant_daily, monday, sunday, settings),
    ]
    if not scoped:
        sections.append(_cohorts(settings, monday))
    sections.append(_follow_up(settings, user, creator_daily, merchant_daily, monday, sunday))
    sections.append(_recommendations(settings, user))
    notes = read_notes(settings, week_label(monday), notes_owner(user))
    sections.append(
        Section(
            key="notes",
            short_title="Meeting notes",
            title="Meeting notes",
            summary=(
                (f"Last edited by {notes.updated_by or 'unknown'} at {notes.updated_at:%Y-%m-%d %H:%M} UTC.",)
                if notes.updated_at
                else ("No notes yet for this week.",)
            ),
            text=notes.text,
        )
    )
    scope = (
        f"{len(user.merchant_ids or ())} merchant(s) of {user.username}"
        if scoped and user is not None
        else "all merchants"
    )
    # the week is the report's period, printed beside these: not repeated here
    filters = {"scope": scope, "build": str(manifest["build_id"])}
    if user is not None:
        filters["user"] = user.username
    return Report(
        kind="weekly",
        title="Weekly business review",  # the period names the week: "2026-W47 (…)"
        period=week_period(monday),
        filters=filters,
        build_id=str(manifest["build_id"]),
        generated_at=datetime.now(UTC).replace(microsecond=0),
        sections=tuple(sections),
        slug=f"weekly-review-{week_label(monday)}" + (f"-{user.username}" if scoped and user else ""),
    )


def _headline(kpis: tuple[object, ...]) -> Section:
    from reports.model import Kpi

    cards = tuple(k for k in kpis if isinstance(k, Kpi))
    gmv = next((k for k in cards if k.metric == "gmv"), None)
    summary: list[str] = []
    if gmv is not None and gmv.value is not None:
        parts = [f"GMV ${gmv.value:,.0f}"]
        if gmv.change_pct is not None:
            parts.append(f"{gmv.change_pct:+.1%} week over week")
        if gmv.change_vs_4w_pct is not None:
            parts.append(f"{gmv.change_vs_4w_pct:+.1%} against the 4-week average")
        if gmv.change_vs_13w_pct is not None:
            parts.append(f"{gmv.change_vs_13w_pct:+.1%} against 13 weeks earlier")
        summary.append(", ".join(parts) + ".")
    summary.append("4-week average: mean of the four weeks before this one.")
    return Section(
        key="headline",
        title="Headline KPIs",
        short_title="Headline KPIs",
        summary=tuple(summary),
        kpis=cards,
        tables=(kpi_table(cards),),
    )


def _contributions(
    creator_daily: pl.LazyFrame | None,
    merchant_daily: pl.LazyFrame,
    monday: date,
    sunday: date,
    settings: Settings,
) -> Section:
    frames = []
    if creator_daily is not None:
        for column in ("region", "category", "tier", "content_kind"):
            frames.append(movers_lib.contribution_to_change(creator_daily, column, monday, sunday))
    else:
        for column in ("region", "category"):
            frames.append(movers_lib.contribution_to_change(merchant_daily, column, monday, sunday))
    frames.append(movers_lib.contribution_to_change(merchant_daily, "merchant_id", monday, sunday, top_n=10))
    stacked = pl.concat([f.collect() for f in frames], how="vertical")
    names = dimension("merchants", settings).select("merchant_id", "name")
    stacked = (
        stacked.join(names, left_on="segment", right_on="merchant_id", how="left")
        .with_columns(
            pl.when(pl.col("dimension") == "merchant_id")
            .then(pl.col("segment") + pl.lit(" ") + pl.col("name").fill_null(""))
            .otherwise(pl.col("segment"))
            .str.strip_chars()
            .alias("segment"),
            pl.col("dimension").replace({"merchant_id": "merchant", "content_kind": "content kind"}),
        )
        .select("dimension", "segment", "previous_gmv", "gmv", "contribution", "share_of_change")
    )
    total = float(frames[0].collect()["total_change"][0]) if stacked.height else 0.0
    chart_rows = stacked.filter(pl.col("dimension").is_in(["region", "category"])).select(
        pl.concat_str(pl.lit("By "), pl.col("dimension")).alias("panel"),
        pl.col("segment").alias("x"),
        pl.col("contribution").alias("y"),
        pl.lit("contribution").alias("series"),
    )
    table = Table(
        key="contributions",
        title="Contribution to the GMV change, by dimension",
        frame=stacked,
        labels={
            "previous_gmv": "Previous week",
            "gmv": "This week",
            "contribution": "Contribution",
            "share_of_change": "Share of change",
        },
        formats={
            "previous_gmv": "usd",
            "gmv": "usd",
            "contribution": "usd",
            "share_of_change": "ratio",
        },
        widths={"segment": 2.0},
        slide_columns=("dimension", "segment", "contribution", "share_of_change"),
    )
    return Section(
        key="contributions",
        short_title="Contributions",
        title="What moved GMV: contribution to change",
        summary=(
            f"GMV changed by {'+' if total >= 0 else '-'}${abs(total):,.0f} "
            f"from {week_label(monday - timedelta(days=7))} to {week_label(monday)}; "
            "within each dimension the contributions add up to that change exactly.",
        ),
        charts=(
            Chart(
                key="contribution_chart",
                title="Contribution to the GMV change",
                frame=chart_rows,
                kind="bar",
                y_format="usd",
            ),
        ),
        tables=(table,),
    )


def _mover_table(frame: pl.DataFrame, key: str, title: str, id_column: str, name_column: str) -> Table:
    columns = ["rank", id_column, name_column, "previous_gmv", "gmv", "change", "growth_pct"]
    return Table(
        key=key,
        title=title,
        frame=frame.select([c for c in columns if c in frame.columns]),
        labels={
            "creator_id": "Creator",
            "merchant_id": "Merchant",
            "handle": "Handle",
            "name": "Name",
            "previous_gmv": "Previous week",
            "gmv": "This week",
            "change": "Change",
            "growth_pct": "Growth",
        },
        formats={**_MONEY, "rank": "int"},
        print_rows=MOVERS_SHOWN,
        widths={name_column: 2.0, "rank": 0.5},
        slide_columns=(name_column, "previous_gmv", "gmv", "growth_pct"),
    )


def _movers(
    creator_daily: pl.LazyFrame | None,
    merchant_daily: pl.LazyFrame,
    monday: date,
    sunday: date,
    settings: Settings,
) -> Section:
    cfg = movers_lib.MoversConfig()
    creator_source = creator_daily if creator_daily is not None else merchant_daily
    tables = []
    for kind, source, key, dim, name_column in (
        ("creators", creator_source, "creator_id", "creators", "handle"),
        ("merchants", merchant_daily, "merchant_id", "merchants", "name"),
    ):
        for direction in ("rising", "declining"):
            frame = movers_lib.movers(
                source,
                key,
                monday,
                sunday,
                direction,
                cfg.movers_n,
                cfg.min_base_gmv,  # type: ignore[arg-type]
            ).collect()
            names = dimension(dim, settings, frame[key].to_list()).select(key, name_column)
            frame = frame.join(names, on=key, how="left", maintain_order="left")
            tables.append(
                _mover_table(
                    frame,
                    f"{direction}_{kind}",
                    f"{direction.capitalize()} {kind}",
                    key,
                    name_column,
                )
            )
    return Section(
        key="movers",
        short_title="Top movers",
        title="Top movers",
        summary=(
            f"Rising and declining by GMV growth from {week_label(monday - timedelta(days=7))} to "
            f"{week_label(monday)}, among those with at least ${cfg.min_base_gmv:,.0f} GMV the week before.",
        ),
        tables=tuple(tables),
    )


_COHORT_AGES = (1, 2, 4, 8, 12)


def _cohorts(settings: Settings, monday: date) -> Section:
    tables = []
    charts = []
    summary = []
    for kind, snapshot, cohort_kind, noun in (
        ("creators", "creator_cohorts", "first_active", "creators"),
        ("merchants", "merchant_cohorts", "first_sale", "merchants"),
    ):
        cohorts = snapshot_for(snapshot, settings, None).filter(pl.col("cohort_kind") == cohort_kind)
        this_week = (
            cohorts.filter(pl.col("week_start") == monday)
            .sort("cohort_week", descending=True)
            .select(
                "cohort_week",
                "weeks_since",
                "members",
                "active_members",
                "retention",
                "average_retention",
                (pl.col("retention") - pl.col("average_retention")).alias("retention_vs_average"),
                "gmv_per_member",
                "average_gmv_per_member",
            )
            .collect()
        )
        newcomers = this_week.filter(pl.col("weeks_since") == 0)
        if newcomers.height:
            new_members = int(newcomers["members"][0])
            average_new = (
                cohorts.filter((pl.col("weeks_since") == 0) & (pl.col("cohort_week") < monday))
                .select(pl.col("members").mean())
                .collect()
                .item()
            )
            summary.append(
                f"New {noun} ({cohort_kind.replace('_', ' ')} this week): {new_members:,}"
                + (f" against an average cohort of {average_new:,.0f}." if average_new else ".")
            )
        aged = this_week.filter(pl.col("weeks_since") > 0)
        if aged.height:
            above = int((aged["retention_vs_average"] >= 0).sum())
            summary.append(
                f"{noun.capitalize()} cohorts retaining at or above the average at their age: "
                f"{above} of {aged.height}."
            )
        tables.append(
            Table(
                key=f"{kind}_cohorts",
                title=f"{kind.capitalize()} cohorts ({cohort_kind.replace('_', ' ')}) "
                f"in {week_label(monday)}",
                frame=this_week,
                labels={
                    "cohort_week": "Cohort week",
                    "weeks_since": "Age (weeks)",
                    "active_members": "Active",
                    "retention": "Retention",
                    "average_retention": "Avg at age",
                    "retention_vs_average": "vs avg (pts)",
                    "gmv_per_member": "GMV / member",
                    "average_gmv_per_member": "Avg GMV / member",
                },
                formats={
                    "cohort_week": "date",
                    "weeks_since": "int",
                    "members": "int",
                    "active_members": "int",
                    "retention": "ratio",
                    "average_retention": "ratio",
                    "retention_vs_average": "pct_change",
                    "gmv_per_member": "usd2",
                    "average_gmv_per_member": "usd2",
                },
                print_rows=13,
            )
        )
        curves = (
            cohorts.filter(pl.col("weeks_since").is_in(list(_COHORT_AGES)) & (pl.col("week_start") <= monday))
            .select("cohort_week", "weeks_since", "retention", "average_retention")
            .collect()
        )
        known = set(curves["cohort_week"].to_list())
        recent = [monday - timedelta(days=7 * age) for age in (4, 8, 12, 16)]
        recent = [week for week in recent if week in known]
        rows = [
            {
                "panel": f"{kind.capitalize()}",
                "x": f"week {r['weeks_since']}",
                "y": r["retention"],
                "series": f"cohort {week_label(r['cohort_week'])}",
            }
            for r in curves.filter(pl.col("cohort_week").is_in(recent))
            .sort("cohort_week", "weeks_since")
            .to_dicts()
        ]
        average = curves.group_by("weeks_since").agg(pl.col("average_retention").first()).sort("weeks_since")
        rows += [
            {
                "panel": f"{kind.capitalize()}",
                "x": f"week {r['weeks_since']}",
                "y": r["average_retention"],
                "series": "average",
            }
            for r in average.to_dicts()
        ]
        charts.append(
            Chart(
                key=f"{kind}_retention",
                title=f"{kind[:-1].capitalize()} retention by cohort age",
                frame=pl.DataFrame(
                    rows, schema={"panel": pl.String, "x": pl.String, "y": pl.Float64, "series": pl.String}
                ),
                kind="line",
                y_format="ratio",
            )
        )
    summary.append("Averages are over every cohort observed at the same age in the current build.")
    return Section(
        key="cohorts",
        short_title="Cohort health",
        title="Cohort health",
        summary=tuple(summary),
        charts=tuple(charts),
        tables=tuple(tables),
    )


def follow_up_frame(
    settings: Settings,
    user: User | None,
    creator_daily: pl.LazyFrame | None,
    merchant_daily: pl.LazyFrame,
    sunday: date,
) -> pl.DataFrame:
    """Accepted recommendations started by ``sunday``: predicted against realized uplift so far.

    The figures are `strategies.outcomes.realized_uplift` (the strategy board's too) as of the end of
    the reviewed week, or of the data when that is earlier: over the d days observed since the start
    (at most 28), the entity's GMV minus its GMV in the d days before — a before/after difference, not
    a controlled estimate — against the 28-day prediction × d / 28. Rows are "so far" until 28 days
    have passed.
    """
    manifest = manifest_or_raise(settings)
    build_as_of = date.fromisoformat(str(manifest["as_of"]))
    actions = followed_up_actions(read_actions(settings), started_by=sunday)
    if user is not None:
        actions = scope_frame(actions.lazy(), user, "actions").collect()
    outcomes = realized_uplift(
        actions.sort("started_on", "entity_id"),
        creator_daily,
        merchant_daily,
        min(sunday + timedelta(days=1), build_as_of),
        window_days=FOLLOW_UP_DAYS,
    )
    names = pl.concat(
        [
            dimension(
                "creators",
                settings,
                outcomes.filter(pl.col("entity_kind") == "creator")["entity_id"].to_list(),
            ).select(
                pl.lit("creator").alias("entity_kind"),
                pl.col("creator_id").alias("entity_id"),
                pl.col("handle").alias("name"),
            ),
            dimension(
                "merchants",
                settings,
                outcomes.filter(pl.col("entity_kind") == "merchant")["entity_id"].to_list(),
            ).select(
                pl.lit("merchant").alias("entity_kind"),
                pl.col("merchant_id").alias("entity_id"),
                "name",
            ),
        ]
    )
    return outcomes.join(names, on=["entity_kind", "entity_id"], how="left", maintain_order="left").select(
        "entity_kind",
        "entity_id",
        "name",
        "strategy",
        "status",
        "owner",
        "started_on",
        "days_observed",
        "predicted_uplift",
        "predicted_so_far",
        "gmv_before",
        "gmv_since",
        "realized_uplift",
        "state",
    )


def _strategy_names() -> dict[str, str]:
    return {s.id: s.name for s in load_catalog().strategies}


def _follow_up(
    settings: Settings,
    user: User | None,
    creator_daily: pl.LazyFrame | None,
    merchant_daily: pl.LazyFrame,
    monday: date,
    sunday: date,
) -> Section:
    frame = follow_up_frame(settings, user, creator_daily, merchant_daily, sunday)
    frame = frame.with_columns(pl.col("strategy").replace(_strategy_names()))
    if frame.height:
        predicted = float(frame["predicted_so_far"].sum())
        realized = float(frame["realized_uplift"].sum())
        running = int((frame["days_observed"] < FOLLOW_UP_DAYS).sum())
        summary: tuple[str, ...] = (
            f"{frame.height} accepted recommendation(s) followed up, {running} still within their 28 days.",
            f"Predicted uplift so far ${predicted:,.0f}; realized so far ${realized:,.0f} "
            f"({'+' if realized >= predicted else '-'}${abs(realized - predicted):,.0f} "
            "against the prediction).",
            "Realized = GMV since the start minus GMV in as many days before it "
            "(before/after, not a controlled "
            "estimate); predicted so far = 28-day prediction × days elapsed / 28.",
        )
    else:
        summary = (f"No recommendation had been accepted and started by {sunday.isoformat()}.",)
    return Section(
        key="follow_up",
        short_title="Follow-up",
        title="Follow-up: predicted vs realized uplift",
        summary=summary,
        charts=(
            (
                Chart(
                    key="follow_up_chart",
                    title="Predicted vs realized uplift so far",
                    frame=pl.concat(
                        [
                            frame.select(
                                pl.lit("By action").alias("panel"),
                                pl.col("entity_id").alias("x"),
                                pl.col(column).alias("y"),
                                pl.lit(label).alias("series"),
                            )
                            for column, label in (
                                ("predicted_so_far", "predicted so far"),
                                ("realized_uplift", "realized so far"),
                            )
                        ]
                    ).head(40),
                    kind="bar",
                    y_format="usd",
                ),
            )
            if frame.height
            else ()
        ),
        tables=(
            Table(
                key="follow_up",
                title="Accepted recommendations",
                frame=frame,
                labels={
                    "entity_kind": "Kind",
                    "entity_id": "Entity",
                    "started_on": "Started",
                    "predicted_uplift": "Predicted (28 d)",
                    "predicted_so_far": "Predicted so far",
                    "gmv_before": "GMV before",
                    "gmv_since": "GMV since",
                    "realized_uplift": "Realized so far",
                    "days_observed": "Days",
                },
                formats={
                    "started_on": "date",
                    "days_observed": "int",
                    "predicted_uplift": "usd",
                    "predicted_so_far": "usd",
                    "gmv_before": "usd",
                    "gmv_since": "usd",
                    "realized_uplift": "usd",
                },
                print_rows=40,
                widths={"name": 1.6, "strategy": 1.6, "state": 1.5},
                # least important last: a narrow slide box drops columns from the end
                slide_columns=(
                    "name",
                    "strategy",
                    "predicted_so_far",
                    "realized_uplift",
                    "state",
                    "started_on",
                ),
                hidden=("owner", "gmv_before", "gmv_since"),
            ),
        ),
    )


def recommendations_frame(settings: Settings, user: User | None) -> pl.DataFrame:
    """The best recommendation per entity with positive net value, best first, excluding those
    already acted on (accepted, in progress, done or dismissed)."""
    recs = (
        snapshot_for("recommendations", settings, user)
        .filter(pl.col("is_best") & (pl.col("net_value") > 0))
        .sort("net_value", "entity_id", descending=[True, False])
        .collect()
    )
    actions = read_actions(settings)
    if actions.height:
        taken = actions.filter(pl.col("status") != "proposed").select("entity_kind", "entity_id", "strategy")
        recs = recs.join(taken, on=["entity_kind", "entity_id", "strategy"], how="anti")
    names = pl.concat(
        [
            dimension(
                "creators", settings, recs.filter(pl.col("entity_kind") == "creator")["entity_id"].to_list()
            ).select(pl.col("creator_id").alias("entity_id"), pl.col("handle").alias("name")),
            dimension(
                "merchants", settings, recs.filter(pl.col("entity_kind") == "merchant")["entity_id"].to_list()
            ).select(pl.col("merchant_id").alias("entity_id"), "name"),
        ]
    )
    return (
        recs.join(names, on="entity_id", how="left", maintain_order="left")
        .with_columns(pl.col("strategy").replace(_strategy_names()))
        .with_columns(
            evidence_label(
                pl.col("established") if "established" in recs.columns else pl.lit(None, pl.Boolean)
            )
            .fill_null("")
            .alias("evidence")
        )
        .select(
            "entity_kind",
            "entity_id",
            "name",
            "strategy",
            "evidence",
            "team",
            "expected_uplift",
            "uplift_low",
            "uplift_high",
            "cost",
            "net_value",
            "rationale",
        )
    )


def _recommendations(settings: Settings, user: User | None) -> Section:
    frame = recommendations_frame(settings, user)
    run = snapshot_for("recommendations", settings, user).select(pl.col("run_id").first()).collect()
    run_id = run.item() if run.height else None
    summary = [
        f"{frame.height:,} entities have a recommendation with positive net value"
        + (f" (run {run_id})." if run_id else "."),
    ]
    if frame.height:
        top = frame.head(RECOMMENDATIONS_SHOWN)
        summary.append(
            f"The top {top.height}: expected uplift ${top['expected_uplift'].sum():,.0f} over 28 days "
            f"for ${top['cost'].sum():,.0f} of cost."
        )
        unproven = top.filter(pl.col("evidence") == EVIDENCE_UNPROVEN).height
        if unproven:
            summary.append(
                f"{unproven} of them rest on a strategy the pilots have not proven yet "
                "(see the Strategy board's 'Pilots to run' or `liftboard pilot`)."
            )
    summary.append(NET_VALUE_HELP)
    return Section(
        key="recommendations",
        short_title="Recommendations",
        title="New top recommendations (best net value)",
        summary=tuple(summary),
        tables=(
            Table(
                key="recommendations",
                title="Best strategy per entity, by net value",
                frame=frame,
                labels={
                    "entity_kind": "Kind",
                    "entity_id": "Entity",
                    "evidence": "Evidence",
                    "expected_uplift": "Expected uplift (28 d)",
                    "uplift_low": "Low",
                    "uplift_high": "High",
                    "net_value": "Net value",
                },
                formats={
                    "expected_uplift": "usd",
                    "uplift_low": "usd",
                    "uplift_high": "usd",
                    "cost": "usd",
                    "net_value": "usd",
                },
                print_rows=RECOMMENDATIONS_SHOWN,
                widths={"rationale": 4.0, "name": 1.5, "strategy": 1.6},
                slide_columns=("entity_kind", "name", "strategy", "expected_uplift", "cost", "net_value"),
                hidden=("team", "uplift_low", "uplift_high"),
            ),
        ),
    )
