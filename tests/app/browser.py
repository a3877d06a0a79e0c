"""Helpers for the browser tests: wait for the script run an action starts, by the server's messages.

Streamlit's run-state attribute alone is not enough: a quick run can go from "running" to "notRunning"
within one browser render (seen under load), so the attribute never changes and a wait for it hangs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from webapp.auth import COOKIE

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


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Open ``url``, sign in, and wait for the run that draws the signed-in page."""
    page.goto(url)
    load(page, LOGIN_FORM)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    load(page, NAV)  # the navigation shows in the rerun after a sign-in
    # the session cookie is written by a component after that run: a page opened before it is there
    # would open on the sign-in form
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30_000)


def open_page(page: Any, url: str) -> None:
    """Go to ``url`` in a signed-in tab and wait until its script run is over."""
    page.goto(url)
    load(page, NAV)
    settle(page, time.monotonic() + 60)


def grid_headers(grid: Any) -> list[str]:
    """The column headers of a Streamlit dataframe as a user reads them (its accessible table)."""
    return [text.strip() for text in grid.locator('[role="columnheader"]').all_inner_texts()]


def grid_rows(grid: Any) -> list[list[str]]:
    """The drawn rows of a Streamlit dataframe, cell texts as shown (only rows in view are drawn)."""
    rows = grid.locator('[role="row"]')
    out = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator('[role="gridcell"]').all_inner_texts()
        if cells:
            out.append([c.strip() for c in cells])
    return out


def grid_column(grid: Any, header: str) -> list[str]:
    """The drawn cells under ``header``."""
    headers = grid_headers(grid)
    index = headers.index(header)
    return [row[index] for row in grid_rows(grid) if len(row) > index]


RECORD_DRAWN_TEXT = """(() => {
    // Streamlit's dataframes draw their cells on a canvas, and their accessible table holds the raw
    // values: record every text drawn on a canvas, the figures exactly as a user reads them
    const drawn = new Set();
    window.__liftboardDrawn = drawn;
    for (const proto of [CanvasRenderingContext2D.prototype, OffscreenCanvasRenderingContext2D.prototype]) {
        const fillText = proto.fillText;
        proto.fillText = function (text, ...rest) {
            drawn.add(String(text));
            return fillText.call(this, text, ...rest);
        };
    }
})();"""
"""An init script (``context.add_init_script``) behind `drawn_texts`."""


def drawn_texts(page: Any) -> set[str]:
    """Every text drawn on a canvas of ``page`` since it loaded (needs `RECORD_DRAWN_TEXT`)."""
    return set(page.evaluate("() => [...(window.__liftboardDrawn || [])]"))


def percent_decimals(page: Any, raw: list[str]) -> set[int]:
    """How many decimals the grid drew for the shares ``raw`` (raw cell values from `grid_column`): for
    each value, the decimals d with which ``100·value`` formatted as "x.d%" was drawn. An empty set means
    a value was drawn in no such form."""
    drawn = drawn_texts(page)
    per_value = [{d for d in range(4) if f"{100 * float(value):,.{d}f}%" in drawn} for value in raw if value]
    return set.intersection(*per_value) if per_value else set()
