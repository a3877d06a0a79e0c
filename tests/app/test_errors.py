"""An error while a page renders: the user reads a message naming an error id, never a traceback; the
operator's console gets one line with that id; the traceback goes to the error log. Streamlit's control
flow (st.stop, st.rerun, switch_page) passes through untouched."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from streamlit import config
from streamlit.errors import FragmentHandledException
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest

from core.config import Settings
from datastore import users
from tests.app.conftest import ROOT
from webapp import auth, errors
from webapp import data as app_data

MESSAGE = re.compile(
    r"Something went wrong on this page \(error id ([0-9a-f]{8})\)\. The details are in the server log\."
)


pytestmark = pytest.mark.usefixtures("explicit_routing")


@pytest.fixture(autouse=True)
def _page_errors_as_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """As served: a page's error becomes a message with its id (the other app tests have it raised)."""
    monkeypatch.setattr(errors, "RAISE_PAGE_ERRORS", False)


@pytest.fixture
def error_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The error log, moved out of the shared tiny home (which tests must not change)."""
    path = tmp_path / "logs" / "errors.log"
    monkeypatch.setattr(errors, "LOG_FILE", path)  # absolute: the home is ignored
    return path


def test_a_page_error_shows_its_id_logs_one_line_and_the_traceback(
    app_settings: Settings,
    error_log: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    original = app_data.snapshot

    def snapshot(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "gmv_change_contributions":
            raise ValueError("contributions unreadable:\nthe file is truncated")
        return original(name, *args, **kwargs)

    monkeypatch.setattr(app_data, "snapshot", snapshot)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[auth.TOKEN_KEY] = users.create_session(app_settings, "ops")
    at.run()
    at.switch_page("pages/movers.py")
    at.run()

    assert not at.exception, [e.message for e in at.exception]  # no traceback element
    shown = [m for e in at.error if (m := MESSAGE.fullmatch(e.value))]
    assert len(shown) == 1, [e.value for e in at.error]
    error_id = shown[0].group(1)
    texts = [e.value for e in (*at.error, *at.markdown, *at.caption, *at.text, *at.code)]
    assert not [t for t in texts if "Traceback" in str(t) or "unreadable" in str(t)]

    console = [line for line in capsys.readouterr().err.splitlines() if error_id in line]
    assert console == [
        f"ERROR liftboard request error {error_id} page=movers user=ops "
        "ValueError: contributions unreadable: the file is truncated"
    ]

    logged = error_log.read_text(encoding="utf-8")
    assert f"liftboard request error {error_id} page=movers user=ops" in logged
    assert "Traceback (most recent call last)" in logged
    assert 'raise ValueError("contributions unreadable' in logged


class _Page:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def run(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [StopException(), RerunException(RerunData()), FragmentHandledException(ValueError("shown"))],
    ids=["stop", "rerun", "fragment-handled"],
)
def test_streamlit_control_flow_passes_through(
    error: BaseException, error_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = cast(StreamlitPage, _Page(error))
    with pytest.raises(type(error)):
        errors.run_page(page, name="overview", user="ops", home=error_log.parent)
    assert not error_log.exists()
    assert "request error" not in capsys.readouterr().err


def test_the_console_line_is_one_short_line() -> None:
    long = ValueError("x" * 1000 + "\n\tend")
    text = errors.one_line(long)
    assert "\n" not in text
    assert text.startswith("ValueError: xxx")
    assert len(text) == len("ValueError: ") + errors.MESSAGE_CHARS
    assert errors.one_line(KeyError()) == "KeyError"


@pytest.fixture
def plain_streamlit_logging() -> Iterator[None]:
    """Streamlit reports errors it handles through logging, as the app's config sets it."""
    previous = config.get_option("logger.enableRich")
    config.set_option("logger.enableRich", False)
    yield
    config.set_option("logger.enableRich", previous)


def _board_with_a_failing_fragment() -> None:
    import streamlit as st

    from webapp import errors

    errors.catch_streamlit_errors()
    st.session_state[errors.REQUEST_KEY] = ("strategy_board", "ops", "")

    @st.fragment
    def panel() -> None:
        raise KeyError("strategy")

    panel()


def test_an_error_streamlit_handles_is_one_console_line_too(
    error_log: Path, plain_streamlit_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    at = AppTest.from_function(_board_with_a_failing_fragment, default_timeout=60)
    at.run()
    assert len(at.exception) == 1  # Streamlit shows it (the app's config: its type only)
    console = [line for line in capsys.readouterr().err.splitlines() if "strategy" in line]
    assert len(console) == 1, console
    match = re.fullmatch(
        r"ERROR liftboard request error ([0-9a-f]{8}) page=strategy_board user=ops KeyError: 'strategy'",
        console[0],
    )
    assert match, console
    logged = error_log.read_text(encoding="utf-8")
    assert match.group(1) in logged
    assert 'raise KeyError("strategy")' in logged


def test_tests_can_have_page_errors_raised_after_logging(
    error_log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(errors, "RAISE_PAGE_ERRORS", True)
    page = cast(StreamlitPage, _Page(ValueError("broken")))
    with pytest.raises(ValueError, match="broken"):
        errors.run_page(page, name="overview", user="ops", home=error_log.parent)
    assert "page=overview user=ops ValueError: broken" in capsys.readouterr().err
    assert "Traceback" in error_log.read_text(encoding="utf-8")
