"""Fake push platforms on loopback for the notification-push tests (issue 18, item 3).

Why fakes: Kakao i Open Builder's Event API, Login with Amazon's token endpoint, Alexa's Proactive Events API and a
citizen's wallet are services outside this project, reachable only with real credentials and real accounts. This
one small threaded HTTP server stands in for all four on 127.0.0.1 (the service sends to it over plain http only
under MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP, as in the other outbound tests). Like the real platforms it checks what
it must: the Kakao REST API key in `Authorization: KakaoAK …`, the client id and secret of the token request, and
the Alexa event's bearer token (a token it issued and has not revoked: 401 otherwise). It records every request
(path, headers, body) for the tests to check the shape, and can be told to answer the next requests of a route
with a status (500, 401 …) to exercise retries and the token refresh.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from channels.pushes import PushConfig
from outbound import OutboundPolicy
from tests.loopback import LoopbackServer

KAKAO_BOT_ID = "bot-test-0001"
KAKAO_REST_KEY = "kakao-rest-key-test-9f8e7d"
ALEXA_CLIENT_ID = "amzn1.application-oa2-client.test"
ALEXA_CLIENT_SECRET = "alexa-client-secret-test-5c4b3a"

KAKAO_PATH = f"/v2/bots/{KAKAO_BOT_ID}/talk"
TOKEN_PATH = "/auth/o2/token"
ALEXA_PATH = "/v1/proactiveEvents/stages/development"
WALLET_PATH = "/wallet/push"
ROUTES = {KAKAO_PATH: "kakao", TOKEN_PATH: "token", ALEXA_PATH: "alexa", WALLET_PATH: "wallet"}


@dataclass
class Received:
    route: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, or the form fields (token requests)
    status: int  # what the fake answered


@dataclass
class FakePlatforms:
    base: str = ""
    received: list[Received] = field(default_factory=list)
    # route → statuses to answer its next requests with, in order (then the normal answer again)
    scripted: dict[str, list[int]] = field(default_factory=dict)
    tokens_issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def config(self, **overrides: Any) -> PushConfig:
        """Push settings aimed at this fake, with quick retries unless overridden."""
        values: dict[str, Any] = {
            "kakao_event_url": self.base, "kakao_bot_id": KAKAO_BOT_ID, "kakao_rest_key": KAKAO_REST_KEY,
            "alexa_events_url": self.base + ALEXA_PATH, "alexa_token_url": self.base + TOKEN_PATH,
            "alexa_client_id": ALEXA_CLIENT_ID, "alexa_client_secret": ALEXA_CLIENT_SECRET, **overrides}
        return PushConfig(**values)

    @property
    def wallet_url(self) -> str:
        return self.base + WALLET_PATH

    def answer_next(self, route: str, *statuses: int) -> None:
        with self.lock:
            self.scripted.setdefault(route, []).extend(statuses)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.revoked.update(self.tokens_issued)

    def accepted(self, route: str) -> list[Received]:
        """The requests of `route` the fake took (2xx)."""
        with self.lock:
            return [r for r in self.received if r.route == route and 200 <= r.status < 300]

    def all(self, route: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.route == route]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()

    # -- the server's side ----------------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        route = ROUTES.get(path)
        if route is None:
            return 404, {"error": "not found"}
        if route == "token":
            body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        with self.lock:
            scripted = self.scripted.get(route)
            status = scripted.pop(0) if scripted else None
        if status is None:
            status, answer = self._answer(route, headers, body)
        else:
            answer = {"error": "scripted"}
        with self.lock:
            self.received.append(Received(route, path, headers, body, status))
        return status, answer

    def _answer(self, route: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        authorization = headers.get("authorization", "")
        if route == "kakao":
            if authorization != f"KakaoAK {KAKAO_REST_KEY}":
                return 401, {"status": "FAIL", "message": "invalid key"}
            return 200, {"taskId": "task-1", "status": "SUCCESS", "message": "", "timestamp": 0}
        if route == "token":
            expected = {"grant_type": "client_credentials", "client_id": ALEXA_CLIENT_ID,
                        "client_secret": ALEXA_CLIENT_SECRET, "scope": "alexa::proactive_events"}
            if body != expected:
                return 401, {"error": "invalid_client"}
            with self.lock:
                token = f"Atc|fake-token-{len(self.tokens_issued) + 1}"
                self.tokens_issued.append(token)
            return 200, {"access_token": token, "expires_in": 3600, "scope": "alexa::proactive_events",
                         "token_type": "bearer"}
        if route == "alexa":
            token = authorization.removeprefix("Bearer ")
            with self.lock:
                valid = token in self.tokens_issued and token not in self.revoked
            return (202, {}) if valid else (401, {"message": "invalid token"})
        return 200, {}


@contextmanager
def fake_platforms() -> Iterator[FakePlatforms]:
    platforms = FakePlatforms()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = platforms.handle(self.path, headers, raw)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    with LoopbackServer(Handler) as server:
        platforms.base = server.url
        yield platforms


@contextmanager
def pushes_to_fakes(services: Any) -> Iterator[FakePlatforms]:
    """A running service's pushes aimed at the fakes (plain http to loopback allowed for them) for the block; its
    own settings again afterwards."""
    before = services.pushes.config, services.pushes.outbound
    with fake_platforms() as fake:
        services.pushes.use(fake.config(), OutboundPolicy(allow_loopback_http=True))
        try:
            yield fake
        finally:
            services.pushes.use(*before)
