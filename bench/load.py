"""Text turns under gunicorn at 1, 8, 32 and 64 concurrent clients, side by side with a trivial route.

Runs a real gunicorn (threads, one process per core) on loopback with a fresh data directory, drives it
with a bounded thread-pool client, and reports throughput and p50/p95/p99 per scenario, the ratio of
each scenario to the trivial route at the same concurrency (the floor: what the server costs with no
work), errors, and the workers' RSS before and after a long run. The client shares the 2 cores with the
server, so absolute figures understate the server; the ratios are the comparable numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GunicornServer:
    def __init__(self, workers: int = 2, threads: int = 8, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="minwon-bench-"))
        self.env = {**os.environ, "MINWON_DEMO": "1", "MINWON_DATA_DIR": str(self.data_dir), "MINWON_RATE_LIMIT_PER_MINUTE": "100000000",
                    "MINWON_LOG_LEVEL": "WARNING", **(env or {})}
        self.workers = workers
        self.threads = threads
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GunicornServer:
        # Storage and demo data are created once before the workers start, so they do not race to seed.
        subprocess.run([sys.executable, "app.py", "init"], cwd=ROOT, env=self.env, check=True)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--workers", str(self.workers), "--threads",
             str(self.threads), "--bind", f"127.0.0.1:{self.port}", "--timeout", "120", "app:create_app()"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 600
        while time.time() < deadline:
            try:
                # Every worker must have loaded its models: ask more times than there are workers.
                if all(requests.get(self.url + "/health", timeout=2).status_code == 200 for _ in range(8)):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError("gunicorn did not become healthy")

    def worker_rss_mb(self) -> list[float]:
        assert self.process is not None
        return [round(child.memory_info().rss / 2**20, 1) for child in psutil.Process(self.process.pid).children()]

    def worker_fds(self) -> list[int]:
        assert self.process is not None
        return [child.num_fds() for child in psutil.Process(self.process.pid).children()]

    def __exit__(self, *_exc: object) -> None:
        if self.process:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        shutil.rmtree(self.data_dir, ignore_errors=True)


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


def certificate_turn(session: requests.Session, url: str, i: int) -> requests.Response:
    # Step-up in the session first, then the measured status question in the same session.
    sid = getattr(session, "minwon_sid", None)
    if sid is None:
        first = session.post(url + "/v1/converse", json={"text": "내 증명서 상태 알려줘"}, headers=DEMO_KO,
                             timeout=30).json()
        session.post(url + "/v1/converse", json={"text": "1357", "session_id": first["session_id"]},
                     headers=DEMO_KO, timeout=30)
        session.minwon_sid = sid = first["session_id"]  # type: ignore[attr-defined]
    return session.post(url + "/v1/converse", json={"text": "내 증명서 상태 알려줘", "session_id": sid},
                        headers=DEMO_KO, timeout=30)


SCENARIOS: dict[str, Request] = {
    "trivial (/health)": trivial,
    "faq turn": converse("등본 떼려면 어떻게 해?"),
    "certificate status turn": certificate_turn,
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
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            ok = request(session, url, i).status_code < 500
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += 0 if ok else 1

    # Warm-up (connections, caches) outside the measurement.
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(min(total, clients * 2))))
    latencies.clear()
    errors = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(total)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {"clients": clients, "requests": total, "errors": errors, "rps": round(total / wall, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def run(concurrency: tuple[int, ...] = (1, 8, 32, 64), per_level: int = 400, leak_requests: int = 10_000,
        out_dir: Path | None = None) -> dict[str, Any]:
    out_dir = out_dir or ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "scenarios": {}}
    with GunicornServer() as server:
        results["rss_mb_after_start"] = server.worker_rss_mb()
        for name, request in SCENARIOS.items():
            results["scenarios"][name] = [run_scenario(server.url, request, c, max(per_level, c * 4))
                                          for c in concurrency]
        before_rss, before_fds = server.worker_rss_mb(), server.worker_fds()
        run_scenario(server.url, SCENARIOS["faq turn"], 8, leak_requests)
        after_rss, after_fds = server.worker_rss_mb(), server.worker_fds()
        results["memory"] = {
            "requests": leak_requests, "rss_mb_before": before_rss, "rss_mb_after": after_rss,
            "growth_pct": round(100 * (sum(after_rss) - sum(before_rss)) / sum(before_rss), 2),
            "fds_before": before_fds, "fds_after": after_fds,
        }
    floor = {row["clients"]: row for row in results["scenarios"]["trivial (/health)"]}
    for rows in results["scenarios"].values():
        for row in rows:
            row["p50_ratio_to_trivial"] = round(row["p50_ms"] / max(floor[row["clients"]]["p50_ms"], 0.01), 2)
    (out_dir / "load.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(table(results))
    chart(results, out_dir / "load.png")
    return results


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0], "platform": sys.platform}


def table(results: dict[str, Any]) -> str:
    lines = [f"{'scenario':26} {'clients':>7} {'rps':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
             f"{'p50/trivial':>11} {'errors':>6}"]
    for name, rows in results["scenarios"].items():
        for row in rows:
            lines.append(f"{name:26} {row['clients']:>7} {row['rps']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} "
                         f"{row['p99_ms']:>8} {row['p50_ratio_to_trivial']:>11} {row['errors']:>6}")
    memory = results["memory"]
    lines.append(f"worker RSS MB after start {results['rss_mb_after_start']}; after {memory['requests']} requests "
                 f"{memory['rss_mb_after']} (growth {memory['growth_pct']} %); fds {memory['fds_before']} → "
                 f"{memory['fds_after']}")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=False)
    for ax, key in zip(axes, ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        for name, rows in results["scenarios"].items():
            ax.plot([r["clients"] for r in rows], [r[key] for r in rows], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(key.replace("_ms", " latency (ms)"))
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    run()
