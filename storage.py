"""The one module that owns the database engine, transactions and the schema version.

Tables are declared by the module that owns them (accounts, consent ledger, wallet bridge …) on the
shared ``metadata``; ``SCHEMA_MODULES`` lists those modules so that an upgrade sees every table.

Schema upgrades: a fresh database gets every table from ``metadata.create_all``; later changes to an
existing table are appended to ``MIGRATIONS`` (one function per version, run in order inside one
transaction each). This keeps SQLite and PostgreSQL on one code path without Alembic's extra
environment, and the version lives in the ``schema_version`` table.

A migration that rewrites sealed or signed rows gets the service key and data directory
(``MigrationKeys``). Its steps belong to the modules that own those tables and are named, not imported,
here ("module:function", imported when the migration runs), because every one of those modules imports
this one.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

log = logging.getLogger(__name__)

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

SCHEMA_MODULES = (
    "domain.citizens",
    "skills.sessions",
    "domain.certificates",
    "domain.consent_ledger",
    "domain.citizen_tokens",
    "domain.mydata",
    "domain.wallets",
    "wallet_bridge.tables",
)


@dataclass(frozen=True)
class MigrationKeys:
    """What a migration that re-encrypts or re-signs rows needs: the service's secret key and the data
    directory (where the consent receipt keys live)."""

    secret_key: bytes
    data_dir: Path


Migration = Callable[[Connection, MigrationKeys], None]


def _steps(*names: str) -> Migration:
    """One migration made of steps ("module:function"), each owned by the module whose tables it changes, run
    in order in the migration's transaction."""

    def run(conn: Connection, keys: MigrationKeys) -> None:
        for name in names:
            module, _, function = name.partition(":")
            getattr(importlib.import_module(module), function)(conn, keys)
            log.info("migration step done", extra={"step": name})

    return run


# MIGRATIONS[i] upgrades an existing database from version i+1 to i+2; version 1 is create_all.
MIGRATIONS: list[Migration] = [
    # 2 — integrity of data at rest: field ciphertexts carry their (table, column, row) as associated data;
    # the consent chain's digests cover the citizen and its head is signed (the chain is re-sealed once).
    _steps("domain.field_migration:bind_fields_v2", "wallet_bridge.migrations:bind_sealed_v2",
           "domain.consent_ledger:migrate_v2"),
]
SCHEMA_VERSION = 1 + len(MIGRATIONS)


class StorageUnavailable(RuntimeError):
    """The database is locked or unreachable for the moment; the caller answers 503 and may retry."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = self._create_engine(url)
        # SQLite lets one writer in at a time and makes the others poll with growing sleeps; queueing this
        # process's writers on a lock instead keeps the tail latency down. Other processes still use the
        # busy timeout.
        self._write_lock = threading.Lock() if url.startswith("sqlite") else None

    @staticmethod
    def _create_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # A pooled connection is used by one thread at a time (the pool hands it out), so sharing it
            # across threads in turn is safe; reopening one per request costs more than the query.
            engine = create_engine(url, poolclass=QueuePool, pool_size=8, max_overflow=8,
                                   connect_args={"timeout": 5, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
                dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN drive transactions
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL never corrupts and survives a process crash; only a power cut may lose
                # the last commits. FULL would fsync on every commit (6 ms each here).
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=3000")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn):  # noqa: ANN001
                # A writer takes the write lock at BEGIN (IMMEDIATE), so two writers never deadlock upgrading a
                # read lock; a reader begins DEFERRED and, in WAL mode, never waits for a writer.
                write = conn.get_execution_options().get("minwon_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        lock = self._write_lock
        if lock is not None and not lock.acquire(timeout=10):
            raise StorageUnavailable("storage is busy")
        try:
            with self.engine.connect() as conn:
                conn.execution_options(minwon_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StorageUnavailable("storage is busy or unavailable") from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StorageUnavailable("storage is busy or unavailable") from exc

    def current_version(self) -> int:
        with self.read() as conn:
            if not self.engine.dialect.has_table(conn, "schema_version"):
                return 0
            return conn.execute(select(schema_version.c.version)).scalar() or 0

    def upgrade(self, keys: MigrationKeys | None = None) -> int:
        """Bring the schema to SCHEMA_VERSION; safe to call on every start and from several processes. An
        existing database of an older version needs `keys` (its migrations re-seal rows)."""
        for name in SCHEMA_MODULES:
            importlib.import_module(name)
        with self.transaction() as conn:
            version = conn.execute(select(schema_version.c.version)).scalar() if self.engine.dialect.has_table(
                conn, "schema_version"
            ) else None
            if version is None:
                metadata.create_all(conn)
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                log.info("database created", extra={"schema_version": SCHEMA_VERSION})
                return SCHEMA_VERSION
            # Tables added since (no existing rows to migrate) come from create_all's checkfirst.
            metadata.create_all(conn)
            if version < SCHEMA_VERSION and keys is None:
                raise RuntimeError(f"upgrading the database from schema version {version} needs the service key: "
                                   "run `app.py init`")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                assert keys is not None
                MIGRATIONS[target - 2](conn, keys)
                conn.execute(schema_version.update().values(version=target))
                log.info("database upgraded", extra={"schema_version": target})
            return SCHEMA_VERSION

    def dispose(self) -> None:
        self.engine.dispose()
