from __future__ import annotations

import hashlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import DateTime, MetaData, create_engine, inspect, text

from app import create_app
from domain.citizens import Accounts
from migrations import MIGRATIONS, SCHEMA_VERSION, TABLE_MODULES
from services import Services
from storage import Database, MigrationContext, StorageUnavailable, _unavailable
from tests.conftest import ROOT, make_settings
from tests.security.test_data_at_rest import FIXTURE_V1_EVENTS, v1_data_dir, v1_services


def test_sqlite_runs_in_wal_mode_with_a_schema_version(services):
    database = services.settings.database_url.split("///", 1)[1]
    with sqlite3.connect(database) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert conn.execute("select version from schema_version").fetchone()[0] == SCHEMA_VERSION


def test_upgrade_is_idempotent(tmp_path, database_url):
    db = Database(database_url)
    context = MigrationContext(b"k", tmp_path)
    try:
        assert db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION
        assert db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION
        assert db.current_version() == SCHEMA_VERSION
    finally:
        db.dispose()


def test_nodes_starting_at_once_upgrade_once(tmp_path, database_url):
    """Several processes (nodes) creating the schema at the same moment: one creates it, the others find it."""
    databases = [Database(database_url) for _ in range(4)]
    results, errors, barrier = [], [], threading.Barrier(len(databases))

    def upgrade(db: Database) -> None:
        barrier.wait()
        try:
            results.append(db.upgrade(TABLE_MODULES, MIGRATIONS, MigrationContext(b"k", tmp_path)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db in databases:
        db.dispose()
    assert errors == [] and results == [SCHEMA_VERSION] * len(databases)


def test_a_schema_locked_by_another_node_is_waited_for(tmp_path, caplog):
    """Another node holds the SQLite file's write lock past the busy timeout (3 s): the starting node's upgrade
    rolls back, says so and tries again once the lock is gone, instead of failing to start."""
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")    # as the service makes it
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(4.0, holder.execute, args=("ROLLBACK",))
    release.start()
    db = Database(f"sqlite:///{path}")
    try:
        with caplog.at_level(logging.WARNING, logger="storage"):
            assert db.upgrade(TABLE_MODULES, MIGRATIONS, MigrationContext(b"k", tmp_path)) == SCHEMA_VERSION
        assert "schema busy, trying again" in caplog.text
    finally:
        release.join()
        holder.close()
        db.dispose()


def test_an_unreachable_database_fails_the_upgrade_without_waiting(tmp_path, caplog):
    """Only a lost race for a lock is waited out: a server that is not there is reported at once (the CLI exits with
    code 3, the service names the storage on /health and retries by itself)."""
    db = Database(f"postgresql+psycopg://minwon:pw@127.0.0.1:{closed_port()}/minwon")
    try:
        with caplog.at_level(logging.WARNING, logger="storage"), pytest.raises(StorageUnavailable) as failure:
            db.upgrade(TABLE_MODULES, MIGRATIONS, MigrationContext(b"k", tmp_path))
        assert not failure.value.locked and "schema busy" not in caplog.text
    finally:
        db.dispose()


@pytest.mark.parametrize(("error", "locked"), [
    (sqlite3.OperationalError("database is locked"), True),
    (sqlite3.OperationalError("database table is locked"), True),
    (sqlite3.OperationalError("unable to open database file"), False),
    (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), True),
    (psycopg.errors.SerializationFailure("could not serialize access"), True),
    (psycopg.errors.DeadlockDetected("deadlock detected"), True),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
    (psycopg.OperationalError("connection refused"), False),
])
def test_a_lost_race_for_a_lock_is_told_from_an_unreachable_database(error, locked):
    assert _unavailable(error).locked is locked


def test_a_version_1_database_upgrades_and_keeps_its_secrets_working(tmp_path):
    data_dir = v1_data_dir(tmp_path)
    with sqlite3.connect(data_dir / "minwon.sqlite3") as conn:
        old_wallet_digest = conn.execute("select token_hash from wallets where id='wallet-0001'").fetchone()[0]
    services = v1_services(data_dir)
    services.initialize()
    try:
        assert services.db.current_version() == SCHEMA_VERSION
        # Stored token digests were re-keyed in place: the demo tokens still open their mailbox and records …
        assert services.wallets.authenticate("wallet-0001", "demo-wallet-token-0001") is not None
        assert services.citizen_tokens.citizen_for("demo-citizen-token-0001") == "citizen-0001"
        with services.db.read() as conn:
            new_wallet_digest = conn.exec_driver_sql("select token_hash from wallets where id='wallet-0001'").scalar()
            assert conn.exec_driver_sql("select count(*) from link_codes").scalar() == 0  # … link codes are void
        # … and no stored digest is still the unkeyed SHA-256 of the secret.
        assert old_wallet_digest == hashlib.sha256(b"demo-wallet-token-0001").hexdigest()
        assert new_wallet_digest != old_wallet_digest
    finally:
        services.stop()


def copy_sqlite_to(source: Path, url: str) -> None:
    """The tables and rows of a SQLite database into an empty database at `url`, as the same code would have
    created them there (timestamps with time zone, like the declared DateTime(timezone=True) columns)."""
    old = MetaData()
    source_engine, target_engine = create_engine(f"sqlite:///{source}"), create_engine(url)
    try:
        old.reflect(source_engine)
        for table in old.tables.values():
            for column in table.columns:
                generic = column.type.as_generic()
                column.type = DateTime(timezone=True) if isinstance(generic, DateTime) else generic
        with source_engine.connect() as reader, target_engine.begin() as writer:
            old.create_all(writer)
            for table in old.sorted_tables:
                rows = [dict(row) for row in reader.execute(table.select()).mappings()]
                for row in rows:
                    for key, value in row.items():
                        if isinstance(value, datetime):
                            row[key] = value.replace(tzinfo=UTC)
                if rows:
                    writer.execute(table.insert(), rows)
    finally:
        source_engine.dispose()
        target_engine.dispose()


def test_a_version_1_database_on_postgresql_upgrades_and_verifies(tmp_path, postgres):
    data_dir = v1_data_dir(tmp_path)
    url = postgres.new_database()
    copy_sqlite_to(data_dir / "minwon.sqlite3", url)
    services = Services(replace(v1_services(data_dir).settings, database_url=url))
    try:
        assert services.db.current_version() == 1
        services.initialize()
        assert services.db.current_version() == SCHEMA_VERSION
        assert services.wallets.authenticate("wallet-0001", "demo-wallet-token-0001") is not None
        assert services.citizen_tokens.citizen_for("demo-citizen-token-0001") == "citizen-0001"
        assert services.accounts.citizen("citizen-0001").name == "홍길동 (demo)"
        report = services.consents.verify_chain()
        assert report.ok and report.events == FIXTURE_V1_EVENTS, report.describe()
    finally:
        services.stop()


def run_cli(*args: str, data_dir, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINWON_DATA_DIR": str(data_dir), "MINWON_DEMO": "1"}
    if database_url:
        env["MINWON_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_help_lists_commands(tmp_path):
    result = run_cli("--help", data_dir=tmp_path)
    assert result.returncode == 0 and "serve" in result.stdout and "link-code" in result.stdout
    assert "--port PORT" in run_cli("serve", "--help", data_dir=tmp_path).stdout


def test_link_code_command_prints_eight_digits_and_never_logs_it(tmp_path, database_url):
    result = run_cli("link-code", "citizen-0001", data_dir=tmp_path, database_url=database_url)
    code = result.stdout.strip()
    assert result.returncode == 0 and len(code) == 8 and code.isdigit(), result.stderr
    assert code not in result.stderr
    assert run_cli("link-code", "citizen-9999", data_dir=tmp_path, database_url=database_url).returncode == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("command", [("init",), ("link-code", "citizen-0001"), ("verify-consent-chain",)])
def test_an_unreachable_database_is_one_line_and_exit_code_3(tmp_path, command):
    url = f"postgresql+psycopg://minwon:hunter2-secret@127.0.0.1:{closed_port()}/minwon"
    result = run_cli(*command, data_dir=tmp_path, database_url=url)
    assert result.returncode == 3, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("storage unavailable (postgresql+psycopg://minwon:***@127.0.0.1:")
    assert "Traceback" not in result.stderr and "hunter2-secret" not in result.stderr
    assert result.stdout == ""


def test_the_service_names_the_storage_on_health_until_the_database_is_there(tmp_path, postgres, monkeypatch):
    """A node that starts before its database answers 503 naming the storage, then comes up on its own."""
    monkeypatch.setattr("services.STORAGE_RETRY_S", 0.1)
    name = postgres.database_name()
    app = create_app(make_settings(tmp_path, database_url=postgres.url(name), load_models=False))
    try:
        health = app.test_client().get("/health")
        assert health.status_code == 503 and health.get_json() == {"status": "error", "component": "storage: unavailable"}
        postgres.new_database(name)
        assert app.extensions["minwon"].wait_ready(30)
        assert app.test_client().get("/health").status_code == 200
        assert app.extensions["minwon"].accounts.citizen_for_user("demo-user-ko").id == "citizen-0001"
    finally:
        app.extensions["minwon"].stop()


def test_a_version_3_database_gets_the_birth_date_column(tmp_path, database_url):
    """Schema version 4 (issue 16): citizens get an encrypted birth date; the pairing and citizen-reference tables
    come from create_all. A version-3 database is made by the first two migrations' schema without the column."""
    db = Database(database_url)
    context = MigrationContext(b"k", tmp_path)
    try:
        assert db.upgrade(TABLE_MODULES, MIGRATIONS[:2], context) == 3
        with db.transaction() as conn:
            conn.execute(text("ALTER TABLE citizens DROP COLUMN birth_date_enc"))
            conn.execute(text("DROP TABLE wallet_pairings"))
        assert db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION  # 4 added the column; later versions keep it
        with db.read() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("citizens")}
            assert "birth_date_enc" in columns and inspect(conn).has_table("wallet_pairings")
        accounts = Accounts(db, b"k" * 32)
        accounts.create_citizen("c-v4", "생일 시민", "ko-KR", "1234", birth_date="1980-05-05")
        assert accounts.citizen("c-v4").birth_date == "1980-05-05"
        with db.read() as conn:
            stored = conn.execute(text("SELECT birth_date_enc FROM citizens WHERE id = 'c-v4'")).scalar()
        assert "1980" not in stored  # encrypted at rest, like the name
    finally:
        db.dispose()
