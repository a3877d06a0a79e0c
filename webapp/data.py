"""The app's data layer: every read a page makes, scoped to the signed-in user and cached.

This is the only module that uses ``st.cache_data`` / ``st.cache_resource``. Every reader takes the
`access.User` and goes through `snapshots.scoped_snapshot` (or filters a state-DB read
by the user's merchants), so a page can never reach rows outside the user's scope, whatever the URL
says. Cache keys include the Liftboard home and the build id, so a new build is picked up at once.
Results are small, aggregated frames (the daily facts are scanned lazily and reduced before they are
collected); caches are bounded with ``ttl`` and ``max_entries``.

It computes nothing itself: it hands scoped frames to the library function that owns each result
(`analytics.profiles`, `analytics.kpis.range_overview`, `strategies.outcomes.realized_uplift`,
`datastore.status`, `reports.render_xlsx.sheet_name`) and caches what comes back, so a page, a report
and the CLI show the same figure for the same thing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import polars as pl
import streamlit as st

from analytics import kpis, profiles
from analytics import today as today_kpis
from analytics.profiles import CreatorProfile, MerchantProfile
from core import access, exports, metrics
from core.access import User
from core.config import Settings
from core.snapshots import CATALOG
from datastore import db, lake, snapshots, users
from datastore import status as data_status
from datastore.snapshots import SnapshotNotFound, latest_manifest
from liftboard import jobs, watch
from matching import interests, relations
from reports.render_xlsx import sheet_name
from strategies.outcomes import followed_up_actions, realized_uplift

if TYPE_CHECKING:
    from strategies.pilots import PilotPlans

TTL = 600
MATCHING_SNAPSHOTS: tuple[str, ...] = tuple(s.name for s in CATALOG if s.stage == "matching")


def settings() -> Settings:
    """The installation the app serves (environment: ``LIFTBOARD_HOME``, ``LIFTBOARD_DATABASE_URL``)."""
    return Settings.from_env()


def manifest() -> dict[str, Any] | None:
    """The current build's manifest, or ``None`` before the first build."""
    return latest_manifest(settings())


def _build_key() -> tuple[str, str]:
    s = settings()
    m = latest_manifest(s)
    if m is None:
        raise SnapshotNotFound(f"no analytics build in {s.snapshots}; run `liftboard build` first")
    return str(s.home), m["build_id"]


def has_snapshot(name: str) -> bool:
    """Whether the current build published ``name``."""
    m = manifest()
    return m is not None and name in m.get("snapshots", [])


def has_matching() -> bool:
    """Whether any matching table is published (the Products & matching page shows only then)."""
    return any(has_snapshot(name) for name in MATCHING_SNAPSHOTS)


def as_of() -> date:
    """The build's as-of date: results use data strictly before it."""
    m = manifest()
    if m is None:
        raise SnapshotNotFound("no analytics build yet; run `liftboard build` first")
    return date.fromisoformat(m["as_of"])


def last_day() -> date:
    """The last day of data in the current build (the day before as-of)."""
    return as_of() - timedelta(days=1)


# ------------------------------------------------------------------------------------------------
# Date presets
# ------------------------------------------------------------------------------------------------

PRESETS: dict[str, str] = {
    "7d": "Last 7 days",
    "28d": "Last 28 days",
    "91d": "Last 91 days",
    "last_week": "Last full week",
    "custom": "Custom",
}


def preset_range(preset: str, last: date, custom: tuple[date, date] | None = None) -> tuple[date, date]:
    """The inclusive date range of ``preset`` relative to ``last`` (the data's last day)."""
    if preset in ("7d", "28d", "91d"):
        days = int(preset[:-1])
        return last - timedelta(days=days - 1), last
    if preset == "last_week":
        # the last Monday–Sunday week that ends on or before ``last``
        end = last - timedelta(days=(last.weekday() + 1) % 7)
        return end - timedelta(days=6), end
    if preset == "custom" and custom is not None:
        start, end = custom
        return (start, end) if start <= end else (end, start)
    return last - timedelta(days=27), last


# ------------------------------------------------------------------------------------------------
# Snapshots
# ------------------------------------------------------------------------------------------------


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _snapshot(name: str, user: User, _key: tuple[str, str]) -> pl.DataFrame:
    return snapshots.scoped_snapshot(name, settings(), user).collect()


def snapshot(name: str, user: User) -> pl.DataFrame:
    """A whole (small) snapshot, scoped to ``user`` (PermissionError outside their role)."""
    return _snapshot(name, user, _build_key())


