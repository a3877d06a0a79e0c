"""The Alerts page in a browser: counts per status, an alert acknowledged with an owner and a note through
the form, and a merchant-success user who sees only the alert about their merchant.

Served on a private copy of the tiny build holding the four alerts of `plant_demo_alerts`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.state import list_alerts
from core.config import Settings
from datastore import db, users
from liftboard.headless import serve_app
from tests.app.browser import count_frames, run, sign_in
from tests.app.conftest import plant_demo_alerts, private_copy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def home(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = private_copy(tiny_home, tmp_path_factory.mktemp("alerts-home"))
    plant_demo_alerts(Settings.from_env(home=copy, database_url=f"sqlite:///{copy / 'liftboard.db'}"))
    return copy


@pytest.fixture(scope="module")
def url(home: Path) -> Iterator[str]:
    with open(home.parent / "streamlit.log", "w") as log, serve_app(home, log) as served:
        yield served


@pytest.fixture
def page(chromium: Any, url: str) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.on("page", count_frames)
    tab = context.new_page()
    yield tab
    context.close()


def _open_alerts(page: Any, url: str, username: str) -> None:
    sign_in(page, url + "/", username, username)
    run(page, page.locator('[data-testid="stSidebarNav"] a[href$="/alerts"]').first.click)
    page.get_by_role("heading", name="Alerts").wait_for(timeout=60_000)


def _status_buttons(page: Any) -> list[str]:
    return [text.strip() for text in page.locator('[data-testid="stButtonGroup"] button').all_inner_texts()]


def test_ops_acknowledges_an_alert_with_owner_and_note(page: Any, url: str, home: Path) -> None:
    _open_alerts(page, url, "ops")
    assert _status_buttons(page) == ["Open (4)", "Acknowledged (0)", "Resolved (0)"]
    assert page.locator('[data-testid="stDataFrame"]').count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(home.parent / "alerts-ops.png"))

    form = page.locator('[data-testid="stForm"]')
    form.get_by_role("textbox", name="Owner").fill("Dana")
    form.get_by_role("textbox", name="Notes").fill("calling the merchant")
    form.locator('[data-testid="stSelectbox"]').click()
    page.get_by_role("option", name="Acknowledged").click()
    run(page, form.get_by_role("button", name="Save").click)

    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stButtonGroup\"] button')]"
        ".some(b => b.innerText.includes('Acknowledged (1)'))",
        timeout=30_000,
    )
    assert _status_buttons(page) == ["Open (3)", "Acknowledged (1)", "Resolved (0)"]
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")
    with db.connect(settings) as connection:
        acknowledged = list_alerts(connection, statuses=["acknowledged"])
    assert acknowledged.select("owner", "notes").rows() == [("Dana", "calling the merchant")]


def test_a_merchant_success_user_sees_only_their_merchants_alert(page: Any, url: str, home: Path) -> None:
    _open_alerts(page, url, "merchant")
    assert _status_buttons(page) == ["Open (1)", "Acknowledged (0)", "Resolved (0)"]
    chosen = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("Alert", exact=True))
    options = chosen.locator("input").input_value()  # the chosen alert's label, shown in the box
    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")
    mine = sorted(users.get_user(settings, "merchant").merchant_ids or [])[0]  # type: ignore[union-attr]
    with db.connect(settings) as connection:
        visible = list_alerts(connection, merchant_ids=frozenset({mine}))
    assert visible.height == 1
    assert visible["rule_id"].to_list() == ["merchant_refund_rate_spike"]
    assert "refund rate 63.5%" in options
    assert "Region" not in options
