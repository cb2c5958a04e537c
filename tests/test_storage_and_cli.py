from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from storage import SCHEMA_VERSION, Database
from tests.conftest import ROOT


def test_sqlite_runs_in_wal_mode_with_a_schema_version(services):
    database = services.settings.database_url.split("///", 1)[1]
    with sqlite3.connect(database) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert conn.execute("select version from schema_version").fetchone()[0] == SCHEMA_VERSION


def test_upgrade_is_idempotent(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert db.upgrade() == SCHEMA_VERSION
    assert db.upgrade() == SCHEMA_VERSION
    assert db.current_version() == SCHEMA_VERSION


def run_cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINWON_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_help_lists_commands(tmp_path):
    result = run_cli("--help", data_dir=tmp_path)
    assert result.returncode == 0 and "serve" in result.stdout and "link-code" in result.stdout
    assert "--port PORT" in run_cli("serve", "--help", data_dir=tmp_path).stdout


def test_link_code_command_prints_six_digits_and_never_logs_it(tmp_path):
    result = run_cli("link-code", "citizen-0001", data_dir=tmp_path)
    code = result.stdout.strip()
    assert result.returncode == 0 and len(code) == 6 and code.isdigit()
    assert code not in result.stderr
    assert run_cli("link-code", "citizen-9999", data_dir=tmp_path).returncode == 1
