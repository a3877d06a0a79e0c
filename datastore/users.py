"""Local users in the state DB: password hashes, accounts and their merchants.

Passwords are stored as salted scrypt hashes (``hashlib.scrypt``); OIDC logins (``st.login``) map the
identity provider's e-mail to a local user row through `user_for_email`, which gives the role. What a
user may see is decided by `core.access`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

import polars as pl
import sqlalchemy as sa

from core.access import ROLES, AccessError, User, scope_frame
from core.config import Settings
from datastore import db
from datastore.snapshots import load_snapshot
from datastore.tables import user_merchants, users

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash, self-describing: ``scrypt$n$r$p$salt_hex$hash_hex``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def _user_from_row(connection: sa.Connection, row: sa.Row) -> User:
    merchant_ids: frozenset[str] | None = None
    if row.role != "ops":
        merchant_ids = frozenset(
            connection.execute(
                sa.select(user_merchants.c.merchant_id).where(user_merchants.c.username == row.username)
            ).scalars()
        )
    return User(row.username, row.display_name, row.role, merchant_ids)


def add_user(
    settings: Settings,
    username: str,
    password: str | None,
    role: str,
    display_name: str | None = None,
    merchant_ids: Iterable[str] = (),
    email: str | None = None,
) -> User:
    """Create a user (``password`` may be ``None`` for OIDC-only accounts identified by ``email``).

    Raises:
        AccessError: unknown role, empty or taken username, or merchants given to an ops user.
    """
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    username = username.strip()
    if not username:
        raise AccessError("the username is empty")
    merchants = sorted(set(merchant_ids))
    if role == "ops" and merchants:
        raise AccessError("ops users see every merchant; do not assign merchants to them")
    db.require_current(settings)
    with db.connect(settings) as connection:
        exists = connection.execute(sa.select(users.c.username).where(users.c.username == username)).first()
        if exists:
            raise AccessError(f"user {username!r} already exists")
        connection.execute(
            users.insert(),
            [
                {
                    "username": username,
                    "display_name": display_name or username,
                    "email": email,
                    "role": role,
                    "password_hash": hash_password(password) if password else None,
                    "created_at": datetime.now(UTC),
                }
            ],
        )
        if merchants:
            connection.execute(
                user_merchants.insert(), [{"username": username, "merchant_id": m} for m in merchants]
            )
    return User(username, display_name or username, role, None if role == "ops" else frozenset(merchants))


def get_user(settings: Settings, username: str) -> User | None:
    """The user called ``username``, or ``None``."""
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = connection.execute(sa.select(users).where(users.c.username == username)).first()
        return _user_from_row(connection, row) if row else None


def user_for_email(settings: Settings, email: str) -> User | None:
    """The local user an OIDC identity (its e-mail) maps to, or ``None`` (not allowed in)."""
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = connection.execute(
            sa.select(users).where(sa.func.lower(users.c.email) == email.strip().lower())
        ).first()
        return _user_from_row(connection, row) if row else None


def authenticate(settings: Settings, username: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else ``None`` (same answer for unknown users)."""
    db.require_current(settings)
    with db.connect(settings) as connection:
        row = connection.execute(sa.select(users).where(users.c.username == username.strip())).first()
        if row is None:
            verify_password(password, hash_password("timing-equaliser"))
            return None
        if not verify_password(password, row.password_hash):
            return None
        return _user_from_row(connection, row)


def list_users(settings: Settings) -> pl.DataFrame:
    """Every user with role and assigned merchants (no hashes)."""
    db.require_current(settings)
    with db.connect(settings) as connection:
        rows = connection.execute(sa.select(users).order_by(users.c.username)).all()
        assigned = connection.execute(sa.select(user_merchants)).all()
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
                "merchants": ", ".join(sorted(by_user.get(row.username, []))) or "(all)"
                if row.role == "ops"
                else ", ".join(sorted(by_user.get(row.username, []))),
            }
            for row in rows
        ],
        schema={
            "username": pl.String,
            "display_name": pl.String,
            "email": pl.String,
            "role": pl.String,
            "merchants": pl.String,
        },
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


def seed_demo_users(settings: Settings) -> list[User]:
    """``ops``/``ops`` and ``merchant``/``merchant`` (the five largest merchants); existing ones are kept."""
    created = []
    if get_user(settings, "ops") is None:
        created.append(add_user(settings, "ops", "ops", "ops", display_name="Ops (demo)"))
    if get_user(settings, "merchant") is None:
        created.append(
            add_user(
                settings,
                "merchant",
                "merchant",
                "merchant_success",
                display_name="Merchant success (demo)",
                merchant_ids=largest_merchants(settings),
            )
        )
    return created


def scoped_merchants(settings: Settings, user: User) -> pl.DataFrame:
    """The merchants dimension (state DB) restricted to ``user``'s merchants."""
    return scope_frame(db.read_table("merchants", settings).lazy(), user, "merchants").collect()
