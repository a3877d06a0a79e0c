"""AppTest: every page runs on the tiny build without an exception, shows its key elements, and its main
interactions work (filters change numbers, a selection opens a profile, an accept persists with
history, scoping holds for merchant-success users)."""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl
import pytest
from streamlit.proto.Metric_pb2 import Metric as MetricProto
from streamlit.testing.v1 import AppTest

from core import access
from core.config import Settings
from datastore import users
from datastore.snapshots import load_snapshot
from strategies import store
from tests.app.conftest import OTHER_USER, ROOT
from webapp import auth, ui
from webapp import data as app_data

OPS_PAGES = [
    "overview",
    "movers",
    "cohorts",
    "creators",
    "merchants",
    "strategy_board",
    "models",
    "data",
    "alerts",
]

Open = Callable[..., AppTest]


pytestmark = pytest.mark.usefixtures("explicit_routing")


@pytest.fixture
def open_page(app_settings: Settings) -> Open:
    """Run app.py signed in as ``username`` and switch to ``page`` (with optional query parameters)."""

    def run(page: str | None, username: str = "ops", **query: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state[auth.TOKEN_KEY] = users.create_session(app_settings, username)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        if page is not None:
            at.switch_page(f"pages/{page}.py")
            at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return run


def test_login_gate_then_overview(app_settings: Settings) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == [":material/insights: Liftboard"]
    at.text_input(key="login_username").input("ops")
    at.text_input(key="login_password").input("wrong")
    at.button(key="login_submit").click()
    at.run()
    assert any("wrong password" in e.value for e in at.error)
    at.text_input(key="login_password").input("ops")
    at.button(key="login_submit").click()
    at.run()
    assert not at.exception
    assert "Overview" in [t.value for t in at.title]
    assert at.session_state["user"].username == "ops"


@pytest.mark.parametrize("page", OPS_PAGES)
def test_every_page_runs(open_page: Open, page: str) -> None:
    at = open_page(page)
    titles = [t.value for t in at.title]
    assert titles
    assert titles[0].replace(" ", "_").lower() == page.replace("overview", "overview")
    assert not at.error


@pytest.mark.parametrize("page", ["movers", "creators"])
def test_grids_show_missing_values_as_a_dash(open_page: Open, page: str) -> None:
    """A missing value (growth of an entity without a previous period) reads "—", not Streamlit's "None"."""
    at = open_page(page)
    grids = list(at.dataframe)
    assert grids, f"{page}: no grid"
    assert all(grid.proto.placeholder == "—" for grid in grids)


def test_overview_cards_and_filters_change_numbers(open_page: Open) -> None:
    at = open_page(None)
    labels = [m.label for m in at.metric]
    for label in (
        "GMV",
        "Orders",
        "AOV",
        "CTR",
        "CVR",
        "GPM",
        "Active creators",
        "Active merchants",
        "Refund rate",
    ):
        assert label in labels
    assert all(m.help for m in at.metric)  # every number defined (metric dictionary tooltips)

    def period_gmv(page: AppTest) -> str:  # the period's GMV card (today's cards come first)
        return next(m.value for m in page.metric if m.label == "GMV" and "Previous period" in m.help)

    everything = period_gmv(at)
    today_gmv = next(m.value for m in at.metric if m.label == "GMV" and "today" in m.help)
    regional = open_page(None, region="US")
    assert regional.multiselect(key="region").value == ["US"]
    assert period_gmv(regional) != everything
    # today's cards are the whole marketplace's, and say that the sidebar's filters are not theirs
    assert next(m.value for m in regional.metric if m.label == "GMV" and "today" in m.help) == today_gmv
    assert any("filters apply to the period below" in c.value for c in regional.main.caption)
    # a card the filter cannot split says why in words, not only "—"
    merchants_card = next(m for m in regional.metric if m.label == "Active merchants")
    assert merchants_card.value == "—"
    assert any("clear those filters" in c.value for c in regional.main.caption)
    assert not any("clear those filters" in c.value for c in at.main.caption)
    week = open_page(None, range="Last 7 days")
    assert week.selectbox(key="range").value == "7d"
    assert week.session_state["filters"].end == week.session_state["filters"].start.fromordinal(
        week.session_state["filters"].start.toordinal() + 6
    )
    assert week.metric[0].value != everything


def test_creator_selection_opens_profile(open_page: Open) -> None:
    at = open_page("creators")
    assert not at.header  # no profile before a selection
    at.session_state["creator_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    creator = at.query_params["creator"]
    assert creator
    assert any(creator in h.value for h in at.header)
    assert any(t.label == "Recommended strategies" for t in at.tabs)
    # the URL alone reopens it
    again = open_page("creators", creator=creator)
    assert any(creator in h.value for h in again.header)


def test_recommendation_cards_headline_the_net_value_they_are_ranked_by(
    open_page: Open, app_settings: Settings
) -> None:
    """Each card of a creator's strategies shows "#rank" and, as its headline, the net value the rank
    follows, explained in words; a negative net value shows no up arrow (nor any arrow)."""
    recs = load_snapshot("recommendations", app_settings).collect()
    creator = recs.filter(pl.col("entity_kind") == "creator", pl.col("net_value") < 0)["entity_id"].min()
    assert isinstance(creator, str), "the tiny build has creators whose strategies cost more than they bring"
    at = open_page("creators", creator=creator)
    own = recs.filter(pl.col("entity_id") == creator).sort("rank")
    cards = [m for m in at.metric if m.label == "Net value to the platform"]
    assert [m.value for m in cards] == [ui.money(v) for v in own["net_value"]]
    assert any(m.value.startswith("-$") for m in cards)
    assert all(m.proto.direction == MetricProto.MetricDirection.NONE for m in cards)
    assert all("minus the strategy's cost" in m.help for m in cards)
    headers = [md.value for md in at.markdown if md.value.startswith("**#")]
    assert [h.split()[0] for h in headers] == [f"**#{r}" for r in own["rank"]]
    # each card says whether the pilots prove its strategy's effect, as the evidence snapshot says
    evidence = load_snapshot("pilot_evidence", app_settings).collect()
    proven = dict(zip(evidence["strategy"], evidence["established"], strict=True))
    for header, strategy in zip(headers, own["strategy"], strict=True):
        assert ("[proven]" in header) == proven[strategy]
        assert ("[unproven: pilot proposed]" in header) == (not proven[strategy])


def test_unknown_creator_is_not_found(open_page: Open) -> None:
    at = open_page("creators", creator="c999999")
    assert any("not found" in w.value for w in at.warning)


def test_merchant_profile_and_scoping(open_page: Open, app_settings: Settings) -> None:
    merchant = users.get_user(app_settings, "merchant")
    other = users.get_user(app_settings, OTHER_USER)
    assert merchant
    assert other
    assert merchant.merchant_ids
    assert other.merchant_ids
    mine, theirs = sorted(merchant.merchant_ids)[0], sorted(other.merchant_ids)[0]
    ops = open_page("merchants", merchant=theirs)
    assert any(theirs in h.value for h in ops.header)
    scoped = open_page(None, "merchant", merchant=theirs)
    assert [t.value for t in scoped.title] == ["My merchants"]
    assert any("not found" in w.value for w in scoped.warning)
    assert not any(theirs in h.value for h in scoped.header)
    shown = scoped.dataframe[0].value
    assert set(shown["merchant_id"]) == set(merchant.merchant_ids)
    own = open_page(None, "merchant", merchant=mine)
    assert any(mine in h.value for h in own.header)


@pytest.mark.parametrize("page", ["overview", "creators", "data", "models", "cohorts", "movers"])
def test_merchant_success_cannot_open_ops_pages(open_page: Open, page: str) -> None:
    at = open_page(None, "merchant")
    assert [t.value for t in at.title] == ["My merchants"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"pages/{page}.py")  # not registered for this user at all


def test_strategy_board_accept_persists_with_history(open_page: Open, app_settings: Settings) -> None:
    at = open_page("strategy_board")
    board = at.dataframe[0].value
    row = 3  # a row no other test touches
    entity_id, strategy = board["entity_id"][row], board["strategy"][row]
    at.session_state["sb_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    at.text_input(key="sb_owner_in").input("alex")
    at.text_area(key="sb_note").input("kick-off on Monday")
    next(b for b in at.button if b.label == "Accept").click()
    at.run()
    assert not at.exception
    actions = store.read_actions(app_settings, entity_ids=[entity_id]).filter(pl.col("strategy") == strategy)
    assert actions.height == 1
    action = actions.row(0, named=True)
    assert action["status"] == "accepted"
    assert action["owner"] == "alex"
    assert action["started_on"] is not None
    history = store.read_history(app_settings, action["action_id"])
    assert history.select("from_status", "to_status", "changed_by", "note").rows() == [
        ("proposed", "accepted", "ops", "kick-off on Monday")
    ]
    # the board shows it, and the accepted section lists it with no complete window yet (not 28 days)
    reopened = open_page("strategy_board", sb_status="accepted")
    assert entity_id in reopened.dataframe[0].value["entity_id"].to_list()
    outcomes = reopened.dataframe[-1].value
    states = outcomes.loc[outcomes["entity_id"] == entity_id, "state"].to_list()
    assert states
    assert all(s == "no data yet" or s.startswith("so far") for s in states)


def test_strategy_board_says_what_net_value_is_and_headlines_it(open_page: Open) -> None:
    """The grid is ranked by net value and its column says in words what that is; a selected row's
    headline is that same net value."""
    at = open_page("strategy_board", sb_best="false")
    grid = at.dataframe[0]
    board = grid.value
    assert board["net_value"].tolist() == sorted(board["net_value"], reverse=True)
    assert "minus the strategy's cost" in grid.proto.columns  # the column's tooltip (column config JSON)
    at.session_state["sb_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    (headline,) = [m for m in at.metric if m.label == "Net value to the platform"]
    assert headline.value == ui.money(board["net_value"][0])
    assert headline.proto.direction == MetricProto.MetricDirection.NONE


def test_strategy_board_allocation_respects_budget(open_page: Open) -> None:
    at = open_page("strategy_board")
    at.number_input(key="sb_budget").set_value(200.0)
    at.run()
    assert not at.exception
    spend = next(m for m in at.metric if m.label == "Spend")
    assert float(spend.value.replace("$", "").replace(",", "")) <= 200.0


def test_strategy_board_reads_names_not_ids(open_page: Open, app_settings: Settings) -> None:
    """The grid shows the catalog's strategy names and readable teams; the ids stay in the data (exports,
    selection) but not on screen."""
    at = open_page("strategy_board", sb_best="false")
    grid = at.dataframe[0]
    board = grid.value
    catalog = load_snapshot("strategy_catalog", app_settings).collect()
    names = dict(zip(catalog["strategy"], catalog["name"], strict=True))
    assert board.shape[0] > 0
    assert [names[s] for s in board["strategy"]] == board["strategy_name"].tolist()
    assert {t.replace(" ", "_").lower() for t in board["team_name"]} == set(board["team"])
    assert "strategy_name" in grid.proto.column_order
    assert "strategy" not in grid.proto.column_order
    assert "team" not in grid.proto.column_order
    # each row says whether its strategy's effect is proven, as the pilot evidence says
    evidence = load_snapshot("pilot_evidence", app_settings).collect()
    proven = dict(zip(evidence["strategy"], evidence["established"], strict=True))
    assert "evidence" in grid.proto.column_order
    assert "established" not in grid.proto.column_order
    assert board["established"].tolist() == [proven[s] for s in board["strategy"]]
    expected = ["proven" if proven[s] else "unproven: pilot proposed" for s in board["strategy"]]
    assert board["evidence"].tolist() == expected


def test_merchant_success_strategy_board_is_scoped(open_page: Open, app_settings: Settings) -> None:
    merchant = users.get_user(app_settings, "merchant")
    assert merchant
    assert merchant.merchant_ids
    at = open_page("strategy_board", "merchant", sb_best="false")
    board = at.dataframe[0].value
    assert set(board["entity_kind"]) <= {"merchant"}
    assert set(board["entity_id"]) <= merchant.merchant_ids
    assert "Pilots to run" not in [h.value for h in at.subheader]  # pilots span creators: ops only


def test_strategy_board_proposes_pilots_where_the_evidence_is_thin(
    open_page: Open, app_settings: Settings
) -> None:
    """Every strategy's precision (the 95% interval of its average effect from the pilots so far) and, for
    each one whose interval includes zero, the pilot that would settle it: size, who, when, cost."""
    at = open_page("strategy_board")
    assert "Pilots to run" in [h.value for h in at.subheader]
    evidence = load_snapshot("pilot_evidence", app_settings).collect()
    precision = next(d.value for d in at.dataframe if "average_effect" in d.value.columns)
    status = dict(zip(precision["strategy"], precision["status"], strict=True))
    assert set(status) == set(evidence["strategy"])
    for row in evidence.iter_rows(named=True):
        assert status[row["strategy"]].startswith("established" if row["established"] else "unproven")

    catalog = load_snapshot("strategy_catalog", app_settings).collect()
    names = dict(zip(catalog["strategy"], catalog["name"], strict=True))
    unproven = evidence.filter(~pl.col("established"))["strategy"].to_list()
    assert unproven  # tiny pilots settle little on the tiny marketplace
    texts = [m.value for m in at.markdown]
    assert f"{len(unproven)} pilot(s) to run: " in " ".join(texts)
    labels = [e.label for e in at.expander]
    for strategy in unproven:
        label = next(label for label in labels if label.startswith(f"{names[strategy]}: "))
        assert re.search(r": \d+ (creators|merchants) per arm, results from 2026-12-21$", label), label
    proposal = next(t for t in texts if t.startswith("- Why:"))
    for part in (
        "- Size:",
        "- Who: a seeded random draw",
        "- When: assign on Monday 2026-11-23",
        "- Cost: $",
    ):
        assert part in proposal


def test_models_page_has_card_and_curves(open_page: Open, app_settings: Settings) -> None:
    at = open_page("models")
    labels = [m.label for m in at.metric]
    assert "Learner" in labels
    assert "Qini coefficient" in labels
    metrics = load_snapshot("model_metrics", app_settings).collect()
    assert at.selectbox(key="md_strategy").options
    assert metrics["strategy"].n_unique() >= 1
    # the card quotes the chosen learner's figures at the scoring date (the figures bench/RESULTS.md records)
    card = metrics.filter(pl.col("strategy") == at.selectbox(key="md_strategy").value, pl.col("chosen"))
    shown = {m.label: m.value for m in at.metric}
    assert shown["Policy vs oracle (top 20%)"] == f"{card['truth_policy_vs_oracle'][0] * 100:.1f}%"
    assert shown["Spearman with truth"] == f"{card['truth_spearman'][0]:.3g}"


def test_models_page_on_real_data_without_truth(open_page: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real data has no simulator truth: its truth-based metrics are null (strategies.pipeline
    `with_truth_columns`), and the card shows "—" for them instead of failing."""
    real = app_data.snapshot

    def without_truth(name: str, user: access.User) -> pl.DataFrame:
        frame = real(name, user)
        if name != "model_metrics":
            return frame
        truth = [c for c in frame.columns if c.startswith(("truth_", "holdout_"))]
        return frame.with_columns(pl.lit(None, pl.Float64).alias(c) for c in truth)

    monkeypatch.setattr(app_data, "snapshot", without_truth)
    at = open_page("models")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Spearman with truth"] == "—"
    assert shown["Policy vs oracle (top 20%)"] == "—"
    assert shown["Qini coefficient"] != "—"


def test_products_search_filters_and_orders_every_table(open_page: Open, app_settings: Settings) -> None:
    """An id keeps the rows that name it in every matching table (bought-together pairs too), each table
    in its reading order; a word keeps the rows whose titles contain it."""
    similar = load_snapshot("similar_products", app_settings).collect()
    product = similar["product_id"].mode().sort()[0]
    at = open_page("products", pm_search=product)
    assert not at.exception
    assert at.title[0].value == "Products & matching"
    grids = [g.value for g in at.dataframe]
    assert grids, "no matching table shown"
    for grid in grids:
        ids = [c for c in grid.columns if c.endswith("_id") or c in ("product_a", "product_b")]
        assert (grid[ids] == product).any(axis=1).all(), list(grid.columns)
    first = grids[0]  # similar products: the product's own neighbours first, by rank
    assert list(first.columns[:3]) == ["product_id", "similar_product_id", "rank"]
    own = (first["product_id"] == product).tolist()
    assert own[0]
    assert own == sorted(own, reverse=True)
    ranks = first.loc[first["product_id"] == product, "rank"].tolist()
    assert ranks == sorted(ranks)

    word = similar["title"][0].split()[-1].lower()
    at = open_page("products", pm_search=word)
    titles = at.dataframe[0].value[["title", "similar_title"]]
    assert len(titles)
    assert titles.apply(lambda r: word in " ".join(r).lower(), axis=1).all()


def test_cohorts_switches_entities(open_page: Open) -> None:
    at = open_page("cohorts", co_entity="Merchants")  # bound widgets put their label in the URL
    assert not at.exception
    assert at.session_state["co_entity"] == "merchant"


def test_data_page_lists_runs_and_freshness(open_page: Open) -> None:
    at = open_page("data")
    runs = at.dataframe[0].value
    assert len(runs) >= 1
    assert set(runs["status"]) <= {"committed", "failed", "running"}
    fresh = at.dataframe[1].value
    assert "orders" in fresh["table"].to_list()
    assert fresh["version"].notna().all()
    versions = next(d.value for d in at.dataframe if list(d.value.columns) == ["table", "version"])
    assert "orders" in versions["table"].to_list()  # the lake versions the current build read


def test_data_page_shows_accounts_and_their_audit(open_page: Open, app_settings: Settings) -> None:
    """Ops see every account with its status and the audit of account changes (the tiny build's seeding
    added the demo users: recorded with their actor)."""
    at = open_page("data")
    frames = [d.value for d in at.dataframe]
    accounts = next(f for f in frames if {"username", "status"} <= set(f.columns))
    assert {"ops", "merchant"} <= set(accounts["username"].to_list())
    assert set(accounts["status"].to_list()) <= {"active", "disabled"}
    audit = next(f for f in frames if {"actor", "action", "username"} <= set(f.columns))
    added = audit[audit["action"] == "add"]["username"].to_list()
    assert {"ops", "merchant"} <= set(added)
    assert audit["actor"].notna().all()
