"""Reading published builds: the current build's id and manifest, its snapshots, scoped to a user.

A build (`liftboard.build`) writes its snapshots under ``settings.snapshots / <build_id>`` and then
replaces ``settings.snapshots / LATEST`` atomically; readers here only follow ``LATEST``, so they never
see a half-written build. Snapshot names are those of the catalog (`core.snapshots`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from core.access import User, scope_frame
from core.config import Settings
from core.snapshots import SNAPSHOTS, snapshot
from datastore import db

LATEST = "LATEST"
MANIFEST = "manifest.json"


class SnapshotNotFound(FileNotFoundError):
    """No build has been published yet, or it has no snapshot of that name."""


def latest_build_id(settings: Settings) -> str | None:
    """The id of the current build, or ``None`` before the first build."""
    try:
        return (settings.snapshots / LATEST).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def latest_manifest(settings: Settings) -> dict[str, Any] | None:
    """The manifest of the current build, or ``None`` before the first build."""
    build_id = latest_build_id(settings)
    if build_id is None:
        return None
    return json.loads((settings.snapshots / build_id / MANIFEST).read_text(encoding="utf-8"))


def load_snapshot(name: str, settings: Settings, build_id: str | None = None) -> pl.LazyFrame:
    """A lazy scan of snapshot ``name`` of the current build (or of ``build_id``).

    Raises:
        SnapshotNotFound: before the first build, for a name the catalog does not have, or for one
            this build did not write (a build without matching, say).
    """
    if name not in SNAPSHOTS:
        raise SnapshotNotFound(f"{name!r} is not a published snapshot; snapshots: {', '.join(SNAPSHOTS)}")
    build_id = build_id or latest_build_id(settings)
    if build_id is None:
        raise SnapshotNotFound(f"no analytics build in {settings.snapshots}; run `liftboard build` first")
    path = settings.snapshots / build_id / f"{name}.parquet"
    if not path.is_file():
        raise SnapshotNotFound(f"build {build_id} has no snapshot {name!r}")
    return pl.scan_parquet(path)


def scoped_snapshot(name: str, settings: Settings, user: User) -> pl.LazyFrame:
    """Snapshot ``name`` of the current build, filtered to what ``user`` may see (`core.access`).

    Raises:
        PermissionError: a merchant-success user asked for a snapshot with no merchant key.
        SnapshotNotFound: no such snapshot.
    """
    frame = load_snapshot(name, settings)
    if snapshot(name).scope == "public":
        return frame
    return scope_frame(frame, user, name)


def is_stale(settings: Settings) -> bool:
    """True when there is no build yet, or a committed ingestion run finished after the current build
    was created (the lake changed since)."""
    manifest = latest_manifest(settings)
    if manifest is None:
        return True
    runs = db.metadata.tables["ingestion_runs"]
    query = sa.select(sa.func.max(runs.c.finished_at)).where(runs.c.status == "committed")
    with db.connect(settings) as connection:
        last = connection.execute(query).scalar()
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return last > datetime.fromisoformat(manifest["created_at"])
