"""Benchmark: the weekly review of the ``demo`` marketplace in all four formats (target < 60 s).

Measures, in one fresh child process (so imports count, as they do for a cron job), the assembly of
the review and each renderer; then the same through the CLI (`liftboard report weekly`) as wall time
of a subprocess. The home must hold a built ``demo`` marketplace (``liftboard demo`` + ``liftboard
build``); it is only read.

Usage::

    .venv/bin/python bench/bench_reports.py [--home /tmp/lb_demo] [--week 2026-W47]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
started = time.perf_counter()
from core.config import Settings
from reports.render import FORMATS, render
from reports.weekly import weekly_review
imported = time.perf_counter()
settings = Settings.from_env(home=sys.argv[1])
report = weekly_review(settings, sys.argv[2])
timings = {"imports": imported - started, "assemble": time.perf_counter() - imported}
sizes = {}
for fmt in FORMATS:
    t = time.perf_counter()
    data = render(report, fmt)
    timings[fmt] = time.perf_counter() - t
    sizes[fmt] = len(data)
timings["total"] = time.perf_counter() - started
print(json.dumps({"timings": timings, "sizes": sizes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default="/tmp/lb_demo")
    parser.add_argument("--week", default="2026-W47")
    args = parser.parse_args()
    env = {**os.environ, "LIFTBOARD_HOME": args.home, "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, args.home, args.week],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        cli = subprocess.run(
            [
                str(Path(sys.executable).parent / "liftboard"),
                "report",
                "weekly",
                "--week",
                args.week,
                "--format",
                "pdf,pptx,xlsx,html",
                "--out",
                out,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - started
        files = sorted(p.name for p in Path(out).iterdir())
    if cli.returncode != 0:
        raise SystemExit(f"CLI failed ({cli.returncode}): {cli.stderr or cli.stdout}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("in-process:")
    for name, seconds in measured["timings"].items():
        size = measured["sizes"].get(name)
        print(f"  {name:9s} {seconds:6.1f} s" + (f"  ({size / 1e6:.2f} MB)" if size else ""))
    verdict = "OK" if wall < 60 else "TOO SLOW"
    print(
        f"CLI (all four formats, wall time): {wall:.1f} s -> {verdict} (target < 60 s); "
        f"wrote {', '.join(files)}"
    )


if __name__ == "__main__":
    main()
