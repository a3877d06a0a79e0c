"""The Weekly review page through Streamlit's AppTest: renders, walks sections, saves notes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from reports.notes import read_notes
from tests.reports.conftest import WEEK, ReportWorld

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "weekly_review.py")


@pytest.fixture
def home(world: ReportWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A copy of the built home, so saving notes does not touch the shared one."""
    target = tmp_path / "home"
    shutil.copytree(world.settings.home, target)
    monkeypatch.setenv("LIFTBOARD_HOME", str(target))
    return Settings.from_env(home=target)


def _page(world: ReportWorld, user: object) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["user"] = user
    return at


def test_page_shows_every_section_and_saves_notes(world: ReportWorld, home: Settings) -> None:
    at = _page(world, world.ops).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="wr_week").value == WEEK
    # Sections are lazy tabs: only the open one (the first, or the URL's ``wr_tab``) is drawn.
    assert [t.label for t in at.tabs][0] == "Headline KPIs"
    assert len(at.tabs) == 9
    assert [s.value for s in at.subheader] == ["Headline KPIs"]
    assert len(at.metric) == 8
    at.query_params["wr_tab"] = "Top movers"
    at.run()
    assert not at.exception, at.exception
    # grids show a missing value as "—", not Streamlit's "None"
    assert at.dataframe
    assert all(grid.proto.placeholder == "—" for grid in at.dataframe)
    at.query_params["wr_tab"] = "Meeting notes"
    at.run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["Meeting notes"]
    assert len(at.metric) == 0
    at.text_area(key=f"wr_notes_{WEEK}").set_value("Agreed: more live coaching").run()
    at.button(key="wr_save_notes").click().run()
    assert not at.exception, at.exception
    assert read_notes(home, WEEK).text == "Agreed: more live coaching"


def test_presentation_mode_walks_sections(world: ReportWorld, home: Settings) -> None:
    at = _page(world, world.ops)
    at.query_params["wr_present"] = "true"
    at.run()
    assert not at.exception, at.exception
    assert at.toggle(key="wr_present").value is True
    assert [h.value for h in at.header] == ["Headline KPIs"]
    at.button(key="wr_next").click().run()
    assert at.query_params["section"] == ["trends_volume"] or at.query_params["section"] == "trends_volume"
    assert at.header[0].value.startswith("Trends: GMV")
    at.button(key="wr_prev").click().run()
    assert at.header[0].value == "Headline KPIs"


def test_merchant_success_user_sees_a_scoped_review(world: ReportWorld, home: Settings) -> None:
    at = _page(world, world.merchant_user).run()
    assert not at.exception, at.exception
    assert "Cohort health" not in [s.value for s in at.subheader]
    assert any("merchant(s) of ms" in c.value for c in at.caption)
