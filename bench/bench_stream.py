"""Benchmark: from publishing a 100k-event micro-batch on Redis Streams to its rows being visible.

    .venv/bin/python bench/bench_stream.py --runs 3 --events 100000 [--scale demo]

Starts its own ``redis-server`` (a free port, nothing saved) unless ``--redis URL`` is given, makes a new
installation in ``--home`` with a simulated marketplace's dimensions, content and history ingested as files
(every engagement and order event but the last ``runs x events``), then, per run: publishes the next
``--events`` engagement and order events (event-time order, pipelines of
10,000 ``XADD``), reads them as one micro-batch, commits it (one ingest run) and acknowledges it, and
reads them back as a reader does (``lake.scan_table`` at the new committed version), then computes the
app's "today so far" figures from the new commit (``analytics.today.lake_today``). Target (issue 19):
a 100k-event micro-batch is reflected in at most 2 s (``after_publish_to_today_s``: read, commit and
acknowledge, then today's figures; the row count check is not counted).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(directory: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    for line in server.stdout:
        if "Ready to accept connections" in line:
            return server, f"redis://127.0.0.1:{port}/0"
    raise RuntimeError("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--scale", default="tiny", help="the simulated marketplace (tiny, demo, large)")
    parser.add_argument("--redis", default=None, help="use this server instead of starting one")
    args = parser.parse_args()

    import polars as pl

    from analytics.today import lake_today
    from core.config import Settings
    from datastore import db, lake
    from datastore.ingest import ingest_files, table_for_file
    from datastore.stream import StreamSource, commit_batch, connect, ensure_groups, parse_streams, read_batch
    from liftboard.replay import EVENT_AT, fact_events, publish_in_event_order
    from sim.simulate import simulate_inputs

    home = args.home or Path(tempfile.mkdtemp(prefix="liftboard-bench-stream-"))
    shutil.rmtree(home, ignore_errors=True)
    server = None
    if args.redis is None:
        (home / "redis").mkdir(parents=True)
        server, url = _start_redis(home / "redis")
    else:
        url = args.redis
    try:
        settings = Settings.from_env(home=home, database_url=f"sqlite:///{home}/liftboard.db")
        db.upgrade_db(settings)
        simulation = simulate_inputs(args.scale, 42, settings)
        files = sorted(simulation.input_dir.glob("*.parquet"))
        events = fact_events(simulation.input_dir)
        merged = pl.concat(
            [
                events[name].select(EVENT_AT, pl.lit(name).alias("table"), pl.int_range(pl.len()).alias("i"))
                for name in ("engagement", "orders")
            ]
        ).sort(EVENT_AT, "table", "i")
        if merged.height < args.runs * args.events:
            raise SystemExit(f"the {args.scale} world has {merged.height:,} events only")
        # the lake holds everything before the streamed events (ingested as files): a micro-batch's cost
        # depends on what is stored (the dedupe reads the stored keys)
        history = merged.head(merged.height - args.runs * args.events)
        merged = merged.tail(args.runs * args.events)
        history_files = []
        for name in ("engagement", "orders"):
            rows = events[name][history.filter(pl.col("table") == name)["i"].sort()].drop(EVENT_AT)
            path = home / "history" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows.write_parquet(path)
            history_files.append(path)
        dimension_files = [path for path in files if table_for_file(path) not in ("engagement", "orders")]
        ingest_files([*dimension_files, *history_files], settings)
        stored = {
            name: lake.scan_table(name, settings).select(pl.len()).collect().item()
            for name in ("engagement", "orders")
        }
        print(json.dumps({"scale": args.scale, "stored_before": stored}), flush=True)
        source = StreamSource(url, parse_streams("orders,engagement", prefix="bench:"))
        client = connect(url)
        ensure_groups(client, source)
        results = []
        for run in range(args.runs):
            part = merged.slice(run * args.events, args.events)
            chunk = {
                name: events[name][part.filter(pl.col("table") == name)["i"].sort()]
                for name in ("engagement", "orders")
            }
            before = lake.lake_version(settings)
            started = time.perf_counter()
            publish_in_event_order(client, source, chunk)
            published = time.perf_counter()
            entries = read_batch(client, source, "bench", max_entries=args.events, block_ms=1000)
            read = time.perf_counter()
            report = commit_batch(client, source, "bench", entries, settings)
            committed = time.perf_counter()
            after = lake.lake_version(settings)
            visible = sum(
                lake.scan_table(name, settings, after).select(pl.len()).collect().item()
                - lake.scan_table(name, settings, before).select(pl.len()).collect().item()
                for name in ("engagement", "orders")
            )
            done = time.perf_counter()
            today = lake_today(settings)  # what the app's "today so far" cards read after the commit
            shown = time.perf_counter()
            newest = chunk["orders"]["ordered_at"].max()
            if today.window is None or today.window.now != newest or today.lake.run_id != after.run_id:
                raise SystemExit(f"run {run + 1}: today's figures do not reflect the batch ({today.window})")
            if not len(entries) == visible == report.rows_loaded == args.events:
                raise SystemExit(f"run {run + 1}: {len(entries)} entries, {visible} visible rows")
            results.append(
                {
                    "run": run + 1,
                    "publish_s": round(published - started, 3),
                    "read_s": round(read - published, 3),
                    "commit_ack_s": round(committed - read, 3),
                    "reader_s": round(done - committed, 3),
                    "published_to_visible_s": round(done - started, 3),
                    "after_publish_s": round(done - published, 3),
                    "today_s": round(shown - done, 3),
                    "after_publish_to_today_s": round(shown - published - (done - committed), 3),
                }
            )
            print(json.dumps(results[-1]), flush=True)
        summary = {
            key: statistics.median(result[key] for result in results) for key in results[0] if key != "run"
        }
        print(
            json.dumps(
                {
                    "median": summary,
                    "events": args.events,
                    "runs": args.runs,
                    "machine": f"{platform.machine()}, Python {platform.python_version()}",
                }
            )
        )
        client.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
