"""Independent readers of produced files: poppler for PDF, openpyxl for Excel, python-pptx for slides."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from openpyxl import load_workbook
from openpyxl.workbook import Workbook
from PIL import Image
from pptx import Presentation


def require_poppler() -> None:
    missing = [tool for tool in ("pdftoppm", "pdftotext", "pdfinfo") if shutil.which(tool) is None]
    assert not missing, f"poppler-utils missing ({', '.join(missing)}): apt-get install -y poppler-utils"


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def pdf_text_pages(path: Path) -> list[str]:
    """The text of every page (pdftotext, layout kept)."""
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = text.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def pdf_images(path: Path, out: Path, dpi: int = 30) -> list[np.ndarray]:
    """Every page rendered by pdftoppm, as grey-level arrays."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-png", str(path), str(out / "page")], check=True)
    return [np.asarray(Image.open(p)) for p in sorted(out.glob("page-*.png"))]


def workbook(data: bytes) -> Workbook:
    return load_workbook(io.BytesIO(data))


def deck_texts(data: bytes) -> list[str]:
    """All text of each slide (text boxes and table cells), one string per slide."""
    prs = Presentation(io.BytesIO(data))
    slides = []
    for slide in prs.slides:
        parts = []
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
            if shape.has_table:
                for row in shape.table.rows:
                    parts.extend(cell.text for cell in row.cells)
        slides.append("\n".join(parts))
    return slides
