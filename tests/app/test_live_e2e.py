"""Minute-fresh figures in a browser: the Overview's "Today so far" cards move when new orders are committed
to the lake, without a build and without reloading the page, and say how fresh they are.

The app is served on a private copy of the tiny build, with the today cards looking for a new lake commit
every 2 s (``LIFTBOARD_LIVE_REFRESH_S``); the test commits orders as a stream micro-batch would (one ingest
run) while the page stays open.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics.today import lake_today
from core import metrics
from core.config import Settings
from core.schema import TABLES
from datastore import lake
from datastore.ingest import ingest_files
from liftboard.headless import serve_app
from tests.app.browser import count_frames, sign_in
from tests.app.conftest import private_copy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
NEW_ORDERS = 7


@pytest.fixture(scope="module")
def home(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the tiny build (this test adds orders to its lake)."""
    return private_copy(tiny_home, tmp_path_factory.mktemp("live-home"))


@pytest.fixture(scope="module")
def settings(home: Path) -> Settings:
    return Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")


@pytest.fixture(scope="module")
def url(home: Path) -> Iterator[str]:
    with (
        open(home.parent / "streamlit.log", "w") as log,
        serve_app(home, log, environment={"LIFTBOARD_LIVE_REFRESH_S": "2"}) as served,
    ):
        yield served


def _today_card(page: Any, label: str) -> Any:
    """The "Today so far" card called ``label`` (the period cards below have the same labels)."""
    section = page.locator('[data-testid="stVerticalBlock"]').filter(
        has=page.get_by_role("heading", name="Today so far")
    )
    return section.locator('[data-testid="stMetric"]').filter(has_text=label).first  # today's come first


def _new_orders(settings: Settings, directory: Path) -> Path:
    """``NEW_ORDERS`` completed orders one second after the newest, copying an existing order's ids (so
    every reference and ownership rule holds)."""
    orders = lake.scan_table("orders", settings).sort("ordered_at").collect()
    last = orders.row(orders.height - 1, named=True)
    rows = pl.DataFrame(
        [
            {
                **last,
                "order_id": f"live{i:06d}",
                "ordered_at": last["ordered_at"] + timedelta(seconds=1),
                "status": "completed",
            }
            for i in range(NEW_ORDERS)
        ],
        schema=TABLES["orders"].schema,
    )
    path = directory / "orders-live.parquet"
    rows.write_parquet(path)
    return path


def test_today_cards_move_with_a_new_commit_without_a_reload(
    chromium: Any, url: str, settings: Settings, tmp_path: Path
) -> None:
    context = chromium.new_context(viewport={"width": 1500, "height": 1100})
    context.on("page", count_frames)
    page = context.new_page()
    try:
        sign_in(page, url + "/", "ops", "ops")
        before = lake_today(settings)
        shown = metrics.metric("orders").display.text
        orders_before = before.figures.filter(pl.col("metric") == "orders")["value"][0]
        card = _today_card(page, "Orders")
        card.wait_for(timeout=60_000)
        assert shown(orders_before) in card.inner_text()
        caption = page.get_by_text(re.compile(r"Orders up to "))
        assert f"{before.window.now:%d %b %H:%M:%S} UTC" in caption.inner_text()  # type: ignore[union-attr]
        assert "ago" in caption.inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0

        report = ingest_files([_new_orders(settings, tmp_path)], settings, source="live test")
        assert report.rows_loaded == NEW_ORDERS
        after = lake_today(settings)
        assert after.lake.run_id == report.run_id
        orders_after = after.figures.filter(pl.col("metric") == "orders")["value"][0]
        assert orders_after == orders_before + NEW_ORDERS

        started = time.monotonic()
        expected = shown(orders_after)
        deadline = started + 30
        while expected not in card.inner_text():
            assert time.monotonic() < deadline, f"the Orders card still reads {card.inner_text()!r}"
            page.wait_for_timeout(250)
        # no reload: the same page, its cards re-drawn by the fragment; the freshness line moved too
        assert f"{after.window.now:%d %b %H:%M:%S} UTC" in caption.inner_text()  # type: ignore[union-attr]
        gmv = after.figures.filter(pl.col("metric") == "gmv").row(0, named=True)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert gmv["value"] > before.figures.filter(pl.col("metric") == "gmv")["value"][0]
        page.screenshot(path=str(tmp_path / "overview-live.png"), full_page=False)
    finally:
        context.close()
