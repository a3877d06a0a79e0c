"""Helpers for the browser tests: wait for the script run an action starts, by the server's messages.

Streamlit's run-state attribute alone is not enough: a quick run can go from "running" to "notRunning"
within one browser render (seen under load), so the attribute never changes and a wait for it hangs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

NAV = '[data-testid="stSidebarNav"]'
LOGIN_FORM = '[data-testid="stForm"]'
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
"""The app between script runs (Streamlit's own run-state attribute)."""
QUIET_MS = 400
"""How long the server must stay silent, with the app idle, for a run to count as finished."""


def count_frames(page: Any) -> None:
    """Count the messages the server sends to ``page`` over its websockets (every script run sends
    some): a sign that does not depend on the browser drawing each state of a run."""
    page.liftboard_frames = 0

    def on_socket(socket: Any) -> None:
        def on_frame(_: object) -> None:
            page.liftboard_frames += 1

        socket.on("framereceived", on_frame)

    page.on("websocket", on_socket)


def run(page: Any, action: Callable[[], object], timeout: float = 60.0) -> None:
    """Do ``action`` (a click, a submit) and wait for the end of the script run it starts.

    A run is seen in the server's messages, not in the run-state attribute alone: a quick run can go
    from "running" to "notRunning" within one browser render (seen under load), so the attribute never
    changes. Finished means: messages arrived after the action, then none for ``QUIET_MS`` while the
    app is idle.
    """
    page.wait_for_selector(IDLE, timeout=60_000)
    before = page.liftboard_frames
    action()
    deadline = time.monotonic() + timeout
    while page.liftboard_frames == before:
        assert time.monotonic() < deadline, "the action started no script run"
        page.wait_for_timeout(50)
    settle(page, deadline)


def settle(page: Any, deadline: float) -> None:
    """Wait until the app is idle and the server has sent nothing for ``QUIET_MS``."""
    while True:
        seen = page.liftboard_frames
        page.wait_for_timeout(QUIET_MS)
        if page.liftboard_frames == seen and page.locator(IDLE).count() == 1:
            return
        assert time.monotonic() < deadline, "the script run did not finish"


def load(page: Any, selector: str) -> None:
    """Wait, after a page load, for ``selector`` and then for the end of the run that draws it."""
    page.wait_for_selector(selector, timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
