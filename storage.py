"""The one module that owns the database engine, transactions and the schema version.

Tables are declared by the module that owns them (accounts, consent ledger, wallet bridge …) on the
shared ``metadata``; ``migrations.py`` lists those modules and the numbered migrations.

Schema upgrades (`Database.upgrade`): a fresh database gets every table from ``metadata.create_all``;
later changes to an existing table are numbered migration functions, run in order inside the upgrade's
transaction. This keeps SQLite and PostgreSQL on one code path without Alembic's extra environment, and
the version lives in the ``schema_version`` table.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import secrets
import select as io_select
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, event, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

log = logging.getLogger(__name__)

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

@dataclass(frozen=True)
class MigrationContext:
    """What a migration may need besides the connection: the service key (to re-key digests, re-encrypt
    fields, re-sign the consent chain and seal signing keys) and the data directory (where versions before 3
    kept the issuer and consent receipt keys, which the upgrade moves into the database)."""

    secret_key: bytes
    data_dir: Path


Migration = Callable[[Connection, MigrationContext], None]


# PostgreSQL: how long to wait for a connection, for one statement and for a row or table lock.
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 10_000
# PostgreSQL: a pooled connection that has been idle this long is pinged before it is handed out (see
# `_ping_idle_connections`); one used more recently is pinged only if its server has sent something since.
PING_AFTER_IDLE_S = 3.0
# The transaction-level advisory lock that makes concurrent upgrades (several nodes starting at once) take turns.
UPGRADE_LOCK_ID = 0x6D696E776F6E  # "minwon"
# How long a starting node keeps trying while another node holds the schema's lock: far longer than a request may
# wait, since a node that gives up here does not start at all.
UPGRADE_WAIT_S = 60.0


class StorageUnavailable(RuntimeError):
    """The database is locked or unreachable for the moment; the caller answers 503 and may retry.

    `detail` is one line for an operator (the driver's first line: "connection refused", "database is locked",
    "canceling statement due to statement timeout"); it never holds statement parameters. `locked` says the
    statement lost a race for a lock another transaction holds (the database itself answered)."""

    def __init__(self, message: str, detail: str = "", locked: bool = False) -> None:
        super().__init__(message)
        self.detail = detail
        self.locked = locked


# Errors that mean "not now" rather than "wrong": a locked SQLite file, an unreachable or restarting PostgreSQL
# server, a statement or lock timeout, a deadlock victim, an exhausted pool.
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


# PostgreSQL's SQLSTATEs for a statement that lost a race for a lock: lock timeout, serialisation failure, deadlock.
_LOCK_SQLSTATES = frozenset({"55P03", "40001", "40P01"})


def _lost_a_lock(origin: BaseException) -> bool:
    if getattr(origin, "sqlstate", None) in _LOCK_SQLSTATES:
        return True
    # SQLite: "database is locked" (busy timeout), "database table is locked", "database schema is locked".
    return isinstance(origin, sqlite3.OperationalError) and "is locked" in str(origin)


def _unavailable(exc: BaseException) -> StorageUnavailable:
    origin = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(origin).splitlines() if line.strip()]
    return StorageUnavailable("storage is busy or unavailable", lines[0] if lines else type(origin).__name__,
                              locked=_lost_a_lock(origin))


def describe_url(url: str) -> str:
    """A database URL for a message: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable database URL)"


