"""Serving the app headless for browser tests and the page benchmark: a free port, `streamlit run
app.py` on a given Liftboard home, and the flags Debian's Chromium needs in a container."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LIFTBOARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_app(
    home: Path,
    log: IO[str] | int = subprocess.DEVNULL,
    timeout: float = 60,
    environment: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """`streamlit run app.py` on ``home`` (the embedded SQLite database, whatever the environment says)
    on a free local port, with ``environment`` added to this process's; yields its URL once the port
    accepts connections, stops it on exit."""
    port = free_port()
    env = {**os.environ, **(environment or {}), "LIFTBOARD_HOME": str(Path(home).resolve())}
    env.pop("LIFTBOARD_DATABASE_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError as refused:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"streamlit exited with code {process.returncode} before serving {url}"
                    ) from refused
                time.sleep(0.3)
        else:
            raise RuntimeError(f"streamlit did not start on {url} within {timeout:.0f} s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
