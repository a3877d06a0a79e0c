"""Browser end-to-end: the sign-in session survives reloads, new tabs and shared links, ends everywhere
on sign-out or when the account is disabled, and repeated wrong passwords are throttled.

The app is served on a private copy of the tiny build (these tests add, disable and throttle users,
and the shared build must not change); each test signs in its own throwaway user.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.config import Settings
from datastore import db, users
from datastore.tables import sign_in_attempts
from liftboard.headless import serve_app
from tests.app import browser as web
from tests.app.browser import LOGIN_FORM, NAV, count_frames, load, run
from tests.app.conftest import private_copy
from webapp.auth import COOKIE, SESSION_TTL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PASSWORD = "amber-Lantern-47-orbit"
"""A password the policy accepts (long, not the user name, not a common password)."""
_names = itertools.count(1)


@pytest.fixture(scope="module")
def home(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the tiny build; its SQLite state DB copied through SQLite's backup API (the
    shared app may be writing sign-ins into it meanwhile)."""
    return private_copy(tiny_home, tmp_path_factory.mktemp("session-home"))


@pytest.fixture(scope="module")
def settings(home: Path) -> Settings:
    """The copy's settings: its own SQLite state DB, whatever the environment says (as the server)."""
    return Settings.from_env(home=home, database_url=f"sqlite:///{home / 'liftboard.db'}")


@pytest.fixture(scope="module")
def url(home: Path) -> Iterator[str]:
    with open(home.parent / "streamlit.log", "w") as log, serve_app(home, log) as served:
        yield served


