"""What the sidebar's filters mean on each page, and what the Products & matching search finds: a user
reads a filter as applied unless the page says otherwise, and finds a creator by the handle the
placeholder suggests."""

from __future__ import annotations

import polars as pl
import pytest

from core.config import Settings
from datastore import db
from datastore.snapshots import load_snapshot
from tests.app import test_pages
from tests.app.test_pages import Open

# the app signed in on a page (test_pages.py's fixture); explicit routing from conftest
pytestmark = pytest.mark.usefixtures("explicit_routing")
open_page = test_pages.open_page

SIDEBAR_FILTERS = ("range", "region", "category", "tier")


def _sidebar_captions(at: object) -> str:
    return " ".join(c.value for c in at.sidebar.caption)  # type: ignore[attr-defined]


def _disabled(at: object) -> dict[str, bool]:
    return {
        "range": at.selectbox(key="range").disabled,  # type: ignore[attr-defined]
        **{name: at.multiselect(key=name).disabled for name in SIDEBAR_FILTERS[1:]},  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        ("movers", "last complete week"),
        ("weekly_review", "week picked on the page"),
        ("cohorts", "whole life"),
    ],
)
def test_pages_that_ignore_the_filters_disable_them_and_say_why(
    open_page: Open, page: str, reason: str
) -> None:
    at = open_page(page, region="US", tier="mega")
    assert _disabled(at) == dict.fromkeys(SIDEBAR_FILTERS, True)
    captions = _sidebar_captions(at)
    assert "Date range, region, category, tier: not applied on this page." in captions
    assert reason in captions
    assert at.multiselect(key="region").value == ["US"]  # kept for the pages that apply it


def test_overview_applies_every_filter(open_page: Open) -> None:
    at = open_page(None, region="US")
    assert _disabled(at) == dict.fromkeys(SIDEBAR_FILTERS, False)
    assert "not applied" not in _sidebar_captions(at)


def test_merchants_disable_only_the_tier(open_page: Open) -> None:
    at = open_page("merchants")
    assert _disabled(at) == {"range": False, "region": False, "category": False, "tier": True}
    captions = _sidebar_captions(at)
    assert "Tier: not applied on this page." in captions
    assert "no creator tier" in captions


def test_creators_have_one_tier_filter_the_sidebars(open_page: Open) -> None:
    """The Creators page applies the sidebar's tier (it had a second tier filter of its own)."""
    at = open_page("creators", tier="mega")
    assert _disabled(at) == dict.fromkeys(SIDEBAR_FILTERS, False)
    assert [m.label for m in at.main.multiselect if m.label == "Tier"] == []
    directory = at.dataframe[0].value
    assert len(directory) > 0
    assert set(directory["tier"].astype(str)) == {"mega"}


def test_a_filter_survives_a_page_that_ignores_it(open_page: Open) -> None:
    at = open_page("movers", region="US")
    at.switch_page("pages/overview.py")
    at.run()
    assert not at.exception
    assert at.multiselect(key="region").value == ["US"]
    assert not at.multiselect(key="region").disabled


def test_products_search_finds_a_creator_by_handle(open_page: Open, app_settings: Settings) -> None:
    recs = load_snapshot("creator_product_recs", app_settings).collect()
    creator = recs["creator_id"][0]
    handle = db.read_table("creators", app_settings).filter(pl.col("creator_id") == creator)["handle"][0]
    assert handle.startswith("@")
    at = open_page("products", pm_search=handle)
    assert not any("products for creators" in i.value for i in at.info), [i.value for i in at.info]
    grids = {tuple(g.value.columns[:3]): g.value for g in at.dataframe}
    products_for = next(g for cols, g in grids.items() if cols == ("creator_id", "handle", "rank"))
    assert len(products_for)
    assert products_for["handle"].iloc[0] == handle  # the searched creator's own rows first
    assert (products_for["creator_id"].iloc[0]) == creator


def test_bought_together_reads_titles_and_well_evidenced_pairs_first(
    open_page: Open, app_settings: Settings
) -> None:
    pairs = load_snapshot("product_pairs", app_settings).collect()
    at = open_page("products")
    grid = next(g.value for g in at.dataframe if "product_a" in g.value.columns)
    assert list(grid.columns[:5]) == ["relation", "product_a", "title_a", "product_b", "title_b"]
    assert grid["title_a"].notna().all()
    assert grid["title_b"].notna().all()
    # the first pairs are seen in more baskets than the rarest kept pairs (2), whose lift is noise
    assert grid["pair_count"].head(10).min() > pairs["pair_count"].min()
    assert grid["pair_count"].head(10).median() >= pairs["pair_count"].median()
    # support per million baskets: a readable number, not 1.7e-6
    assert grid["support"].head(10).min() >= 0.1


def test_a_merchant_users_weekly_review_does_not_claim_the_whole_marketplace(open_page: Open) -> None:
    at = open_page("weekly_review", username="merchant")
    captions = _sidebar_captions(at)
    assert "Date range: not applied on this page." in captions
    assert "marketplace-wide" not in captions  # their review covers their merchants
    assert any("merchant(s) of merchant" in c.value for c in at.main.caption)