def scan(name: str, user: User) -> pl.LazyFrame:
    """A lazy, scoped scan of a (large) snapshot; callers reduce it before collecting."""
    return snapshots.scoped_snapshot(name, settings(), user)


# ------------------------------------------------------------------------------------------------
# Matching tables
# ------------------------------------------------------------------------------------------------

# How each matching table reads best (columns, descending): by its subject, then its own rank; pairs
# strongest first, by `matching.relations.pair_strength`.
MATCHING_ORDER: dict[str, tuple[list[str], bool]] = {
    "similar_products": (["product_id", "rank"], False),
    "product_pairs": (["pair_strength", "pair_count"], True),
    "creator_product_recs": (["creator_id", "rank"], False),
    "merchant_creator_recs": (["merchant_id", "rank"], False),
    "creator_interests": (["creator_id", "dimension", "half_life_days", "rank"], False),
}
_PAIR_IDS = ("product_a", "product_b")  # ids besides every *_id column
_TEXT_COLUMNS = ("title", "similar_title", "handle", "best_product_title", "title_a", "title_b")


def _readable(name: str, frame: pl.LazyFrame, key: tuple[str, str]) -> pl.LazyFrame:
    """``frame`` with the names its ids lack: the creator's handle, the pair's product titles."""
    columns = frame.collect_schema().names()
    if "creator_id" in columns and "handle" not in columns:
        handles = _dimension("creators", key).lazy().select("creator_id", "handle")
        frame = frame.join(handles, on="creator_id", how="left")
        ordered = [c for c in columns if c != "creator_id"]
        frame = frame.select("creator_id", "handle", *ordered) if columns[0] == "creator_id" else frame
    if name == "product_pairs":
        titles = _dimension("products", key).lazy().select("product_id", "title")
        for side in ("a", "b"):
            frame = frame.join(
                titles.rename({"product_id": f"product_{side}", "title": f"title_{side}"}),
                on=f"product_{side}",
                how="left",
            )
        rest = [c for c in columns if c not in ("relation", "product_a", "product_b")]
        frame = frame.with_columns(relations.pair_strength()).select(
            "relation", "product_a", "title_a", "product_b", "title_b", "pair_strength", *rest
        )
    return frame


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _matching_table(name: str, user: User, _key: tuple[str, str]) -> pl.DataFrame:
    frame = _readable(name, snapshots.scoped_snapshot(name, settings(), user), _key)
    columns, descending = MATCHING_ORDER[name]
    return frame.sort(columns, descending=descending, nulls_last=True).collect()


def matching_table(user: User, name: str, search: str = "") -> pl.DataFrame:
    """A matching table in reading order (sorted once per build), with handles and product titles beside
    the ids. With ``search``: the rows where an id equals it or a title or handle contains it
    (case-insensitive; a leading ``@`` of a handle is ignored), the searched entity's own rows first."""
    frame = _matching_table(name, user, _build_key())
    search = search.strip()
    if not search:
        return frame
    ids = [c for c in frame.columns if c.endswith("_id") or c in _PAIR_IDS]
    texts = [c for c in frame.columns if c in _TEXT_COLUMNS]
    needle = search.removeprefix("@").lower()
    conditions = [pl.col(c).cast(pl.String) == search for c in ids] + [
        pl.col(c).str.to_lowercase().str.contains(needle, literal=True) for c in texts
    ]
    frame = frame.filter(pl.any_horizontal(conditions))
    subject = MATCHING_ORDER[name][0][0]
    if subject.endswith("_id"):  # stable: the reading order stays within each part
        own = pl.col(subject) == search
        if "handle" in frame.columns and subject == "creator_id":
            own = own | (pl.col("handle").str.to_lowercase() == needle)
        frame = frame.sort(~own, maintain_order=True)
    return frame


# ------------------------------------------------------------------------------------------------
# Overview
# ------------------------------------------------------------------------------------------------


@st.cache_data(ttl=TTL, max_entries=32, show_spinner=False)
def _dimension_values(user: User, _key: tuple[str, str]) -> dict[str, list[str]]:
    features = snapshots.scoped_snapshot("creator_segments", settings(), user)
    frame = features.select("region", "primary_category", "tier").unique().collect()
    tiers = [t for t in ("nano", "micro", "mid", "macro", "mega") if t in set(frame["tier"].to_list())]
    return {
        "region": sorted(frame["region"].drop_nulls().unique().to_list()),
        "category": sorted(frame["primary_category"].drop_nulls().unique().to_list()),
        "tier": tiers,
    }


