"""The weekly review's numbers against independent computations on the built tiny marketplace."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from core.config import Settings
from datastore.snapshots import load_snapshot
from reports.model import NoReportData, ReportError
from reports.weekly import FOLLOW_UP_DAYS, RECOMMENDATIONS_SHOWN, weekly_review
from tests.reports.conftest import NOTES, WEEK, ReportWorld

MONDAY = date(2026, 11, 16)
SUNDAY = MONDAY + timedelta(days=6)


@pytest.fixture(scope="module")
def review(world: ReportWorld):  # type: ignore[no-untyped-def]
    return weekly_review(world.settings, WEEK)


def _gmv(daily: pl.LazyFrame, start: date, end: date) -> float:
    return float(
        daily.filter(pl.col("date").is_between(start, end)).select(pl.col("gmv").sum()).collect().item()
    )


def test_sections_in_meeting_order(review) -> None:  # type: ignore[no-untyped-def]
    assert [s.key for s in review.sections] == [
        "headline",
        "trends_volume",
        "trends_activity",
        "contributions",
        "movers",
        "cohorts",
        "follow_up",
        "recommendations",
        "notes",
    ]
    assert review.period == "2026-W47 (2026-11-16 – 2026-11-22)"
    assert review.period.startswith(WEEK)
    assert "week" not in review.filters  # the period names it; the page and footers printed it twice
    assert review.filters["scope"] == "all merchants"


def test_headline_gmv_and_its_comparisons(world: ReportWorld, review) -> None:  # type: ignore[no-untyped-def]
    daily = load_snapshot("creator_daily", world.settings)
    gmv = next(k for k in review.section("headline").kpis if k.metric == "gmv")
    assert gmv.value == pytest.approx(_gmv(daily, MONDAY, SUNDAY))
    previous = _gmv(daily, MONDAY - timedelta(days=7), SUNDAY - timedelta(days=7))
    assert gmv.previous == pytest.approx(previous)
    assert gmv.change_pct == pytest.approx((gmv.value - previous) / previous)
    four = [_gmv(daily, MONDAY - timedelta(days=7 * k), SUNDAY - timedelta(days=7 * k)) for k in range(1, 5)]
    assert gmv.average_4w == pytest.approx(sum(four) / 4)
    earlier = _gmv(daily, MONDAY - timedelta(days=91), SUNDAY - timedelta(days=91))
    assert gmv.value_13w_ago == pytest.approx(earlier)
    assert gmv.change_vs_13w_pct == pytest.approx((gmv.value - earlier) / earlier)


def test_trend_charts_have_six_weeks_and_months(world: ReportWorld, review) -> None:  # type: ignore[no-untyped-def]
    chart = review.section("trends_volume").charts[0]
    weeks = chart.frame.filter(pl.col("panel") == "Last 6 weeks")
    assert weeks["x"].to_list() == ["W42", "W43", "W44", "W45", "W46", "W47"]
    months = chart.frame.filter(pl.col("panel") == "Last 6 months")
    assert months["x"].to_list()[-1] == "Nov 2026 (run-rate)"
    assert months.height == 6
    assert weeks["y"][-1] == pytest.approx(review.section("headline").kpis[0].value)
    # GMV sums over days: November so far (1–22, to the end of the reviewed week) becomes a 30-day
    # run-rate, and the note says so
    daily = load_snapshot("creator_daily", world.settings)
    so_far = _gmv(daily, date(2026, 11, 1), SUNDAY)
    assert months["y"][-1] == pytest.approx(so_far * 30 / 22)
    assert "22 of 30 days" in chart.note
    # a rate is not a sum: CTR's partial month is shown as it is, "to date"
    ctr = next(c for c in review.section("trends_activity").charts if c.key == "trend_ctr")
    assert ctr.frame.filter(pl.col("panel") == "Last 6 months")["x"][-1] == "Nov 2026 (to 22)"


def test_contributions_add_up_to_the_change(world: ReportWorld, review) -> None:  # type: ignore[no-untyped-def]
    daily = load_snapshot("creator_daily", world.settings)
    change = _gmv(daily, MONDAY, SUNDAY) - _gmv(daily, MONDAY - timedelta(days=7), SUNDAY - timedelta(days=7))
    frame = review.section("contributions").table("contributions").frame
    for dimension, part in frame.group_by("dimension"):
        assert part["contribution"].sum() == pytest.approx(change, abs=0.05), dimension


def test_follow_up_predicted_vs_realized(world: ReportWorld, review) -> None:  # type: ignore[no-untyped-def]
    frame = review.section("follow_up").table("follow_up").frame
    assert frame.height == len(world.accepted)
    for action in world.accepted:
        row = frame.filter(pl.col("entity_id") == action.entity_id).row(0, named=True)
        days = min(FOLLOW_UP_DAYS, (SUNDAY - action.started_on).days + 1)
        daily = load_snapshot(f"{action.entity_kind}_daily", world.settings).filter(
            pl.col(f"{action.entity_kind}_id") == action.entity_id
        )
        since = _gmv(daily, action.started_on, action.started_on + timedelta(days=days - 1))
        before = _gmv(daily, action.started_on - timedelta(days=days), action.started_on - timedelta(days=1))
        assert row["days_observed"] == days
        assert row["realized_uplift"] == pytest.approx(since - before)
        assert row["predicted_so_far"] == pytest.approx(action.predicted_uplift * days / 28)
        assert row["state"] == ("complete (28 days)" if days == 28 else f"so far ({days} of 28 days)")
    assert set(frame["state"].to_list()) >= {"complete (28 days)", "so far (21 of 28 days)"}


def test_recommendations_by_net_value_without_accepted_ones(world: ReportWorld, review) -> None:  # type: ignore[no-untyped-def]
    frame = review.section("recommendations").table("recommendations").frame
    values = frame["net_value"].to_list()
    assert values == sorted(values, reverse=True)
    assert min(values) > 0
    accepted = {a.entity_id for a in world.accepted}
    assert not accepted & set(frame["entity_id"].to_list())
    best = load_snapshot("recommendations", world.settings).filter(
        pl.col("is_best") & (pl.col("net_value") > 0)
    )
    assert frame.height == best.select(pl.len()).collect().item() - len(world.accepted)


def test_recommendations_say_whether_the_pilots_prove_them(world: ReportWorld, review) -> None:  # type: ignore[no-untyped-def]
    """Every recommended strategy reads 'proven' or 'unproven: pilot proposed', as the pilot evidence
    says, and the summary counts the unproven ones among those shown."""
    section = review.section("recommendations")
    frame = section.table("recommendations").frame
    assert section.table("recommendations").labels["evidence"] == "Evidence"
    evidence = load_snapshot("pilot_evidence", world.settings).collect()
    names = load_snapshot("strategy_catalog", world.settings).collect()
    proven = dict(
        evidence.join(names.select("strategy", "name"), on="strategy")
        .select("name", "established")
        .iter_rows()
    )
    assert frame.height > 0
    expected = ["proven" if proven[s] else "unproven: pilot proposed" for s in frame["strategy"]]
    assert frame["evidence"].to_list() == expected
    unproven = sum(value == "unproven: pilot proposed" for value in expected[:RECOMMENDATIONS_SHOWN])
    lines = [line for line in section.summary if "not proven yet" in line]
    assert lines == (
        [
            f"{unproven} of them rest on a strategy the pilots have not proven yet "
            "(see the Strategy board's 'Pilots to run' or `liftboard pilot`)."
        ]
        if unproven
        else []
    )


def test_cohorts_and_notes(review) -> None:  # type: ignore[no-untyped-def]
    cohorts = review.section("cohorts")
    creators = cohorts.table("creators_cohorts").frame
    assert creators.height > 0
    assert (creators["retention"].is_between(0, 1)).all()
    assert review.section("notes").text == NOTES


def test_scoped_review_covers_only_the_users_merchants(world: ReportWorld) -> None:
    review = weekly_review(world.settings, WEEK, world.merchant_user)
    keys = [s.key for s in review.sections]
    assert "cohorts" not in keys
    scope = world.scoped_merchants
    for key in ("rising_merchants", "declining_merchants"):
        assert set(review.section("movers").table(key).frame["merchant_id"].to_list()) <= scope
    recs = review.section("recommendations").table("recommendations").frame
    assert set(recs["entity_kind"].to_list()) <= {"merchant"}
    assert set(recs["entity_id"].to_list()) <= scope
    follow = review.section("follow_up").table("follow_up").frame
    assert set(follow["entity_id"].to_list()) <= scope
    assert follow.height >= 1
    merchant_daily = load_snapshot("merchant_daily", world.settings).filter(
        pl.col("merchant_id").is_in(list(scope))
    )
    gmv = review.section("headline").kpis[0]
    assert gmv.value == pytest.approx(_gmv(merchant_daily, MONDAY, SUNDAY))
    assert review.section("notes").text == ""  # the shared notes are not the scoped review's


def test_unknown_weeks_and_no_build(world: ReportWorld, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ReportError, match="not an ISO week"):
        weekly_review(world.settings, "week 47")
    with pytest.raises(ReportError, match="not a complete week"):
        weekly_review(world.settings, "2025-W10")
    with pytest.raises(NoReportData, match="liftboard build"):
        weekly_review(Settings.from_env(home=tmp_path / "empty"), WEEK)
