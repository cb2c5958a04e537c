"""A local cluster on loopback: a throwaway PostgreSQL, service nodes run the way `make serve-prod` runs one, and
nginx in front of them.

`make cluster` (`python -m bench.cluster`) starts PostgreSQL, two nodes with the demo data and nginx, and keeps
them running until Ctrl-C or `make cluster-stop` (`python -m bench.cluster stop`). The two-node benchmark
(`app.py bench --database-url …`) and the two-node test (`tests/reliability/test_two_nodes.py`) start their nodes
with the same `ServiceNode`, so what is measured and tested is what a person tries.

Each node is one gunicorn (`app:create_production_app()`, threads) with its own data directory (its built index
and caches) and the cluster's one database, `MINWON_SECRET_KEY` and admin key. The demo data is seeded once, by the
first node's `app.py init` with MINWON_DEMO=1 (as `make serve-prod` runs `init` before gunicorn); the nodes then
serve without demo mode, so the demo device tokens work and the console asks for one.

PostgreSQL is a throwaway cluster (`local_postgres.py`, as in the tests: `initdb` into a temporary directory as
the `postgres` user when run as root, a free loopback port, no fsync). nginx runs from a configuration written into
`<state dir>/nginx/` (never the system's), listens on loopback only and spreads requests round-robin; it keeps no
request bodies or responses on disk, so its worker processes need no writable directory.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# What `make cluster` keeps between its start and `make cluster-stop`: node data directories, nginx's
# configuration and logs, the supervisor's pid.
DEFAULT_STATE_DIR = ROOT / "var" / "cluster"
NGINX_INSTALL_HINT = "nginx is not installed: `make cluster` installs the Debian package, or run: apt-get install nginx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceNode:
    """One service node: `app.py init`, then gunicorn with `app:create_production_app()` on a loopback port, in a
    process group of its own (so that `kill()` takes the master and its workers down at once)."""

    def __init__(self, name: str, data_dir: Path, env: Mapping[str, str], port: int | None = None,
                 workers: int = 1, threads: int = 8) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = port or free_port()
        self.workers = workers
        self.threads = threads
        # Settings come from `env` only: a MINWON_* variable of the calling shell never leaks into a node.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MINWON_")}
        self.env = {**inherited, **env, "MINWON_DATA_DIR": str(data_dir)}
        self.process: subprocess.Popen | None = None
        # Next to the data directory, not in it: a node may lose its data directory without harm.
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def init(self, demo: bool = False) -> None:
        """`app.py init` for this node (schema, keys; with `demo`, the demo data when the database is empty)."""
        env = {**self.env, "MINWON_DEMO": "1" if demo else "0"}
        result = subprocess.run([sys.executable, "app.py", "init"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: app.py init failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> None:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [str(gunicorn), "--workers", str(self.workers), "--threads", str(self.threads), "--bind",
                 f"127.0.0.1:{self.port}", "--timeout", "120", "--graceful-timeout", "10",
                 "app:create_production_app()"],
                cwd=ROOT, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_healthy(self, timeout: float = 600) -> None:
        """Until /health answers 200 from every worker. Which worker takes a connection is the kernel's choice, and
        a worker still loading its models answers 503, so the node counts as ready after many 200s in a row, spread
        over a second (each on a new connection)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._healthy_in_a_row(self.workers * 10):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not become healthy in {timeout:.0f} s:\n{self.log_tail()}")

    def _healthy_in_a_row(self, count: int) -> bool:
        for _ in range(count):
            if not self.healthy():
                return False
            time.sleep(0.05)
        return True

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once: no graceful shutdown, nothing flushed."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        """Graceful stop (SIGTERM: gunicorn lets requests finish), SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, which a user's PATH may lack), or None."""
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found