def dimension_values(user: User) -> dict[str, list[str]]:
    """The regions, categories and tiers present (for the sidebar filters)."""
    if not user.is_ops:
        return {"region": [], "category": [], "tier": []}
    return _dimension_values(user, _build_key())


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _overview(
    user: User,
    start: date,
    end: date,
    regions: tuple[str, ...],
    categories: tuple[str, ...],
    tiers: tuple[str, ...],
    _key: tuple[str, str],
) -> dict[str, pl.DataFrame]:
    return kpis.range_overview(
        snapshots.scoped_snapshot("creator_daily", settings(), user),
        snapshots.scoped_snapshot("merchant_daily", settings(), user),
        start,
        end,
        regions=regions,
        categories=categories,
        tiers=tiers,
    )


def overview(
    user: User,
    start: date,
    end: date,
    regions: Sequence[str],
    categories: Sequence[str],
    tiers: Sequence[str],
) -> dict[str, pl.DataFrame]:
    """KPI cards (vs the previous period), per-day metrics of both periods, and breakdowns."""
    return _overview(user, start, end, tuple(regions), tuple(categories), tuple(tiers), _build_key())


# ------------------------------------------------------------------------------------------------
# Today so far (from the lake's last commit, not the build)
# ------------------------------------------------------------------------------------------------

LIVE_TTL = 60
"""How long today's figures for one lake commit are kept: a new commit changes the key at once."""


@st.cache_data(ttl=LIVE_TTL, max_entries=64, show_spinner=False)
def _today(
    home: str,
    run_id: str | None,
    creator_id: str | None,
    merchant_ids: tuple[str, ...] | None,
) -> today_kpis.Today:
    return today_kpis.lake_today(settings(), creator_id=creator_id, merchant_ids=merchant_ids, run_id=run_id)


def today(user: User, *, creator_id: str | None = None, merchant_id: str | None = None) -> today_kpis.Today:
    """Today's figures so far against the usual for the same hours, read from the lake's last committed
    run (a stream micro-batch or an ingest): the marketplace's, a creator's or a merchant's; a
    merchant-success user's figures cover their merchants only."""
    if merchant_id is not None and not access.can_see_merchant(user, merchant_id):
        raise PermissionError(f"merchant {merchant_id!r} is outside this user's scope")
    if creator_id is not None and not user.is_ops:
        raise PermissionError("creator figures are for operations users")
    merchants: tuple[str, ...] | None = None
    if merchant_id is not None:
        merchants = (merchant_id,)
    elif user.merchant_ids is not None:
        merchants = tuple(sorted(user.merchant_ids))
    s = settings()
    run_id = lake.lake_version(s).run_id  # one small state-DB read: the key moves with every commit
    return _today(str(s.home), run_id, creator_id, merchants)


@st.cache_data(ttl=LIVE_TTL, max_entries=32, show_spinner=False)
def _live_interests(home: str, stamp: float, creator_id: str) -> tuple[pl.DataFrame, datetime] | None:
    loaded = watch.load_interest_state(settings())
    if loaded is None:
        return None
    state, _ = loaded
    return interests.profile_of(state, creator_id), state.as_of


def live_interests(user: User, creator_id: str) -> tuple[pl.DataFrame, datetime] | None:
    """A creator's interests from the continuously folded interest state (`liftboard stream`, `liftboard
    ingest --watch`, each upload) and the time it is as of; None when no state was kept (then the
    build's ``creator_interests`` is what there is)."""
    if not user.is_ops:
        return None
    s = settings()
    meta = watch.state_dir(s) / "interest_state.json"
    if not meta.is_file():
        return None
    return _live_interests(str(s.home), meta.stat().st_mtime, creator_id)


# ------------------------------------------------------------------------------------------------
# Creators
# ------------------------------------------------------------------------------------------------


@st.cache_resource(ttl=TTL, max_entries=4, show_spinner=False)
def _dimension(name: str, _key: tuple[str, str]) -> pl.DataFrame:
    return db.read_table(name, settings())


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _creator_directory(user: User, _key: tuple[str, str]) -> pl.DataFrame:
    s = settings()
    return profiles.creator_directory(
        snapshots.scoped_snapshot("creator_segments", s, user),
        snapshots.scoped_snapshot("creator_features", s, user),
        _dimension("creators", _key).lazy(),
    )


