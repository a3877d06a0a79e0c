"""The browser session: a sign-in that survives reloads, new tabs and shared links, and ends everywhere.

Signing in opens a server-side session (`datastore.users.create_session`): an opaque random token of
which the state DB keeps only a hash, with an expiry. The browser keeps the token in the
``liftboard_session`` cookie (``Path=/``, ``SameSite=Strict``, ``Max-Age`` = what remains of the
session, ``Secure`` over https). A Streamlit script cannot answer with a ``Set-Cookie`` header, so a
tiny in-page component (``st.components.v2``, Streamlit's own API: no dependency, no iframe) writes
``document.cookie``. Written by script, the cookie cannot be ``HttpOnly``: the app renders no
untrusted HTML (no ``unsafe_allow_html``, no ``st.html``), and a leaked token is revocable (sign out,
disable the user) and expires. An ``HttpOnly`` cookie would need an HTTP route of its own (``st.App``).

Every script run, that is every click, resolves the token again (`users.resolve_session`): a session
that expired, was ended by signing out in another tab or belongs to a user who was disabled signs this
tab out at once, and the role and merchants come fresh from the DB, never frozen at sign-in.

Streamlit reads cookies from the websocket's opening HTTP request only (``st.context.cookies``): a
reload, a new tab or a shared link opens a new websocket and sends the cookie; a sign-in (or sign-out)
made in this tab is kept in ``st.session_state`` until the tab reconnects.
"""

from __future__ import annotations

import time

import streamlit as st

from core.access import User
from core.config import Settings
from datastore import users

COOKIE = "liftboard_session"
SESSION_TTL = users.SESSION_TTL

USER_KEY = "user"
"""``st.session_state`` key of the user resolved in this run (what `webapp.ui.current_user` reads)."""
TOKEN_KEY = "auth_token"
"""This tab's session token once it signed in or out here (``None``: signed out here); when absent,
the token comes from the cookie the browser sent."""
_EXPIRES_KEY = "auth_expires"  # epoch seconds when the session this tab opened ends (the cookie's Max-Age)
_STALE_KEY = "auth_stale"  # a token that no longer opens a session: cleared from the cookie if it holds it
_NOTICE_KEY = "auth_notice"  # why this tab was signed out without asking, shown once on the login form

_COOKIE_JS = """
export default function ({ data }) {
    if (!data) return;
    const attributes = "; Path=/; SameSite=Strict" + (location.protocol === "https:" ? "; Secure" : "");
    if (data.value) {
        document.cookie = data.name + "=" + data.value + "; Max-Age=" + data.maxAge + attributes;
        return;
    }
    const prefix = data.name + "=";
    const sent = document.cookie.split("; ").find((cookie) => cookie.startsWith(prefix));
    // clear only the session that ended: another tab may have signed in since
    if (sent !== undefined && sent.slice(prefix.length) === data.stale) {
        document.cookie = prefix + "; Max-Age=0" + attributes;
    }
}
"""
_cookie_writer = st.components.v2.component("liftboard.session_cookie", js=_COOKIE_JS)


def request_token() -> str | None:
    """The session token in the cookie the browser sent when this tab connected, if any."""
    token = st.context.cookies.get(COOKIE)
    return token if isinstance(token, str) and token else None  # AppTest's client is a mock


def client_address() -> str | None:
    """The browser's IP address, for the sign-in throttle (``None`` on localhost).

    Behind a reverse proxy this is the proxy's address: every user then shares one per-address
    throttle.
    """
    address = st.context.ip_address
    return address if isinstance(address, str) else None


def _current_token() -> str | None:
    if TOKEN_KEY in st.session_state:
        return st.session_state[TOKEN_KEY]
    return request_token()


def signed_in_user(settings: Settings) -> User | None:
    """The user of this tab's session, read from the DB now, or ``None`` (the login screen is due).

    A token that no longer opens a session (expired, ended, user disabled or removed) is forgotten and
    cleared from the cookie, and the login form says why.
    """
    token = _current_token()
    user = users.resolve_session(settings, token) if token else None
    if user is None:
        st.session_state.pop(USER_KEY, None)
        if token:
            st.session_state[TOKEN_KEY] = None
            st.session_state[_STALE_KEY] = token
            st.session_state[_NOTICE_KEY] = "Your session has ended. Sign in again."
        return None
    st.session_state[USER_KEY] = user
    return user


def start_session(settings: Settings, user: User) -> None:
    """Open a session for ``user`` (just signed in) in this tab; the cookie follows on the next run."""
    token = users.create_session(settings, user.username, ttl=SESSION_TTL)
    st.session_state[TOKEN_KEY] = token
    st.session_state[_EXPIRES_KEY] = time.time() + SESSION_TTL.total_seconds()
    for key in (_STALE_KEY, _NOTICE_KEY):
        st.session_state.pop(key, None)


def end_session(settings: Settings) -> None:
    """Sign out: end this tab's session in the DB (every tab sharing it is signed out on its next run)
    and clear the cookie on the next run."""
    token = _current_token()
    if token:
        users.end_session(settings, token)
        st.session_state[_STALE_KEY] = token
    st.session_state[TOKEN_KEY] = None
    st.session_state.pop(USER_KEY, None)


def take_notice() -> str | None:
    """Why this tab was signed out without asking (once), or ``None``."""
    return st.session_state.pop(_NOTICE_KEY, None)


def sync_cookie() -> None:
    """Bring the browser's cookie in line with this tab's session: write the token of a sign-in made in
    this tab (until the tab reconnects and sends it), or clear a token that ended. Draws nothing
    visible."""
    token = st.session_state.get(TOKEN_KEY)
    if token and token != request_token() and _EXPIRES_KEY in st.session_state:
        max_age = max(0, int(st.session_state[_EXPIRES_KEY] - time.time()))
        _cookie_writer(key="session_cookie", data={"name": COOKIE, "value": token, "maxAge": max_age})
    elif stale := st.session_state.get(_STALE_KEY):
        _cookie_writer(key="session_cookie", data={"name": COOKIE, "value": None, "stale": stale})
