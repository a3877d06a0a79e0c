"""Local users in the state DB: passwords, sign-in, sessions, account administration and its audit trail.

- **Passwords** are hashed with argon2id by argon2-cffi's `PasswordHasher` at its default parameters (RFC
  9106's low-memory profile), so they follow the library's recommendation as it rises. Hashes of earlier
  versions (salted scrypt, ``scrypt$n$r$p$salt_hex$hash_hex``) still verify; they, and argon2 hashes whose
  parameters are older than the hasher's, are replaced at the user's next successful sign-in. New
  passwords go through `check_password_policy`.
- **Sign-in** (`sign_in`) is throttled per user name and per client address with an exponential back-off
  stored in the DB (`sign_in_attempts`), and every refusal of credentials (unknown user, disabled user,
  OIDC-only user, wrong password) costs the same: one argon2 verification and the same queries, so
  the time taken does not tell which accounts exist.
- **Sessions** are server-side and revocable (`user_sessions`): the browser holds an opaque random token,
  the DB only its SHA-256. `resolve_session` reads the user from the DB on every call, so a role or
  merchant change reaches open sessions at once and disabling or removing a user ends them.
- **Administration** (add, remove, disable, enable, reset a password, set merchants) records who did
  what and when in `user_audit` (`audit_log`).

OIDC logins (``st.login``) map the identity provider's e-mail to a local user row through
`user_for_email`, which gives the role. What a user may see is decided by `core.access`.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import polars as pl
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.access import ROLES, AccessError, User, scope_frame
from core.config import Settings
from datastore import db
from datastore.snapshots import load_snapshot
from datastore.tables import sign_in_attempts, user_audit, user_merchants, user_sessions, users

MIN_PASSWORD_LENGTH = 12
THROTTLE_WINDOW = timedelta(minutes=15)
"""Failures older than this do not count towards the back-off."""
THROTTLE_FREE_FAILURES = 5
"""Failures allowed (per user name and per client address) before the back-off starts."""
THROTTLE_BASE_WAIT_S = 60.0
"""The wait after the last of `THROTTLE_FREE_FAILURES` failures; it doubles with each further failure.

A minute, so that a sixth wrong password within a minute of the first is refused whatever the pace
of the five before it (with 1 s, a person typing every few seconds would never meet the throttle).
"""
THROTTLE_MAX_WAIT_S = 15 * 60.0
SESSION_TTL = timedelta(hours=12)
"""How long a session lasts from sign-in (it does not slide: signing in again is needed after it)."""
SESSION_SEEN_RESOLUTION = timedelta(minutes=1)
"""``last_seen_at`` is written at most this often per session (a write on every page rerun is waste)."""
WRONG_CREDENTIALS = "Unknown user or wrong password."

_HASHER = PasswordHasher()
_STATUS_ACTIVE, _STATUS_DISABLED = "active", "disabled"


class UnknownUser(AccessError):
    """No user has that name."""


class UnknownMerchants(AccessError):
    """Merchant ids that are not in the state DB's ``merchants`` table."""


class PasswordPolicyError(AccessError):
    """A new password that `check_password_policy` refuses."""


class SignInRefused(AccessError):
    """A refused sign-in: ``message`` is what to show the person signing in.

    ``retry_after_s`` is how long to wait before the next attempt is even considered (0 when the
    refusal is about the credentials, not the throttle).
    """

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


# ------------------------------------------------------------------------------------------------
# password hashes
# ------------------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``, self-describing (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``)."""
    return _HASHER.hash(password)


def _verify_scrypt(password: str, stored: str) -> bool:
    """Whether ``password`` matches a legacy ``scrypt$n$r$p$salt_hex$hash_hex`` hash."""
    try:
        _, n, r, p, salt_hex, digest_hex = stored.split("$")
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``: an argon2 hash, or a legacy scrypt one."""
    if not stored:
        return False
    if stored.startswith("$argon2"):
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` should be replaced by a new hash (legacy scheme or outdated argon2 parameters)."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash_for(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(24))


def _dummy_hash() -> str:
    """A hash of a random secret, made once per hasher: what refusals verify against, at the same cost."""
    return _dummy_hash_for(_HASHER)


# ------------------------------------------------------------------------------------------------
# password policy
# ------------------------------------------------------------------------------------------------


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("datastore").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("# ")
    )


def check_password_policy(password: str, username: str) -> None:
    """Refuse a new password that is short, contains the user name or is a common password.

    The user name counts when it has 3 characters or more (a password may contain the letters "al"
    of user "al"; it may not be "al" itself, which the length rule refuses anyway). Comparisons ignore case.

    Raises:
        PasswordPolicyError: naming the rule the password breaks.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"the password is too short: {len(password)} characters, at least {MIN_PASSWORD_LENGTH} needed"
        )
    lowered, name = password.lower(), username.strip().lower()
    if name and (lowered == name or (len(name) >= 3 and name in lowered)):
        raise PasswordPolicyError("the password must not contain the user name")
    if lowered in _common_passwords():
        raise PasswordPolicyError("the password is one of the most common passwords; choose another")