def creator_directory(
    user: User,
    *,
    search: str = "",
    tiers: Sequence[str] = (),
    lifecycles: Sequence[str] = (),
    categories: Sequence[str] = (),
    regions: Sequence[str] = (),
    gmv_range: tuple[float, float] | None = None,
) -> pl.DataFrame:
    """Every creator with segment, lifecycle and 28-day performance, filtered."""
    if not user.is_ops:
        raise PermissionError(f"{user.username} may not see the creator directory")
    frame = _creator_directory(user, _build_key())
    if search.strip():
        needle = search.strip().lower()
        frame = frame.filter(
            pl.col("handle").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("creator_id").str.to_lowercase().str.contains(needle, literal=True)
        )
    for column, allowed in (
        ("tier", tiers),
        ("lifecycle_stage", lifecycles),
        ("primary_category", categories),
        ("region", regions),
    ):
        if allowed:
            frame = frame.filter(pl.col(column).is_in(list(allowed)))
    if gmv_range is not None:
        frame = frame.filter(pl.col("gmv_28d").is_between(gmv_range[0], gmv_range[1]))
    return frame


def _published(name: str, user: User) -> pl.LazyFrame | None:
    """A scoped scan of an optional snapshot (the matching tables), ``None`` when not published."""
    return snapshots.scoped_snapshot(name, settings(), user) if has_snapshot(name) else None


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _creator_profile(
    user: User, creator_id: str, start: date, end: date, _key: tuple[str, str]
) -> CreatorProfile | None:
    s = settings()
    return profiles.creator_profile(
        creator_id,
        start,
        end,
        segments=snapshots.scoped_snapshot("creator_segments", s, user),
        features=snapshots.scoped_snapshot("creator_features", s, user),
        daily=snapshots.scoped_snapshot("creator_daily", s, user),
        recommendations=snapshots.scoped_snapshot("recommendations", s, user),
        drivers=snapshots.scoped_snapshot("shap_drivers", s, user),
        creators=_dimension("creators", _key).lazy(),
        interests=_published("creator_interests", user),
        product_recs=_published("creator_product_recs", user),
    )


def creator_profile(user: User, creator_id: str, start: date, end: date) -> CreatorProfile | None:
    """Everything the creator profile shows; ``None`` when the creator is unknown (or out of scope)."""
    if not user.is_ops:
        return None
    return _creator_profile(user, creator_id, start, end, _build_key())


# ------------------------------------------------------------------------------------------------
# Merchants
# ------------------------------------------------------------------------------------------------


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _merchant_directory(user: User, _key: tuple[str, str]) -> pl.DataFrame:
    s = settings()
    return profiles.merchant_directory(
        snapshots.scoped_snapshot("merchant_segments", s, user),
        snapshots.scoped_snapshot("merchant_features", s, user),
        access.scope_frame(_dimension("merchants", _key).lazy(), user),
    )


def merchant_directory(
    user: User,
    *,
    search: str = "",
    categories: Sequence[str] = (),
    regions: Sequence[str] = (),
    lifecycles: Sequence[str] = (),
) -> pl.DataFrame:
    """The merchants ``user`` may see, with 28-day performance, filtered."""
    frame = _merchant_directory(user, _build_key())
    if search.strip():
        needle = search.strip().lower()
        frame = frame.filter(
            pl.col("name").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("merchant_id").str.to_lowercase().str.contains(needle, literal=True)
        )
    for column, allowed in (("category", categories), ("region", regions), ("lifecycle_stage", lifecycles)):
        if allowed:
            frame = frame.filter(pl.col(column).is_in(list(allowed)))
    return frame


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _merchant_profile(
    user: User, merchant_id: str, start: date, end: date, _key: tuple[str, str]
) -> MerchantProfile | None:
    s = settings()
    return profiles.merchant_profile(
        merchant_id,
        start,
        end,
        features=snapshots.scoped_snapshot("merchant_features", s, user),
        segments=snapshots.scoped_snapshot("merchant_segments", s, user),
        daily=snapshots.scoped_snapshot("merchant_daily", s, user),
        product_daily=snapshots.scoped_snapshot("product_daily", s, user),
        recommendations=snapshots.scoped_snapshot("recommendations", s, user),
        drivers=snapshots.scoped_snapshot("shap_drivers", s, user),
        merchants=access.scope_frame(_dimension("merchants", _key).lazy(), user),
        products=access.scope_frame(_dimension("products", _key).lazy(), user),
        creators=_dimension("creators", _key).lazy(),
        recruits=_published("merchant_creator_recs", user),
    )


