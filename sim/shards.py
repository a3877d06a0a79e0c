"""Marketplaces too big for one process, generated in shards that workers write side by side.

``xlarge`` (about 2M creators, 200k merchants, 5M products and 250M fact rows) is ten shards the size of
``large``: each shard is a whole marketplace of its own (`simulate.write_inputs` with its own seed), its
ids made unique by the shard's number (``c000123`` of shard 7 is ``c07000123``). Creators of one shard
sell only their own shard's merchants' products: a federation of regional markets rather than one
market, which keeps each shard's simulation inside one worker's memory (about what ``large`` needs).

`write_shard` is the piece a worker computes (`ShardPiece`: the shard's scale, seed and folder on
storage every worker sees); `merge_shards` then writes each dimension as one file, lists the fact files
(one per shard and week, each ingested on its own, so the ingest never holds more than one), and
concatenates the truth tables.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sim.simulate import SCALES, Scale, write_inputs

LARGE = SCALES["large"]


@dataclass(frozen=True)
class ShardedScale:
    """A marketplace of ``shards`` shards of ``shard`` size."""

    name: str
    shard: Scale
    shards: int

    @property
    def creators(self) -> int:
        return self.shard.creators * self.shards


SHARDED_SCALES: dict[str, ShardedScale] = {
    "xlarge": ShardedScale("xlarge", LARGE, 10),
}

TRUTH = "truth"
"""A shard folder's subfolder holding its truth tables."""


@dataclass(frozen=True)
class ShardPiece:
    """Shard ``shard`` (of a sharded scale, each of ``scale``'s size) written into ``out_dir``."""

    scale: Scale
    seed: int
    shard: int
    out_dir: Path


def shard_ids(frame: pl.DataFrame, shard: int) -> pl.DataFrame:
    """Every id column (``*_id``, text) with the shard's number after its first character."""
    tag = f"{shard:02d}"
    return frame.with_columns(
        (pl.col(name).str.slice(0, 1) + tag + pl.col(name).str.slice(1)).alias(name)
        for name, dtype in frame.schema.items()
        if name.endswith("_id") and dtype == pl.String
    )


def write_shard(piece: ShardPiece) -> dict[str, int]:
    """Generate one shard into ``piece.out_dir`` (inputs and, under `TRUTH`, its truth); its row counts."""
    rows, truth = write_inputs(piece.scale, piece.seed + 1009 * piece.shard, piece.out_dir)
    for path in piece.out_dir.glob("*.parquet"):
        shard_ids(pl.read_parquet(path), piece.shard).write_parquet(path)
    (piece.out_dir / TRUTH).mkdir()
    for name, frame in truth.items():
        shard_ids(frame, piece.shard).write_parquet(piece.out_dir / TRUTH / f"{name}.parquet")
    return rows


def _is_fact(path: Path) -> bool:
    return "-w" in path.stem


def merge_shards(shard_dirs: list[Path], out_dir: Path, truth_dir: Path) -> list[Path]:
    """One file per dimension in ``out_dir`` (the shards' rows), the truth tables in ``truth_dir``; the
    files to ingest: the dimensions, then every shard's weekly fact files (renamed ``<table>-sNN-wNN``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    first = shard_dirs[0]
    dimensions = []
    for path in sorted(p for p in first.glob("*.parquet") if not _is_fact(p)):
        merged = out_dir / path.name
        pl.concat([pl.scan_parquet(d / path.name) for d in shard_dirs]).sink_parquet(merged)
        dimensions.append(merged)
    facts = []
    for shard, folder in enumerate(shard_dirs):
        for path in sorted(p for p in folder.glob("*.parquet") if _is_fact(p)):
            table, week = path.stem.split("-w", 1)
            target = out_dir / f"{table}-s{shard:02d}-w{week}.parquet"
            shutil.move(path, target)
            facts.append(target)
    for path in sorted((first / TRUTH).glob("*.parquet")):
        frames = [pl.read_parquet(d / TRUTH / path.name) for d in shard_dirs]
        whole = frames[0] if path.stem == "world" else pl.concat(frames, how="vertical_relaxed")
        whole.write_parquet(truth_dir / path.name)
    for folder in shard_dirs:
        shutil.rmtree(folder, ignore_errors=True)
    return dimensions + facts
