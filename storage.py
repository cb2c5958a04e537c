"""The one module that owns the database engine, transactions and the schema version.

Tables are declared by the module that owns them (accounts, consent ledger, wallet bridge …) on the
shared ``metadata``; ``migrations.py`` lists those modules and the numbered migrations.

Schema upgrades (`Database.upgrade`): a fresh database gets every table from ``metadata.create_all``;
later changes to an existing table are numbered migration functions, run in order inside the upgrade's
transaction. This keeps SQLite and PostgreSQL on one code path without Alembic's extra environment, and
the version lives in the ``schema_version`` table.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
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

@dataclass(frozen=True)
class MigrationContext:
    """What a migration may need besides the connection: the service key (to re-key digests, re-encrypt
    fields and re-sign the consent chain) and the data directory (where the consent receipt keys live)."""

    secret_key: bytes
    data_dir: Path


Migration = Callable[[Connection, MigrationContext], None]


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
            # hide_parameters (here and below): a database error's message would otherwise quote the statement's
            # values (session ids, user keys, code digests, reply text) into tracebacks and so into the logs.
            engine = create_engine(url, poolclass=QueuePool, pool_size=8, max_overflow=8, hide_parameters=True,
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
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)

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

    def upgrade(self, table_modules: Sequence[str], migrations: Sequence[Migration],
                context: MigrationContext) -> int:
        """Bring the schema to version 1 + len(migrations); safe on every start and from several processes.

        `table_modules` are imported first so that `metadata` knows every table; `migrations[i]` upgrades
        version i+1 to i+2."""
        for name in table_modules:
            importlib.import_module(name)
        target_version = 1 + len(migrations)
        with self.transaction() as conn:
            version = conn.execute(select(schema_version.c.version)).scalar() if self.engine.dialect.has_table(
                conn, "schema_version"
            ) else None
            if version is None:
                metadata.create_all(conn)
                conn.execute(schema_version.insert().values(version=target_version))
                log.info("database created", extra={"schema_version": target_version})
                return target_version
            # Tables added since (no existing rows to migrate) come from create_all's checkfirst.
            metadata.create_all(conn)
            for target in range(version + 1, target_version + 1):
                migrations[target - 2](conn, context)
                conn.execute(schema_version.update().values(version=target))
                log.info("database upgraded", extra={"schema_version": target})
            return target_version

    def dispose(self) -> None:
        self.engine.dispose()
