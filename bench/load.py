"""Text turns under gunicorn at 1, 8, 32 and 64 concurrent clients, side by side with a trivial route, on SQLite
and (with a PostgreSQL server) on PostgreSQL and on two nodes behind nginx, in one run.

Each configuration is real gunicorn (threads) on loopback with fresh demo data, started the way `make serve-prod`
starts a node (`bench.cluster.ServiceNode`): SQLite and PostgreSQL as one node of two workers; "two nodes" as two
nodes of one worker each (the same two processes on the same two cores) on one PostgreSQL database, behind nginx
round-robin. A bounded thread-pool client drives each scenario and reports throughput, p50/p95/p99, the ratios of
each scenario's p50 and p95 to the trivial route's at the same concurrency in the same configuration (the floor:
what the server costs with no work), errors (any status but 200, and failed requests), and the SQLite workers'
RSS before and after a long run. The client shares the 2 cores with the server, so absolute figures understate
the server; the ratios are the comparable numbers.

PostgreSQL: `--database-url URL` names a server on which the benchmark creates its own databases (and drops them
at the end); `--local-postgres` starts a throwaway server as the tests do (`make bench`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests

from bench.cluster import LocalCluster, ServiceNode, free_port

ROOT = Path(__file__).resolve().parent.parent
# Limits would turn load into 429s: the benchmark measures work, not refusals.
UNLIMITED = {"MINWON_RATE_LIMIT_PER_MINUTE": "100000000", "MINWON_IP_RATE_LIMIT_PER_MINUTE": "100000000"}
SQLITE, POSTGRESQL, TWO_NODES = "sqlite", "postgresql", "postgresql, two nodes (nginx)"


class GunicornServer:
    """One node (`ServiceNode`) with a fresh data directory and demo data; SQLite in its data directory unless
    `database_url` names a fresh PostgreSQL database."""

    def __init__(self, workers: int = 2, threads: int = 8, env: dict[str, str] | None = None,
                 database_url: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="minwon-bench-"))
        self.data_dir = self.root / "node"
        node_env = {"MINWON_LOG_LEVEL": "WARNING", **UNLIMITED, **(env or {})}
        if database_url:
            node_env["MINWON_DATABASE_URL"] = database_url
        self.node = ServiceNode("bench", self.data_dir, node_env, workers=workers, threads=threads)

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def process(self) -> Any:
        return self.node.process

    def __enter__(self) -> GunicornServer:
        # Storage and demo data are created once before the workers start, so they do not race to seed.
        try:
            self.node.init(demo=True)
            self.node.start()
            self.node.wait_healthy(600)
        except BaseException:
            self.__exit__()
            raise
        return self

    def worker_rss_mb(self) -> list[float]:
        assert self.process is not None
        return [round(child.memory_info().rss / 2**20, 1) for child in psutil.Process(self.process.pid).children()]

    def worker_fds(self) -> list[int]:
        assert self.process is not None
        return [child.num_fds() for child in psutil.Process(self.process.pid).children()]

    def __exit__(self, *_exc: object) -> None:
        self.node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_databases(server_url: str) -> Iterator[Callable[[], str]]:
    """`new()` creates an empty database on the PostgreSQL server of `server_url` and returns its URL; every
    database made here is dropped at the end."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    made: list[str] = []

    def new() -> str:
        name = f"minwon_bench_{secrets.token_hex(4)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (`local_postgres`, as the tests start); yields its admin URL."""
    from local_postgres import start_cluster

    cluster = start_cluster()
    try:
        yield cluster.url("postgres")
    finally:
        cluster.stop()


Request = Callable[[requests.Session, str, int], requests.Response]


def trivial(session: requests.Session, url: str, _i: int) -> requests.Response:
    return session.get(url + "/health", timeout=30)


# The demo speaker's published device token (the benchmark server runs with demo data on loopback).
DEMO_KO = {"Authorization": "Bearer demo-device-token-ko"}


def converse(text: str, locale: str = "ko-KR", as_demo_user: bool = False) -> Request:
    """A turn as the demo speaker, or (by default) an anonymous one."""
    def call(session: requests.Session, url: str, _i: int) -> requests.Response:
        body = {"text": text, "locale": locale}
        return session.post(url + "/v1/converse", json=body, timeout=30, headers=DEMO_KO if as_demo_user else {})
    return call


