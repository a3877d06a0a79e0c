"""The analytics stages cut into pieces a cluster computes apart, and the one step that joins them.

Two cuts, each exact (the pieces' rows are the whole stage's rows):

- **day ranges** for the daily facts (`analytics.sources`): every fact is a sum per day, so the fact of
  consecutive day ranges, concatenated, is the fact of their union, with the same sums (each day's sum
  is computed inside one piece);
- **entity buckets** (a hash of the id) for the creator and merchant features (`analytics.features`):
  a creator's features read only that creator's rows, given the whole table's first day
  (``data_start``); a merchant's read its own rows and the whole product catalog (category medians),
  which every bucket reads whole.

A piece (`DailyFactPiece`, `FeaturePiece`) names the lake through pinned `Settings` (one ingestion
run's table versions, so every worker reads the same lake) and the files it reads and writes on
storage every worker sees; it writes one Parquet file and returns its row count. `combined` is the
combine step, the same for every cut and for one piece or many.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from analytics import features, sources
from core.config import Settings

DAILY_FACTS = {
    "creator_daily": sources.creator_daily,
    "merchant_daily": sources.merchant_daily,
    "product_daily": sources.product_daily,
}
"""The daily facts by snapshot name."""

FEATURE_KEYS = {"creator_features": "creator_id", "merchant_features": "merchant_id"}
"""The feature tables by snapshot name, with the id they are sorted by."""


def activity_span(inputs: sources.Inputs, as_of: date) -> tuple[date, date] | None:
    """The first day with an order, engagement or published content before ``as_of``, and ``as_of``;
    ``None`` when there is none."""
    firsts = [
        inputs.orders.select(pl.col("ordered_at").min().dt.date()),
        inputs.engagement.select(pl.col("date").min()),
        inputs.content.select(pl.col("published_at").min().dt.date()),
    ]
    days = [value for frame in firsts if (value := frame.collect().item()) is not None]
    first = min(days, default=None)
    if first is None or first >= as_of:
        return None
    return first, as_of


def day_ranges(first: date, end: date, pieces: int) -> list[tuple[date, date]]:
    """[first, end) cut into at most ``pieces`` consecutive ranges of whole days, as equal as they come
    (each range is [start, stop))."""
    days = (end - first).days
    pieces = max(1, min(pieces, days))
    bounds = [first + timedelta(days=days * k // pieces) for k in range(pieces + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def entity_bucket(column: str, buckets: int) -> pl.Expr:
    """Which of ``buckets`` buckets an id falls in: a seeded hash of it (stable for one Polars version,
    which every worker of a cluster runs)."""
    return (pl.col(column).hash(seed=0) % buckets).cast(pl.Int64)


def _sink(frame: pl.LazyFrame, path: Path) -> int:
    """Write ``frame`` to ``path`` through a temporary name (a piece retried after its worker died
    replaces a half-written file whole); its row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    frame.sink_parquet(temporary, engine="streaming", statistics=True)
    os.replace(temporary, path)
    return pl.scan_parquet(path).select(pl.len()).collect().item()


@dataclass(frozen=True)
class DailyFactPiece:
    """One daily fact over the days [start, stop), written to ``path``."""

    settings: Settings
    name: str
    start: date
    stop: date
    path: Path


def daily_fact_piece(piece: DailyFactPiece) -> int:
    """Compute and write one `DailyFactPiece`; its row count."""
    inputs = sources.load_inputs(piece.settings)
    return _sink(DAILY_FACTS[piece.name](inputs, piece.stop, start=piece.start), piece.path)


@dataclass(frozen=True)
class FeaturePiece:
    """The features of one bucket of creators or merchants as of ``as_of``, from the daily facts at
    ``creator_daily`` and ``merchant_daily``, written to ``path``."""

    settings: Settings
    name: str
    bucket: int
    buckets: int
    as_of: date
    creator_daily: Path
    merchant_daily: Path
    data_start: date | None
    path: Path
    config: features.FeatureConfig


def feature_piece(piece: FeaturePiece) -> int:
    """Compute and write one `FeaturePiece`; its row count."""
    inputs = sources.load_inputs(piece.settings)
    key = FEATURE_KEYS[piece.name]
    mine = entity_bucket(key, piece.buckets) == piece.bucket
    merchant_daily = pl.scan_parquet(piece.merchant_daily)
    if piece.name == "creator_features":
        frame = features.creator_features(
            pl.scan_parquet(piece.creator_daily).filter(mine),
            inputs.creators.filter(mine),
            inputs.showcase.filter(mine),
            inputs.products,
            piece.as_of,
            piece.config,
            merchant_daily=merchant_daily.filter(mine),
            data_start=piece.data_start,
        )
    else:
        frame = features.merchant_features(
            merchant_daily.filter(mine),
            inputs.merchants.filter(mine),
            inputs.products,
            piece.as_of,
            piece.config,
        )
    return _sink(frame, piece.path)


def data_start(creator_daily: pl.LazyFrame, as_of: date) -> date | None:
    """The first day of ``creator_daily`` before ``as_of`` (what `features.creator_features` calls its
    data start)."""
    value = creator_daily.filter(pl.col("date") < as_of).select(pl.col("date").min()).collect().item()
    return value if isinstance(value, date) else None


def combined(pieces: list[Path], sort_by: str | None = None) -> pl.LazyFrame:
    """The combine step: the pieces' rows, concatenated in order (sorted by ``sort_by`` when the whole
    stage's result is sorted by it)."""
    frame = pl.concat([pl.scan_parquet(path) for path in pieces], how="vertical")
    return frame.sort(sort_by) if sort_by else frame
