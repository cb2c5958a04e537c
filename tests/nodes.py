"""Several service nodes inside one test process, on one database: each its own `Services` (its own engine and
connection pool, its own data directory) with the same `MINWON_SECRET_KEY`, as `make cluster` runs them in
separate processes. Threads that call different nodes at once stand in for requests that a load balancer
spreads over the nodes.
Nothing is copied between the nodes' data directories: what they must share (keys, limits, ledgers) is in
the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app import create_app
from services import Services
from settings import Settings

CLUSTER_SECRET = "test-cluster-secret-0123456789abcdef0123456789abcdef"


def node_settings(data_dir: Path, database_url: str, **env: str) -> Settings:
    """A node's settings: demo data (the tests speak as the demo users), no models, limits out of the way."""
    return Settings.from_env(
        {"MINWON_DATA_DIR": str(data_dir), "MINWON_DATABASE_URL": database_url, "MINWON_DEMO": "1",
         "MINWON_SECRET_KEY": CLUSTER_SECRET, **env},
        load_models=False, rate_limit_per_minute=1_000_000,
    )


@contextmanager
def running_nodes(root: Path, database_url: str, count: int = 2, **env: str) -> Iterator[list[Services]]:
    """`count` initialised nodes on `database_url` (workers not started); stopped at the end."""
    nodes: list[Services] = []
    try:
        for number in range(count):
            data_dir = root / f"node-{number}"
            node = Services(node_settings(data_dir, database_url, **env))
            nodes.append(node)
            node.initialize()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@contextmanager
def node_apps(root: Path, database_url: str, count: int = 2, **env: str) -> Iterator[list[Any]]:
    """`count` Flask apps, one per node, on `database_url` (background workers not started); stopped at the end."""
    apps: list[Any] = []
    try:
        for number in range(count):
            data_dir = root / f"node-{number}"
            apps.append(create_app(node_settings(data_dir, database_url, **env), start=False))
        yield apps
    finally:
        for app in apps:
            app.extensions["minwon"].stop()


def run_together(calls: list[Callable[[], Any]], timeout_s: float = 120) -> list[Any]:
    """Runs every call on its own thread, all released at once by a barrier; returns their results in order, or
    raises the first exception any of them raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(position: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[position] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, call), name=f"node-call-{n}") for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"a call did not finish within {timeout_s} s")
    if errors:
        raise errors[0]
    return results

