"""One built ``tiny`` marketplace for every report test, with accepted recommendations, users and notes.

The home is generated (shared with tests/test_build.py through the same lock) and built once per test
run, whichever xdist worker gets there first; tests only read it (notes tests use their own home).
"""

from __future__ import annotations

import fcntl
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from core import access
from core.config import Settings
from datastore import users
from datastore.db import dispose_engine, upgrade_db
from datastore.snapshots import load_snapshot
from liftboard.build import build
from reports.notes import save_notes
from sim import simulate
from strategies.store import set_status

WEEK = "2026-W47"
NOTES = "Decided: push live coaching for fading mid-tier creators ✓\nOwner: Ana — due 2026-12-01"


@dataclass(frozen=True)
class Accepted:
    entity_kind: str
    entity_id: str
    strategy: str
    predicted_uplift: float
    started_on: date


@dataclass(frozen=True)
class ReportWorld:
    settings: Settings
    accepted: tuple[Accepted, ...]
    scoped_merchants: frozenset[str]
    ops: access.User
    merchant_user: access.User


def _shared_root(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def _tiny_home(root: Path) -> Path:
    home = root / "liftboard-tiny-42"
    with open(root / "liftboard-tiny-42.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".complete").exists():
            shutil.rmtree(home, ignore_errors=True)
            upgrade_db(Settings.from_env(home=home))
            simulate.generate("tiny", 42, Settings.from_env(home=home))
            dispose_engine(Settings.from_env(home=home))
            (home / ".complete").touch()
    return home


def _prepare(settings: Settings) -> None:
    """Build, accept three recommendations at known dates, add users, save notes."""
    build(settings)
    recs = load_snapshot("recommendations", settings).filter(pl.col("is_best")).collect()
    merchants = recs.filter(pl.col("entity_kind") == "merchant").sort("net_value", descending=True)
    creators = recs.filter(pl.col("entity_kind") == "creator").sort("net_value", descending=True)
    chosen = [
        (merchants.row(0, named=True), date(2026, 11, 2)),  # 21 days by the end of W47: "so far"
        (merchants.row(1, named=True), date(2026, 10, 12)),  # more than 28 days: complete
        (creators.row(0, named=True), date(2026, 11, 9)),
    ]
    for rec, started in chosen:
        set_status(
            settings,
            run_id=rec["run_id"],
            entity_kind=rec["entity_kind"],
            entity_id=rec["entity_id"],
            strategy=rec["strategy"],
            status="accepted",
            user="tester",
            owner="ana",
            on=started,
        )
    scope = sorted({merchants.row(0, named=True)["entity_id"], merchants.row(2, named=True)["entity_id"]})
    users.add_user(settings, "ops", "pw", "ops", enforce_policy=False)
    users.add_user(settings, "ms", "pw", "merchant_success", merchant_ids=scope, enforce_policy=False)
    save_notes(settings, WEEK, NOTES, user="ops")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> ReportWorld:
    """The built marketplace the report tests read."""
    root = _shared_root(tmp_path_factory, worker_id)
    home = root / "liftboard-reports-home"
    with open(root / "liftboard-reports-home.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".complete").exists():
            shutil.rmtree(home, ignore_errors=True)
            source = _tiny_home(root)
            shutil.copytree(source, home, ignore=shutil.ignore_patterns("incoming", "truth", ".complete"))
            settings = Settings.from_env(home=home)
            _prepare(settings)
            dispose_engine(settings)
            (home / ".complete").touch()
    settings = Settings.from_env(home=home)
    from strategies.store import read_actions

    actions = read_actions(settings)
    accepted = tuple(
        Accepted(
            row["entity_kind"],
            row["entity_id"],
            row["strategy"],
            float(row["predicted_uplift"]),
            row["started_on"]
            if isinstance(row["started_on"], date)
            else date.fromisoformat(row["started_on"]),
        )
        for row in actions.sort("started_on").iter_rows(named=True)
    )
    ops = users.get_user(settings, "ops")
    merchant_user = users.get_user(settings, "ms")
    assert ops is not None
    assert merchant_user is not None
    assert merchant_user.merchant_ids is not None
    return ReportWorld(settings, accepted, merchant_user.merchant_ids, ops, merchant_user)
