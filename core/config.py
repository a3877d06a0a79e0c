"""Where Liftboard keeps its files and which database it talks to.

Everything is derived from two environment variables, read when a `Settings` is built:
``LIFTBOARD_HOME`` (default ``./data``) holds the lake, quarantine, truth and the SQLite file;
``LIFTBOARD_DATABASE_URL`` (default: SQLite in ``LIFTBOARD_HOME``) names the state DB;
``LIFTBOARD_LAKE_URL`` (default: ``LIFTBOARD_HOME/lake``) may put the lake on an object store, with
``LIFTBOARD_LAKE_OPTIONS`` (JSON: the store's options, e.g. region, endpoint and keys; docs/architecture.md,
"The lake on an object store", says which and why no unsafe-rename setting is needed).

Alert delivery (`AlertDelivery`, docs/alerts.md) reads ``LIFTBOARD_ALERT_WEBHOOK_URL``,
``LIFTBOARD_SMTP_HOST``, ``LIFTBOARD_SMTP_PORT`` (default 25), ``LIFTBOARD_SMTP_USER``,
``LIFTBOARD_SMTP_PASSWORD``, ``LIFTBOARD_SMTP_STARTTLS`` (1/0), ``LIFTBOARD_ALERT_EMAIL_FROM``,
``LIFTBOARD_ALERT_EMAIL_TO`` (comma-separated) and ``LIFTBOARD_ALERT_MAX_PER_HOUR`` (per channel,
default 20). A channel without its settings is off.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AlertDelivery:
    """Where alerts go: a webhook (HTTP POST of JSON) and/or email over SMTP; each off when unset."""

    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    email_from: str = "liftboard@localhost"
    email_to: tuple[str, ...] = ()
    max_per_hour: int = 20  # deliveries per channel per hour; the rest wait for a later evaluation
    timeout_s: float = 10.0

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host and self.email_to)

    @classmethod
    def from_env(cls) -> AlertDelivery:
        """The delivery settings from the ``LIFTBOARD_ALERT_*`` and ``LIFTBOARD_SMTP_*`` variables."""
        env = os.environ
        recipients = tuple(
            a.strip() for a in (env.get("LIFTBOARD_ALERT_EMAIL_TO") or "").split(",") if a.strip()
        )
        return cls(
            webhook_url=env.get("LIFTBOARD_ALERT_WEBHOOK_URL") or None,
            smtp_host=env.get("LIFTBOARD_SMTP_HOST") or None,
            smtp_port=int(env.get("LIFTBOARD_SMTP_PORT") or 25),
            smtp_user=env.get("LIFTBOARD_SMTP_USER") or None,
            smtp_password=env.get("LIFTBOARD_SMTP_PASSWORD") or None,
            smtp_starttls=(env.get("LIFTBOARD_SMTP_STARTTLS") or "0").lower() in ("1", "true", "yes"),
            email_from=env.get("LIFTBOARD_ALERT_EMAIL_FROM") or "liftboard@localhost",
            email_to=recipients,
            max_per_hour=int(env.get("LIFTBOARD_ALERT_MAX_PER_HOUR") or 20),
        )


@dataclass(frozen=True)
class Settings:
    """Paths and URLs of one Liftboard installation."""

    home: Path
    database_url: str
    lake_location: str | None = None  # None: the ``lake`` folder in ``home``
    lake_storage_options: tuple[tuple[str, str], ...] = ()
    lake_run: str | None = None  # read the lake as this ingestion run left it (None: the last one)
    alert_delivery: AlertDelivery = field(default_factory=AlertDelivery)
    live_refresh_s: int = 30  # how often the app's "today" figures look for a new lake commit

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def lake_url(self) -> str:
        """The lake's root: a local path or an object-store URL."""
        return self.lake_location or str(self.lake)

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def truth(self) -> Path:
        return self.home / "truth"

    @property
    def incoming(self) -> Path:
        return self.home / "incoming"

    @property
    def snapshots(self) -> Path:
        return self.home / "snapshots"

    @classmethod
    def from_env(cls, home: str | Path | None = None, database_url: str | None = None) -> Settings:
        """Settings from arguments, falling back to the environment, then to defaults."""
        home_path = Path(home or os.environ.get("LIFTBOARD_HOME") or "data").resolve()
        url = (
            database_url
            or os.environ.get("LIFTBOARD_DATABASE_URL")
            or f"sqlite:///{home_path / 'liftboard.db'}"
        )
        options = json.loads(os.environ.get("LIFTBOARD_LAKE_OPTIONS") or "{}")
        return cls(
            home=home_path,
            database_url=url,
            lake_location=os.environ.get("LIFTBOARD_LAKE_URL") or None,
            lake_storage_options=tuple(sorted((str(k), str(v)) for k, v in options.items())),
            alert_delivery=AlertDelivery.from_env(),
            live_refresh_s=max(1, int(os.environ.get("LIFTBOARD_LIVE_REFRESH_S") or 30)),
        )
