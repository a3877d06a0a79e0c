"""Fixtures of the app tests: one `tiny` marketplace, built once per test session and shared by every
xdist worker (a file lock guards the build), with the demo users; and a running app for the browser
tests.

The browser tests drive Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``) through
Playwright; they install nothing themselves and fail, not skip, when the browser is missing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import Settings
from datastore import db, users
from liftboard.headless import CHROMIUM, CHROMIUM_ARGS, serve_app

ROOT = Path(__file__).resolve().parents[2]
OTHER_USER = "ms_other"
"""A merchant-success user holding one merchant outside the demo merchant user's five."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: browser end-to-end test (Playwright + Debian Chromium)")


def _build_tiny(home: Path) -> None:
    from liftboard.build import build
    from sim.simulate import generate

    settings = Settings.from_env(home=home)
    db.upgrade_db(settings)
    generate("tiny", 42, settings)
    build(settings)
    users.seed_demo_users(settings)
    demo = users.get_user(settings, "merchant")
    assert demo is not None
    assert demo.merchant_ids
    others = sorted(set(users.largest_merchants(settings, 12)) - set(demo.merchant_ids))
    users.add_user(
        settings, OTHER_USER, OTHER_USER, "merchant_success", merchant_ids=others[:1], enforce_policy=False
    )
    (home / ".ready").write_text("ok", encoding="utf-8")


def built_tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny marketplace built, with the demo users: once per session, whichever test file asks first
    (the CLI tests read it too; nothing may change it)."""
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    home = shared / "liftboard-app-tiny"
    home.mkdir(parents=True, exist_ok=True)
    with open(shared / "liftboard-app-tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (home / ".ready").exists():
                _build_tiny(home)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return home


def private_copy(tiny_home: Path, directory: Path) -> Path:
    """A copy of the tiny build in ``directory / "home"`` that a test may change; its SQLite state DB is
    copied through SQLite's backup API (the shared app may be writing sign-ins into it meanwhile)."""
    copy = directory / "home"
    shutil.copytree(tiny_home, copy, ignore=shutil.ignore_patterns("liftboard.db*"))
    with (
        closing(sqlite3.connect(tiny_home / "liftboard.db")) as source,
        closing(sqlite3.connect(copy / "liftboard.db")) as target,
    ):
        source.backup(target)
    return copy


ALERTS_AT = datetime(2026, 11, 9, 16, tzinfo=UTC)


def plant_demo_alerts(settings: Settings) -> None:
    """Four open alerts evaluated at `ALERTS_AT`: a refund spike of the demo merchant-success user's first
    merchant, a cancel spike of `OTHER_USER`'s merchant, a region's GMV drop and the platform's orders."""
    from alerts.rules import load_rules
    from alerts.state import apply_breaches
    from tests.alerts.conftest import breach, breaches

    mine = sorted(users.get_user(settings, "merchant").merchant_ids or [])[0]  # type: ignore[union-attr]
    theirs = sorted(users.get_user(settings, OTHER_USER).merchant_ids or [])[0]  # type: ignore[union-attr]
    rows = breaches(
        breach(
            "merchant_refund_rate_spike",
            "merchant",
            mine,
            ALERTS_AT,
            merchant_id=mine,
            observed=0.6355,
            expected=0.0919,
            high=0.301,
        ),
        breach(
            "merchant_cancel_rate_spike",
            "merchant",
            theirs,
            ALERTS_AT,
            merchant_id=theirs,
            observed=0.2,
            expected=0.02,
            high=0.08,
        ),
        breach(
            "region_gmv_below_expected",
            "region",
            "UK",
            ALERTS_AT,
            observed=222.92,
            expected=893.16,
            low=535.9,
            high=1490.5,
            unit="USD",
            hours=3,
        ),
        breach(
            "platform_orders_below_expected",
            "platform",
            "all",
            ALERTS_AT,
            observed=12,
            expected=74,
            low=40,
            high=110,
            unit="count",
            hours=3,
        ),
    )
    with db.connect(settings) as connection:
        apply_breaches(connection, rows, load_rules(), ALERTS_AT, ALERTS_AT)


@pytest.fixture
def explicit_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every AppTest run the way the server runs after its first request: explicitly routed through
    app.py. AppTest re-detects the ``pages/`` folder before each run, which would put Streamlit back in its
    old auto-discovered mode (running the current page without app.py) for every run after the first; the
    server does that only for the very first run of a process (see ``webapp.ui.current_user``). Used by the
    AppTest modules (``pytestmark = pytest.mark.usefixtures("explicit_routing")``)."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture(autouse=True)
def _page_errors_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages run in AppTest raise their errors after logging them (served, a user sees a message with an
    error id instead): "the page runs without an exception" must still fail on a broken page."""
    from webapp import errors

    monkeypatch.setattr(errors, "RAISE_PAGE_ERRORS", True)


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Liftboard home with the tiny marketplace built and the demo users (shared across workers)."""
    return built_tiny_home(tmp_path_factory)


@pytest.fixture
def app_settings(tiny_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of the tiny build, with the environment pointing at it (the app reads the environment)."""
    monkeypatch.setenv("LIFTBOARD_HOME", str(tiny_home))
    monkeypatch.delenv("LIFTBOARD_DATABASE_URL", raising=False)
    return Settings.from_env(home=tiny_home)


@pytest.fixture(scope="session")
def app_url(tiny_home: Path) -> Iterator[str]:
    """The app served on a free port over the tiny build (stopped at the end of the session)."""
    with open(tiny_home.parent / "streamlit.log", "w") as log, serve_app(tiny_home, log) as url:
        yield url


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One headless Chromium (Debian's) driven by Playwright for every browser test of this process:
    Playwright's sync API runs one instance per thread, so a second ``sync_playwright()`` while this one
    lives fails ("Sync API inside the asyncio loop"), whichever test files a worker happens to get."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def browser(chromium: object, app_url: str) -> object:
    """The shared Chromium, with the shared tiny app served (`app_url`)."""
    return chromium
