"""Minwon Voice: the application factory and the command line (`python app.py --help`)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from channels import api_docs, console, mydata, native, notifications, voice_stream
from channels import voice as voice_channel
from channels.alexa import webhook as alexa_webhook
from channels.alexa.interaction_model import DEFAULT_INVOCATION_NAME, MODEL_PATH, AlexaCatalog, write_model
from channels.kakao import webhook as kakao_webhook
from channels.nugu import webhook as nugu_webhook
from domain.crypto import IntegrityFailure
from http_api import limit_unrouted_requests, register_error_handlers
from observability import configure_logging, method_label, request_id_var, route_label
from retrieval import cli as retrieval_cli
from retrieval import endpoints as retrieval_endpoints
from retrieval.dense import EncoderConfigError
from retrieval.service_loader import check_encoder_setting
from services import Services
from settings import PROJECT_DATA, Settings
from storage import StorageUnavailable, describe_url
from understanding import cli as understanding_cli
from voice import endpoints as voice_endpoints
from wallet_bridge import cli as wallet_cli
from wallet_bridge import endpoints as wallet_endpoints

log = logging.getLogger("minwon")

BLUEPRINTS = (native.bp, api_docs.bp, alexa_webhook.bp, kakao_webhook.bp, nugu_webhook.bp, wallet_endpoints.bp,
              mydata.bp, notifications.bp, retrieval_endpoints.bp, voice_endpoints.bp, voice_channel.bp,
              voice_stream.bp, console.bp)


def create_app(settings: Settings | None = None, *, start: bool = True) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, fmt=settings.log_format)
    refuse_unusable_models(settings)
    app = Flask(__name__)
    # Audio uploads are the largest bodies (10 MB); JSON bodies have their own smaller limit.
    app.config["MAX_CONTENT_LENGTH"] = 10 * 1024 * 1024 + 1024
    app.json.ensure_ascii = False
    state = Services(settings)
    # An unreachable database does not stop the service: /health answers 503 naming the storage until it is back.
    state.initialize_or_wait()
    app.extensions["minwon"] = state
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    register_error_handlers(app, integrity_errors=(IntegrityFailure,))
    _instrument(app, state)
    limit_unrouted_requests(app)  # after _instrument, so a 429 here is logged with its request id
    if start:
        state.start()
    return app


def create_production_app() -> Flask:
    """The gunicorn entry (`make serve-prod`): the bind address is not known here, so demo mode is refused
    unless MINWON_DEMO_PUBLIC=1 says the published demo PINs and tokens may be reachable."""
    settings = Settings.from_env()
    refuse_exposed_demo(settings, host=None)
    return create_app(settings)


def refuse_unusable_models(settings: Settings) -> None:
    """A model setting that cannot work stops the start with one line naming the setting, rather than a
    traceback from the loader thread and a /health that stays 503."""
    if not settings.load_models:
        return
    try:
        check_encoder_setting(settings)
    except EncoderConfigError as exc:
        raise SystemExit(f"cannot start: {exc}") from None


def refuse_exposed_demo(settings: Settings, host: str | None) -> None:
    """Demo mode publishes PINs and device tokens (README): only on loopback, unless explicitly allowed."""
    if not settings.demo:
        return
    loopback = host is not None and _is_loopback(host)
    if loopback:
        return
    if not settings.flag("MINWON_DEMO_PUBLIC", False):
        raise SystemExit("refusing to serve demo data (published PINs and tokens) on a non-loopback address; "
                         "bind 127.0.0.1, turn MINWON_DEMO off, or set MINWON_DEMO_PUBLIC=1")
    log.warning("demo data is served on a non-loopback address (MINWON_DEMO_PUBLIC=1): anyone who can reach "
                "it can act as the demo citizens")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _instrument(app: Flask, state: Services) -> None:
    @app.before_request
    def _begin() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        rid = incoming if incoming.isascii() and 0 < len(incoming) <= 64 and incoming.isprintable() else (
            secrets.token_hex(8))
        g.request_id_token = request_id_var.set(rid)
        g.started = time.perf_counter()

    @app.after_request
    def _end(response: Any) -> Any:
        route = route_label(request.url_rule.rule if request.url_rule else None)
        method = method_label(request.method)
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        state.metrics.requests.labels(route=route, method=method, status=str(response.status_code)).inc()
        state.metrics.latency.labels(route=route).observe(elapsed)
        response.headers["X-Request-Id"] = request_id_var.get()
        # The route rule, never the path or query string: those carry wallet ids, citizen ids and audio
        # request parameters.
        log.info("request", extra={"route": route, "method": method, "status": response.status_code,
                                   "ms": round(elapsed * 1000, 1)})
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)


# -- command line ---------------------------------------------------------------------------------------

class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler without its access log: that line holds the whole request line, query
    string included (user data, one-time codes). The app logs each request by its route rule instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        # BaseHTTPRequestHandler's error messages quote the raw request line; keep only the status.
        status = args[0] if format.startswith("code %d") and args else None
        log.warning("request refused by the HTTP server", extra={"status": status})


def dev_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """The development server, bound, with the one start line a person needs: the URL to open."""
    server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    log.info("Minwon Voice: open http://%s:%d/ (development server; `make serve-prod` for production)",
             shown, server.port)
    return server


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    refuse_exposed_demo(settings, args.host)
    # Not app.run(): Flask prints its own banner, and werkzeug logs every request line with its query string.
    dev_server(create_app(settings), args.host, args.port).serve_forever()
    return 0


def _device_token(args: argparse.Namespace) -> int:
    state = tool_services()
    try:
        token = state.devices.issue(args.user_id)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    # Printed once for the device; only its keyed digest is stored, and it is never logged.
    print(token)
    return 0


def _revoke_device(args: argparse.Namespace) -> int:
    print(f"revoked {tool_services().devices.revoke_all(args.user_id)} device token(s)")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    if not tool_services().accounts.unlock(args.citizen_id):
        print(f"no citizen {args.citizen_id}", file=sys.stderr)
        return 1
    print(f"unlocked {args.citizen_id}")
    return 0


def tool_services() -> Services:
    """The stores for a command-line tool: initialised, no models, no background workers."""
    state = Services(Settings.from_env(load_models=False))
    state.initialize()
    return state


def _init(_args: argparse.Namespace) -> int:
    tool_services().stop()
    print("initialised")
    return 0


def _purge(_args: argparse.Namespace) -> int:
    state = tool_services()
    print(state.purge())
    state.stop()
    return 0


def _link_code(args: argparse.Namespace) -> int:
    state = tool_services()
    try:
        code = state.accounts.issue_link_code(args.citizen_id)
    except KeyError:
        print(f"no citizen {args.citizen_id}", file=sys.stderr)
        return 1
    # Printed for the citizen to say to the speaker; it is never logged.
    print(code)
    return 0


def _mobile_id_offer(args: argparse.Namespace) -> int:
    state = tool_services()
    citizen = state.accounts.citizen(args.citizen_id)
    if citizen is None or not citizen.birth_date:
        print(f"no citizen {args.citizen_id} with a birth date on record", file=sys.stderr)
        return 1
    offer = state.wallet.offer_mobile_id(args.citizen_id, f"cli:mobile-id:{secrets.token_urlsafe(12)}")
    if offer is None:
        print(f"citizen {args.citizen_id} has no registered wallet", file=sys.stderr)
        return 1
    # Printed for the citizen to type into the wallet app; it is never logged.
    print(json.dumps({"offer_id": offer.offer_id, "tx_code": offer.tx_code}))
    return 0


def _verify_consent_chain(_args: argparse.Namespace) -> int:

    report = tool_services().consents.verify_chain()
    print(report.describe())
    return 0 if report.ok else 1


def _citizen_token(args: argparse.Namespace) -> int:
    state = tool_services()
    if state.accounts.citizen(args.citizen_id) is None:
        print(f"no citizen {args.citizen_id}", file=sys.stderr)
        return 1
    # Printed once for the citizen's app; only its hash is stored, and it is never logged.
    print(state.citizen_tokens.issue(args.citizen_id))
    return 0


def _notify_scan(_args: argparse.Namespace) -> int:
    state = tool_services()
    # One pass by hand, beside the periodic job: what is already raised is not raised again.
    print(state.notify_scan())
    state.stop()
    return 0


def _certificate_state(args: argparse.Namespace) -> int:
    from datetime import date

    try:
        valid_until = date.fromisoformat(args.valid_until) if args.valid_until else None
    except ValueError:
        print("--valid-until must be a date (YYYY-MM-DD)", file=sys.stderr)
        return 1
    if args.state != "issued" and valid_until is not None:
        print("--valid-until is only for an issued certificate", file=sys.stderr)
        return 1
    state = tool_services()
    request_id = args.request_id or f"cli:{secrets.token_urlsafe(12)}"
    report = state.report_certificate_state(args.agency_id, args.certificate_id, request_id, args.state, valid_until)
    state.stop()
    if report.outcome == "not_found":
        print(f"no certificate {args.certificate_id} issued by {args.agency_id}", file=sys.stderr)
        return 1
    if report.outcome == "conflict":
        print("conflict: the request id was used for another report, or the application is no longer in progress",
              file=sys.stderr)
        return 1
    print(json.dumps({"certificate_id": args.certificate_id, "state": args.state, "request_id": request_id,
                      "repeated": report.outcome == "repeated"}))
    return 0


def _alexa_model(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    invocation = args.invocation_name or settings.get("MINWON_ALEXA_INVOCATION_NAME", DEFAULT_INVOCATION_NAME)
    path = write_model(AlexaCatalog.load(PROJECT_DATA, invocation), args.output)
    print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from bench import load

    load.run(concurrency=tuple(args.clients), per_level=args.requests, leak_requests=args.leak_requests,
             database_url=args.database_url, start_postgres=args.local_postgres, two_nodes=not args.no_two_nodes)
    return 0


def _bench_voice(args: argparse.Namespace) -> int:
    from bench import voice

    voice.run(repeats=args.repeats)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="Minwon Voice service and tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service (development server; see `make serve-prod`)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_serve)
    init = sub.add_parser("init", help="create or upgrade the database, make the first signing keys, seed demo data")
    init.set_defaults(func=_init)
    purge = sub.add_parser("purge", help="delete expired dialog sessions, old stored replies and full rate-limit "
                                         "budgets; prints the rows removed")
    purge.set_defaults(func=_purge)
    device = sub.add_parser("device-token", help="issue a device token for an existing speaker user (printed once)")
    device.add_argument("user_id")
    device.set_defaults(func=_device_token)
    revoke = sub.add_parser("revoke-device", help="revoke every device token of a speaker user")
    revoke.add_argument("user_id")
    revoke.set_defaults(func=_revoke_device)
    unlock = sub.add_parser("unlock", help="lift a citizen's PIN lock (after checking who is asking)")
    unlock.add_argument("citizen_id")
    unlock.set_defaults(func=_unlock)
    link = sub.add_parser("link-code", help="issue a one-time code that links a speaker to a citizen")
    link.add_argument("citizen_id")
    link.set_defaults(func=_link_code)
    mobile_id = sub.add_parser("mobile-id-offer", help="put a mobile ID offer into a citizen's wallet mailbox; "
                                                       "prints its tx_code once")
    mobile_id.add_argument("citizen_id")
    mobile_id.set_defaults(func=_mobile_id_offer)
    chain = sub.add_parser("verify-consent-chain",
                           help="check the consent ledger's hash chain and receipts; reports the first broken link")
    chain.set_defaults(func=_verify_consent_chain)
    token = sub.add_parser("citizen-token", help="issue an app token that lets a citizen read their consents")
    token.add_argument("citizen_id")
    token.set_defaults(func=_citizen_token)
    scan = sub.add_parser("notify-scan", help="one pass of the notification scan; prints the notifications raised")
    scan.set_defaults(func=_notify_scan)
    cert_state = sub.add_parser("certificate-state",
                                help="an issuing agency's report: an application was issued or refused")
    cert_state.add_argument("agency_id")
    cert_state.add_argument("certificate_id")
    cert_state.add_argument("state", choices=["issued", "refused"])
    cert_state.add_argument("--valid-until", default=None, help="the last valid day of an issued certificate")
    cert_state.add_argument("--request-id", default=None,
                            help="the agency's id of this report: running it again with the same id changes nothing")
    cert_state.set_defaults(func=_certificate_state)
    model = sub.add_parser("alexa-model", help="generate the Alexa en-US interaction model from data/intents")
    model.add_argument("--output", type=Path, default=MODEL_PATH)
    model.add_argument("--invocation-name", default="")
    model.set_defaults(func=_alexa_model)
    bench = sub.add_parser("bench", help="every benchmark side by side; JSON, a table and a chart in bench/out/")
    bench.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    bench.add_argument("--requests", type=int, default=400, help="requests per scenario and concurrency level")
    bench.add_argument("--leak-requests", type=int, default=10_000, help="requests of the memory-growth run")
    bench.add_argument("--database-url", default=None,
                       help="a PostgreSQL server (postgresql+psycopg://user:password@host:5432/db) on which the "
                            "benchmark creates and drops its own databases: the same scenarios run on SQLite and on "
                            "PostgreSQL, and on two nodes behind nginx, side by side")
    bench.add_argument("--local-postgres", action="store_true",
                       help="start a throwaway PostgreSQL for the PostgreSQL runs (as the tests do)")
    bench.add_argument("--no-two-nodes", action="store_true", help="skip the two-node run (it needs nginx)")
    bench.set_defaults(func=_bench)
    wallet_cli.add_commands(sub, lambda: tool_services().wallet)
    retrieval_cli.add_commands(sub, after_build=understanding_cli.build_router_models)
    understanding_cli.add_commands(sub)
    bench_voice = sub.add_parser("bench-voice", help="speech benchmarks: raw Vosk vs /v1/asr, RTF, latency, TTS, RSS")
    bench_voice.add_argument("--repeats", type=int, default=3, help="passes over the benchmark clips")
    bench_voice.set_defaults(func=_bench_voice)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except IntegrityFailure as exc:
        # Tampered or foreign data at rest (e.g. an upgrade that refuses to re-seal a broken consent chain):
        # one line for the operator, not a traceback.
        print(f"integrity check failed: {exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        # An unreachable, locked or timed-out database: one line (no password, no traceback), exit code 3.
        database = describe_url(Settings.from_env().database_url)
        print(f"storage unavailable ({database}): {exc.detail or exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
