"""Shared fixtures: one app (models loaded once per test run), its client, and one live HTTP server."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from werkzeug.serving import make_server

from app import QuietRequestHandler, create_app
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# The same examples on every run, so that a CI result can be reproduced here; explore more with
# HYPOTHESIS_PROFILE=explore.
hypothesis_settings.register_profile("repeatable", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings.from_env({"MINWON_DATA_DIR": str(data_dir)}, **overrides)


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory):
    application = create_app(make_settings(tmp_path_factory.mktemp("data"), rate_limit_per_minute=100_000))
    assert application.extensions["minwon"].wait_ready(600), application.extensions["minwon"].load_error
    return application


@pytest.fixture(scope="session")
def services(app):
    return app.extensions["minwon"]


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[str]:
    """The shared app behind a real threaded HTTP server on loopback; yields its base URL."""
    # The request handler `python app.py serve` uses: no access log lines with query strings.
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture()
def new_citizen(services):
    """A fresh linked citizen (own PIN counter and records), so tests that change state stay independent."""

    def create(pin: str = "4321", locale: str = "ko-KR", name: str = "테스트 시민") -> tuple[str, str]:
        citizen_id = "citizen-t-" + secrets.token_hex(4)
        user_id = "user-t-" + secrets.token_hex(4)
        services.accounts.create_citizen(citizen_id, name, locale, pin)
        services.accounts.link_user(user_id, citizen_id)
        return citizen_id, user_id

    return create


class Conversation:
    """Drives /v1/converse turn by turn, keeping the session like a speaker does."""

    def __init__(self, client, user_id: str, locale: str | None = None) -> None:
        self.client = client
        self.user_id = user_id
        self.locale = locale
        self.session_id: str | None = None

    def say(self, text: str, **extra: object) -> dict:
        body = {"user_id": self.user_id, "text": text, **extra}
        if self.locale:
            body["locale"] = self.locale
        if self.session_id:
            body["session_id"] = self.session_id
        response = self.client.post("/v1/converse", json=body)
        assert response.status_code == 200, response.get_json()
        reply = response.get_json()
        self.session_id = reply["session_id"]
        return reply


@pytest.fixture()
def conversation(client):
    def start(user_id: str, locale: str | None = None) -> Conversation:
        return Conversation(client, user_id, locale)

    return start
