"""Structured logs with a request id, and Prometheus metrics per route and per skill.

Log lines carry only what was done (route, status, intent, skill, timings), never what was said:
turn text, PINs, codes, tokens and callback URLs are not passed to the logger, and session ids and
platform user keys appear only as `log_ref` digests. The formatters below are a second line of
defence, and they redact by what a value *is*, not by its shape, so that ports, years, counts and
durations stay readable:

- a value logged under a secret field name (``extra={"pin": …}``, ``"access_token"``, ``"name"`` …) is
  always replaced, also inside nested dicts;
- in free text (messages, string fields, tracebacks) the formats that are unmistakably secret are
  replaced: resident registration numbers, ``Bearer …``, JWT/JWS compact tokens, ``pin=…``, ``tx_code=…``,
  ``pre-authorized_code=…`` and the like, and the values of URL query strings.

``MINWON_LOG_FORMAT=json`` (the default) writes one JSON object a line; ``text`` writes
``HH:MM:SS LEVEL logger: message key=value …`` for a person at a terminal.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REDACTED = "[redacted]"
LOG_FORMATS = ("json", "text")

# Field names whose values are secret or personal whatever they look like (compared lower-case, "-" as "_").
# Session ids and user keys are here too: call sites log `log_ref(...)` under a `*_ref` name instead.
SECRET_FIELDS = frozenset({
    "pin", "code", "tx_code", "pre_authorized_code", "link_code", "auth_code", "authorization_code",
    "token", "access_token", "refresh_token", "id_token", "bearer", "device_token", "wallet_token",
    "authorization", "cookie", "set_cookie", "secret", "secret_key", "client_secret", "password", "passphrase",
    "api_key", "admin_key", "agency_key", "key", "private_key", "nonce", "c_nonce", "credential", "proof",
    "name", "full_name", "citizen_name", "holder_name", "given_name", "family_name", "display_name",
    "rrn", "resident_number", "resident_registration_number", "phone", "email", "address", "birth_date",
    "session", "session_id", "user", "user_id", "user_key", "device_id", "callback_url", "callbackurl", "url",
    "push_url", "text", "utterance", "transcript", "query", "query_string", "body",
})
SECRET_FIELD_SUFFIXES = ("_token", "_secret", "_password", "_pin", "_code", "_key", "_url")

# Free-text recognisers: each matches only what cannot be anything but a secret.
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=-]+"
_RECOGNISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Resident registration number: birth date, hyphen, a 1-8 sex/century digit and six more.
    (re.compile(r"(?<!\d)\d{6}-[1-8]\d{6}(?!\d)"), REDACTED),
    # JWT / JWS / SD-JWT compact serialisations (a base64url JSON header always starts with "eyJ").
    (re.compile(r"\beyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){2,4}(?:~[A-Za-z0-9_.-]*)*"), REDACTED),
    (re.compile(rf"(?i)\b(bearer)\s+{_TOKEN_CHARS}"), rf"\1 {REDACTED}"),
    # key=value / key: value / "key": "value" for secret keys, wherever the text came from.
    (re.compile(r"""(?ix)(?<![A-Za-z0-9_])
        (pre[-_]authorized_code|tx_code|link_code|pin|access_token|refresh_token|id_token|device_token
         |wallet_token|token|client_secret|secret|password|api_key|c_nonce|authorization)
        (["']?\s*[=:]\s*["']?)
        ((?:bearer|basic)\s+)?+   # an Authorization value keeps its scheme (possessive: never given back)
        (?!\[redacted\])[^\s&"',;)}\]]+"""), rf"\1\2\3{REDACTED}"),
    # Said rather than assigned: "PIN 7319", "tx_code 482913", "link code 012345".
    (re.compile(r"(?i)(?<![A-Za-z0-9_])(pin|tx_code|link[ _]code)(\s+(?:is\s+|number\s+)?)\d{4,8}(?!\d)"),
     rf"\1\2{REDACTED}"),
    # URL query strings carry user data and one-time codes (?code=…, ?text=…): keep the names only.
    (re.compile(r"(?<=\S)([?&][A-Za-z0-9_.\[\]-]+=)(?!\[redacted\])[^&\s#\"'<>]+"), rf"\1{REDACTED}"),
)

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


# Every recogniser needs one of these in the text: six digits and a hyphen (a registration number), = or : (a key
# and its value, a query string), a JWS header (eyJ), or the word bearer, pin, tx_code or link code. Most logged
# strings (messages, routes, intents, request ids, references) have none and skip the six patterns: two log lines a
# request, each with several fields, made redaction the larger part of a log line's cost.
_MAY_HOLD_SECRET = re.compile(r"\d{6}-|[=:]|eyJ|(?i:bearer|pin|tx_code|link[ _]code)")


