"""An S3-compatible object store on 127.0.0.1 for the tests (moto's server, started in-process).

``LIFTBOARD_TEST_LAKE=s3`` makes every test's lake an ``s3://`` URL on it (a new prefix per test), so that
the lake suite runs against an object store as well as a local folder (`make test` runs it both ways).
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass

BUCKET = "liftboard-test"


@dataclass(frozen=True)
class ObjectStore:
    """A running S3-compatible server: its endpoint and the storage options a lake needs to reach it."""

    endpoint: str
    options: dict[str, str]

    def new_lake_url(self) -> str:
        """A lake URL of its own (a fresh prefix in the test bucket)."""
        return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/lake"


def start_object_store() -> tuple[ObjectStore, object]:
    """Start the server on a free port and create the test bucket; the store and the server to stop."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    keys = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, **keys).create_bucket(Bucket=BUCKET)
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        # one writer at a time is Liftboard's ingest lock: no S3 locking provider is needed (docs)
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }
    return ObjectStore(endpoint, options), server