def merchant_profile(user: User, merchant_id: str, start: date, end: date) -> MerchantProfile | None:
    """Everything the merchant page shows; ``None`` when unknown or outside ``user``'s scope."""
    if not access.can_see_merchant(user, merchant_id):
        return None
    return _merchant_profile(user, merchant_id, start, end, _build_key())


# ------------------------------------------------------------------------------------------------
# Strategy board
# ------------------------------------------------------------------------------------------------


def recommendations(user: User) -> pl.DataFrame:
    """The current run's recommendations with entity names and workflow status, scoped."""
    recs = snapshot("recommendations", user)
    acts = actions(user)
    names = pl.concat(
        [
            _dimension("creators", _build_key()).select(
                pl.lit("creator").alias("entity_kind"),
                pl.col("creator_id").alias("entity_id"),
                pl.col("handle").alias("entity_name"),
            ),
            _dimension("merchants", _build_key()).select(
                pl.lit("merchant").alias("entity_kind"),
                pl.col("merchant_id").alias("entity_id"),
                pl.col("name").alias("entity_name"),
            ),
        ]
    )
    status = (
        acts.select(
            "run_id",
            "entity_kind",
            "entity_id",
            "strategy",
            "status",
            "owner",
            "note",
            "started_on",
            "action_id",
        )
        if acts.height
        else pl.DataFrame(
            schema={
                "run_id": pl.String,
                "entity_kind": pl.String,
                "entity_id": pl.String,
                "strategy": pl.String,
                "status": pl.String,
                "owner": pl.String,
                "note": pl.String,
                "started_on": pl.Date,
                "action_id": pl.String,
            }
        )
    )
    return (
        recs.join(names, on=["entity_kind", "entity_id"], how="left")
        .join(status, on=["run_id", "entity_kind", "entity_id", "strategy"], how="left")
        .with_columns(pl.col("status").fill_null("proposed"))
    )


ReferenceGmv = tuple[str, float | None]
"""What an expected uplift is set against: its name in words and its 28-day GMV (``None``: unknown)."""


def reference_gmv(user: User, recs: pl.DataFrame) -> ReferenceGmv:
    """The platform's GMV of the build's last 28 days (ops), or the 28-day GMV of the user's merchants in
    ``recs`` (merchant success, who do not see the platform's)."""
    if user.is_ops:
        end = last_day()
        cards = overview(user, end - timedelta(days=27), end, (), (), ())["cards"]
        gmv = cards.filter(pl.col("metric") == "gmv")["value"]
        return "the platform's GMV", float(gmv.item() or 0.0) if gmv.len() else None
    merchants = recs.filter(pl.col("entity_kind") == "merchant").unique("entity_id")
    return "your merchants' GMV", float(merchants["baseline_gmv_28d"].sum() or 0.0)


@dataclass(frozen=True)
class UpliftTotals:
    """The expected 28-day uplift of some recommendations: total, the sum of their 80% intervals, and
    the part that rests on strategies whose pilots establish the effect."""

    expected: float
    low: float
    high: float
    established: float


def uplift_totals(rows: pl.DataFrame) -> UpliftTotals:
    """`UpliftTotals` of ``rows`` (recommendations); a build from before the evidence column has none
    established."""
    established = (
        pl.col("expected_uplift").filter(pl.col("established").fill_null(False)).sum()
        if "established" in rows.columns
        else pl.lit(0.0)
    )
    sums = rows.select(
        expected=pl.col("expected_uplift").sum(),
        low=pl.col("uplift_low").sum(),
        high=pl.col("uplift_high").sum(),
        established=established,
    ).row(0, named=True)
    return UpliftTotals(**{name: float(value or 0.0) for name, value in sums.items()})


def actions(user: User) -> pl.DataFrame:
    """Every workflow action the user may see (not cached: it changes with every click)."""
    from strategies import store

    frame = store.read_actions(settings())
    if frame.height == 0:
        return frame
    frame = frame.with_columns(pl.col("started_on").cast(pl.Date, strict=False))
    return access.scope_frame(frame.lazy(), user, "actions").collect()


