"""Time to first full render of every app page in a real browser, warm cache, at `demo` scale.

Starts ``streamlit run app.py`` (headless, free port) on ``--home`` (a built Liftboard home; the demo
users must exist: ``liftboard users seed-demo``), signs in as ``ops`` in Debian's Chromium driven by
Playwright, visits every page once to warm the caches, then measures each page ``--repeat`` times:
from the click on its navigation link to the moment the page's own title is shown, the script run has
finished and everything is drawn (no running-status widget, no skeletons, every Plotly chart has its SVG).
Prints a Markdown
table (median and worst per page) for ``bench/RESULTS.md``.

    .venv/bin/python bench/bench_pages.py --home /tmp/lb_demo [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from liftboard.headless import CHROMIUM, CHROMIUM_ARGS, serve_app

PAGES = [
    ("overview", "Overview"),
    ("movers", "Movers"),
    ("cohorts", "Cohorts"),
    ("weekly_review", "Weekly review"),
    ("creators", "Creators"),
    ("merchants", "Merchants"),
    ("products", "Products & matching"),
    ("strategy_board", "Strategy board"),
    ("models", "Models"),
    ("data", "Data"),
]
RENDERED = """(title) => {
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  const plots = document.querySelectorAll('[data-testid="stPlotlyChart"]');
  for (const p of plots) { if (!p.querySelector('.main-svg')) return false; }
  const heading = document.querySelector('[data-testid="stMain"] h1');
  return !!heading && heading.textContent.trim().startsWith(title);
}"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", required=True, help="A built LIFTBOARD_HOME (demo scale).")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {}
    with serve_app(Path(args.home)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url + "/")
        page.get_by_role("textbox", name="Username").fill("ops")
        page.get_by_role("textbox", name="Password").fill("ops")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=120_000)
        page.wait_for_function(RENDERED, arg="Overview", timeout=120_000)

        def visit(title: str) -> float:
            link = page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first
            started = time.perf_counter()
            link.click()
            page.wait_for_function(RENDERED, arg=title, timeout=120_000, polling=25)
            return time.perf_counter() - started

        for _, title in PAGES:  # warm the caches
            visit(title)
        for _ in range(args.repeat):
            for name, title in PAGES:
                results.setdefault(name, []).append(visit(title))
        errors = page.locator('[data-testid="stException"]').count()
        browser.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}; exceptions seen: {errors}"
    )
    print("\n| page | median | worst | runs | target ≤ 1.5 s |\n| --- | ---: | ---: | ---: | --- |")
    for name, _ in PAGES:
        times = results[name]
        median = statistics.median(times)
        print(
            f"| {name} | {median:.2f} s | {max(times):.2f} s | {len(times)} "
            f"| {'✔' if median <= 1.5 else '✘'} |"
        )


if __name__ == "__main__":
    main()
