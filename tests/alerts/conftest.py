"""Fixtures of the alert tests: breach rows, and a local webhook receiver and SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import polars as pl
import pytest
from aiosmtpd.controller import Controller

from alerts.detect import BREACH_SCHEMA


def breach(
    rule_id: str,
    entity_kind: str,
    entity_id: str,
    window_end: datetime,
    *,
    merchant_id: str | None = None,
    observed: float = 0.5,
    expected: float = 0.1,
    low: float = 0.0,
    high: float = 0.25,
    unit: str = "ratio",
    hours: int = 24,
) -> dict[str, Any]:
    """One breach row as `alerts.detect.rule_breaches` returns it."""
    return {
        "rule_id": rule_id,
        "entity_kind": entity_kind,
        "entity_id": entity_id,
        "merchant_id": merchant_id,
        "window_start": window_end - timedelta(hours=hours),
        "window_end": window_end,
        "observed": observed,
        "expected": expected,
        "expected_low": low,
        "expected_high": high,
        "unit": unit,
        "volume": 120.0,
        "severity": "warning",
    }


def breaches(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=BREACH_SCHEMA, orient="row") if rows else BREACH_SCHEMA.to_frame()


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers["Content-Length"])
            hook.received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[str, list[str], str]] = field(default_factory=list)  # from, to, content

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd)
        content = envelope.content.decode("utf8", errors="replace")
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""
    mailbox = Mailbox(port=_free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()
