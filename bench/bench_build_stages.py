"""Benchmark: the whole build on ``demo``, stage by stage, and the first ``make run`` to serving (issue 16).

Two measurements, each in its own child process (wall time around it, CPU time and peak RSS from
``os.wait4``'s rusage, which includes the processes it spawned and waited for):

1. **The build** (`liftboard.build.build`, every stage: analytics, strategies, product pairs,
   matching, snapshot, SQL tables) on a marketplace generated once per checkout into
   ``--home/<label>``, twice: as ``liftboard build`` runs it (the matching stage in its own process
   when the code has one) and with every stage inline, one after the other, which gives each stage's
   CPU time (the process's, all threads) and each matching step's. ``--checkout DIR`` measures another
   checkout of Liftboard the same way in the same session (e.g. ``git archive HEAD | tar -x -C DIR``
   for the code before a change), with this checkout's virtualenv.
2. **The first ``make run``** (``--first-run``): ``make run`` with a new ``LIFTBOARD_HOME`` (migrate,
   generate ``demo``, build, create the demo users, serve) until the app answers on its health
   endpoint; the virtualenv is taken as installed (``make -o .venv/.installed``: installing it needs
   the package index and is not part of what is measured). The server is stopped afterwards.

Usage::

    .venv/bin/python bench/bench_build_stages.py [--home /tmp/lb_stages] [--checkout /tmp/lb_before]
        [--first-run] [--no-build] [--scale demo]

Prints one JSON line per measurement and markdown tables at the end. The machine is shared: the load
average before and after each measurement is part of its record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# In the child process: one build, every progress event with its wall and CPU time
# ------------------------------------------------------------------------------------------------


def run_build(checkout: Path, home: Path, inline: bool) -> dict[str, Any]:
    """Build ``home`` with the code of ``checkout``; the stage timings and the timed progress events."""
    sys.path.insert(0, str(checkout))
    from core.config import Settings
    from liftboard import build as build_module

    assert Path(build_module.__file__).resolve().is_relative_to(checkout.resolve()), build_module.__file__
    events: list[tuple[float, float, str, int, int]] = []
    started, cpu = time.perf_counter(), time.process_time()

    def progress(description: str, done: int, total: int) -> None:
        events.append((time.perf_counter() - started, time.process_time() - cpu, description, done, total))

    fields = {field.name for field in dataclasses.fields(build_module.BuildConfig)}
    options = {"parallel_matching": False} if inline and "parallel_matching" in fields else {}
    result = build_module.build(
        Settings.from_env(home=home), progress=progress, config=build_module.BuildConfig(**options)
    )
    return {
        "timings": dict(result.timings),
        "rows": sum(result.row_counts.values()),
        "events": events,
        "inline_supported": "parallel_matching" in fields,
    }


# ------------------------------------------------------------------------------------------------
# In the parent
# ------------------------------------------------------------------------------------------------


def _run_child(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=cwd, env=env)
    output = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed (exit {os.waitstatus_to_exitcode(status)}):\n{output}")
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 1024**2, 2),
        "load_before": [round(x, 1) for x in load_before],
        "load_after": [round(x, 1) for x in os.getloadavg()],
        "output": output,
    }


def ensure_home(checkout: Path, home: Path, scale: str) -> None:
    """Generate the marketplace into ``home`` with ``checkout``'s code unless a previous run did."""
    marker = home / f".bench-{scale}-complete"
    if marker.exists():
        return
    shutil.rmtree(home, ignore_errors=True)
    script = (
        f"import sys; sys.path.insert(0, {str(checkout)!r})\n"
        "from core.config import Settings\nfrom datastore.db import upgrade_db\nfrom sim import simulate\n"
        f"settings = Settings.from_env(home={str(home)!r})\nupgrade_db(settings)\n"
        f"simulate.generate({scale!r}, 42, settings)\n"
    )
    print(f"generating {scale} into {home} with {checkout} …", flush=True)
    _run_child([sys.executable, "-c", script], cwd=checkout)
    marker.touch()


