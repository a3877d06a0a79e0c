"""An S3-compatible object store on 127.0.0.1 for the tests (moto's S3 server, in a process of its own).

``LIFTBOARD_TEST_LAKE=s3`` makes every test's lake an ``s3://`` URL on it (a new prefix per test), so that
the lake suite runs against an object store as well as a local folder (`make test` runs it both ways).

The server runs in a child process, not in a thread of the test process: some deltalake calls (a
``RESTORE``, listings through its storage handler) block in Rust while holding the GIL, and a server
thread in the same interpreter then never answers them (each request timed out after minutes).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET = "liftboard-test"
KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class ObjectStore:
    """A running S3-compatible server: its endpoint and the storage options a lake needs to reach it."""

    endpoint: str
    options: dict[str, str]

    def new_lake_url(self) -> str:
        """A lake URL of its own (a fresh prefix in the test bucket)."""
        return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/lake"


def s3_client(options: dict[str, str]) -> Any:
    """A boto3 S3 client for the store that ``options`` (a lake's storage options) name."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=options["AWS_ENDPOINT_URL"],
        aws_access_key_id=options["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"],
        region_name=options["AWS_REGION"],
    )


def start_object_store() -> tuple[ObjectStore, subprocess.Popen[str]]:
    """Start the server on a free port and create the test bucket; the store and its process (stopped by
    closing its standard input, or when the test process dies)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.objectstore"],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.strip().isdigit():
        server.kill()
        stop_object_store(server)
        raise RuntimeError(f"the test object store did not start (it said {line!r})")
    endpoint = f"http://127.0.0.1:{int(line)}"
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        **KEYS,
        "AWS_ALLOW_HTTP": "true",
        # nothing else: deltalake commits with conditional writes (put-if-absent), which the server
        # enforces as S3 does; no locking provider, no AWS_S3_ALLOW_UNSAFE_RENAME (docs/architecture.md)
    }
    s3_client(options).create_bucket(Bucket=BUCKET)
    return ObjectStore(endpoint, options), server


def stop_object_store(server: subprocess.Popen[str]) -> None:
    """Stop the server process."""
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.close()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    server.stdout.close()


def _serve() -> None:
    """The child: serve S3 on a free port of 127.0.0.1, print the port, stop when stdin closes."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the test process closes it or dies
    server.stop()


if __name__ == "__main__":
    _serve()