class CertificateTurn:
    """The status question in a session where the PIN was already given. The step-up (a scrypt check, the
    costliest step of the dialog) is made once per client before its first measured request: the figures are the
    turn's, not the step-up's."""

    def prepare(self, session: requests.Session, url: str) -> None:
        first = session.post(url + "/v1/converse", json={"text": "내 증명서 상태 알려줘"}, headers=DEMO_KO,
                             timeout=60).json()
        session.post(url + "/v1/converse", json={"text": "1357", "session_id": first["session_id"]},
                     headers=DEMO_KO, timeout=60)
        session.minwon_sid = first["session_id"]  # type: ignore[attr-defined]

    def __call__(self, session: requests.Session, url: str, _i: int) -> requests.Response:
        return session.post(url + "/v1/converse", json={"text": "내 증명서 상태 알려줘",
                                                         "session_id": session.minwon_sid},  # type: ignore[attr-defined]
                            headers=DEMO_KO, timeout=30)


SCENARIOS: dict[str, Request] = {
    "trivial (/health)": trivial,
    "faq turn": converse("등본 떼려면 어떻게 해?"),
    "certificate status turn": CertificateTurn(),
    "consent list turn": converse("내 정보 어디에 공유하고 있어?", as_demo_user=True),
}


def run_scenario(url: str, request: Request, clients: int, total: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    local = threading.local()

    def one(i: int) -> None:
        nonlocal errors
        session = getattr(local, "session", None)
        if session is None:
            # Each client thread's first request: its connection and (for some scenarios) its dialog set-up,
            # outside the measurement.
            session = local.session = requests.Session()
            prepare = getattr(request, "prepare", None)
            if prepare is not None:
                prepare(session, url)
        started = time.perf_counter()
        try:
            ok = request(session, url, i).status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1

    # Warm-up outside the measurement, in the pool that then measures: every one of its threads makes its
    # connection and its set-up (the barrier holds each warm-up task until all threads have one) and two requests.
    barrier = threading.Barrier(clients)

    def warm_up(i: int) -> None:
        one(i)
        one(i)
        barrier.wait(timeout=600)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(warm_up, range(clients)))
        latencies.clear()
        errors = 0
        started = time.perf_counter()
        list(pool.map(one, range(total)))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {"clients": clients, "requests": total, "errors": errors, "rps": round(total / wall, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def measure(url: str, concurrency: tuple[int, ...], per_level: int) -> dict[str, list[dict[str, Any]]]:
    """Every scenario at every concurrency level, with its ratios to the trivial route at the same level."""
    scenarios = {name: [run_scenario(url, request, c, max(per_level, c * 4)) for c in concurrency]
                 for name, request in SCENARIOS.items()}
    floor = {row["clients"]: row for row in scenarios["trivial (/health)"]}
    for rows in scenarios.values():
        for row in rows:
            row["p50_ratio_to_trivial"] = round(row["p50_ms"] / max(floor[row["clients"]]["p50_ms"], 0.01), 2)
            row["p95_ratio_to_trivial"] = round(row["p95_ms"] / max(floor[row["clients"]]["p95_ms"], 0.01), 2)
    return scenarios


def run(concurrency: tuple[int, ...] = (1, 8, 32, 64), per_level: int = 400, leak_requests: int = 10_000,
        out_dir: Path | None = None, database_url: str | None = None, start_postgres: bool = False,
        two_nodes: bool = True) -> dict[str, Any]:
    """SQLite always; with `database_url` (or `start_postgres`) PostgreSQL too, and two nodes unless `two_nodes`
    is off. Writes bench/out/load.json and load.png and prints the table."""
    out_dir = out_dir or ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Other jobs on the same cores stretch the figures: the load average says how busy the machine was.
    results: dict[str, Any] = {"machine": machine(), "load_average_before": os.getloadavg(), "configurations": {}}
    configurations = results["configurations"]
    with GunicornServer() as server:
        results["rss_mb_after_start"] = server.worker_rss_mb()
        configurations[SQLITE] = measure(server.url, concurrency, per_level)
        if leak_requests:
            before_rss, before_fds = server.worker_rss_mb(), server.worker_fds()
            run_scenario(server.url, SCENARIOS["faq turn"], 8, leak_requests)
            after_rss, after_fds = server.worker_rss_mb(), server.worker_fds()
            results["memory"] = {
                "requests": leak_requests, "rss_mb_before": before_rss, "rss_mb_after": after_rss,
                "growth_pct": round(100 * (sum(after_rss) - sum(before_rss)) / sum(before_rss), 2),
                "fds_before": before_fds, "fds_after": after_fds,
            }
    if database_url or start_postgres:
        with (local_postgres() if start_postgres else _given(database_url or "")) as server_url, \
                postgres_databases(server_url) as new_database:
            with GunicornServer(database_url=new_database()) as server:
                configurations[POSTGRESQL] = measure(server.url, concurrency, per_level)
            if two_nodes:
                state = Path(tempfile.mkdtemp(prefix="minwon-bench-cluster-"))
                try:
                    cluster = LocalCluster(state, port=free_port(), nodes=2, workers=1, threads=8,
                                           database_url=new_database(), free_node_ports=True,
                                           extra_env={"MINWON_LOG_LEVEL": "WARNING", **UNLIMITED})
                    with cluster.running():
                        configurations[TWO_NODES] = measure(cluster.url, concurrency, per_level)
                finally:
                    shutil.rmtree(state, ignore_errors=True)
    results["load_average_after"] = os.getloadavg()
    results["targets"] = targets(results)
    (out_dir / "load.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(table(results))
    chart(results, out_dir / "load.png")
    return results


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _row(results: dict[str, Any], configuration: str, scenario: str, clients: int) -> dict[str, Any] | None:
    rows = results["configurations"].get(configuration, {}).get(scenario, [])
    return next((r for r in rows if r["clients"] == clients), None)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure measured in this run (None when the run did not measure it)."""
    checks: list[dict[str, Any]] = []
    row = _row(results, POSTGRESQL, "certificate status turn", 32)
    checks.append({"target": "certificate status p95 at 32 clients <= 5x trivial p95 (PostgreSQL)",
                   "value": row and row["p95_ratio_to_trivial"], "met": bool(row and row["p95_ratio_to_trivial"] <= 5)})
    for configuration in results["configurations"]:
        errors = [r["errors"] for rows in results["configurations"][configuration].values() for r in rows
                  if r["clients"] == 64]
        checks.append({"target": f"no errors at 64 clients ({configuration})", "value": sum(errors) if errors else None,
                       "met": bool(errors) and sum(errors) == 0})
        row = _row(results, configuration, "faq turn", 1)
        checks.append({"target": f"FAQ turn p50 at 1 client <= 4x trivial p50 ({configuration})",
                       "value": row and row["p50_ratio_to_trivial"], "met": bool(row and row["p50_ratio_to_trivial"] <= 4)})
    return checks


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0], "platform": sys.platform}


def table(results: dict[str, Any]) -> str:
    """One line per scenario and concurrency; each configuration's req/s, p50 and p95 (ms), their ratios to the
    trivial route's (p50÷t, p95÷t) and errors side by side; then the targets."""
    configurations = list(results["configurations"])
    first = results["configurations"][configurations[0]]
    header = f"{'scenario':24} {'clients':>7}"
    for name in configurations:
        header += f" | {name[:37]:>37}"
    sub = f"{'':24} {'':>7}" + "".join(f" | {'rps':>5} {'p50':>6} {'p95':>6} {'p50÷t':>5} {'p95÷t':>5} {'err':>3}"
                                       for _ in configurations)
    lines = [header, sub]
    for scenario, rows in first.items():
        for row in rows:
            line = f"{scenario[:24]:24} {row['clients']:>7}"
            for name in configurations:
                cell = _row(results, name, scenario, row["clients"])
                line += (f" | {cell['rps']:>5.0f} {cell['p50_ms']:>6.1f} {cell['p95_ms']:>6.1f} "
                         f"{cell['p50_ratio_to_trivial']:>5.1f} {cell['p95_ratio_to_trivial']:>5.1f} {cell['errors']:>3}"
                         ) if cell else f" | {'-':>37}"
            lines.append(line)
    if memory := results.get("memory"):
        lines.append(f"SQLite worker RSS MB after start {results['rss_mb_after_start']}; after {memory['requests']} "
                     f"requests {memory['rss_mb_after']} (growth {memory['growth_pct']} %); fds "
                     f"{memory['fds_before']} → {memory['fds_after']}")
    if "load_average_before" in results:
        before, after = (tuple(round(x, 1) for x in results[k]) for k in ("load_average_before", "load_average_after"))
        lines.append(f"load average (1, 5, 15 min) before {before}, after {after}")
    for check in results.get("targets", []):
        lines.append(f"{'met ' if check['met'] else 'MISSED'} {check['target']}: {check['value']}")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configurations = list(results["configurations"])
    fig, axes = plt.subplots(len(configurations), 3, figsize=(13, 3.6 * len(configurations)), squeeze=False)
    for row_axes, configuration in zip(axes, configurations, strict=True):
        for ax, key in zip(row_axes, ("p50_ms", "p95_ms", "p99_ms"), strict=True):
            for name, rows in results["configurations"][configuration].items():
                ax.plot([r["clients"] for r in rows], [r[key] for r in rows], marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrent clients")
            ax.set_title(f"{configuration}: {key.replace('_ms', ' latency (ms)')}", fontsize=9)
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    run()