def history(user: User, action_id: str) -> pl.DataFrame:
    """The change history of one action the user may see."""
    from strategies import store

    visible = actions(user)
    if visible.height == 0 or action_id not in set(visible["action_id"].to_list()):
        return pl.DataFrame()
    return store.read_history(settings(), action_id)


def set_status(
    user: User,
    *,
    run_id: str,
    entity_kind: str,
    entity_id: str,
    strategy: str,
    status: str,
    owner: str | None = None,
    note: str | None = None,
) -> str:
    """Move a recommendation through the workflow as ``user`` (scope-checked)."""
    from strategies import store

    if entity_kind == "merchant" and not access.can_see_merchant(user, entity_id):
        raise PermissionError("not found")
    if entity_kind == "creator" and not user.is_ops:
        raise PermissionError("not found")
    return store.set_status(
        settings(),
        run_id=run_id,
        entity_kind=entity_kind,
        entity_id=entity_id,
        strategy=strategy,
        status=status,
        user=user.username,
        owner=owner,
        note=note,
    )


def allocation(
    user: User, candidates: pl.DataFrame, budget: float, capacity: Mapping[str, int]
) -> pl.DataFrame:
    """Run `strategies.allocation.allocate` on ``candidates`` under a budget and team capacities."""
    from strategies.allocation import AllocationConfig, allocate

    return allocate(candidates, AllocationConfig(budget=budget, team_capacity=dict(capacity)))


OUTCOME_COLUMNS: tuple[str, ...] = (
    "action_id",
    "entity_kind",
    "entity_id",
    "strategy",
    "status",
    "owner",
    "started_on",
    "days_observed",
    "predicted_uplift",
    "uplift_low",
    "uplift_high",
    "predicted_so_far",
    "realized_uplift",
    "gmv_before",
    "gmv_since",
    "complete",
    "state",
    "note",
)


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _outcomes(
    user: User, rows: tuple[tuple[Any, ...], ...], columns: tuple[str, ...], _key: tuple[str, str]
) -> pl.DataFrame:
    started = pl.DataFrame(list(rows), schema=list(columns), orient="row", infer_schema_length=None)
    s = settings()
    return realized_uplift(
        started,
        snapshots.scoped_snapshot("creator_daily", s, user) if user.is_ops else None,
        snapshots.scoped_snapshot("merchant_daily", s, user),
        as_of(),
    ).select(OUTCOME_COLUMNS)


def accepted_outcomes(user: User) -> pl.DataFrame:
    """Accepted, in-progress and done actions with realized against predicted uplift so far.

    `strategies.outcomes.realized_uplift` is the definition (the weekly review's follow-up uses it
    too): over the ``days_observed`` days since ``started_on`` (at most 28, up to the build's last
    day), the entity's GMV minus its GMV in as many days before; ``predicted_so_far`` is the 28-day
    prediction pro rata; ``state`` says whether the window is complete.
    """
    started = followed_up_actions(actions(user))
    if started.height == 0:
        return pl.DataFrame()
    columns = tuple(c for c in OUTCOME_COLUMNS if c in started.columns)
    rows = tuple(started.select(columns).iter_rows())
    return _outcomes(user, rows, columns, _build_key())


@st.cache_data(ttl=TTL, max_entries=8, show_spinner=False)
def _pilot_plans(user: User, _key: tuple[str, str]) -> PilotPlans:
    from strategies.pilots import published_pilot_plans  # the models' libraries load only when asked

    return published_pilot_plans(settings(), user=user)


def pilot_plans(user: User) -> PilotPlans | None:
    """Each strategy's precision and the pilots proposed for the unproven ones at the default minimum
    detectable effect (`strategies.pilots.published_pilot_plans`, as ``liftboard pilot`` shows them);
    ``None`` when the build has no pilot evidence. Operations staff only: pilots span creators too."""
    if not user.is_ops:
        raise PermissionError(f"{user.username} may not plan pilots")
    if not has_snapshot("pilot_evidence"):
        return None
    return _pilot_plans(user, _build_key())


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------


def evaluation_note() -> str:
    """The normalization note of `strategies.evaluation` (its module docstring)."""
    from strategies import evaluation

    return (evaluation.__doc__ or "").strip()


# ------------------------------------------------------------------------------------------------
# Data (ops only)
# ------------------------------------------------------------------------------------------------


def _require_ops(user: User) -> None:
    if not user.is_ops:
        raise PermissionError(f"{user.username} may not see the data administration")