# ------------------------------------------------------------------------------------------------
# shared helpers
# ------------------------------------------------------------------------------------------------


def _now() -> datetime:
    """The current time (UTC); one place, so tests can move the clock."""
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def default_actor() -> str:
    """Who makes a change when nobody is named: the operating-system user running the process."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _audit(connection: sa.Connection, actor: str | None, action: str, username: str, **detail: Any) -> None:
    connection.execute(
        user_audit.insert().values(
            at=_now(),
            actor=(actor or default_actor())[:128],
            action=action,
            username=username,
            detail=json.dumps(detail, sort_keys=True, default=str),
        )
    )


def _user_row(connection: sa.Connection, username: str) -> sa.Row | None:
    return connection.execute(sa.select(users).where(users.c.username == username)).first()


def _require_user(connection: sa.Connection, username: str) -> sa.Row:
    row = _user_row(connection, username)
    if row is None:
        raise UnknownUser(f"unknown user {username!r}")
    return row


def _merchants_of(connection: sa.Connection, username: str) -> list[str]:
    query = (
        sa.select(user_merchants.c.merchant_id)
        .where(user_merchants.c.username == username)
        .order_by(user_merchants.c.merchant_id)
    )
    return list(connection.execute(query).scalars())


def _user_from_row(connection: sa.Connection, row: sa.Row) -> User:
    merchant_ids = None if row.role == "ops" else frozenset(_merchants_of(connection, row.username))
    return User(row.username, row.display_name, row.role, merchant_ids)


def _check_merchants(connection: sa.Connection, role: str, merchant_ids: list[str]) -> None:
    """Refuse merchants for ops users and merchant ids the state DB's ``merchants`` table does not hold."""
    if not merchant_ids:
        return
    if role == "ops":
        raise AccessError("ops users see every merchant; do not assign merchants to them")
    merchants = db.sql_table("merchants")
    found = set(
        connection.execute(
            sa.select(merchants.c.merchant_id).where(merchants.c.merchant_id.in_(merchant_ids))
        ).scalars()
    )
    unknown = [merchant_id for merchant_id in merchant_ids if merchant_id not in found]
    if unknown:
        raise UnknownMerchants(f"unknown merchant id(s): {', '.join(unknown)} (not in the merchants table)")


