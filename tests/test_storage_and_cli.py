from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys

from migrations import MIGRATIONS, SCHEMA_VERSION, TABLE_MODULES
from storage import Database, MigrationContext
from tests.conftest import ROOT
from tests.security.test_data_at_rest import v1_data_dir, v1_services


def test_sqlite_runs_in_wal_mode_with_a_schema_version(services):
    database = services.settings.database_url.split("///", 1)[1]
    with sqlite3.connect(database) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert conn.execute("select version from schema_version").fetchone()[0] == SCHEMA_VERSION


def test_upgrade_is_idempotent(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    context = MigrationContext(b"k", tmp_path)
    assert db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION
    assert db.upgrade(TABLE_MODULES, MIGRATIONS, context) == SCHEMA_VERSION
    assert db.current_version() == SCHEMA_VERSION


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


def run_cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINWON_DATA_DIR": str(data_dir), "MINWON_DEMO": "1"}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_help_lists_commands(tmp_path):
    result = run_cli("--help", data_dir=tmp_path)
    assert result.returncode == 0 and "serve" in result.stdout and "link-code" in result.stdout
    assert "--port PORT" in run_cli("serve", "--help", data_dir=tmp_path).stdout


def test_link_code_command_prints_eight_digits_and_never_logs_it(tmp_path):
    result = run_cli("link-code", "citizen-0001", data_dir=tmp_path)
    code = result.stdout.strip()
    assert result.returncode == 0 and len(code) == 8 and code.isdigit()
    assert code not in result.stderr
    assert run_cli("link-code", "citizen-9999", data_dir=tmp_path).returncode == 1
