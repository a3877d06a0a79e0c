"""Errors while a page renders: one console line with an error id for the operator, the traceback in a
rotating log file under the Liftboard home, and a plain message naming the id for the user.

Streamlit's control flow (``st.stop``, ``st.rerun``, ``st.switch_page``: `ScriptControlException`, a
``BaseException``) passes through untouched, and so does an error Streamlit already handled inside a
fragment. An error Streamlit handles itself (inside a fragment, or in app.py outside the page) is shown
by Streamlit (its type only, per the client settings) but reaches the console the same way: one line
with an id, the traceback in the error log.
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TextIO

import streamlit as st
from streamlit.errors import FragmentHandledException
from streamlit.navigation.page import StreamlitPage

from core.config import Settings

LOGGER_NAME = "liftboard.requests"
LOG_FILE = Path("logs") / "errors.log"
"""The error log, relative to the Liftboard home."""
LOG_FILE_BYTES = 5_000_000
LOG_FILE_BACKUPS = 5
MESSAGE_CHARS = 300
"""The longest exception message printed on the console line (the log file has all of it)."""
RAISE_PAGE_ERRORS = False
"""Set by tests that run pages (AppTest): a page's error is logged, then raised for Streamlit to show, so
"the page runs without an exception" still fails on it."""

_file_lock = threading.Lock()


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the process's current standard error: the server console."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current standard error."""


def console_logger() -> logging.Logger:
    """The logger of request errors: one ``LEVEL message`` line each on the console, nothing else."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # a root handler set up elsewhere would print it twice
    return logger


STREAMLIT_LOGGER = "streamlit.error_util"
STREAMLIT_UNCAUGHT = "Uncaught app execution"
"""What Streamlit logs, with the traceback, for an error it handles itself (rich printing off)."""
REQUEST_KEY = "_liftboard_request"
"""Session state: the page last run in the session, its user and the Liftboard home."""


class _StreamlitUncaught(logging.Filter):
    """Turns Streamlit's multi-line report of an error it handled into a request error: one console line
    with an id, the traceback in the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != STREAMLIT_UNCAUGHT or not record.exc_info or not record.exc_info[1]:
            return True
        page, user, home = _last_request()
        log_request_error(record.exc_info[1], page=page, user=user, home=home)
        return False


def _last_request() -> tuple[str, str, Path]:
    try:
        page, user, home = st.session_state.get(REQUEST_KEY) or ("", "", "")
    except Exception:  # noqa: BLE001 - no session (outside a script run): the request is unknown
        page, user, home = "", "", ""
    return str(page), str(user), Path(home) if home else Settings.from_env().home


def catch_streamlit_errors() -> None:
    """Have Streamlit's own reports of errors logged as request errors (idempotent)."""
    logger = logging.getLogger(STREAMLIT_LOGGER)
    if not any(isinstance(f, _StreamlitUncaught) for f in logger.filters):
        logger.addFilter(_StreamlitUncaught())


def note_request(*, name: str, user: str, home: Path) -> None:
    """Remember this run's page and user, for errors Streamlit reports itself (`catch_streamlit_errors`)."""
    st.session_state[REQUEST_KEY] = (name, user, str(home))


def new_error_id() -> str:
    """A short id (8 hex characters) naming one error in the console, the log file and the message."""
    return secrets.token_hex(4)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, the message cut at `MESSAGE_CHARS`."""
    message = " ".join(str(exc).split())
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def user_message(error_id: str) -> str:
    """What the user reads instead of a traceback."""
    return f"Something went wrong on this page (error id {error_id}). The details are in the server log."


def log_request_error(exc: BaseException, *, page: str, user: str, home: Path) -> str:
    """Record ``exc``, raised on ``page`` for ``user``: one console line, the traceback in the error log
    under ``home``. Returns the error id."""
    error_id = new_error_id()
    line = f"liftboard request error {error_id} page={page or '-'} user={user or '-'} {one_line(exc)}"
    path = home / LOG_FILE
    try:
        _write_traceback(path, line, exc)
    except OSError as problem:  # the log file cannot be written: the console says where the details went
        line += f" (error log {path} not written: {one_line(problem)})"
    console_logger().error(line)
    return error_id


def _write_traceback(path: Path, line: str, exc: BaseException) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trace = "".join(traceback.format_exception(exc)).rstrip()
    record = logging.LogRecord(LOGGER_NAME, logging.ERROR, __file__, 0, "%s\n%s", (line, trace), None)
    with _file_lock:
        handler = RotatingFileHandler(
            path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        try:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            handler.emit(record)
        finally:
            handler.close()


def run_page(page: StreamlitPage, *, name: str, user: str, home: Path) -> None:
    """Run ``page``; an error while it renders is logged (`log_request_error`) and shown as a message
    naming its id, not as a traceback."""
    catch_streamlit_errors()
    note_request(name=name, user=user, home=home)
    try:
        page.run()
    except FragmentHandledException:
        raise  # Streamlit has shown and logged it already
    except Exception as exc:  # noqa: BLE001 - every error of a page ends here, logged with its id
        error_id = log_request_error(exc, page=name, user=user, home=home)
        if RAISE_PAGE_ERRORS:
            raise
        st.error(user_message(error_id), icon=":material/error:")
