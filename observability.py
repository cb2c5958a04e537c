"""Structured JSON logs with a request id, and Prometheus metrics per route and per skill.

Log lines carry only what was done (route, status, intent, skill, timings), never what was said:
turn text, PINs, codes and tokens are not passed to the logger. The redaction below is a second
line of defence for anything that slips through (a library's message with a number in it).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Runs of 4+ digits (PINs, tx_codes, link codes, phone and registration numbers) and bearer-like tokens.
_SECRETISH = re.compile(r"\d[\d\s-]{2,}\d|(?i:bearer\s+\S+)|(?i:token[\"'=:\s]+\S+)")
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def redact(text: str) -> str:
    return _SECRETISH.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "request_id": request_id_var.get(),
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, JsonFormatter)]
    root.addHandler(handler)
    root.setLevel(level)


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
