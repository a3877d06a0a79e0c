"""The bad-input corpus: every file of ``corpus/`` ingested on its own gets the counts its expectations state.

Each file carries one kind of defect (broken lines, ragged rows, blank lines, bad cells, rules across columns
and tables, whole-file problems); ``corpus/expectations.toml`` says what must happen to its rows.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.config import Settings
from datastore.ingest import IngestError, TableLoad, ingest_files, table_for_file
from datastore.status import quarantine_files
from tests.builders import NOW
from tests.datastore.ingest_support import assert_counts_add_up, ledger, load_valid

CORPUS = Path(__file__).with_name("corpus")
EXPECTATIONS: dict[str, dict[str, Any]] = tomllib.loads(
    (CORPUS / "expectations.toml").read_text(encoding="utf-8")
)


def test_every_corpus_file_has_expectations() -> None:
    files = {path.name for path in CORPUS.iterdir() if path.name != "expectations.toml"}
    assert files == set(EXPECTATIONS)


def _place(name: str, expected: dict[str, Any], directory: Path) -> Path:
    """Copy a corpus file into ``directory`` (under its Latin-1 name when the expectations ask for one)."""
    directory.mkdir(parents=True, exist_ok=True)
    if "name_latin1" in expected:
        target = Path(os.fsdecode(os.fsencode(directory) + b"/" + expected["name_latin1"].encode("latin-1")))
    else:
        target = directory / name
    shutil.copyfile(CORPUS / name, target)
    return target


def _ingest(settings: Settings, name: str, directory: Path) -> tuple[Path, list[Path]]:
    expected = EXPECTATIONS[name]
    path = _place(name, expected, directory)
    also = [_place(other, EXPECTATIONS[other], directory) for other in expected.get("also", [])]
    return path, [*also, path]


def _load_of(loads: tuple[TableLoad, ...], name: str) -> TableLoad:
    table = table_for_file(Path(name))
    return [load for load in loads if load.table == table][-1]


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_corpus_file(sqlite_settings: Settings, tmp_path: Path, name: str) -> None:
    expected = EXPECTATIONS[name]
    load_valid(sqlite_settings, tmp_path / "base")
    path, files = _ingest(sqlite_settings, name, tmp_path / "in")

    if "error" in expected:
        with pytest.raises(IngestError, match=re.escape(expected["error"])):
            ingest_files(files, sqlite_settings, now=NOW)
        assert ledger(sqlite_settings)[-1].status == "failed"
        return
    report = ingest_files(files, sqlite_settings, now=NOW)

    load = _load_of(report.loads, name)
    assert (load.rows_loaded, load.rows_quarantined, load.rows_duplicate) == (
        expected["loaded"],
        expected["quarantined"],
        expected["duplicate"],
    )
    assert_counts_add_up(report)
    if not expected["quarantined"]:
        assert load.quarantine_path is None
        return
    assert load.quarantine_path is not None
    bad = pl.read_parquet(load.quarantine_path)
    assert bad["_line"].to_list() == expected["lines"]
    for reason in expected["reasons"]:
        assert any(reason in text for text in bad["_reason"]), (reason, bad["_reason"].to_list())
    for raw in expected.get("raw", []):
        assert any(raw in text for text in bad["_raw"].drop_nulls()), (raw, bad["_raw"].to_list())


def test_a_file_name_that_is_not_utf8_is_recorded_safely(sqlite_settings: Settings, tmp_path: Path) -> None:
    name = "orders-latin1-name.csv"
    path, files = _ingest(sqlite_settings, name, tmp_path / "in")
    path.write_bytes(b"order_id\n")  # a whole-file problem, so the message names the file

    with pytest.raises(IngestError, match=r"orders-caf\\xe9\.csv: orders: missing column"):
        ingest_files(files, sqlite_settings, now=NOW)

    assert "orders-caf\\xe9.csv" in ledger(sqlite_settings)[-1].error


@pytest.mark.parametrize(
    "name",
    ["orders-csv-ragged-short.csv", "orders-ndjson-broken-line.ndjson", "orders-merchant-not-owner.csv"],
)
def test_a_retry_of_the_same_input_keeps_one_quarantine_file(
    sqlite_settings: Settings, tmp_path: Path, name: str
) -> None:
    load_valid(sqlite_settings, tmp_path / "base")
    path, files = _ingest(sqlite_settings, name, tmp_path / "in")
    first = _load_of(ingest_files(files, sqlite_settings, now=NOW).loads, name)
    written = quarantine_files(sqlite_settings)

    again = _load_of(ingest_files(files, sqlite_settings, now=NOW).loads, name)

    assert (again.rows_quarantined, again.quarantine_path) == (first.rows_quarantined, first.quarantine_path)
    assert quarantine_files(sqlite_settings)["file"].to_list() == written["file"].to_list()
    # the same input with other rows is another input: its quarantine is kept apart
    path.write_bytes(path.read_bytes() + path.read_bytes().splitlines(keepends=True)[-1])
    changed = _load_of(ingest_files(files, sqlite_settings, now=NOW).loads, name)
    assert changed.quarantine_path != first.quarantine_path
    assert quarantine_files(sqlite_settings).height == written.height + 1


@pytest.mark.parametrize(
    "name",
    ["creators-multiline-bio.csv", "orders-csv-unclosed-quote.csv", "orders-ndjson-broken-line.ndjson"],
)
def test_files_read_record_by_record_give_the_same_counts_in_small_batches(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr("datastore.ingest._FALLBACK_BATCH", 1)
    expected = EXPECTATIONS[name]
    load_valid(sqlite_settings, tmp_path / "base")
    _, files = _ingest(sqlite_settings, name, tmp_path / "in")

    load = _load_of(ingest_files(files, sqlite_settings, now=NOW).loads, name)

    assert (load.rows_loaded, load.rows_quarantined) == (expected["loaded"], expected["quarantined"])