def measure_build(label: str, checkout: Path, home: Path, inline: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--run", str(checkout), "--home", str(home)]
    record = _run_child(command + (["--inline"] if inline else []), cwd=checkout)
    result = json.loads(record.pop("output").strip().splitlines()[-1])
    return {"label": label, "mode": "inline" if inline else "as built", **record, **result}


def stage_cpu(run: dict[str, Any]) -> dict[str, float]:
    """Each stage's CPU seconds from the progress events of an inline run (begin → end of the stage)."""
    events = run["events"]
    cpu: dict[str, float] = {}
    for stage in run["timings"]:
        begin = next(
            (i for i, e in enumerate(events) if e[2] == stage or e[2].startswith(f"{stage} (")), None
        )
        if begin is None:
            continue
        end = next(
            (
                i
                for i, e in enumerate(events)
                if i > begin and (e[2] == stage or e[2].startswith(f"{stage} done in"))
            ),
            None,
        )
        if end is not None:
            cpu[stage] = events[end][1] - events[begin][1]
    return cpu


def step_times(run: dict[str, Any], stage: str) -> list[tuple[str, float, float]]:
    """(step, wall s, CPU s) of each step of ``stage`` in an inline run, from the previous event."""
    rows = []
    events = run["events"]
    for previous, event in zip(events, events[1:], strict=False):
        if event[2].startswith(f"{stage} ") and not event[2].startswith(f"{stage} done"):
            text = event[2].split(": ", 1)[1] if ": " in event[2] else event[2]
            rows.append((text.split(":")[0], event[0] - previous[0], event[1] - previous[1]))
    return rows


def first_run(scale: str, port: int) -> dict[str, Any]:
    """``make run`` on a new home until the app answers; the lines it printed, with their times."""
    home = Path(f"/tmp/lb-first-run-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    log = home.with_suffix(".log")
    env = {**os.environ, "LIFTBOARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("LIFTBOARD_DATABASE_URL", None)
    command = ["make", "-o", ".venv/.installed", "run", f"SCALE={scale}", f"PORT={port}"]
    load_before = os.getloadavg()
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        serving = None
        try:
            assert process.stdout is not None
            os.set_blocking(process.stdout.fileno(), False)
            while serving is None and process.poll() is None:
                for line in iter(process.stdout.readline, ""):
                    lines.append((time.perf_counter() - started, line.rstrip()))
                    handle.write(line)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            serving = time.perf_counter() - started
                except OSError:
                    time.sleep(0.5)
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # make, the server and its children: our own session
            process.wait(timeout=30)
    shutil.rmtree(home, ignore_errors=True)
    if serving is None:
        raise RuntimeError(f"make run exited before serving (code {process.returncode}); see {log}")
    return {
        "command": " ".join(command),
        "serving_after_s": round(serving, 1),
        "load_before": [round(x, 1) for x in load_before],
        "load_after": [round(x, 1) for x in os.getloadavg()],
        "lines": [(round(t, 1), text) for t, text in lines if text.startswith("==>") or "published" in text],
    }


def _table(runs: list[dict[str, Any]]) -> str:
    stages = list(dict.fromkeys(stage for run in reversed(runs) for stage in run["timings"]))
    head = "| stage | " + " | ".join(f"{run['label']} {run['mode']}" for run in runs) + " |"
    lines = [head, "| --- |" + " ---: |" * len(runs)]
    cpus = [stage_cpu(run) if run["mode"] == "inline" else {} for run in runs]
    for stage in stages:
        cells = []
        for run, cpu in zip(runs, cpus, strict=True):
            wall = run["timings"].get(stage)
            cell = "—" if wall is None else f"{wall:.1f}"
            if stage in cpu:
                cell += f" ({cpu[stage]:.1f})"
            cells.append(cell)
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append(
        "| **whole build: wall (CPU)** | "
        + " | ".join(f"**{run['wall_s']:.1f}** ({run['cpu_s']:.1f})" for run in runs)
        + " |"
    )
    lines.append(
        "| load average before → after | "
        + " | ".join(f"{run['load_before'][0]} → {run['load_after'][0]}" for run in runs)
        + " |"
    )
    return "\n".join(lines)


def measure_builds(home: Path, scale: str, checkout: Path | None) -> list[dict[str, Any]]:
    """Both build modes of each checkout (``checkout`` first, as "before", then this one, "after")."""
    runs = []
    checkouts = ([("before", checkout)] if checkout else []) + [("after", ROOT)]
    for label, code in checkouts:
        ensure_home(code, home / label, scale)
        for inline in (False, True):
            run = measure_build(label, code, home / label, inline)
            if not run["inline_supported"]:
                if inline:
                    continue  # the old code has one mode: the first run was already inline
                run["mode"] = "inline"  # every stage one after the other
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "events"}), flush=True)
    return runs


def report_builds(runs: list[dict[str, Any]]) -> None:
    print("\nstage wall seconds (CPU seconds of the inline runs):\n" + _table(runs))
    for run in runs:
        steps = step_times(run, "matching")
        if run["mode"] == "inline" and steps:
            print(f"\nmatching steps, {run['label']} inline: wall s (CPU s)")
            for text, wall, cpu in steps:
                print(f"- {text}: {wall:.1f} ({cpu:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/lb_stages"))
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--checkout", type=Path, help="Another checkout to measure first (the code before).")
    parser.add_argument("--first-run", action="store_true", help="Also time `make run` on a new home.")
    parser.add_argument("--no-build", action="store_true", help="Skip the build measurements.")
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:
        print(json.dumps(run_build(args.run, args.home, args.inline)), flush=True)
        return
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    if not args.no_build:
        report_builds(measure_builds(args.home, args.scale, args.checkout))
    if args.first_run:
        print(json.dumps(first_run(args.scale, args.port), indent=1), flush=True)


if __name__ == "__main__":
    main()
