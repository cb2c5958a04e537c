"""What one turn costs the server, one client at a time: wall p50 and the server's CPU time per request (every
gunicorn process's user + system time over the run, divided by the requests), side by side with the trivial
route, on SQLite and (with `--local-postgres` or `--database-url`) on PostgreSQL.

CPU time per request is the figure to compare across runs on a shared machine: other jobs on the same cores
stretch wall times (a request waits for a core) but barely change how much CPU the request itself needs.
PostgreSQL's own CPU (its backend processes) is not included; its round trips show in the wall time.

    python -m bench.turn_cost [--requests 300] [--local-postgres | --database-url URL] [--index-from DIR]

`--index-from DIR` copies DIR/index (the FAQ index and router models of a data directory where `build-index` ran
with the same code and data) into each fresh node, which then loads instead of building and training them: a run
takes a minute instead of four, and two checkouts can be measured back to back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests

from bench.load import POSTGRESQL, SCENARIOS, SQLITE, GunicornServer, Request, local_postgres, postgres_databases


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a gunicorn master and its workers so far."""
    master = psutil.Process(pid)
    total = 0.0
    for process in (master, *master.children(recursive=True)):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def measure(url: str, pid: int, request: Request, total: int) -> dict[str, float]:
    session = requests.Session()
    prepare = getattr(request, "prepare", None)
    if prepare is not None:
        prepare(session, url)
    for i in range(20):  # warm-up: connection, caches
        request(session, url, i)
    walls: list[float] = []
    cpu_before = server_cpu_s(pid)
    for i in range(total):
        started = time.perf_counter()
        response = request(session, url, i)
        walls.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"status {response.status_code}: {response.text[:200]}")
    cpu = server_cpu_s(pid) - cpu_before
    return {"p50_ms": round(statistics.median(walls) * 1000, 2), "cpu_ms": round(cpu / total * 1000, 2)}


def run_configuration(url: str, pid: int, total: int) -> dict[str, dict[str, float]]:
    rows = {name: measure(url, pid, request, total) for name, request in SCENARIOS.items()}
    trivial = rows["trivial (/health)"]
    for row in rows.values():
        row["p50_ratio"] = round(row["p50_ms"] / trivial["p50_ms"], 2)
        row["cpu_ratio"] = round(row["cpu_ms"] / trivial["cpu_ms"], 2)
    return rows


@contextmanager
def postgres_url(database_url: str | None, start_postgres: bool) -> Iterator[str | None]:
    if not (database_url or start_postgres):
        yield None
        return
    with ExitStack() as stack:
        server_url = stack.enter_context(local_postgres()) if start_postgres else database_url
        assert server_url is not None
        new_database = stack.enter_context(postgres_databases(server_url))
        yield new_database()


def with_index(server: GunicornServer, index_from: Path | None) -> GunicornServer:
    """The server, with a copy of `index_from`/index in its data directory when given."""
    if index_from is not None:
        shutil.copytree(index_from / "index", server.data_dir / "index")
    return server


def run(total: int = 300, database_url: str | None = None, start_postgres: bool = False,
        index_from: Path | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"load_average_before": os.getloadavg()}
    with with_index(GunicornServer(), index_from) as server:
        results[SQLITE] = run_configuration(server.url, server.process.pid, total)
    with postgres_url(database_url, start_postgres) as url:
        if url is not None:
            with with_index(GunicornServer(database_url=url), index_from) as server:
                results[POSTGRESQL] = run_configuration(server.url, server.process.pid, total)
    results["load_average_after"] = os.getloadavg()
    print(f"one client, {total} requests per cell; load average before {results['load_average_before']}, "
          f"after {results['load_average_after']}")
    for configuration in (SQLITE, POSTGRESQL):
        for name, row in results.get(configuration, {}).items():
            print(f"{configuration:10} {name:26} wall p50 {row['p50_ms']:6.2f} ms ({row['p50_ratio']:4.2f}x)   "
                  f"server CPU {row['cpu_ms']:6.2f} ms/request ({row['cpu_ratio']:4.2f}x)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--local-postgres", action="store_true")
    parser.add_argument("--index-from", type=Path, default=None,
                        help="a data directory whose index/ (built by this code) each node starts with")
    args = parser.parse_args()
    run(args.requests, args.database_url, args.local_postgres, args.index_from)


if __name__ == "__main__":
    main()
