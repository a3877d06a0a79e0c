"""Watch a folder: ingest the files dropped in it and keep creator interests current.

Polling, not inotify, so that it works on network drives and object-store mounts alike. Each poll takes
the files whose size did not change since the previous poll (a file still being copied is left for the
next one), ingests them as one run through ``datastore.ingest.ingest_files``, turns exactly the rows that
run loaded (the run's fact parts, and showcase rows that were not there before) into interest events,
folds them into the persisted interest state (``matching.interests.update_interest_state``, equal to a
full recompute) and moves the files to ``processed/`` (or ``failed/`` with the error when the whole
run was rejected). The state lives in ``settings.snapshots / "matching"``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from core.config import Settings
from matching.interests import (
    EVENT_SCHEMA,
    InterestConfig,
    InterestState,
    hashtag_categories,
    interest_drift,
    interest_events,
    interest_profiles,
    interest_state,
    update_interest_state,
)
from matching.relations import MarketFrames

if TYPE_CHECKING:
    from datastore.lake import LakeVersion

PROCESSED = "processed"
FAILED = "failed"
SUFFIXES = (".csv", ".parquet", ".pq", ".ndjson", ".jsonl")


@dataclass(frozen=True)
class WatchBatch:
    """What one poll did."""

    files: tuple[str, ...]
    run_id: str | None
    rows_loaded: int
    events: int  # -1: the state was rebuilt from the whole lake
    state_as_of: datetime | None
    drifting_creators: int
    error: str | None = None


def state_dir(settings: Settings) -> Path:
    """Where the interest state and the hashtag map are kept."""
    return settings.snapshots / "matching"


def save_interest_state(state: InterestState, tag_map: pl.DataFrame, settings: Settings) -> None:
    """Persist the state (sums, time, hashtag map) with atomic replaces."""
    directory = state_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in (("interest_state.parquet", state.sums), ("hashtag_categories.parquet", tag_map)):
        temporary = directory / f".{name}.tmp"
        frame.write_parquet(temporary)
        os.replace(temporary, directory / name)
    meta = directory / ".interest_state.json.tmp"
    meta.write_text(json.dumps({"as_of": state.as_of.isoformat()}), encoding="utf-8")
    os.replace(meta, directory / "interest_state.json")


def load_interest_state(settings: Settings) -> tuple[InterestState, pl.DataFrame] | None:
    """The persisted state and hashtag map, or None when there is none yet."""
    directory = state_dir(settings)
    meta = directory / "interest_state.json"
    if not meta.is_file():
        return None
    as_of = datetime.fromisoformat(json.loads(meta.read_text(encoding="utf-8"))["as_of"])
    sums = pl.read_parquet(directory / "interest_state.parquet")
    return InterestState(as_of=as_of, sums=sums), pl.read_parquet(directory / "hashtag_categories.parquet")


def rebuild_interest_state(settings: Settings, cfg: InterestConfig | None = None) -> InterestState:
    """Full recompute from the lake, as of the newest event (or now when the lake is empty)."""
    cfg = cfg or InterestConfig()
    frames = MarketFrames.from_settings(settings)
    tag_map = hashtag_categories(frames, cfg).collect()
    events = interest_events(
        frames.content, frames.showcase, frames.orders, frames.products, tag_map.lazy(), cfg
    ).collect()
    newest = events["at"].max() if events.height else None
    as_of = newest if isinstance(newest, datetime) else datetime.now(UTC)
    state = interest_state(events.lazy(), as_of, cfg)
    save_interest_state(state, tag_map, settings)
    return state


def _stable_files(directory: Path, sizes: dict[Path, int], wait: bool) -> list[Path]:
    ready = []
    current = {
        path: path.stat().st_size
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SUFFIXES
    }
    for path, size in current.items():
        if not wait or sizes.get(path) == size:
            ready.append(path)
    sizes.clear()
    sizes.update({path: size for path, size in current.items() if path not in ready})
    return ready


def _move(files: list[Path], target: Path) -> None:
    target.mkdir(exist_ok=True)
    for path in files:
        shutil.move(str(path), target / path.name)


def _run_rows(settings: Settings, table: str, before: LakeVersion, after: LakeVersion) -> pl.LazyFrame:
    """The rows of ``table`` a run added (its lake version against the one before it)."""
    from datastore.lake import rows_added

    return rows_added(table, settings, before, after)


@dataclass(frozen=True)
class InterestsBefore:
    """The interest state and what the lake held before a run: what ``fold_run`` needs afterwards."""

    state: InterestState
    tag_map: pl.DataFrame
    version: LakeVersion
    showcase: pl.DataFrame  # showcase keys before the run


SHOWCASE_KEYS = ["creator_id", "product_id", "added_on"]


def interests_before_run(settings: Settings, cfg: InterestConfig | None = None) -> InterestsBefore:
    """The persisted interest state (rebuilt from the lake when there is none) and the lake as it is,
    taken before a run whose rows will be folded in."""
    from datastore.lake import lake_version, scan_table

    loaded = load_interest_state(settings)
    if loaded is None:
        rebuild_interest_state(settings, cfg or InterestConfig())
        loaded = load_interest_state(settings)
        assert loaded is not None
    state, tag_map = loaded
    before = lake_version(settings)
    showcase = scan_table("showcase", settings, before).select(SHOWCASE_KEYS).collect()
    return InterestsBefore(state, tag_map, before, showcase)


def fold_run(
    settings: Settings, before: InterestsBefore, run_id: str, cfg: InterestConfig | None = None
) -> tuple[InterestState, int]:
    """Fold exactly the rows run ``run_id`` loaded into the interest state and save it; the new state and
    the number of interest events (-1: the state was rebuilt from the whole lake)."""
    from datastore.lake import lake_version, scan_table

    cfg = cfg or InterestConfig()
    state, tag_map = before.state, before.tag_map
    if tag_map.is_empty():
        # the hashtag map is learned from the lake: the first data in an empty lake needs a full rebuild
        previous = state.as_of
        state = rebuild_interest_state(settings, cfg)
        if state.as_of < previous:
            state = update_interest_state(state, pl.DataFrame(schema=EVENT_SCHEMA), cfg, as_of=previous)
            save_interest_state(
                state, pl.read_parquet(state_dir(settings) / "hashtag_categories.parquet"), settings
            )
        return state, -1
    after = lake_version(settings, run_id)
    new_showcase = scan_table("showcase", settings, after).join(
        before.showcase.lazy(), on=SHOWCASE_KEYS, how="anti"
    )
    events = interest_events(
        _run_rows(settings, "content", before.version, after),
        new_showcase,
        _run_rows(settings, "orders", before.version, after),
        scan_table("products", settings, after),
        tag_map.lazy(),
        cfg,
    ).collect()
    state = update_interest_state(state, events, cfg)
    save_interest_state(state, tag_map, settings)
    return state, events.height


def drifting_creators(state: InterestState, cfg: InterestConfig | None = None) -> int:
    """How many creators' interests are drifting in ``state``."""
    cfg = cfg or InterestConfig()
    drift = interest_drift(interest_profiles(state, cfg), cfg).collect()
    return int(drift["drifting"].sum())


