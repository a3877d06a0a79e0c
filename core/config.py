"""Where Liftboard keeps its files and which database it talks to.

Everything is derived from two environment variables, read when a `Settings` is built:
``LIFTBOARD_HOME`` (default ``./data``) holds the lake, quarantine, truth and the SQLite file;
``LIFTBOARD_DATABASE_URL`` (default: SQLite in ``LIFTBOARD_HOME``) names the state DB;
``LIFTBOARD_LAKE_URL`` (default: ``LIFTBOARD_HOME/lake``) may put the lake on an object store, with
``LIFTBOARD_LAKE_OPTIONS`` (JSON: the store's options, e.g. endpoint and keys).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Paths and URLs of one Liftboard installation."""

    home: Path
    database_url: str
    lake_location: str | None = None  # None: the ``lake`` folder in ``home``
    lake_storage_options: tuple[tuple[str, str], ...] = ()
    lake_run: str | None = None  # read the lake as this ingestion run left it (None: the last one)

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
        )