def redact(text: str) -> str:
    """Free text with every unmistakable secret format replaced; numbers that are not secrets are kept."""
    if _MAY_HOLD_SECRET.search(text) is None:
        return text
    return _apply_recognisers(text)


def _apply_recognisers(text: str) -> str:
    for pattern, replacement in _RECOGNISERS:
        text = pattern.sub(replacement, text)
    return text


def is_secret_field(name: str) -> bool:
    key = name.lower().replace("-", "_")
    return key in SECRET_FIELDS or key.endswith(SECRET_FIELD_SUFFIXES)


def redact_value(value: Any, field: str | None = None) -> Any:
    """A field's value as it may be logged: secret field names lose their value, free text is redacted."""
    if field is not None and is_secret_field(field):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


# -- log references: correlate lines without logging the identifier ------------------------------------

# Until the service secret is known (tools, tests), a random key: references are then only valid for the
# process, which is all they are for.
_ref_key: bytes = os.urandom(32)


def set_log_ref_key(secret_key: bytes) -> None:
    """Derive the `log_ref` key from the service secret, so references agree across the workers of a node."""
    global _ref_key
    if secret_key:
        _ref_key = hashlib.sha256(b"minwon-log-ref-v1:" + secret_key).digest()


def log_ref(value: str | None) -> str | None:
    """A short keyed digest of a session id or platform user key, for logs. Keyed (HMAC) rather than a plain
    hash: user keys are stable and guessable, and a plain hash would let anyone holding one find its lines."""
    if value is None:
        return None
    return hmac.new(_ref_key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:12]


# -- formatters -----------------------------------------------------------------------------------------


class _RedactingFormatter(logging.Formatter):
    """What both formats share: the record's message and extra fields, redacted."""

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        return {key: redact_value(value, key) for key, value in vars(record).items()
                if key not in _STANDARD_ATTRS and not key.startswith("_")}

    def exception_text(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return redact("\n".join(parts)) if parts else None


class JsonFormatter(_RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "request_id": redact(request_id_var.get()),
            "msg": redact(record.getMessage()),
        }
        entry.update(self.fields(record))
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        exc = self.exception_text(record)
        if exc:
            entry["exc"] = exc
        return json.dumps(entry, ensure_ascii=False, default=str)


_BARE = re.compile(r"[^\s\"'=]+")


def _text_value(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class TextFormatter(_RedactingFormatter):
    """``HH:MM:SS LEVEL logger: message key=value …``: one line a record (a traceback follows, indented)."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{clock} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        fields = self.fields(record)
        request_id = request_id_var.get()
        if request_id != "-":
            fields["request_id"] = redact(request_id)
        if fields:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        exc = self.exception_text(record)
        if exc:
            line += "\n" + "\n".join("    " + part for part in exc.splitlines())
        return line


def configure_logging(level: str = "INFO", stream: Any = None, fmt: str = "json") -> None:
    """One handler on the root logger (replacing one an earlier call added), in `fmt` ("json" or "text")."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, _RedactingFormatter)]
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs every request line (path and query) at DEBUG, and a Kakao callback URL is a one-time
    # capability: it never logs below WARNING, whatever MINWON_LOG_LEVEL says.
    urllib3 = logging.getLogger("urllib3")
    urllib3.setLevel(max(logging.WARNING, root.level))


# Label values are chosen by the server, never by the client: a method or path the client makes up would
# otherwise become a new time series each time, and /metrics (and memory) would grow without bound.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str) -> str:
    """The request method as a metric label: one of HTTP_METHODS, else OTHER."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def route_label(rule: str | None) -> str:
    """The matched route's pattern (/v1/wallets/<wallet_id>/offers), never the requested path."""
    return rule or UNMATCHED_ROUTE


class Metrics:
    """One registry per app, so several apps in one test process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "minwon_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "minwon_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.skill_turns = Counter(
            "minwon_skill_turns_total", "Dialog turns per skill and intent", ["skill", "intent"], registry=self.registry
        )
        self.skill_latency = Histogram(
            "minwon_skill_seconds", "Dialog turn latency per skill", ["skill"], registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )

    def observe_turn(self, skill: str, intent: str, started: float) -> None:
        self.skill_turns.labels(skill=skill, intent=intent).inc()
        self.skill_latency.labels(skill=skill).observe(time.perf_counter() - started)
