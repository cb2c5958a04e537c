"""Slow Kakao turns: run the turn in a worker, answer ``useCallback`` at once, POST the reply later.

Open Builder waits five seconds for a skill. A block with the AI-chatbot callback enabled sends a
one-time ``callbackUrl`` (valid for one minute): when a turn has not finished within the budget
(default 3.5 s), the webhook answers ``{"useCallback": true}`` and the finished reply is POSTed to that
URL exactly once by the worker. Callback URLs are accepted only on the configured hosts (Kakao's by
default) and over https, so that a request cannot make the service POST somewhere else.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CallbackPolicy:
    """Which callback URLs may be used: https on an allowed host (suffix match); plain http only on loopback."""

    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        self.allowed_hosts = tuple(h.strip().lower().strip(".") for h in allowed_hosts if h.strip())

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return False
        if not host or parts.username or parts.password:
            return False
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(host)):
            return False
        return any(host == allowed or host.endswith("." + allowed) for allowed in self.allowed_hosts)


class CallbackWorker:
    def __init__(self, workers: int = 4, timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kakao-turn")
        self._timeout_s = timeout_s
        self._session = session or requests.Session()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        # The copied context keeps the request id on the worker's log lines.
        return self._pool.submit(contextvars.copy_context().run, fn, *args)

    def post_when_done(self, future: Future, url: str, render: Callable[[Any], dict[str, Any]]) -> None:
        """POSTs ``render(result)`` to ``url`` once the turn is done (exactly one attempt: the URL is single-use)."""

        def deliver(done: Future) -> None:
            try:
                body = render(done.result())
            except Exception:  # noqa: BLE001 - a worker thread has nobody else to report to
                # No URL in play here, so the traceback may be logged.
                log.exception("kakao callback: the reply could not be rendered")
                return
            # The callback URL is a one-time capability: it is never logged, and requests' exceptions quote
            # it in their message, so a failure is logged by its type only (no exc_info).
            try:
                response = self._session.post(url, json=body, timeout=self._timeout_s)
            except Exception as exc:  # noqa: BLE001 - same: nobody else to report to
                log.warning("kakao callback failed", extra={"error": type(exc).__name__})
                return
            if response.status_code >= 400:
                log.warning("kakao callback refused", extra={"status": response.status_code})
            else:
                log.info("kakao callback delivered", extra={"status": response.status_code})

        future.add_done_callback(lambda done: self._pool.submit(contextvars.copy_context().run, deliver, done))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
