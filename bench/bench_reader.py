"""Benchmark: what a reader sees while a multi-million-row ingest runs (issue 17: all of a run or none of it).

    .venv/bin/python bench/bench_reader.py --scale demo

Generates the ``--scale`` marketplace, ingests its dimensions, then ingests its facts (content, engagement,
orders: 2.9 M rows at ``demo``) in a child process while this process reads the lake as every reader does
(``lake.lake_version`` then ``lake.scan_table`` of each fact table at that version) as fast as it can. Every
(content, engagement, orders) row count it saw is printed with how often: only the counts before and after
the run may appear. Exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

FACTS = ("content", "engagement", "orders")


def _ingest(home: str, files: list[str]) -> None:
    from core.config import Settings
    from datastore.ingest import ingest_files

    ingest_files([Path(f) for f in files], Settings.from_env(home=home), source="bench reader")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "large"])
    args = parser.parse_args()

    import polars as pl

    from core.config import Settings
    from datastore import db, lake
    from datastore.ingest import ingest_files, table_for_file
    from sim.simulate import write_inputs

    home = Path(tempfile.mkdtemp(prefix="lb_reader_"))
    try:
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home}/liftboard.db")
        db.upgrade_db(settings)
        rows, _ = write_inputs(args.scale, 42, home / "in")
        files = sorted((home / "in").glob("*.parquet"))
        ingest_files([f for f in files if table_for_file(f) not in FACTS], settings, source="dimensions")
        facts = [str(f) for f in files if table_for_file(f) in FACTS]

        def counts() -> tuple[int, ...]:
            version = lake.lake_version(settings)
            return tuple(
                lake.scan_table(name, settings, version).select(pl.len()).collect().item() for name in FACTS
            )

        before = counts()
        child = mp.get_context("spawn").Process(target=_ingest, args=(str(home), facts))
        started = time.perf_counter()
        child.start()
        seen: Counter[tuple[int, ...]] = Counter()
        while child.is_alive():
            seen[counts()] += 1
        child.join()
        took = time.perf_counter() - started
        after = counts()
        seen[after] += 1
        result = {
            "scale": args.scale,
            "fact_rows": sum(rows[name] for name in FACTS),
            "ingest_s": round(took, 1),
            "reads": sum(seen.values()),
            "before": before,
            "after": after,
            "seen": {",".join(map(str, key)): n for key, n in seen.items()},
            "only_before_or_after": set(seen) <= {before, after},
        }
        print(json.dumps(result, indent=2))
        if not result["only_before_or_after"] or child.exitcode != 0:
            raise SystemExit(1)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