def ingestion_runs(user: User, limit: int = 200) -> pl.DataFrame:
    """The newest ingestion runs with their row totals (`datastore.status.ingestion_runs`)."""
    _require_ops(user)
    return data_status.ingestion_runs(settings(), limit)


def ingestion_loads(user: User, run_id: str) -> pl.DataFrame:
    """The per-file loads of one ingestion run."""
    _require_ops(user)
    return data_status.ingestion_loads(settings(), run_id)


def build_lake_versions(user: User) -> tuple[str | None, pl.DataFrame]:
    """The ingestion run whose lake versions the current build read, and the Delta version per table
    (from the build's manifest; no run and no rows before the first build or for an older build)."""
    _require_ops(user)
    lake = (manifest() or {}).get("lake") or {}
    versions = lake.get("versions") or {}
    frame = pl.DataFrame(
        {"table": list(versions), "version": list(versions.values())},
        schema={"table": pl.String, "version": pl.Int64},
    )
    return lake.get("run_id"), frame


def freshness(user: User) -> pl.DataFrame:
    """Per canonical table: storage, rows, first and last day, files and last write
    (`datastore.status.table_freshness`, as ``liftboard status`` shows it)."""
    _require_ops(user)
    return data_status.table_freshness(settings())


def quarantine_files(user: User) -> pl.DataFrame:
    """Every quarantine Parquet file with its row count."""
    _require_ops(user)
    return data_status.quarantine_files(settings())


def quarantine_rows(user: User, relative: str, limit: int = 5_000) -> pl.DataFrame:
    """The rows of one quarantine file (path relative to the quarantine folder, no escaping it)."""
    _require_ops(user)
    root = settings().quarantine.resolve()
    path = (root / relative).resolve()
    if root not in path.parents or path.suffix != ".parquet" or not path.is_file():
        raise FileNotFoundError(relative)
    frame = pl.read_parquet(path, n_rows=limit)
    first = [c for c in ("_line", "_row", "_column", "_reason", "_raw") if c in frame.columns]
    return frame.select(*first, *(c for c in frame.columns if c not in first))


def accounts(user: User) -> pl.DataFrame:
    """Every app user with role, merchants, status and last sign-in (no hashes; `datastore.users`)."""
    _require_ops(user)
    return users.list_users(settings())


def account_audit(user: User, limit: int = 500) -> pl.DataFrame:
    """The newest changes to the accounts: who, when, what (`datastore.users.audit_log`)."""
    _require_ops(user)
    return users.audit_log(settings(), limit)


UPLOAD_CHUNK = 8 << 20
"""Bytes copied from an upload to disk at a time (the server never makes a second whole copy of it)."""


def ingest_upload(user: User, name: str, content: bytes, table: str | None) -> Any:
    """Ingest ``content`` (a small file: scripts and tests) here, through `datastore.ingest.ingest_files`
    (the CLI's path), then remove the copy; the Data page's uploads run as jobs instead (`start_upload`)."""
    _require_ops(user)
    from datastore.ingest import ingest_files

    s = settings()
    original = Path(Path(name).name)  # no directories from the browser
    # keep the table's name first (ingest infers the table from it, e.g. orders-001.csv)
    target = s.incoming / "uploads" / f"{original.stem}-{datetime.now():%Y%m%dT%H%M%S}{original.suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    try:
        return ingest_files([target], s, table=table, source=f"upload:{original}", user=user.username)
    finally:
        target.unlink(missing_ok=True)  # quarantined rows are kept in the quarantine


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(UPLOAD_CHUNK):
        yield chunk


def start_upload(user: User, upload: BinaryIO, name: str, table: str | None) -> jobs.Job:
    """Copy an uploaded file to disk in chunks and ingest it in a job of its own process
    (`liftboard.jobs.submit_ingest`: the CLI's ingest path); then release the server's copy of it.

    Pass the `st.file_uploader` value as the widget state holds it (``st.session_state[key]`` in the
    form's callback), not the one the widget returns to the script: Streamlit returns a deep copy, a
    second whole copy of the file in the server's memory.
    """
    _require_ops(user)
    try:
        return jobs.submit_ingest(settings(), user.username, name, _chunks(upload), table)
    finally:
        _release_upload(upload)


def _release_upload(upload: BinaryIO) -> None:
    """Drop the server's in-memory copies of an uploaded file: the upload manager's (Streamlit keeps it
    for the session otherwise; its chat and audio inputs drop theirs the same way) and the one the widget
    state shares with it (emptied, so that the script's deep copy of the widget value is empty too)."""
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    file_id = getattr(upload, "file_id", None)
    if ctx is not None and file_id and isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
    upload.seek(0)
    upload.truncate(0)