def insert_or_update(conn: Connection, table: Table) -> Any:
    """An INSERT with ON CONFLICT clauses (`on_conflict_do_nothing` / `on_conflict_do_update`) and RETURNING, in the
    connection's dialect: one atomic statement for "create this row unless another writer has" or "count this
    hit, whoever counts at the same moment", on both backends."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql_insert(table)
    if dialect == "sqlite":
        return sqlite_insert(table)
    raise NotImplementedError(f"no INSERT … ON CONFLICT for the {dialect} dialect: use SQLite or PostgreSQL")


class Transactions(Protocol):
    """Where a store gets its connections: a `Database`, or `ConnectionScope` inside a migration."""

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def read(self) -> AbstractContextManager[Connection]: ...


class ConnectionScope:
    """A `Database` stand-in whose reads and transactions are all one connection that is already open: a migration
    runs stores (the receipt keyring) inside the upgrade's transaction, which holds the write lock."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        yield self.conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        yield self.conn


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = self._create_engine(url)
        # SQLite lets one writer in at a time and makes the others poll with growing sleeps; queueing this
        # process's writers on a lock instead keeps the tail latency down. Other processes still use the
        # busy timeout.
        self._write_lock = threading.Lock() if url.startswith("sqlite") else None
        self._autocommit_reads = self.engine.dialect.name == "postgresql"

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
        if url.startswith("postgresql"):
            # A dead server or a dropped connection is found before a request uses it (pre-ping, see
            # `_ping_idle_connections`), a connection
            # attempt gives up after CONNECT_TIMEOUT_S instead of the OS's minutes, and no statement holds a
            # pooled connection (or a row lock) longer than STATEMENT_TIMEOUT_MS. Pooled connections are recycled
            # hourly so a server-side idle limit or a failover never hands out a stale one.
            # The pool is last in, first out: under light load the same few connections stay warm and the rest
            # go idle (and are pinged when next used) instead of every connection being used in turn.
            engine = create_engine(
                url, pool_size=8, max_overflow=8, pool_timeout=10, pool_recycle=3600, pool_use_lifo=True,
                hide_parameters=True,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "minwon-voice",
                              "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
                                         f" -c lock_timeout={LOCK_TIMEOUT_MS} -c timezone=UTC"},
            )
            _ping_idle_connections(engine)
            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        lock = self._write_lock
        if lock is not None and not lock.acquire(timeout=10):
            raise StorageUnavailable("storage is busy", locked=True)
        try:
            with self.engine.connect() as conn:
                conn.execution_options(minwon_write=True)
                with conn.begin():
                    yield conn
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading. On PostgreSQL each statement is its own transaction (autocommit): at READ
        COMMITTED, the default, a statement sees what was committed when it started whether or not a transaction
        is open, so a BEGIN before and a ROLLBACK after the reads would only cost two round trips. A reader that
        needs one snapshot for several statements sets a stricter isolation level before its first statement
        (`ConsentLedger.verify_chain`). On SQLite, a read transaction (a snapshot, and no write lock)."""
        try:
            with self.engine.connect() as conn:
                if self._autocommit_reads:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which every statement commits on its own, for work made of statements that are each
        atomic and need nothing from each other (a rate-limit charge is one UPSERT): on PostgreSQL no row lock
        outlives its statement, so a hot row (every request from one address charges the same one) is not held
        while the thread that locked it waits for the interpreter or the next round trip. On SQLite, one
        transaction as `transaction()` gives (a writer needs the database's one write lock anyway)."""
        if not self._autocommit_reads:
            with self.transaction() as conn:
                yield conn
            return
        try:
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

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
        deadline = time.monotonic() + UPGRADE_WAIT_S
        while True:
            try:
                return self._upgrade_once(migrations, context)
            except StorageUnavailable as exc:
                # Another node is creating or upgrading the schema and holds the write lock longer than the busy
                # timeout (a loaded machine): the transaction rolled back, so trying again is safe. A database that
                # cannot be reached is reported at once: the CLI exits, and the service retries on its own.
                if not exc.locked or time.monotonic() >= deadline:
                    raise
                log.warning("schema busy, trying again")
                time.sleep(0.25)

    def _upgrade_once(self, migrations: Sequence[Migration], context: MigrationContext) -> int:
        target_version = 1 + len(migrations)
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                # Several nodes starting at once: one upgrades, the others wait and then find it done.
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": UPGRADE_LOCK_ID})
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


def _ping_idle_connections(engine: Engine) -> None:
    """Pre-ping for PostgreSQL, without a round trip on every checkout: a pooled connection is pinged (`SELECT 1`)
    before it is handed out when it has been idle for PING_AFTER_IDLE_S or more, or when its server has sent
    something while it sat in the pool: an idle PostgreSQL connection receives nothing unless the server is ending
    it (a shutdown, a restart, an idle or administrator kill sends a FATAL message and closes the socket), so unread
    input or a closed socket means the connection is dead or dying. A ping that fails invalidates the whole pool
    (every connection made before it is replaced at its next checkout, as SQLAlchemy's own pre-ping does) and the
    checkout is retried on a fresh connection. A connection in use every few milliseconds under load is thus not
    pinged at all (SQLAlchemy's `pool_pre_ping` costs a round trip per checkout, several per request here), and a
    server that went away between two requests is still found before a request uses its connection."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection, record):  # noqa: ANN001
        record.info["minwon_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_stale(dbapi_connection, record, _proxy):  # noqa: ANN001
        idle_since = record.info.get("minwon_idle_since")
        if idle_since is None:
            return  # connected for this checkout (a new or replaced connection's info starts empty)
        if time.monotonic() - idle_since < PING_AFTER_IDLE_S and not _server_has_spoken(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError("the database connection failed its ping") from exc


def _server_has_spoken(dbapi_connection: Any) -> bool:
    """Whether an idle connection's socket has input waiting or is gone (no round trip: a poll of the socket)."""
    try:
        if dbapi_connection.closed:
            return True
        readable, _, _ = io_select.select([dbapi_connection.fileno()], [], [], 0)
    except Exception:  # noqa: BLE001 - a socket that cannot even be polled is as good as dead: ping it
        return True
    return bool(readable)


