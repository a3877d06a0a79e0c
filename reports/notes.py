"""Meeting notes of a weekly review, kept beside the data as ``<home>/notes/<week>.json``.

A small JSON file per ISO week (text, who saved it, when) rather than a table: notes are free text
typed in the meeting, read with the report and written rarely, and a file needs no migration. Writes
are atomic (temporary file, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from liftboard.config import Settings
from reports.common import WEEK_PATTERN
from reports.model import ReportError

MAX_NOTES_CHARS = 20_000


@dataclass(frozen=True)
class MeetingNotes:
    """The notes of one week (empty text and no timestamp when none were saved)."""

    week: str
    text: str = ""
    updated_by: str | None = None
    updated_at: datetime | None = None


def notes_path(settings: Settings, week: str) -> Path:
    """Where the notes of ``week`` (``2026-W47``) live.

    Raises:
        ReportError: ``week`` is not an ISO week label (so no path can be smuggled in).
    """
    if not WEEK_PATTERN.match(week):
        raise ReportError(f"week {week!r} is not an ISO week like 2026-W47")
    return settings.home / "notes" / f"{week}.json"


def read_notes(settings: Settings, week: str) -> MeetingNotes:
    """The saved notes of ``week``, or empty notes."""
    path = notes_path(settings, week)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return MeetingNotes(week)
    updated_at = raw.get("updated_at")
    return MeetingNotes(
        week=week,
        text=str(raw.get("text", "")),
        updated_by=raw.get("updated_by"),
        updated_at=datetime.fromisoformat(updated_at) if updated_at else None,
    )


def save_notes(settings: Settings, week: str, text: str, user: str | None = None) -> MeetingNotes:
    """Replace the notes of ``week`` with ``text`` (atomically) and return what was saved.

    Raises:
        ReportError: bad week label, or text longer than `MAX_NOTES_CHARS`.
    """
    path = notes_path(settings, week)
    if len(text) > MAX_NOTES_CHARS:
        raise ReportError(f"notes are limited to {MAX_NOTES_CHARS:,} characters")
    notes = MeetingNotes(week, text, user, datetime.now(UTC).replace(microsecond=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    payload = {
        "week": week,
        "text": text,
        "updated_by": user,
        "updated_at": notes.updated_at.isoformat() if notes.updated_at else None,
    }
    temporary.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(temporary, path)
    return notes