def ingest_and_update(files: list[Path], settings: Settings, cfg: InterestConfig | None = None) -> WatchBatch:
    """Ingest ``files`` as one run and fold exactly the rows it loaded into the interest state."""
    cfg = cfg or InterestConfig()
    from datastore.ingest import IngestError, ingest_files

    before = interests_before_run(settings, cfg)
    try:
        report = ingest_files(files, settings, source=f"watch {files[0].parent}", user="watch")
    except IngestError as exc:
        return WatchBatch(tuple(str(f) for f in files), None, 0, 0, before.state.as_of, 0, error=str(exc))
    state, events = fold_run(settings, before, report.run_id, cfg)
    return WatchBatch(
        files=tuple(str(f) for f in files),
        run_id=report.run_id,
        rows_loaded=report.rows_loaded,
        events=events,
        state_as_of=state.as_of,
        drifting_creators=drifting_creators(state, cfg),
    )


def watch_folder(
    directory: Path,
    settings: Settings,
    *,
    once: bool = False,
    poll_seconds: float = 2.0,
    cfg: InterestConfig | None = None,
    on_batch: Callable[[WatchBatch], None] | None = None,
) -> list[WatchBatch]:
    """Poll ``directory`` until interrupted (or once), ingesting and updating interests per batch.

    With ``once``, files are taken without waiting for their size to settle and the function returns
    after one poll. Ctrl-C (KeyboardInterrupt) propagates to the caller between or during polls; a run
    interrupted mid-ingest is recovered by the lake like any other.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"watch folder {directory} does not exist")
    from datastore.db import require_current

    require_current(settings)  # fail now, not when the first file arrives
    sizes: dict[Path, int] = {}
    batches = []
    while True:
        files = _stable_files(directory, sizes, wait=not once)
        if files:
            batch = ingest_and_update(files, settings, cfg)
            _move(files, directory / (FAILED if batch.error else PROCESSED))
            batches.append(batch)
            if on_batch is not None:
                on_batch(batch)
        if once:
            return batches
        time.sleep(poll_seconds)
