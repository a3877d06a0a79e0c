"""Liftboard — the Streamlit entry: login gate, shared sidebar filters (bound to the URL), navigation.

Pages live in ``pages/`` and are routed explicitly with ``st.navigation``; each reads the signed-in
user and the global filters from ``st.session_state`` and renders what `webapp.data` returns. The user
is resolved again on every run from the browser's session (`webapp.auth`) or the OIDC identity, so a
sign-out elsewhere, a disabled account or a change of merchants applies on the next click.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import access  # noqa: E402
from core.config import Settings  # noqa: E402
from datastore import db, users  # noqa: E402
from datastore.snapshots import SnapshotNotFound  # noqa: E402
from webapp import auth  # noqa: E402
from webapp import data as app_data  # noqa: E402
from webapp.errors import catch_streamlit_errors, note_request, run_page  # noqa: E402
from webapp.ui import Filters  # noqa: E402

# an emoji icon: Streamlit draws it as an inline SVG; a `:material/…:` favicon is fetched from a font host
st.set_page_config(page_title="Liftboard", page_icon="📈", layout="wide")
# An error Streamlit reports itself (outside the page, or in a fragment): one console line with an id too.
catch_streamlit_errors()


# ------------------------------------------------------------------------------------------------
# Navigation
# ------------------------------------------------------------------------------------------------

P = "pages"


PAGE_FILES: dict[int, str] = {}
"""Each page's file stem by the page object's id, for this run (the default page's ``url_path`` is empty)."""


def _page(file: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    page = st.Page(f"{P}/{file}", title=title, icon=icon, url_path=file.removesuffix(".py"), default=default)
    PAGE_FILES[id(page)] = file.removesuffix(".py")
    return page


def _sections(user: access.User | None) -> dict[str, list[st.Page]]:
    """The pages ``user`` may open, by section (``None``: every page, for routing before login)."""
    ops = user is None or user.is_ops
    sections: dict[str, list[st.Page]] = {}
    if ops:
        sections["Monitor"] = [
            _page("overview.py", "Overview", ":material/dashboard:", default=True),
            _page("movers.py", "Movers", ":material/trending_up:"),
            _page("cohorts.py", "Cohorts", ":material/grid_on:"),
            _page("alerts.py", "Alerts", ":material/notifications:"),
        ]
        explore = [
            _page("creators.py", "Creators", ":material/person_search:"),
            _page("merchants.py", "Merchants", ":material/storefront:"),
        ]
        if app_data.has_matching():
            explore.append(_page("products.py", "Products & matching", ":material/hub:"))
        sections["Explore"] = explore
        sections["Act"] = [
            _page("strategy_board.py", "Strategy board", ":material/task_alt:"),
            _page("models.py", "Models", ":material/model_training:"),
        ]
    else:
        sections["My merchants"] = [
            _page("merchants.py", "Merchants", ":material/storefront:", default=True),
            _page("strategy_board.py", "Strategy board", ":material/task_alt:"),
            _page("alerts.py", "Alerts", ":material/notifications:"),
        ]
    # Weekly review (pages/weekly_review.py, owned by the reports engineer) joins only when it exists.
    if (ROOT / P / "weekly_review.py").is_file():
        sections["Monitor" if ops else "My merchants"].append(
            _page("weekly_review.py", "Weekly review", ":material/event_note:")
        )
    if ops:
        sections["Admin"] = [_page("data.py", "Data", ":material/database:")]
    return sections


# ------------------------------------------------------------------------------------------------
# Login gate
# ------------------------------------------------------------------------------------------------


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets.toml at all
        return False


def _signed_in_user(settings: Settings) -> access.User | None:
    """The signed-in user, read from the DB on every run (role, merchants, disabled: current), or ``None``.

    With OIDC, ``st.login``'s own cookie keeps the identity and its e-mail maps to a local user; else
    the session cookie does (`webapp.auth`).
    """
    if _oidc_configured():
        if not st.user.is_logged_in:
            return None
        user = users.user_for_email(settings, str(st.user.get("email", "")))
        if user is None:
            st.session_state.pop(auth.USER_KEY, None)
        else:
            st.session_state[auth.USER_KEY] = user
        return user
    return auth.signed_in_user(settings)


def _oidc_login() -> None:
    st.title("Liftboard")
    if not st.user.is_logged_in:
        st.button("Log in with your company account", on_click=st.login, type="primary")
        return
    st.error("Your account is not registered in Liftboard. Ask an administrator to add you.")
    st.button("Log out", on_click=st.logout)


def _login(settings: Settings) -> None:
    """Draw the login screen; a successful sign-in opens a session and reruns on the requested page."""
    if _oidc_configured():
        _oidc_login()
        return
    _, middle, _ = st.columns([1, 1.2, 1])
    with middle:
        st.title(":material/insights: Liftboard")
        st.caption("Creator-commerce analytics and strategy recommendations")
        if notice := auth.take_notice():
            st.info(notice, icon=":material/logout:")
        with st.form("login", border=True):
            username = st.text_input("Username", key="login_username", autocomplete="username")
            password = st.text_input(
                "Password", type="password", key="login_password", autocomplete="current-password"
            )
            submitted = st.form_submit_button("Sign in", type="primary", width="stretch", key="login_submit")
        auth.sync_cookie()  # clears the cookie of a session that ended
        if submitted:
            try:
                user = users.sign_in(settings, username, password, client=auth.client_address())
            except users.SignInRefused as refused:
                st.error(refused.message)
                return
            auth.start_session(settings, user)
            st.rerun()


try:
    db.require_current(app_data.settings())  # checked once per process; the app never migrates
except db.DatabaseNotCurrent as exc:
    st.error(str(exc))
    st.stop()

user = _signed_in_user(app_data.settings())
if user is None:
    # Route first (hidden) so the requested page and its query parameters survive the login.
    st.navigation(_sections(None), position="hidden")
    _login(app_data.settings())
    st.stop()

# ------------------------------------------------------------------------------------------------
# Shared sidebar: global filters bound to the URL
# ------------------------------------------------------------------------------------------------

try:
    last = app_data.last_day()
except SnapshotNotFound:
    st.error("No analytics build yet. Run `liftboard build` (or `make run`) and reload.")
    st.stop()

# Which sidebar filters each page applies, by the page's file stem; a page not listed applies none.
# Filters a page ignores are shown disabled with the reason beneath them: hidden widgets would lose their
# values (and drop them from the URL) on the way back to a page that applies them.
APPLIED_FILTERS: dict[str, frozenset[str]] = {
    "overview": frozenset({"range", "region", "category", "tier"}),
    "creators": frozenset({"range", "region", "category", "tier"}),
    "merchants": frozenset({"range", "region", "category"}),
}
FILTER_NAMES = {"range": "date range", "region": "region", "category": "category", "tier": "tier"}
IGNORED_BECAUSE: dict[str, str] = {
    "movers": "Movers compares the build's last complete week with the week before, marketplace-wide.",
    # not "marketplace-wide": a merchant-success user's review covers their merchants (the page says which)
    "weekly_review": "The weekly review covers the week picked on the page.",
    "cohorts": "Cohorts follow every cohort over its whole life, marketplace-wide.",
    "merchants": "Merchants have no creator tier.",
    "strategy_board": "The board lists the current build's recommendations; its own filters apply.",
    "models": "Models are trained on the whole marketplace.",
    "products": "Matching tables are built on the whole marketplace.",
    "data": "Data shows the whole installation.",
}


def _ignored_note(page: str, applied: frozenset[str], shown: tuple[str, ...]) -> str | None:
    """Why the sidebar's ``shown`` filters that ``page`` does not apply are disabled (``None``: all apply)."""
    ignored = [FILTER_NAMES[name] for name in shown if name not in applied]
    if not ignored:
        return None
    listed = ", ".join(ignored).capitalize()
    return f"{listed}: not applied on this page. {IGNORED_BECAUSE.get(page, '')}".strip()


page = st.navigation(_sections(user))
page_name = PAGE_FILES.get(id(page), "")
note_request(name=page_name, user=user.username, home=app_data.settings().home)
applied = APPLIED_FILTERS.get(page_name, frozenset())

with st.sidebar:
    st.markdown(f"**{user.display_name}** · {user.role.replace('_', ' ')}")
    preset = st.selectbox(
        "Date range",
        list(app_data.PRESETS),
        format_func=app_data.PRESETS.__getitem__,
        index=1,
        key="range",
        bind="query-params",
        disabled="range" not in applied,
        help=f"Relative to the data's last day, {last:%a %d %b %Y}.",
    )
    custom = None
    if preset == "custom":
        c1, c2 = st.columns(2)
        start_in = c1.date_input(
            "From",
            value=last - timedelta(days=27),
            max_value=last,
            key="from",
            bind="query-params",
            disabled="range" not in applied,
        )
        end_in = c2.date_input(
            "To", value=last, max_value=last, key="to", bind="query-params", disabled="range" not in applied
        )
        custom = (start_in, end_in)
    start, end = app_data.preset_range(preset, last, custom)
    if "range" in applied:
        st.caption(f"{start:%d %b %Y} – {end:%d %b %Y} · vs the {(end - start).days + 1} days before")
    values = app_data.dimension_values(user)
    regions: list[str] = []
    categories: list[str] = []
    tiers: list[str] = []
    if user.is_ops:
        regions = st.multiselect(
            "Region",
            values["region"],
            key="region",
            bind="query-params",
            placeholder="All regions",
            disabled="region" not in applied,
        )
        categories = st.multiselect(
            "Category",
            values["category"],
            key="category",
            bind="query-params",
            placeholder="All categories",
            help="The creator's primary category.",
            disabled="category" not in applied,
        )
        tiers = st.multiselect(
            "Creator tier",
            values["tier"],
            key="tier",
            bind="query-params",
            placeholder="All tiers",
            help="By followers: nano <10k, micro <100k, mid <500k, macro <1M, mega ≥1M.",
            disabled="tier" not in applied,
        )
    shown = ("range", "region", "category", "tier") if user.is_ops else ("range",)
    if note := _ignored_note(page_name, applied, shown):
        st.caption(f":material/filter_alt_off: {note}")
    st.session_state["filters"] = Filters(start, end, preset, tuple(regions), tuple(categories), tuple(tiers))
    manifest = app_data.manifest() or {}
    st.caption(f"Data as of {manifest.get('as_of', '?')} · build {manifest.get('build_id', '?')[:15]}")
    if st.button("Sign out", key="sign_out", icon=":material/logout:"):
        auth.end_session(app_data.settings())
        if _oidc_configured():
            st.logout()
        st.rerun()
    auth.sync_cookie()  # writes the cookie of a sign-in made in this tab

# An error in the page: one console line and a message with its id for the user, the traceback in the log.
run_page(page, name=page_name, user=user.username, home=app_data.settings().home)
