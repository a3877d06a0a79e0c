"""AppTest: the Alerts page shows what a user reads (values in their unit, the expected range, UTC times),
a clear empty state, edits owner/notes/status, and is scoped (a merchant-success user sees only the alerts
about their merchants)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from datastore import users
from tests.app.conftest import ALERTS_AT, OTHER_USER, plant_demo_alerts
from webapp import auth

ROOT = Path(__file__).resolve().parents[2]
AT = ALERTS_AT
Open = Callable[..., AppTest]


pytestmark = pytest.mark.usefixtures("explicit_routing")


@pytest.fixture
def alert_settings(tiny_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The shared tiny build with a copy of its state DB (the shared one is read-only), holding alerts
    about a demo merchant-success user's merchant, another user's merchant, a region and the platform."""
    copy = tmp_path / "state.db"
    shutil.copy(tiny_home / "liftboard.db", copy)
    url = f"sqlite:///{copy}"
    monkeypatch.setenv("LIFTBOARD_HOME", str(tiny_home))
    monkeypatch.setenv("LIFTBOARD_DATABASE_URL", url)
    settings = Settings.from_env(home=tiny_home, database_url=url)
    plant_demo_alerts(settings)
    return settings


@pytest.fixture
def open_alerts(alert_settings: Settings) -> Open:
    def run(username: str = "ops", status: str = "open") -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state[auth.TOKEN_KEY] = users.create_session(alert_settings, username)
        at.run()
        at.switch_page("pages/alerts.py")
        at.run()
        if status != "open":
            at.segmented_control(key="al_status").set_value(status).run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return run


def _grid(at: AppTest) -> pl.DataFrame:
    return pl.from_pandas(at.dataframe[0].value)


def test_ops_reads_values_ranges_and_utc_times(open_alerts: Open, alert_settings: Settings) -> None:
    at = open_alerts()
    assert [t.value for t in at.title] == ["Alerts"]
    assert at.segmented_control(key="al_status").value == "open"
    grid = _grid(at)
    assert grid.height == 4
    by_entity = {row["Entity"]: row for row in grid.iter_rows(named=True)}
    assert set(by_entity) >= {"Region UK", "Platform"}
    region = by_entity["Region UK"]
    assert (region["Observed"], region["Expected"], region["Expected range"]) == (
        "$223",
        "$893",
        "$536 – $1,490",
    )
    assert region["Opened"] == "2026-11-09 16:00 UTC"
    assert region["Severity"] == "🟠 Warning"
    assert region["Alert"] == (
        "Region UK: GMV $223 in the 3 hours to 2026-11-09 16:00 UTC, below the expected $893 (at least $536)"
    )
    assert (by_entity["Platform"]["Observed"], by_entity["Platform"]["Expected range"]) == ("12", "40 – 110")
    refund = next(row for row in grid.iter_rows(named=True) if "refund rate" in row["Alert"])
    assert (refund["Observed"], refund["Expected"], refund["Expected range"]) == (
        "63.5%",
        "9.2%",
        "0.0% – 30.1%",
    )


def test_empty_state_is_clear(open_alerts: Open) -> None:
    at = open_alerts(status="resolved")
    assert not at.dataframe
    assert [i.value for i in at.info] == [
        "No resolved alerts. New alerts appear here after the next evaluation."
    ]


def test_merchant_success_sees_only_their_merchants(open_alerts: Open, alert_settings: Settings) -> None:
    mine = sorted(users.get_user(alert_settings, "merchant").merchant_ids or [])  # type: ignore[union-attr]
    at = open_alerts("merchant")
    grid = _grid(at)
    assert grid.height == 1
    entity = grid["Entity"][0]
    assert entity.startswith("Merchant ")
    assert entity.removeprefix("Merchant ") in mine
    assert "Region" not in " ".join(grid["Entity"])
    other = open_alerts(OTHER_USER)
    assert _grid(other)["Alert"][0].startswith("Merchant ")
    assert "cancel rate" in _grid(other)["Alert"][0]


def test_owner_notes_and_status_are_saved(open_alerts: Open) -> None:
    at = open_alerts()
    label = next(option for option in at.selectbox(key="al_chosen").options if "Region UK" in option)
    at.selectbox(key="al_chosen").set_value(int(label.split(" ")[0].lstrip("#"))).run()
    at.selectbox(key="al_new_status").set_value("acknowledged")
    at.text_input(key="al_owner").input("Dana")
    at.text_area(key="al_notes").input("checkout outage in UK?")
    at.button[0].click().run()
    assert not at.exception
    acknowledged = open_alerts(status="acknowledged")
    row = _grid(acknowledged).row(0, named=True)
    assert (row["Entity"], row["Owner"], row["Notes"]) == ("Region UK", "Dana", "checkout outage in UK?")
    assert len(_grid(open_alerts())) == 3
