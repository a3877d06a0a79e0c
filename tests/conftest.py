"""Shared fixtures: an isolated Liftboard home, and a state DB on SQLite or on a fresh PostgreSQL database.

The code never migrates a state DB on its own (``require_current`` refuses one that is not at head), so
the fixtures that hand out a state DB migrate it explicitly, as ``liftboard db upgrade`` does;
``empty_settings`` is the same database before that.

PostgreSQL tests create their own database on the server named by ``LIFTBOARD_TEST_PG_URL`` (default: the
local server) and drop it afterwards. If the server is unreachable they fail, never skip: CI relies on it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.config import Settings
from datastore import db
from tests.objectstore import ObjectStore, start_object_store, stop_object_store

PG_URL = os.environ.get("LIFTBOARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
LAKE_BACKEND = os.environ.get("LIFTBOARD_TEST_LAKE", "local")
"""Where the tests' lakes live: ``local`` folders (default) or ``s3``, an S3-compatible server the tests
start on 127.0.0.1 (tests/objectstore.py)."""
if LAKE_BACKEND not in ("local", "s3"):
    raise ValueError(f"LIFTBOARD_TEST_LAKE must be local or s3, not {LAKE_BACKEND!r}")


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore | None]:
    """The tests' S3-compatible server when ``LIFTBOARD_TEST_LAKE=s3`` (one per test process), else None."""
    if LAKE_BACKEND != "s3":
        yield None
        return
    store, server = start_object_store()
    yield store
    stop_object_store(server)


def _set_lake(patch: pytest.MonkeyPatch, store: ObjectStore | None) -> None:
    if store is None:
        patch.delenv("LIFTBOARD_LAKE_URL", raising=False)
        patch.delenv("LIFTBOARD_LAKE_OPTIONS", raising=False)
    else:
        patch.setenv("LIFTBOARD_LAKE_URL", store.new_lake_url())
        patch.setenv("LIFTBOARD_LAKE_OPTIONS", json.dumps(store.options))


@pytest.fixture(autouse=True, scope="session")
def _isolated_session_environment(
    tmp_path_factory: pytest.TempPathFactory, object_store: ObjectStore | None
) -> Iterator[None]:
    """Module- and session-scoped fixtures that read the environment never touch ./data either."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIFTBOARD_HOME", str(tmp_path_factory.mktemp("session-home")))
        patch.delenv("LIFTBOARD_DATABASE_URL", raising=False)
        patch.delenv("LIFTBOARD_FAULT_INJECT", raising=False)
        _set_lake(patch, object_store)
        yield


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, object_store: ObjectStore | None
) -> Iterator[None]:
    """No test reads or writes the developer's ./data, or inherits a fault-injection setting; its lake is
    a folder of its own, or a prefix of its own on the test object store. On the object store, a test that
    left a lake folder in its home wrote to a local path after all: it fails."""
    monkeypatch.setenv("LIFTBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIFTBOARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("LIFTBOARD_FAULT_INJECT", raising=False)
    _set_lake(monkeypatch, object_store)
    yield
    if object_store is not None:
        local = Settings.from_env(home=tmp_path / "home").lake
        assert not local.exists(), f"LIFTBOARD_TEST_LAKE=s3, yet the test wrote a local lake in {local}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh, uniquely named PostgreSQL database, dropped after the test."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"lb_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        yield url
        db.dispose_engine(Settings(home=Path("/"), database_url=url))
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A Liftboard home in ``tmp_path`` with its default SQLite state DB, migrated to the newest schema."""
    settings = Settings.from_env(home=tmp_path / "home")
    db.upgrade_db(settings)
    return settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """A Liftboard home in ``tmp_path``; the state DB is SQLite or a fresh PostgreSQL database, not migrated.

    The environment points at the same place, so code that calls ``Settings.from_env()`` agrees.
    """
    home = tmp_path / "home"
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("LIFTBOARD_DATABASE_URL", url)
        return Settings.from_env(home=home, database_url=url)
    return Settings.from_env(home=home)


@pytest.fixture
def settings(empty_settings: Settings) -> Settings:
    """``empty_settings`` with the state DB migrated to the newest schema (as `liftboard db upgrade` does)."""
    db.upgrade_db(empty_settings)
    return empty_settings


REDIS_READY = "Ready to accept connections"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real ``redis-server`` of this test alone: a free port, its files in ``tmp_path``, nothing saved
    (``--save "" --appendonly no``), stopped afterwards. Never the machine's own Redis on 6379. The tests
    that use it fail (never skip) when the binary is missing: CI installs Debian's ``redis-server``."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed (Debian: apt-get install redis-server); the stream tests need it"
        )
    directory = tmp_path / "redis"
    directory.mkdir()
    for _attempt in range(3):  # another process may take the free port between the probe and the start
        port = _free_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(directory), "--protected-mode", "yes"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert server.stdout is not None
        output = []
        for line in server.stdout:  # the server says when it accepts connections (or exits)
            output.append(line)
            if REDIS_READY in line:
                break
        if server.poll() is None:
            break
        server.wait()
    else:
        pytest.fail(f"redis-server did not start: {''.join(output)[-2000:]}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()