@pytest.fixture
def context(chromium: Any, url: str) -> Iterator[Any]:
    """One browser profile: its tabs share cookies."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1000})
    ctx.on("page", count_frames)
    yield ctx
    ctx.close()


@pytest.fixture
def person(settings: Settings) -> str:
    """A throwaway ops user of the copy, signed in with `PASSWORD`."""
    name = f"session_user_{next(_names)}"
    users.add_user(settings, name, PASSWORD, "ops", display_name=f"Tester {name}")
    return name


def sign_in(page: Any, url: str, username: str, password: str = PASSWORD) -> None:
    web.sign_in(page, url, username, password)


def submit(page: Any, username: str, password: str) -> None:
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def signed_in_as(page: Any, username: str) -> bool:
    """Whether the tab shows the app to ``username`` (their name in the sidebar, no login form)."""
    sidebar = page.locator('[data-testid="stSidebar"]')
    return (
        page.locator(LOGIN_FORM).count() == 0
        and sidebar.count() == 1
        and sidebar.get_by_text(f"Tester {username}").count() == 1
    )


def session_cookie(context: Any) -> dict[str, Any] | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


def click_nav(page: Any, name: str) -> None:
    """A click that reruns the app: switch to another page in the sidebar navigation."""
    run(page, page.locator(f'{NAV} a[href$="/{name}"]').first.click)


def page_is_login(page: Any) -> bool:
    return page.get_by_role("button", name="Sign in").count() == 1 and page.locator(NAV).count() == 0


def test_reload_new_tab_and_shared_link_keep_the_session(context: Any, url: str, person: str) -> None:
    page = context.new_page()
    sign_in(page, url + "/", person)
    assert signed_in_as(page, person)
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30_000)

    page.reload()
    load(page, NAV)
    assert signed_in_as(page, person)

    # a link to a page with filters, opened in a new tab: signed in, on that page, with those filters
    deep = url + "/creators?tier=mega&range=Last+7+days"
    tab = context.new_page()
    tab.goto(deep)
    load(tab, NAV)
    assert signed_in_as(tab, person)
    assert "/creators" in tab.url
    assert tab.get_by_role("heading", name="Creators").count() >= 1
    sidebar = tab.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]')
    tier = sidebar.filter(has_text="Creator tier").first
    tier.locator("[data-tag]").filter(has_text="mega").first.wait_for(timeout=30_000)
    assert tier.locator("[data-tag]").all_inner_texts() == ["mega"]
    assert tab.locator('[data-testid="stSidebar"]').get_by_text("vs the 7 days before").count() == 1

    # the same link followed from another site (a chat, a mail): SameSite=Strict still lets the app's
    # own websocket carry the cookie
    context.route(
        "http://chat.example/**",
        lambda route: route.fulfill(content_type="text/html", body=f'<a id="shared" href="{deep}">view</a>'),
    )
    chat = context.new_page()
    chat.goto("http://chat.example/room")
    chat.click("#shared")
    load(chat, NAV)
    assert signed_in_as(chat, person)
    assert "/creators" in chat.url
    assert "tier=mega" in chat.url


def test_the_cookie_is_strict_and_expires_with_the_session(context: Any, url: str, person: str) -> None:
    page = context.new_page()
    before = time.time()
    sign_in(page, url + "/", person)
    page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30_000)
    cookie = session_cookie(context)
    assert cookie is not None
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # served over http here; over https the cookie is Secure
    ttl = SESSION_TTL.total_seconds()
    assert before + ttl - 120 <= cookie["expires"] <= time.time() + ttl + 5  # not a browser-session cookie
    assert len(cookie["value"]) >= 32  # an opaque random token, not the user name


def test_a_disabled_user_is_signed_out_on_the_next_click(
    context: Any, url: str, person: str, settings: Settings
) -> None:
    page = context.new_page()
    sign_in(page, url + "/", person)
    assert signed_in_as(page, person)
    users.disable_user(settings, person, actor="test")
    click_nav(page, "movers")
    assert page_is_login(page)
    assert page.get_by_text("Your session has ended").count() == 1
    page.wait_for_function(f"() => !document.cookie.includes('{COOKIE}=')", timeout=30_000)
    page.reload()
    load(page, LOGIN_FORM)
    # and the password no longer opens a session
    run(page, lambda: submit(page, person, PASSWORD))
    assert page.get_by_text(users.WRONG_CREDENTIALS).count() == 1
    assert page_is_login(page)


def test_a_change_of_merchants_reaches_the_open_session(context: Any, url: str, settings: Settings) -> None:
    first, second = users.largest_merchants(settings, 2)
    name = f"session_ms_{next(_names)}"
    users.add_user(settings, name, PASSWORD, "merchant_success", f"Tester {name}", merchant_ids=[first])
    page = context.new_page()
    sign_in(page, url + "/", name)
    assert page.get_by_text("1 merchant ·").count() == 1
    users.set_merchants(settings, name, [first, second], actor="test")
    search = page.get_by_role("textbox", name="Search name or id")
    search.fill("m")
    run(page, lambda: search.press("Enter"))
    assert page.get_by_text("2 merchants ·").count() == 1


def test_signing_out_in_one_tab_signs_out_the_others(context: Any, url: str, person: str) -> None:
    first = context.new_page()
    sign_in(first, url + "/", person)
    first.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30_000)
    second = context.new_page()
    second.goto(url + "/movers")
    load(second, NAV)
    assert signed_in_as(second, person)

    run(first, first.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click)
    load(first, LOGIN_FORM)  # signing out reruns once more
    assert page_is_login(first)
    first.wait_for_function(f"() => !document.cookie.includes('{COOKIE}=')", timeout=30_000)
    assert session_cookie(context) is None

    click_nav(second, "cohorts")
    assert page_is_login(second)
    second.reload()
    load(second, LOGIN_FORM)
    assert page_is_login(second)


def test_the_sixth_wrong_password_in_a_minute_is_refused_with_a_wait(
    context: Any, url: str, person: str, settings: Settings
) -> None:
    page = context.new_page()
    page.goto(url + "/")
    load(page, LOGIN_FORM)
    alert = page.locator('[data-testid="stAlert"]')
    started = time.monotonic()
    for attempt in range(1, 6):
        run(page, lambda attempt=attempt: submit(page, person, f"wrong-password-{attempt}"))
        assert alert.inner_text() == users.WRONG_CREDENTIALS, attempt
    assert attempts(settings, person) == 5
    run(page, lambda: submit(page, person, "wrong-password-6"))
    assert time.monotonic() - started < 60
    assert re.fullmatch(r"Too many failed sign-ins\. Try again in \d+ seconds?\.", alert.inner_text())
    # the right password, right then, is refused too (without being checked)
    run(page, lambda: submit(page, person, PASSWORD))
    assert "Too many failed sign-ins" in alert.inner_text()
    assert page_is_login(page)
    assert session_cookie(context) is None
    assert attempts(settings, person) == 5  # refusals while waiting are not even counted


def attempts(settings: Settings, username: str) -> int:
    """Sign-in attempts the server recorded for ``username``."""
    with db.connect(settings) as connection:
        query = sa.select(sa.func.count()).where(sign_in_attempts.c.username == username)
        return int(connection.execute(query).scalar_one())
