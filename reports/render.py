"""One entry point for every format: render a report to bytes, or write several formats to a folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from reports.model import Report, ReportError

FORMATS: tuple[str, ...] = ("pdf", "pptx", "xlsx", "html")
MIME_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
}


def _renderer(fmt: str) -> Callable[[Report], bytes]:
    if fmt == "pdf":
        from reports.render_pdf import render_pdf

        return render_pdf
    if fmt == "pptx":
        from reports.render_pptx import render_pptx

        return render_pptx
    if fmt == "xlsx":
        from reports.render_xlsx import render_xlsx

        return render_xlsx
    if fmt == "html":
        from reports.render_html import render_html

        return render_html
    raise ReportError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")


def parse_formats(text: str) -> tuple[str, ...]:
    """``"pdf,xlsx"`` → ``("pdf", "xlsx")`` (duplicates dropped, order kept).

    Raises:
        ReportError: empty, or an unknown format.
    """
    formats = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    if not formats:
        raise ReportError(f"no format given; use one or more of {', '.join(FORMATS)}")
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown:
        raise ReportError(f"unknown format(s) {', '.join(unknown)}; use {', '.join(FORMATS)}")
    return formats


def render(report: Report, fmt: str) -> bytes:
    """``report`` as the bytes of a ``fmt`` file (pdf, pptx, xlsx, html)."""
    return _renderer(fmt)(report)


def write_report(report: Report, formats: Sequence[str], out_dir: Path) -> list[Path]:
    """Write ``report`` in each format to ``out_dir/<slug>.<fmt>`` (atomically); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        data = render(report, fmt)
        path = out_dir / f"{report.slug}.{fmt}"
        temporary = out_dir / f".{path.name}.{uuid.uuid4().hex}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, path)
        written.append(path)
    return written
