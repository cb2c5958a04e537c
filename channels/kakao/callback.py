"""Slow Kakao turns: run the turn in a worker, answer ``useCallback`` at once, POST the reply later.

Open Builder waits five seconds for a skill. A block with the AI-chatbot callback enabled sends a
one-time ``callbackUrl`` (valid for one minute): when a turn has not finished within the budget
(default 3.5 s), the webhook answers ``{"useCallback": true}`` and the finished reply is POSTed to that
URL exactly once by the worker. Callback URLs are accepted only on the configured hosts (Kakao's by
default) and over https, so that a request cannot make the service POST somewhere else: the URL is checked
and sent by ``outbound.py`` (urllib3's parser for the check and the request alike, the host resolved and
its address checked and pinned at send time, no redirects).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from outbound import OutboundPolicy, OutboundRefused, ParsedTarget

log = logging.getLogger(__name__)


class CallbackPolicy:
    """Which callback URLs may be used: https on an allowed host or its subdomains, on a public address."""

    def __init__(self, allowed_hosts: Iterable[str], outbound: OutboundPolicy | None = None) -> None:
        self.allowed_hosts = tuple(h.strip().lower().strip(".") for h in allowed_hosts if h.strip())
        self.outbound = outbound or OutboundPolicy()

    def target(self, url: str) -> ParsedTarget | None:
        """The checked callback target, or None when the URL may not be used."""
        try:
            return self.outbound.check_url(url, self.allowed_hosts)
        except OutboundRefused as exc:
            log.warning("kakao callbackUrl refused: answering without callback", extra={"reason": exc.reason})
            return None

    def allows(self, url: str) -> bool:
        return self.target(url) is not None


class CallbackWorker:
    def __init__(self, workers: int = 4, timeout_s: float = 10.0, outbound: OutboundPolicy | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kakao-turn")
        self._timeout_s = timeout_s
        self._outbound = outbound or OutboundPolicy()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        # The copied context keeps the request id on the worker's log lines.
        return self._pool.submit(contextvars.copy_context().run, fn, *args)

    def post_when_done(self, future: Future, target: ParsedTarget, render: Callable[[Any], dict[str, Any]]) -> None:
        """POSTs ``render(result)`` to ``target`` (from ``CallbackPolicy.target``) once the turn is done:
        exactly one attempt, the URL is single-use. Its address is resolved and checked again at send time."""

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
                status = self._outbound.post_json(target, body, timeout_s=self._timeout_s)
            except OutboundRefused as exc:
                log.warning("kakao callback not sent: outbound policy", extra={"reason": exc.reason})
                return
            except Exception as exc:  # noqa: BLE001 - same: nobody else to report to
                log.warning("kakao callback failed", extra={"error": type(exc).__name__})
                return
            if status >= 300:  # a redirect is not followed: the reply did not arrive
                log.warning("kakao callback refused", extra={"status": status})
            else:
                log.info("kakao callback delivered", extra={"status": status})

        future.add_done_callback(lambda done: self._pool.submit(contextvars.copy_context().run, deliver, done))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
