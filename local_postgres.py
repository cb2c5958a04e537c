"""A throwaway PostgreSQL cluster on this machine, for the tests (`tests/conftest.py`), the benchmark
(`app.py bench --local-postgres`) and the local cluster (`make cluster`): `initdb` into a temporary directory,
`pg_ctl start` on a free loopback port (unix sockets in that directory too), one fresh database per
`new_database()`, and everything stopped and removed by `stop()`.

The cluster runs as the `postgres` user when run as root (PostgreSQL refuses to run as root). It is tuned
for throwaway data only: no fsync, no synchronous commit (unless `durable`), trust authentication on loopback.
It is never a production database: a deployment names its own with MINWON_DATABASE_URL.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

NOT_INSTALLED = ("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin); `make test` installs "
                 "the Debian package `postgresql`, or run: apt-get install postgresql")


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server's bin directory, or None."""
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    candidates.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        # Durable: fsync and synchronous commit on, as in production, so that a commit survives a crash
        # (`stop_server("immediate")`); otherwise both are off, for speed.
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="minwon-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")

    def start(self) -> PostgresCluster:
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")
        self.start_server()
        return self

    def start_server(self) -> None:
        """Starts the server on the cluster's data (again, after `stop_server`), on the same port."""
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c max_connections=300 -c shared_buffers=32MB")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-t", "60", "start", timeout=90)
        self.started = True

    def stop_server(self, mode: str = "fast") -> None:
        """Stops the server and keeps its data, as an outage would: `fast` ends every session (rolling back
        their open transactions), `immediate` kills them (crash recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", timeout=60)
        self.started = False

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str | None = None) -> str:
        """A new empty database (`name` or the next free one); returns its SQLAlchemy URL (psycopg 3 driver)."""
        name = name or self.database_name()
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def database_name(self) -> str:
        """A name no database of this cluster has yet (the database itself is not created)."""
        return f"minwon_test_{next(self._names)}"

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stops the server and removes the cluster."""
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> PostgresCluster:
    """A running throwaway cluster; raises RuntimeError with NOT_INSTALLED when PostgreSQL is missing."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(NOT_INSTALLED)
    cluster = PostgresCluster(bin_dir)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
