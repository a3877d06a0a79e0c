"""The Products & matching page: each tab says how many rows match, a search opens a tab with matches,
and the model figures read as what they are (a chance in percent, GMV over a stated window)."""

from __future__ import annotations

import json
import re
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from datastore import db
from datastore.snapshots import load_snapshot
from matching.recommender import FIGURES
from tests.app import test_pages
from tests.app.test_pages import Open

pytestmark = pytest.mark.usefixtures("explicit_routing")
open_page = test_pages.open_page

COUNTED = re.compile(r"^(?P<name>.+) \((?P<rows>[\d,]+)\)$")


def _tab_counts(at: AppTest) -> dict[str, int]:
    counts = {}
    for tab in at.tabs:
        found = COUNTED.match(tab.label)
        assert found, tab.label
        counts[found["name"]] = int(found["rows"].replace(",", ""))
    return counts


def _open_tab(at: AppTest) -> str:
    """The label of the tab the page opens on (the tab container's default)."""
    blocks = list(at.main.children.values())
    while blocks:
        node = blocks.pop(0)
        if getattr(node, "type", None) == "tab_container":
            labels = [tab.label for tab in node.children.values()]
            return labels[node.proto.tab_container.default_tab_index]
        blocks.extend(getattr(node, "children", {}).values())
    raise AssertionError("no tabs on the page")


def _columns(frame_element: Any) -> dict[str, dict[str, Any]]:
    return json.loads(frame_element.proto.columns)


def test_tabs_count_their_rows_and_a_handle_search_opens_a_tab_with_matches(
    open_page: Open, app_settings: Settings
) -> None:
    recs = load_snapshot("creator_product_recs", app_settings).collect()
    creator = recs["creator_id"][0]
    handle = db.read_table("creators", app_settings).filter(pl.col("creator_id") == creator)["handle"][0]
    at = open_page("products", pm_search=handle)
    counts = _tab_counts(at)
    own = recs.filter(pl.col("creator_id") == creator).height
    assert counts["Products for creators"] >= own > 0
    opened = _open_tab(at)
    first_with_matches = next(name for name, rows in counts.items() if rows)
    assert opened.startswith(first_with_matches)
    assert COUNTED.match(opened)["rows"] != "0"  # type: ignore[index]
    grid = next(
        g.value for g in at.dataframe if tuple(g.value.columns[:3]) == ("creator_id", "handle", "rank")
    )
    assert grid["handle"].iloc[0] == handle


def test_a_search_with_no_match_in_the_first_tab_opens_one_that_has_some(
    open_page: Open, app_settings: Settings
) -> None:
    """A creator handle matches nothing among similar products (the first tab): the page used to open
    there on "Nothing matches" while the creator's recommendations sat in a later tab."""
    recs = load_snapshot("creator_product_recs", app_settings).collect()
    handle = db.read_table("creators", app_settings).filter(pl.col("creator_id") == recs["creator_id"][0])[
        "handle"
    ][0]
    at = open_page("products", pm_search=handle)
    counts = _tab_counts(at)
    first = next(iter(counts))
    assert counts[first] == 0, counts
    assert not _open_tab(at).startswith(first)


def test_model_figures_read_as_a_percent_and_dollars_over_a_stated_window(open_page: Open) -> None:
    at = open_page("products")
    grid = next(g for g in at.dataframe if "p_sold" in g.value.columns)
    config = _columns(grid)
    p_sold = config["p_sold"]
    assert p_sold["type_config"]["format"] == "percent"
    assert p_sold["type_config"]["step"] == pytest.approx(0.0001)  # 2 decimals of a percent: 0.35%
    assert p_sold["label"] == FIGURES["creator_product_recs"]["p_sold"][0]
    assert "28 days" in p_sold["label"]
    assert "28 days" in config["expected_gmv"]["label"]
    assert "if nothing changes" in config["expected_gmv"]["label"]
    assert config["gmv_if_sold"]["label"].startswith("GMV if it sells")
    values = grid.value
    assert (values["p_sold"] >= 0.00005).mean() > 0.9  # shows as at least 0.01%, not 0.00
    assert (values["expected_gmv"] >= 0.005).mean() > 0.9  # at least a cent, not $0
    assert (values["gmv_if_sold"] > values["expected_gmv"]).all()
