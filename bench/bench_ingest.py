"""Benchmark: generate a simulated marketplace and ingest it, timing each phase and peak memory.

    .venv/bin/python bench/bench_ingest.py --scale large --home /tmp/lb_bench_large

Targets (issue 2, 2-core / 24 GiB machine): `large` generated and ingested in under 10 minutes with
peak RSS under 8 GiB; `demo` under 2 minutes. Each run happens in a fresh child process so its peak
RSS (``ru_maxrss`` of the child) is the run's own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import shutil
import time
from pathlib import Path


def _run(scale: str, home: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from core.config import Settings
    from datastore.db import upgrade_db
    from datastore.ingest import ingest_files
    from sim.simulate import write_inputs

    settings = Settings.from_env(home=home, database_url=f"sqlite:///{home}/liftboard.db")
    upgrade_db(settings)  # a new installation, as `liftboard db upgrade` makes it
    started = time.perf_counter()
    rows, truth = write_inputs(scale, 42, settings.incoming / f"{scale}-42")
    settings.truth.mkdir(parents=True, exist_ok=True)
    for name, frame in truth.items():
        frame.write_parquet(settings.truth / f"{name}.parquet")
    generated = time.perf_counter()
    files = sorted((settings.incoming / f"{scale}-42").glob("*.parquet"))
    report = ingest_files(files, settings, source=f"bench {scale}")
    done = time.perf_counter()
    queue.put(
        {
            "scale": scale,
            "rows": rows,
            "fact_rows": rows["content"] + rows["engagement"] + rows["orders"],
            "loaded": sum(load.rows_loaded for load in report.loads),
            "generate_s": round(generated - started, 1),
            "ingest_s": round(done - generated, 1),
            "total_s": round(done - started, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "large"])
    parser.add_argument("--home", default=None, help="where to write (default: a folder under /tmp)")
    args = parser.parse_args()
    home = Path(args.home or f"/tmp/lb_bench_{args.scale}")
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    queue: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
    child = mp.get_context("spawn").Process(target=_run, args=(args.scale, str(home), queue))
    child.start()
    result = queue.get()
    child.join()
    result["machine"] = f"{platform.machine()}, {mp.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
