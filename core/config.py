"""Where Liftboard keeps its files and which database it talks to.

Everything is derived from two environment variables, read when a `Settings` is built:
``LIFTBOARD_HOME`` (default ``./data``) holds the lake, quarantine, truth and the SQLite file;
``LIFTBOARD_DATABASE_URL`` (default: SQLite in ``LIFTBOARD_HOME``) names the state DB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Paths and URLs of one Liftboard installation."""

    home: Path
    database_url: str

    @property
    def lake(self) -> Path:
        return self.home / "lake"

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
        return cls(home=home_path, database_url=url)
