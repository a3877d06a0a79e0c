"""Benchmark: the build in one process against the build on a local Dask cluster of 1 and 2 workers.

For each mode, in its own subprocess, on the same marketplace (generated into ``--home`` once): wall
time, the peak RSS of the build's process and of each worker process, the stage timings, and on the
cluster the task stream (tasks, compute seconds and the longest task per stage, seconds spent moving
data between workers) and the bytes of the pieces written to the staging folder (the shared storage the
tasks exchange data through: day ranges of the daily facts, entity buckets of the features). Then every
snapshot of a cluster build is compared with the single-process build's (as tests/test_build_cluster.py
does: float sums of the lake's money within 1e-9 relative, everything else exactly).

Usage::

    .venv/bin/python bench/bench_scale.py --home /tmp/lb_demo --scale demo [--modes single,local:1,local:2]

Prints one JSON object per mode and the comparison; the table in bench/RESULTS.md comes from them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _task_summary(stream: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task prefix: tasks, compute seconds (sum and max) and seconds of transfers between workers."""
    from dask.utils import key_split

    summary: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for task in stream:
        prefix = key_split(task["key"])
        row = summary[prefix]
        row["tasks"] += 1
        for span in task.get("startstops", ()):
            seconds = span["stop"] - span["start"]
            if span["action"] == "compute":
                row["compute_s"] += seconds
                row["longest_s"] = max(row["longest_s"], seconds)
            elif span["action"] == "transfer":
                row["transfer_s"] += seconds
    return {prefix: {k: round(v, 3) for k, v in row.items()} for prefix, row in summary.items()}


def run_mode(home: Path, mode: str, matching: bool) -> dict[str, Any]:
    """One build (in this subprocess): ``single`` or ``local:N``."""
    from core.config import Settings
    from datastore.db import dispose_engine
    from liftboard.build import BuildConfig, build

    settings = Settings.from_env(home=home)
    config = BuildConfig(publish_sql=False, keep_builds=10, with_matching=matching)
    record: dict[str, Any] = {"mode": mode}
    if mode == "single":
        started = time.perf_counter()
        result = build(settings, config=config)
        record["wall_s"] = round(time.perf_counter() - started, 2)
    else:
        from dask.distributed import get_task_stream

        from liftboard.cluster import DaskTasks, SchedulerSpec, connect

        with connect(SchedulerSpec.parse(mode)) as client:
            started = time.perf_counter()
            with get_task_stream(client) as stream:
                result = build(settings, config=config, tasks=DaskTasks(client))
            record["wall_s"] = round(time.perf_counter() - started, 2)
            record["worker_peak_rss_mib"] = sorted(round(v, 1) for v in client.run(_peak_rss_mib).values())
            record["tasks"] = _task_summary(stream.data)
        manifest = json.loads((result.path / "manifest.json").read_text())
        record["pieces_bytes"] = manifest.get("cluster", {}).get("pieces_bytes", {})
    dispose_engine(settings)
    record["build"] = str(result.path)
    record["driver_peak_rss_mib"] = round(_peak_rss_mib(), 1)
    record["timings"] = dict(result.timings)
    return record


def compare(expected: Path, result: Path) -> dict[str, str]:
    """Per snapshot: ``exact``, ``within 1e-9`` or what differs."""
    from polars.testing import assert_frame_equal

    from liftboard.cluster import FLOAT_SUMS, MODELLED
    from liftboard.cluster import snapshot_rows as rows

    verdicts: dict[str, str] = {}
    for path in sorted(expected.glob("*.parquet")):
        left, right = rows(path), rows(result / path.name)
        if path.stem in MODELLED:
            shared = right.join(left, on=list(MODELLED[path.stem]), how="semi").height
            verdicts[path.stem] = (
                f"pairs shared {shared / max(left.height, 1):.4f} ({right.height} / {left.height} rows)"
            )
            continue
        try:
            assert_frame_equal(right, left, check_exact=True)
            verdicts[path.stem] = "exact"
        except AssertionError as exact:
            try:
                if path.stem not in FLOAT_SUMS:
                    raise exact
                assert_frame_equal(right, left, rel_tol=1e-9, abs_tol=1e-9)
                verdicts[path.stem] = "within 1e-9"
            except AssertionError as error:
                verdicts[path.stem] = "DIFFERENT: " + str(error).splitlines()[0]
    return verdicts


def _generate(home: Path, scale: str) -> None:
    from core.config import Settings
    from datastore.db import dispose_engine, upgrade_db
    from sim import simulate

    if (home / ".complete").exists():
        return
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings.from_env(home=home)
    upgrade_db(settings)
    started = time.perf_counter()
    simulate.generate(scale, 42, settings)
    dispose_engine(settings)
    (home / ".complete").touch()
    print(json.dumps({"generated": scale, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--modes", default="single,local:1,local:2")
    parser.add_argument("--no-matching", action="store_true")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_mode(args.home, args.run, not args.no_matching)), flush=True)
        return
    _generate(args.home, args.scale)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                "load_before": os.getloadavg(),
            }
        ),
        flush=True,
    )
    records = []
    for mode in args.modes.split(","):
        command = [sys.executable, __file__, "--home", str(args.home), "--run", mode]
        if args.no_matching:
            command.append("--no-matching")
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        output = process.stdout.read() if process.stdout else ""
        if status != 0:
            raise SystemExit(f"{mode} failed (status {status})")
        record = json.loads(output.strip().splitlines()[-1])
        record["process_wall_s"] = round(time.perf_counter() - started, 2)
        record["children_peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
        record["load_after"] = os.getloadavg()
        print(json.dumps(record), flush=True)
        records.append(record)
    single = next((r for r in records if r["mode"] == "single"), None)
    for record in records:
        if single is not None and record is not single:
            verdicts = compare(Path(single["build"]), Path(record["build"]))
            counts: dict[str, int] = defaultdict(int)
            for verdict in verdicts.values():
                counts[verdict.split(":")[0].split(" (")[0]] += 1
            different = {name: v for name, v in verdicts.items() if not v.startswith(("exact", "within"))}
            print(
                json.dumps({"compare": record["mode"], "counts": counts, "different": different}), flush=True
            )


if __name__ == "__main__":
    main()