def upload_jobs(user: User, limit: int = 50) -> list[jobs.Job]:
    """The newest upload jobs: every user's for ops, else the user's own."""
    return jobs.list_jobs(settings(), None if user.is_ops else user.username, limit)


_UTC_DATETIME: pl.DataType | type[pl.DataType] = pl.Datetime("us", "UTC")
JOB_COLUMNS = pl.Schema(
    {
        "job_id": pl.String,
        "user": pl.String,
        "file": pl.String,
        "size_mb": pl.Float64,
        "table": pl.String,
        "state": pl.String,
        "stage": pl.String,
        "progress": pl.Float64,
        "created_at": _UTC_DATETIME,
        "seconds": pl.Float64,
        "run_id": pl.String,
        "rows_loaded": pl.Int64,
        "rows_updated": pl.Int64,
        "rows_quarantined": pl.Int64,
        "rows_duplicate": pl.Int64,
        "message": pl.String,
    }
)
"""The Data page's table of upload jobs."""


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def jobs_frame(found: Sequence[jobs.Job]) -> pl.DataFrame:
    """One row per job (newest first, as given): what, whose, how far, how long, what it loaded, its error."""
    now = datetime.now(UTC)
    rows = []
    for job in found:
        result = job.result or {}
        started, finished = _moment(job.started_at), _moment(job.finished_at)
        rows.append(
            (
                job.job_id,
                job.user,
                job.file,
                job.bytes / 1e6,
                job.table or "(from the file name)",
                job.state,
                job.stage,
                job.fraction,
                _moment(job.created_at),
                ((finished or now) - started).total_seconds() if started else None,
                result.get("run_id"),
                result.get("rows_loaded"),
                result.get("rows_updated"),
                result.get("rows_quarantined"),
                result.get("rows_duplicate"),
                job.error or "; ".join(result.get("aliases_mapped", [])) or None,
            )
        )
    return pl.DataFrame(rows, schema=JOB_COLUMNS, orient="row")


# ------------------------------------------------------------------------------------------------
# Exports (built only when the user clicks: pass these as ``data=`` callables)
# ------------------------------------------------------------------------------------------------

CSV_MAX_ROWS = 500_000
"""Rows a CSV download holds at most: the file is built in the server's memory."""
XLSX_MAX_ROWS = 100_000
"""Rows per sheet an Excel download holds at most (XlsxWriter keeps the whole workbook in memory: a
1.1-million-row workbook took 157 s and left the server at 5.4 GB)."""


def csv_bytes(frame: pl.DataFrame, max_rows: int = CSV_MAX_ROWS) -> bytes:
    """The first ``max_rows`` rows of ``frame`` as UTF-8 CSV, no cell readable as a formula, list columns
    as joined text (`core.exports`)."""
    return exports.csv_bytes(frame.head(max_rows))


def xlsx_bytes(sheets: Mapping[str, pl.DataFrame], max_rows: int = XLSX_MAX_ROWS) -> bytes:
    """One workbook (XlsxWriter), a sheet per frame with its first ``max_rows`` rows, money and rate
    columns formatted; text cells stay text (`core.exports.safe_workbook`), lists are joined text."""
    buffer = io.BytesIO()
    with exports.safe_workbook(buffer, in_memory=True) as workbook:
        used: set[str] = set()
        for title, frame in sheets.items():
            name = sheet_name(title, used)
            formats = {}
            for column in frame.columns:
                fmt = _excel_format(column)
                if fmt:
                    formats[column] = fmt
            exports.spreadsheet_frame(frame.head(max_rows)).write_excel(
                workbook,
                worksheet=name,
                column_formats=formats or None,  # type: ignore[arg-type]
                autofit=True,
                float_precision=2,
                dtype_formats={pl.Date: "yyyy-mm-dd", pl.Datetime: "yyyy-mm-dd hh:mm"},
            )
    return buffer.getvalue()


def _excel_format(column: str) -> str | None:
    """The Excel number format of ``column``: the same display rule as the grids (`metrics.display_of`)."""
    display = metrics.display_of(column)
    return display.excel_format if display is not None else None


def dictionary() -> pl.DataFrame:
    """The metric dictionary (name, label, unit, definition)."""
    return metrics.describe_metrics().select("name", "label", "unit", "definition")
