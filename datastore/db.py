"""The state DB: dimension tables, the ingestion ledger, and how to reach them.

The tables are declared here with SQLAlchemy Core and created by Alembic migrations in
``datastore/migrations`` (never by ``metadata.create_all``), so a database that holds users' work is only
ever changed by an explicit, reviewed migration. Migrations run only on purpose: ``upgrade_db`` (behind
``liftboard db upgrade`` and ``liftboard demo``) brings a database to the newest schema under a lock, and
every other path calls ``require_current``, which refuses a database that is not at this code's head.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core.config import Settings
from core.schema import DIMENSION_TABLES, TABLES, TableSpec, table_spec

metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

RUN_STATUSES = ("running", "committed", "failed")

creators = sa.Table(
    "creators",
    metadata,
    sa.Column("creator_id", sa.String(64), primary_key=True),
    sa.Column("handle", sa.Text, nullable=False),
    sa.Column("joined_on", sa.Date, nullable=False),
    sa.Column("region", sa.Text, nullable=False),
    sa.Column("followers", sa.BigInteger, nullable=False),
    sa.Column("primary_category", sa.Text, nullable=False),
    sa.Column("bio", sa.Text, nullable=True),
)

merchants = sa.Table(
    "merchants",
    metadata,
    sa.Column("merchant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("joined_on", sa.Date, nullable=False),
    sa.Column("region", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("rating", sa.Double, nullable=False),
    sa.Column("ships_in_days", sa.Double, nullable=False),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("product_id", sa.String(64), primary_key=True),
    sa.Column(
        "merchant_id", sa.String(64), sa.ForeignKey("merchants.merchant_id"), nullable=False, index=True
    ),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("commission_rate", sa.Double, nullable=False),
    sa.Column("listed_on", sa.Date, nullable=False),
)

showcase = sa.Table(
    "showcase",
    metadata,
    sa.Column("creator_id", sa.String(64), sa.ForeignKey("creators.creator_id"), primary_key=True),
    sa.Column(
        "product_id", sa.String(64), sa.ForeignKey("products.product_id"), primary_key=True, index=True
    ),
    sa.Column("added_on", sa.Date, primary_key=True),
    sa.Column("removed_on", sa.Date, nullable=True),
)

# entity_id points at creators or merchants depending on entity_kind: ingest enforces it (ForeignKey.when).
interventions = sa.Table(
    "interventions",
    metadata,
    sa.Column("intervention_id", sa.String(64), primary_key=True),
    sa.Column("entity_kind", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False, index=True),
    sa.Column("strategy", sa.String(64), nullable=False),
    sa.Column("assigned_on", sa.Date, nullable=False),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("assignment", sa.String(16), nullable=False),
)

ingestion_runs = sa.Table(
    "ingestion_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("user", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # JSON {table: Delta version} of every lake table as this run left them (the readers' pin)
    sa.Column("lake_versions", sa.Text, nullable=True),
    sa.CheckConstraint("status IN ('running', 'committed', 'failed')", name="status"),
)

ingestion_loads = sa.Table(
    "ingestion_loads",
    metadata,
    sa.Column("load_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("ingestion_runs.run_id"), nullable=False, index=True),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("file", sa.Text, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("rows_duplicate", sa.BigInteger, nullable=False),
    sa.Column("rows_updated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("quarantine_path", sa.Text, nullable=True),
    sa.CheckConstraint(
        "rows_read = rows_loaded + rows_updated + rows_quarantined + rows_duplicate", name="rows_add_up"
    ),
)

ALERT_STATUSES = ("open", "acknowledged", "resolved")
DELIVERY_OUTCOMES = ("sent", "failed")

# One row per alert: a rule's condition holding for one entity from when it opened until it resolved.
# ``dedup_key`` (rule:entity_kind:entity_id) finds the alert a new evaluation updates instead of duplicating;
# ``merchant_id`` is what row-level scoping filters on (null for platform, region and creator alerts).
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.String(255), nullable=False, index=True),
    sa.Column("rule_id", sa.String(64), nullable=False),
    sa.Column("entity_kind", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("merchant_id", sa.String(64), nullable=True, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),  # JSON: the last evaluation's window and values
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("observed", sa.Double, nullable=True),
    sa.Column("expected", sa.Double, nullable=True),
    sa.Column("expected_low", sa.Double, nullable=True),
    sa.Column("expected_high", sa.Double, nullable=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_by", sa.Text, nullable=True),  # a user name, or "condition cleared"
    sa.Column("reopened", sa.Integer, nullable=False, server_default="0"),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("notes", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="status"),
)

# Every attempt to deliver an alert on a channel (webhook, email): one "sent" per alert and channel.
alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("delivery_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.alert_id"), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.CheckConstraint("outcome IN ('sent', 'failed')", name="outcome"),
)

DIMENSION_SQL_TABLES: dict[str, sa.Table] = {name: metadata.tables[name] for name in DIMENSION_TABLES}

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_current: set[str] = set()
"""URLs whose schema was found at head by this process (``require_current`` checks each once)."""

UPGRADE_LOCK_KEY = 0x4C696674_626F6172
"""PostgreSQL advisory-lock key of schema upgrades (the bytes of "Liftboar"): one migrator at a time."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _make_sqlite_dir(url: sa.URL) -> None:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def engine_for(settings: Settings) -> Engine:
    """The engine of the state DB named by ``settings`` (one per URL per process).

    SQLite gets foreign keys enforced and a busy timeout; its directory is created if missing.
    """
    url = settings.database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = sa.make_url(url)
            if parsed.get_backend_name() == "sqlite":
                _make_sqlite_dir(parsed)
                engine = sa.create_engine(url)
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def dispose_engine(settings: Settings) -> None:
    """Close and forget the cached engine of ``settings`` (tests dropping a database use it)."""
    with _engines_lock:
        engine = _engines.pop(settings.database_url, None)
        _current.discard(settings.database_url)
    if engine is not None:
        engine.dispose()


