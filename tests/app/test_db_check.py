"""app.py on a state DB that `liftboard db upgrade` has not migrated: the reason, not a crash or a login."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from core.config import Settings
from datastore import db
from tests.app.conftest import ROOT


def test_the_app_shows_why_it_cannot_start(empty_settings: Settings) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()

    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1
    assert f"the state DB {db.display_url(empty_settings)} has no Liftboard schema yet" in at.error[0].value
    assert "run `liftboard db upgrade`" in at.error[0].value
    assert not at.text_input  # no login form
    assert db.database_revision(empty_settings) is None  # the app migrated nothing