NGINX_CONF = """\
# Generated by bench/cluster.py for a local cluster on loopback; not a system configuration.
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    # No access log: request lines carry query strings (the service itself logs only route rules).
    access_log off;
    # Request bodies (audio up to 10 MB) and responses stay in memory and are streamed: nothing is written to
    # disk, so the worker (`nobody` when started as root) needs no writable directory.
    client_max_body_size 11m;
    client_body_buffer_size 11m;
    proxy_request_buffering off;
    proxy_max_temp_file_size 0;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    upstream minwon {{
        # Round-robin; a node that refuses connections is skipped for 10 s.
{servers}
        keepalive 32;
        # Below gunicorn's keep-alive (2 s): nginx closes an idle connection before gunicorn does, so a request is
        # never sent down a connection the node is closing (a POST would not be retried: a 502).
        keepalive_timeout 1s;
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://minwon;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 120s;
            # A request is retried on the other node only when it never reached this one (nginx never resends
            # a POST that was sent); the service's request_id makes a client's own retry safe.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class LoadBalancer:
    """nginx on a loopback port, round-robin over `upstreams` (host:port), from a configuration in `directory`."""

    def __init__(self, directory: Path, port: int, upstreams: Sequence[str]) -> None:
        self.directory = directory
        self.port = port
        self.upstreams = list(upstreams)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {upstream} max_fails=1 fail_timeout=10s;" for upstream in self.upstreams)
        path = self.directory / "nginx.conf"
        path.write_text(NGINX_CONF.format(dir=self.directory, servers=servers, port=self.port))
        return path

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError(NGINX_INSTALL_HINT)
        config = self.write_config()
        command = [binary, "-p", str(self.directory), "-e", str(self.directory / "error.log"), "-c", str(config)]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx configuration refused: {check.stderr.strip()}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.error_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start listening")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def error_tail(self) -> str:
        try:
            return (self.directory / "error.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def cluster_env(database_url: str, secret_key: str, admin_key: str, issuer_url: str,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every node of one cluster shares: the database, the secret, the admin key and the issuer address (these
    four win over the same names in `extra`), and the other settings in `extra`."""
    return {
        **(extra or {}),
        "MINWON_DATABASE_URL": database_url, "MINWON_SECRET_KEY": secret_key, "MINWON_ADMIN_API_KEY": admin_key,
        "MINWON_ISSUER_URL": issuer_url,
    }