def alembic_config(settings: Settings | None = None) -> Any:
    """An Alembic ``Config`` for the migrations shipped inside the ``datastore`` package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "datastore:migrations")
    if settings is not None:
        config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


class DatabaseNotCurrent(RuntimeError):
    """The state DB is not at the schema this code needs (empty, behind, or upgraded by a newer version)."""

    def __init__(self, url: str, revision: str | None, head: str, *, known: bool = True) -> None:
        self.url = url
        self.revision = revision
        self.head = head
        if revision is None:
            message = (
                f"the state DB {url} has no Liftboard schema yet (this Liftboard needs revision {head}): "
                "run `liftboard db upgrade`"
            )
        elif known:
            message = (
                f"the state DB {url} is at revision {revision}, this Liftboard needs {head}: "
                "run `liftboard db upgrade`"
            )
        else:
            message = (
                f"the state DB {url} is at revision {revision}, which this Liftboard does not know "
                f"(it needs {head}): a newer Liftboard has upgraded it; run that version"
            )
        super().__init__(message)


@dataclass(frozen=True)
class Upgrade:
    """What ``upgrade_db`` did: the revision before and after (equal when there was nothing to do)."""

    url: str
    before: str | None
    after: str | None


def display_url(settings: Settings) -> str:
    """The state DB's URL with any password hidden, for messages."""
    return sa.make_url(settings.database_url).render_as_string(hide_password=True)


