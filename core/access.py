"""Who may see what: the users' roles and the row-level scope every data read applies.

Two roles:

- ``ops`` sees everything;
- ``merchant_success`` sees only the merchants assigned to them.

Scoping is a core notion, applied below the app and the reports: `scope_frame` filters every
merchant-keyed frame to the user's merchants and refuses (``PermissionError``) frames that are not keyed
by merchant (platform-wide KPIs, creator tables, model diagnostics). A merchant id that comes from a URL
goes through `can_see_merchant`; one outside the scope is "not found", exactly like an id that does not
exist. Users are stored in the state DB (`datastore.users`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

Role = Literal["ops", "merchant_success"]
ROLES: tuple[str, ...] = ("ops", "merchant_success")


class AccessError(ValueError):
    """A user-management request that cannot be honoured (unknown role, duplicate user, …)."""


@dataclass(frozen=True)
class User:
    """A signed-in user. ``merchant_ids`` is ``None`` for "all merchants" (ops)."""

    username: str
    display_name: str
    role: str
    merchant_ids: frozenset[str] | None

    @property
    def is_ops(self) -> bool:
        return self.role == "ops"


def can_see_merchant(user: User, merchant_id: str) -> bool:
    """Whether ``user`` may see merchant ``merchant_id``."""
    return user.merchant_ids is None or merchant_id in user.merchant_ids


def scope_frame(frame: pl.LazyFrame, user: User, name: str = "this table") -> pl.LazyFrame:
    """``frame`` restricted to the rows ``user`` may see (see the module docstring).

    Rows are kept by ``merchant_id`` when the frame has one, else by ``entity_kind``/``entity_id``
    (merchant rows of the user's merchants only).

    Raises:
        PermissionError: the frame has no merchant key and the user is not ops.
    """
    if user.merchant_ids is None:
        return frame
    allowed = sorted(user.merchant_ids)
    columns = frame.collect_schema().names()
    if "merchant_id" in columns:
        return frame.filter(pl.col("merchant_id").is_in(allowed))
    if "entity_kind" in columns and "entity_id" in columns:
        return frame.filter((pl.col("entity_kind") == "merchant") & pl.col("entity_id").is_in(allowed))
    raise PermissionError(f"{user.username} ({user.role}) may not see {name}: it is not scoped by merchant")