# -- working with several nodes on one database ----------------------------------------------------------


def instance_id() -> str:
    """A name for this process among the nodes sharing the database (host, process, random): what claim rows
    record as their owner, so that an operator can tell who holds what and two processes never share a name."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def lock_for_transaction(conn: Connection, name: str) -> None:
    """Holds the lock called `name` until `conn`'s transaction ends, across every node: on PostgreSQL a
    transaction-level advisory lock. SQLite needs none: a writing transaction already holds the database's one
    write lock from its BEGIN IMMEDIATE to its end."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def insert_unless_present(conn: Connection, table: Table, values: dict[str, object]) -> bool:
    """Inserts the row unless a row with the same primary or unique key exists; True when it was inserted.

    A concurrent transaction inserting the same key is waited for rather than failing this one with an
    integrity error (ON CONFLICT DO NOTHING), so two nodes racing to create the same row both go on."""
    # RETURNING rather than the row count: psycopg reports no count (-1) for an INSERT … ON CONFLICT DO NOTHING.
    statement = (insert_or_update(conn, table).values(**values).on_conflict_do_nothing()
                 .returning(*table.primary_key.columns))
    return conn.execute(statement).first() is not None


# -- outbox rows claimed by one node at a time ---------------------------------------------------------------------
# The wallet's offer pushes and the notification pushes share one delivery mechanism: a row is due when its
# `next_attempt_at` has come and no unexpired claim holds it; a node claims it in one short transaction (the row
# locked FOR UPDATE SKIP LOCKED on PostgreSQL, so nodes claiming at once take different rows; SQLite's writer lock
# does the same), counting the attempt and writing `claimed_by` / `claimed_until`; the outcome is recorded only while
# the claim is still that node's (same node, same attempt). A node that dies mid-send leaves a claim that runs out,
# and the row is sent again (at least once). Such a table has the columns id, attempts, next_attempt_at,
# claimed_by and claimed_until.


def unclaimed(table: Table, now: Any) -> Any:
    """The part of a due-row condition every claimed outbox shares: no unexpired claim holds the row."""
    return (table.c.claimed_until.is_(None)) | (table.c.claimed_until <= now)


def lock_next_due(conn: Connection, table: Table, due: Any, order_by: Sequence[Any]) -> Any:
    """The first due row (a mapping), locked for this transaction, skipping rows another node has locked."""
    return conn.execute(select(table).where(due).order_by(*order_by).limit(1)
                        .with_for_update(skip_locked=True)).mappings().first()


def claim_row(conn: Connection, table: Table, row: Any, node_id: str, until: Any) -> int:
    """Claims a row `lock_next_due` returned for `node_id` until `until`; returns this attempt's number."""
    attempt = int(row["attempts"]) + 1
    conn.execute(table.update().where(table.c.id == row["id"])
                 .values(attempts=attempt, claimed_by=node_id, claimed_until=until))
    return attempt


def record_claimed(conn: Connection, table: Table, row_id: Any, node_id: str, attempt: int,
                   values: dict[str, Any]) -> bool:
    """Writes an attempt's outcome and lets go of the claim, unless the claim ran out and another node has claimed
    the row since (then that node's attempt decides); True when recorded."""
    return bool(conn.execute(table.update().where(
        table.c.id == row_id, table.c.claimed_by == node_id, table.c.attempts == attempt,
    ).values(claimed_until=None, **values)).rowcount)


def retry_delay_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff after the `attempts`-th failure: base, 2×base, 4×base … capped at max_s."""
    return min(base_s * 2 ** max(0, attempts - 1), max_s)