def _revoke_sessions(connection: sa.Connection, username: str) -> int:
    """End every open session of ``username``; how many there were."""
    result = connection.execute(
        user_sessions.update()
        .where(user_sessions.c.username == username, user_sessions.c.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
    return int(result.rowcount)


# ------------------------------------------------------------------------------------------------
# accounts
# ------------------------------------------------------------------------------------------------


def _check_new_user(
    username: str, password: str | None, role: str, merchants: list[str], enforce_policy: bool
) -> None:
    """What can be checked of a new user before reading the DB: role, name, merchants of ops, policy."""
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if not username:
        raise AccessError("the username is empty")
    if role == "ops" and merchants:
        raise AccessError("ops users see every merchant; do not assign merchants to them")
    if password and enforce_policy:
        check_password_policy(password, username)


def add_user(
    settings: Settings,
    username: str,
    password: str | None,
    role: str,
    display_name: str | None = None,
    merchant_ids: Iterable[str] = (),
    email: str | None = None,
    *,
    actor: str | None = None,
    enforce_policy: bool = True,
) -> User:
    """Create a user (``password`` may be ``None`` for OIDC-only accounts identified by ``email``).

    ``actor`` is who creates it, for the audit trail (default: the OS user). ``enforce_policy=False``
    skips `check_password_policy`: only for the demo users (`seed_demo_users`).

    Raises:
        AccessError: unknown role, empty or taken username, or merchants given to an ops user.
        PasswordPolicyError: the password breaks the policy.
        UnknownMerchants: merchant ids the state DB does not know.
    """
    username = username.strip()
    merchants = sorted(set(merchant_ids))
    _check_new_user(username, password, role, merchants, enforce_policy)
    db.require_current(settings)
    password_hash = hash_password(password) if password else None
    with db.connect(settings) as connection:
        if _user_row(connection, username) is not None:
            raise AccessError(f"user {username!r} already exists")
        _check_merchants(connection, role, merchants)
        name = display_name or username
        connection.execute(
            users.insert().values(
                username=username,
                display_name=name,
                email=email,
                role=role,
                password_hash=password_hash,
                created_at=_now(),
            )
        )
        if merchants:
            connection.execute(
                user_merchants.insert(), [{"username": username, "merchant_id": m} for m in merchants]
            )
        _audit(connection, actor, "add", username, role=role, merchants=merchants, email=email, name=name)
    return User(username, name, role, None if role == "ops" else frozenset(merchants))


def remove_user(settings: Settings, username: str, *, actor: str | None = None) -> None:
    """Delete a user with their merchants and sessions (their audit rows and sign-in attempts stay).

    Raises:
        UnknownUser: no such user.
    """
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = _require_user(connection, username)
        merchants = _merchants_of(connection, username)
        connection.execute(user_merchants.delete().where(user_merchants.c.username == username))
        connection.execute(user_sessions.delete().where(user_sessions.c.username == username))
        connection.execute(users.delete().where(users.c.username == username))
        _audit(connection, actor, "remove", username, role=row.role, merchants=merchants)


def disable_user(settings: Settings, username: str, *, actor: str | None = None) -> bool:
    """Stop a user from signing in and end their sessions; ``False`` when they were disabled already.

    Raises:
        UnknownUser: no such user.
    """
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = _require_user(connection, username)
        revoked = _revoke_sessions(connection, username)
        if row.disabled_at is not None:
            return False
        connection.execute(users.update().where(users.c.username == username).values(disabled_at=_now()))
        _audit(connection, actor, "disable", username, sessions_revoked=revoked)
    return True


def enable_user(settings: Settings, username: str, *, actor: str | None = None) -> bool:
    """Let a disabled user sign in again; ``False`` when they were not disabled.

    Raises:
        UnknownUser: no such user.
    """
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = _require_user(connection, username)
        if row.disabled_at is None:
            return False
        connection.execute(users.update().where(users.c.username == username).values(disabled_at=None))
        _audit(connection, actor, "enable", username)
    return True


def reset_password(settings: Settings, username: str, password: str, *, actor: str | None = None) -> None:
    """Give a user a new password (policy applied) and end all their sessions.

    Raises:
        UnknownUser: no such user.
        PasswordPolicyError: the password breaks the policy.
    """
    check_password_policy(password, username)
    db.require_current(settings)
    password_hash = hash_password(password)
    with db.connect(settings) as connection:
        _require_user(connection, username)
        connection.execute(
            users.update().where(users.c.username == username).values(password_hash=password_hash)
        )
        revoked = _revoke_sessions(connection, username)
        _audit(connection, actor, "reset-password", username, sessions_revoked=revoked)


def set_merchants(
    settings: Settings, username: str, merchant_ids: Iterable[str], *, actor: str | None = None
) -> User:
    """Replace a merchant-success user's merchants; open sessions see the change at their next request.

    Raises:
        UnknownUser: no such user.
        UnknownMerchants: merchant ids the state DB does not know.
        AccessError: merchants given to an ops user.
    """
    merchants = sorted(set(merchant_ids))
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = _require_user(connection, username)
        _check_merchants(connection, row.role, merchants)
        before = _merchants_of(connection, username)
        connection.execute(user_merchants.delete().where(user_merchants.c.username == username))
        if merchants:
            connection.execute(
                user_merchants.insert(), [{"username": username, "merchant_id": m} for m in merchants]
            )
        _audit(connection, actor, "set-merchants", username, before=before, after=merchants)
        return _user_from_row(connection, row)


def get_user(settings: Settings, username: str) -> User | None:
    """The user called ``username``, or ``None`` (disabled users included: this is not a sign-in)."""
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = _user_row(connection, username)
        return _user_from_row(connection, row) if row else None


def user_for_email(settings: Settings, email: str) -> User | None:
    """The local user an OIDC identity (its e-mail) maps to, or ``None``: unknown or disabled, not let in."""
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = connection.execute(
            sa.select(users).where(
                sa.func.lower(users.c.email) == email.strip().lower(), users.c.disabled_at.is_(None)
            )
        ).first()
        return _user_from_row(connection, row) if row else None


# ------------------------------------------------------------------------------------------------
# sign-in and its throttle
# ------------------------------------------------------------------------------------------------


def backoff_seconds(failures: int) -> float:
    """How long to wait after the last of ``failures`` recent failures before the next attempt.

    Nothing below `THROTTLE_FREE_FAILURES` failures; then `THROTTLE_BASE_WAIT_S` (1 min), 2 min,
    4 min, … doubling with each further failure, at most `THROTTLE_MAX_WAIT_S` (15 min).
    """
    if failures < THROTTLE_FREE_FAILURES:
        return 0.0
    doublings = min(failures - THROTTLE_FREE_FAILURES, 30)
    return min(THROTTLE_BASE_WAIT_S * 2.0**doublings, THROTTLE_MAX_WAIT_S)


def _remaining_wait(connection: sa.Connection, who: sa.ColumnElement[bool], since: datetime) -> float:
    """Seconds left to wait given the failures matching ``who`` after ``since`` (0: may try now)."""
    failures, last = connection.execute(
        sa.select(sa.func.count(), sa.func.max(sign_in_attempts.c.at)).where(
            who, sign_in_attempts.c.success.is_(False), sign_in_attempts.c.at > since
        )
    ).one()
    if last is None:
        return 0.0
    return max(backoff_seconds(int(failures)) - (_now() - _utc(last)).total_seconds(), 0.0)


def _throttle_wait(connection: sa.Connection, username: str, client: str | None) -> float:
    """Seconds before ``username`` may try again from ``client``: the longer of the two back-offs.

    Per user name, only failures after the user's last successful sign-in count; per client address,
    every failure of the window counts (a success of one's own account must not reset the count of
    someone guessing other people's passwords from the same address).
    """
    window_start = _now() - THROTTLE_WINDOW
    last_success = connection.execute(
        sa.select(sa.func.max(sign_in_attempts.c.at)).where(
            sign_in_attempts.c.username == username, sign_in_attempts.c.success.is_(True)
        )
    ).scalar()
    since_user = max(window_start, _utc(last_success)) if last_success is not None else window_start
    wait = _remaining_wait(connection, sign_in_attempts.c.username == username, since_user)
    if client:
        wait = max(wait, _remaining_wait(connection, sign_in_attempts.c.client == client, window_start))
    return wait


def _throttled_message(wait_s: float) -> str:
    seconds = max(math.ceil(wait_s), 1)
    return f"Too many failed sign-ins. Try again in {seconds} second{'s' if seconds != 1 else ''}."


def _begin_attempt(settings: Settings, username: str, client: str | None) -> tuple[sa.Row | None, int]:
    """Check the throttle, then record the attempt as a failure before any password is checked.

    Recorded (and committed) first, so that attempts made in parallel count against each other; a
    successful sign-in turns its row into a success. Raises `SignInRefused` with the wait when
    throttled, recording nothing.
    """
    with db.connect(settings) as connection:
        wait = _throttle_wait(connection, username, client)
        if wait > 0:
            raise SignInRefused(_throttled_message(wait), wait)
        row = _user_row(connection, username)
        attempt_id = connection.execute(
            sign_in_attempts.insert()
            .values(at=_now(), username=username, client=client, success=False)
            .returning(sign_in_attempts.c.attempt_id)
        ).scalar_one()
        return row, int(attempt_id)


def _complete_sign_in(settings: Settings, row: sa.Row, password: str, attempt_id: int) -> User:
    """Mark the attempt a success, upgrade an old hash, and return the user as the DB has it now."""
    new_hash = hash_password(password) if needs_rehash(row.password_hash) else None
    with db.connect(settings) as connection:
        connection.execute(
            sign_in_attempts.update().where(sign_in_attempts.c.attempt_id == attempt_id).values(success=True)
        )
        if new_hash is not None:
            connection.execute(
                users.update()
                .where(users.c.username == row.username, users.c.password_hash == row.password_hash)
                .values(password_hash=new_hash)
            )
        return _user_from_row(connection, row)


def sign_in(settings: Settings, username: str, password: str, client: str | None) -> User:
    """The user whose name and password these are, signed in from ``client`` (an address, or ``None``).

    Every refusal of credentials is alike to the caller, in message and in time: an unknown user, a
    disabled one, an OIDC-only one (no password) and a wrong password each cost one argon2 verification
    (against a dummy hash when there is no usable one) and the same queries, and each counts as a
    failure. After `THROTTLE_FREE_FAILURES` failures in `THROTTLE_WINDOW` for the user name or the
    client, each further attempt waits `backoff_seconds` after the last failure; an attempt made while
    waiting is refused without looking at the password and is not counted.

    Raises:
        SignInRefused: ``message`` to show; ``retry_after_s`` > 0 when throttled.
    """
    db.require_current(settings)
    row, attempt_id = _begin_attempt(settings, username.strip()[:128], client[:128] if client else None)
    stored = row.password_hash if row is not None and row.disabled_at is None else None
    verified = verify_password(password, stored or _dummy_hash())
    if row is None or not stored or not verified:
        raise SignInRefused(WRONG_CREDENTIALS)
    return _complete_sign_in(settings, row, password, attempt_id)


def authenticate(settings: Settings, username: str, password: str, client: str | None = None) -> User | None:
    """`sign_in`, with ``None`` for any refusal (callers that need the message use `sign_in`)."""
    try:
        return sign_in(settings, username, password, client)
    except SignInRefused:
        return None


# ------------------------------------------------------------------------------------------------
# sessions
# ------------------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_session(settings: Settings, username: str, ttl: timedelta = SESSION_TTL) -> str:
    """Open a session for ``username`` (who just signed in) and return its token, for the browser only.

    Only the token's SHA-256 is stored. Sessions past their expiry are deleted on the way.

    Raises:
        UnknownUser: no such user.
        AccessError: the user is disabled.
    """
    db.require_current(settings)
    token, now = secrets.token_urlsafe(32), _now()
    with db.connect(settings) as connection:
        if _require_user(connection, username).disabled_at is not None:
            raise AccessError(f"user {username!r} is disabled")
        connection.execute(user_sessions.delete().where(user_sessions.c.expires_at < now))
        connection.execute(
            user_sessions.insert().values(
                token_hash=_token_hash(token),
                username=username,
                created_at=now,
                expires_at=now + ttl,
                last_seen_at=now,
                revoked_at=None,
            )
        )
    return token


def resolve_session(settings: Settings, token: str | None) -> User | None:
    """The user of a live session, read from the DB now (role and merchants as they are this moment).

    ``None`` when the token is unknown, expired or revoked, or its user is disabled or removed. Marks the
    session seen (at most once a `SESSION_SEEN_RESOLUTION`).
    """
    if not token:
        return None
    db.require_current(settings)
    now, token_hash = _now(), _token_hash(token)
    query = (
        sa.select(users, user_sessions.c.last_seen_at.label("session_seen_at"))
        .join_from(user_sessions, users, user_sessions.c.username == users.c.username)
        .where(
            user_sessions.c.token_hash == token_hash,
            user_sessions.c.revoked_at.is_(None),
            user_sessions.c.expires_at > now,
            users.c.disabled_at.is_(None),
        )
    )
    with db.connect(settings) as connection:
        row = connection.execute(query).first()
        if row is None:
            return None
        if now - _utc(row.session_seen_at) >= SESSION_SEEN_RESOLUTION:
            connection.execute(
                user_sessions.update()
                .where(user_sessions.c.token_hash == token_hash)
                .values(last_seen_at=now)
            )
        return _user_from_row(connection, row)


def end_session(settings: Settings, token: str | None) -> None:
    """Sign a session out (revoke it); unknown or ended tokens are ignored."""
    if not token:
        return
    db.require_current(settings)
    with db.connect(settings) as connection:
        connection.execute(
            user_sessions.update()
            .where(user_sessions.c.token_hash == _token_hash(token), user_sessions.c.revoked_at.is_(None))
            .values(revoked_at=_now())
        )


# ------------------------------------------------------------------------------------------------
# listings
# ------------------------------------------------------------------------------------------------

_USERS_SCHEMA = pl.Schema(
    {
        "username": pl.String(),
        "display_name": pl.String(),
        "email": pl.String(),
        "role": pl.String(),
        "merchants": pl.String(),
        "status": pl.String(),
        "last_sign_in": pl.Datetime("us", "UTC"),
    }
)
_AUDIT_SCHEMA = pl.Schema(
    {
        "at": pl.Datetime("us", "UTC"),
        "actor": pl.String(),
        "action": pl.String(),
        "username": pl.String(),
        "detail": pl.String(),
    }
)


def list_users(settings: Settings) -> pl.DataFrame:
    """Every user: role, merchants, status (active or disabled), last successful sign-in; no hashes."""
    db.require_current(settings)
    last_sign_in = (
        sa.select(sign_in_attempts.c.username, sa.func.max(sign_in_attempts.c.at).label("at"))
        .where(sign_in_attempts.c.success.is_(True))
        .group_by(sign_in_attempts.c.username)
    )
    with db.connect(settings) as connection:
        rows = connection.execute(sa.select(users).order_by(users.c.username)).all()
        assigned = connection.execute(sa.select(user_merchants)).all()
        signed_in = {name: _utc(at) for name, at in connection.execute(last_sign_in).all()}
    by_user: dict[str, list[str]] = {}
    for username, merchant_id in assigned:
        by_user.setdefault(username, []).append(merchant_id)
    return pl.DataFrame(
        [
            {
                "username": row.username,
                "display_name": row.display_name,
                "email": row.email,
                "role": row.role,
                "merchants": "(all)"
                if row.role == "ops"
                else ", ".join(sorted(by_user.get(row.username, []))),
                "status": _STATUS_DISABLED if row.disabled_at is not None else _STATUS_ACTIVE,
                "last_sign_in": signed_in.get(row.username),
            }
            for row in rows
        ],
        schema=_USERS_SCHEMA,
    )


def audit_log(settings: Settings, limit: int = 200) -> pl.DataFrame:
    """The latest ``limit`` account changes, newest first: at, actor, action, username, detail (JSON)."""
    db.require_current(settings)
    query = (
        sa.select(*(user_audit.c[name] for name in _AUDIT_SCHEMA.names()))
        .order_by(user_audit.c.at.desc(), user_audit.c.audit_id.desc())
        .limit(limit)
    )
    with db.connect(settings) as connection:
        rows = connection.execute(query).all()
    return pl.DataFrame(
        [(_utc(row.at), row.actor, row.action, row.username, row.detail) for row in rows],
        schema=_AUDIT_SCHEMA,
        orient="row",
    )


def largest_merchants(settings: Settings, n: int = 5) -> list[str]:
    """The ``n`` merchants with the most lifetime GMV in the current build (for the demo user)."""
    features = load_snapshot("merchant_features", settings)
    return (
        features.sort("lifetime_gmv", "merchant_id", descending=[True, False])
        .head(n)
        .select("merchant_id")
        .collect()
        .to_series()
        .to_list()
    )


def seed_demo_users(settings: Settings, *, actor: str | None = None) -> list[User]:
    """``ops``/``ops`` and ``merchant``/``merchant`` (the five largest merchants); existing ones are kept.

    These passwords break the password policy on purpose, so the policy is not enforced for them: they
    are the documented logins of the generated demo marketplace (the README, the browser tests), not
    accounts for real data. Never run this against a state DB that holds real users' data.
    """
    missing = {name for name in ("ops", "merchant") if get_user(settings, name) is None}
    merchant_ids = largest_merchants(settings) if "merchant" in missing else []  # fails before any change
    created = []
    if "ops" in missing:
        created.append(
            add_user(
                settings, "ops", "ops", "ops", display_name="Ops (demo)", actor=actor, enforce_policy=False
            )
        )
    if "merchant" in missing:
        created.append(
            add_user(
                settings,
                "merchant",
                "merchant",
                "merchant_success",
                display_name="Merchant success (demo)",
                merchant_ids=merchant_ids,
                actor=actor,
                enforce_policy=False,
            )
        )
    return created


def scoped_merchants(settings: Settings, user: User) -> pl.DataFrame:
    """The merchants dimension (state DB) restricted to ``user``'s merchants."""
    return scope_frame(db.read_table("merchants", settings).lazy(), user, "merchants").collect()
