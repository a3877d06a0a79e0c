"""A creator's interests on their page come from the continuously folded interest state (what `liftboard
stream`, `ingest --watch` and uploads keep current) when there is one, with the time it is as of; the
build's table otherwise."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from datastore import users
from liftboard.watch import rebuild_interest_state
from matching.interests import profile_of
from tests.app.conftest import ROOT, private_copy
from webapp import auth

pytestmark = pytest.mark.usefixtures("explicit_routing")


def _open_creator(settings: Settings, creator: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[auth.TOKEN_KEY] = users.create_session(settings, "ops")
    at.query_params["creator"] = creator
    at.run()
    at.switch_page("pages/creators.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _interests_grid(at: AppTest) -> pl.DataFrame:
    grids = [pl.from_pandas(d.value) for d in at.dataframe]
    return next(g for g in grids if {"dimension", "half_life_days"} <= set(g.columns))


def test_interests_are_the_folded_states_with_its_time(
    tiny_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = private_copy(tiny_home, tmp_path)
    monkeypatch.setenv("LIFTBOARD_HOME", str(home))
    monkeypatch.setenv("LIFTBOARD_DATABASE_URL", f"sqlite:///{home / 'liftboard.db'}")
    settings = Settings.from_env()
    # before any state is kept: the build's table, said so
    creator = "c000034"
    build = _open_creator(settings, creator)
    assert any("as of the build of" in c.value for c in build.caption)

    state = rebuild_interest_state(settings)  # the state a stream or a watcher keeps, made at once
    live = _open_creator(settings, creator)
    captions = [c.value for c in live.caption if c.value.startswith("live:")]
    assert captions == [
        "live: every ingest and stream batch is folded in; as of the newest event, "
        f"{state.as_of:%d %b %Y %H:%M} UTC"
    ]
    expected = profile_of(state, creator)
    shown = _interests_grid(live)
    assert shown.height == expected.height > 0
    assert shown["key"].to_list() == expected["key"].to_list()
    assert shown["rank"].to_list() == expected["rank"].to_list()