@functools.cache
def _script_directory() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest migration shipped with this code: the revision every state DB must be at."""
    head = _script_directory().get_current_head()
    assert head is not None, "the migrations directory has no revision"
    return str(head)


def _known_revision(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return _script_directory().get_revision(revision) is not None
    except CommandError:
        return False


def _revision_of(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def database_revision(settings: Settings) -> str | None:
    """The migration revision the state DB is at, or ``None`` when it has no Liftboard schema."""
    with engine_for(settings).connect() as connection:
        return _revision_of(connection)


def require_current(settings: Settings) -> None:
    """Refuse a state DB that is not at this code's newest migration; checked once per process and URL.

    Raises:
        DatabaseNotCurrent: the DB is empty, behind (run ``liftboard db upgrade``) or ahead of this code.
    """
    url = settings.database_url
    if url in _current:
        return
    revision, head = database_revision(settings), head_revision()
    if revision != head:
        known = revision is None or _known_revision(revision)
        raise DatabaseNotCurrent(display_url(settings), revision, head, known=known)
    _current.add(url)


def _sqlite_begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_without_implicit_begin(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own; the begin hook does


@contextmanager
def _upgrade_transaction(settings: Settings) -> Iterator[Connection]:
    """One transaction that only one migrator at a time can hold, across processes.

    PostgreSQL: a transaction-scoped advisory lock, taken first and released at commit or rollback.
    SQLite: a private engine whose transactions start with ``BEGIN IMMEDIATE`` (the database's write lock,
    waited for up to the busy timeout), so the DDL is transactional too; sqlite3 would otherwise
    autocommit each DDL statement. An in-memory database is private to its engine: no lock needed.
    """
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        _make_sqlite_dir(url)
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        sa.event.listen(engine, "connect", _sqlite_without_implicit_begin)
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()
        return
    with engine_for(settings).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
        yield connection


def upgrade_db(settings: Settings, revision: str = "head") -> Upgrade:
    """Run the migrations up to ``revision`` in one locked transaction (at that revision already: no-op).

    Only ``liftboard db upgrade``, ``liftboard demo`` and what sets up a new installation (test fixtures,
    benchmarks) call this; everything else calls ``require_current``. Two processes upgrading at once
    take turns: the second finds nothing to do.
    """
    from alembic import command

    config = alembic_config(settings)
    _current.discard(settings.database_url)
    with _upgrade_transaction(settings) as connection:
        before = _revision_of(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = _revision_of(connection)
    return Upgrade(display_url(settings), before, after)


@contextmanager
def connect(settings: Settings) -> Iterator[Connection]:
    """A connection inside a transaction that commits on success and rolls back on error."""
    with engine_for(settings).begin() as connection:
        yield connection


def sql_table(name: str) -> sa.Table:
    """The SQLAlchemy table of a dimension table or the ledger."""
    try:
        return metadata.tables[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a table of the state DB; known: {', '.join(metadata.tables)}"
        ) from None


def frame_from_rows(rows: list[Any], spec: TableSpec) -> pl.DataFrame:
    """Rows fetched from the DB as a frame with the canonical schema of ``spec``."""
    if not rows:
        return spec.empty()
    columns = list(zip(*rows, strict=True))
    return pl.DataFrame(
        {
            name: pl.Series(name, values, dtype=dtype)
            for (name, dtype), values in zip(spec.schema.items(), columns, strict=True)
        }
    )


def read_table(name: str, settings: Settings, *, connection: Connection | None = None) -> pl.DataFrame:
    """A dimension table from the state DB with its canonical schema, ordered by primary key."""
    spec = table_spec(name)
    if spec.storage != "db":
        raise ValueError(f"{name!r} is a lake table; use datastore.lake.scan_table")
    table = DIMENSION_SQL_TABLES[name]
    query = sa.select(*(table.c[column] for column in spec.columns)).order_by(
        *(table.c[column] for column in spec.primary_key)
    )
    if connection is not None:
        rows = list(connection.execute(query).all())
    else:
        with engine_for(settings).connect() as conn:
            rows = list(conn.execute(query).all())
    return frame_from_rows(rows, spec)


def count_rows(name: str, settings: Settings) -> int:
    """Number of rows of a state-DB table."""
    table = sql_table(name)
    with engine_for(settings).connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


__all__ = [
    "DIMENSION_SQL_TABLES",
    "RUN_STATUSES",
    "TABLES",
    "UPGRADE_LOCK_KEY",
    "DatabaseNotCurrent",
    "Upgrade",
    "connect",
    "count_rows",
    "database_revision",
    "display_url",
    "dispose_engine",
    "engine_for",
    "head_revision",
    "ingestion_loads",
    "ingestion_runs",
    "metadata",
    "read_table",
    "require_current",
    "sql_table",
    "upgrade_db",
]
