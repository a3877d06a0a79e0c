"""Meeting notes of a weekly review, kept beside the data as ``<home>/notes/<week>.json``.

A small JSON file per ISO week (text, who saved it, when) rather than a table: notes are free text
typed in the meeting, read with the report and written rarely, and a file needs no migration. Writes
are atomic (temporary file, then rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.config import Settings
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


_OWNER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")


def notes_path(settings: Settings, week: str, owner: str | None = None) -> Path:
    """Where the notes of ``week`` (``2026-W47``) live: ``notes/<week>.json`` for the whole marketplace's
    review, ``notes/<week>.<owner>.json`` for a merchant-success user's own (scoped) review.

    Raises:
        ReportError: ``week`` is not an ISO week label or ``owner`` not a plain name (no path can be
            smuggled in).
    """
    if not WEEK_PATTERN.match(week):
        raise ReportError(f"week {week!r} is not an ISO week like 2026-W47")
    if owner is not None and (not _OWNER.match(owner) or owner.startswith(".")):
        raise ReportError(f"notes owner {owner!r} is not a plain user name")
    return settings.home / "notes" / (f"{week}.json" if owner is None else f"{week}.{owner}.json")


def read_notes(settings: Settings, week: str, owner: str | None = None) -> MeetingNotes:
    """The saved notes of ``week`` (of ``owner``'s scoped review), or empty notes."""
    path = notes_path(settings, week, owner)
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


def save_notes(
    settings: Settings, week: str, text: str, user: str | None = None, owner: str | None = None
) -> MeetingNotes:
    """Replace the notes of ``week`` (of ``owner``'s scoped review) with ``text``, atomically.

    Raises:
        ReportError: bad week label or owner, or text longer than `MAX_NOTES_CHARS`.
    """
    path = notes_path(settings, week, owner)
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