def start_nodes(nodes: Sequence[ServiceNode], timeout: float = 600) -> None:
    """`init` (the first node seeds the demo data; the others run theirs at the same time, which the schema
    upgrade's advisory lock serialises), then every gunicorn at once, then wait until all are healthy."""
    errors: list[BaseException] = []

    def init(node: ServiceNode, demo: bool) -> None:
        try:
            node.init(demo=demo)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=init, args=(node, i == 0)) for i, node in enumerate(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_healthy(timeout)


@dataclass
class LocalCluster:
    """`nodes` service nodes and nginx on loopback, on `database_url` (a fresh, empty PostgreSQL database) or, when
    it is empty, on a throwaway PostgreSQL started here. `running()` is a context manager: everything it started
    stops at its end. Nodes listen on the ports after `port` (or on free ports with `free_node_ports`)."""

    state_dir: Path
    port: int = 8080
    nodes: int = 2
    workers: int = 1
    threads: int = 8
    load_models: bool = True
    database_url: str = ""
    free_node_ports: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    service_nodes: list[ServiceNode] = field(default_factory=list, init=False)
    balancer: LoadBalancer | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[LocalCluster]:
        if nginx_binary() is None:
            raise RuntimeError(NGINX_INSTALL_HINT)
        with ExitStack() as stack:
            if not self.database_url:
                from local_postgres import start_cluster

                postgres = start_cluster()
                stack.callback(postgres.stop)
                self.database_url = postgres.new_database("minwon")
            # The calling shell's MINWON_* settings apply to every node (MINWON_DEMO aside: the demo data is seeded
            # by the first node's `init`, and nodes run without demo mode); the cluster's own win.
            shell = {k: v for k, v in os.environ.items() if k.startswith("MINWON_") and not k.startswith("MINWON_DEMO")}
            env = cluster_env(self.database_url, secrets.token_hex(32), secrets.token_urlsafe(24), self.url, {
                **shell,
                # nginx on loopback is the one trusted proxy: per-address limits count the caller it names, not nginx.
                "MINWON_TRUSTED_PROXIES": "127.0.0.1/32",
                "MINWON_LOAD_MODELS": "1" if self.load_models else "0",
                **self.extra_env,
            })
            shutil.rmtree(self.state_dir / "nodes", ignore_errors=True)
            (self.state_dir / "nodes").mkdir(parents=True)
            self.service_nodes = [
                ServiceNode(f"node-{i + 1}", self.state_dir / "nodes" / f"node-{i + 1}", env,
                            None if self.free_node_ports else self.port + 1 + i, self.workers, self.threads)
                for i in range(self.nodes)
            ]
            for node in self.service_nodes:
                stack.callback(node.stop)
            start_nodes(self.service_nodes)
            self.balancer = LoadBalancer(self.state_dir / "nginx", self.port,
                                         [f"127.0.0.1:{n.port}" for n in self.service_nodes])
            self.balancer.start()
            stack.callback(self.balancer.stop)
            yield self


# -- make cluster / make cluster-stop ----------------------------------------------------------------------

def _pid_file(state_dir: Path) -> Path:
    return state_dir / "cluster.pid"


def _running_pid(state_dir: Path) -> int | None:
    try:
        pid = int(_pid_file(state_dir).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def serve(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if pid := _running_pid(state_dir):
        print(f"a cluster is already running (pid {pid}); `make cluster-stop` stops it", file=sys.stderr)
        return 1
    stop = threading.Event()
    # Ctrl-C (SIGINT) and `make cluster-stop` (SIGTERM) end the wait below, and the ExitStack stops everything.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    cluster = LocalCluster(state_dir, port=args.port, nodes=args.nodes, workers=args.workers,
                           load_models=not args.no_models, extra_env={"MINWON_LOG_FORMAT": "text"})
    state_dir.mkdir(parents=True, exist_ok=True)
    _pid_file(state_dir).write_text(str(os.getpid()))
    try:
        print(f"starting PostgreSQL, {args.nodes} nodes and nginx (loading the models takes a minute) …", flush=True)
        with cluster.running():
            nodes = ", ".join(f"{n.name} {n.url}" for n in cluster.service_nodes)
            print(f"\nMinwon Voice cluster: {cluster.url}  (nginx, round-robin over {nodes})\n"
                  f"database: {cluster.database_url}\n"
                  f"node logs: {state_dir / 'nodes'}/node-N.log\n\n"
                  f"  curl -s {cluster.url}/health\n"
                  f"  curl -s {cluster.url}/v1/converse -H 'Content-Type: application/json' \\\n"
                  f"       -H 'Authorization: Bearer demo-device-token-ko' -d '{{\"text\": \"내 증명서 상태 알려줘\"}}'\n\n"
                  f"The console ({cluster.url}/) asks for a device token: demo-device-token-ko or demo-device-token-en.\n"
                  "Ctrl-C or `make cluster-stop` stops everything.", flush=True)
            reported: set[str] = set()
            while not stop.wait(1):
                for node in cluster.service_nodes:
                    if not node.alive and node.name not in reported:
                        reported.add(node.name)
                        print(f"{node.name} exited; nginx sends its requests to the others", flush=True)
        print("cluster stopped")
        return 0
    except RuntimeError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        _pid_file(state_dir).unlink(missing_ok=True)


def stop_running(args: argparse.Namespace) -> int:
    pid = _running_pid(args.state_dir)
    if pid is None:
        print("no cluster is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _running_pid(args.state_dir) == pid:
        time.sleep(0.2)
    if _running_pid(args.state_dir) == pid:
        print(f"the cluster (pid {pid}) did not stop within 60 s", file=sys.stderr)
        return 1
    print("cluster stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster",
                                     description="A local PostgreSQL, service nodes and nginx on loopback.")
    parser.add_argument("command", nargs="?", choices=("start", "stop"), default="start",
                        help="start: run in the foreground until Ctrl-C (default); stop: stop the running cluster")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=8080, help="nginx's port; the nodes use the next ones")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per node")
    parser.add_argument("--no-models", action="store_true",
                        help="dialog-only nodes: no FAQ index, no speech models (MINWON_LOAD_MODELS=0)")
    args = parser.parse_args(argv)
    return stop_running(args) if args.command == "stop" else serve(args)


if __name__ == "__main__":
    sys.exit(main())
