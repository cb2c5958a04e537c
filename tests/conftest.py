"""Shared fixtures: one app (models loaded once per test run), its client, and one live HTTP server; and the
storage backends: a throwaway PostgreSQL cluster for the run, with `database_url` (a fresh database per test)
and `stores` (the services' stores per test module) parametrised over SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from werkzeug.serving import make_server

from app import QuietRequestHandler, create_app
from domain.notifications import NotificationSettings
from local_postgres import PostgresCluster, start_cluster
from services import Services
from settings import Settings
from tests.loopback import LoopbackServer
from understanding.router import IntentRouter, Routing
from understanding.slots import squash

ROOT = Path(__file__).resolve().parent.parent

# The same examples on every run, so that a CI result can be reproduced here; explore more with
# HYPOTHESIS_PROFILE=explore.
hypothesis_settings.register_profile("repeatable", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test app: its own data directory, demo data on (the tests speak as the demo users)."""
    return Settings.from_env({"MINWON_DATA_DIR": str(data_dir), "MINWON_DEMO": "1"}, **overrides)


DEMO_DEVICE_TOKENS = {"demo-user-ko": "demo-device-token-ko", "demo-user-en": "demo-device-token-en"}


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory):
    application = create_app(make_settings(tmp_path_factory.mktemp("data"), rate_limit_per_minute=100_000))
    assert application.extensions["minwon"].wait_ready(600), application.extensions["minwon"].load_error
    quiet_demo_headlines(application.extensions["minwon"])
    return application


def quiet_demo_headlines(state: Services) -> None:
    """The demo citizens' spoken notice headlines off. Seeding makes the demo's reminders due (issue 18), so every
    session of a demo user would otherwise end its first answer with "새 알림이 두 건 있어요 …"; the tests of the
    other skills speak as the demo users and check their words exactly. The headline tests use their own citizens
    (tests/skills/test_notices.py), and one of them turns the demo's back on to hear it."""
    for citizen_id in ("citizen-0001", "citizen-0002"):
        state.notifications.save_settings(citizen_id, NotificationSettings(spoken_headlines=False))


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
    with LoopbackServer(make_server("127.0.0.1", 0, app, threaded=True,
                                    request_handler=QuietRequestHandler)) as server:
        yield server.url


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole run (started on first use, removed at the end). A machine
    without PostgreSQL fails these tests rather than skipping them: `make test` installs it."""
    try:
        cluster = start_cluster()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot start the test PostgreSQL cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database for this test on each backend: the SQLite file a data dir of `tmp_path` would
    get anyway, or a new database in the test cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'minwon.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(scope="module")
def pg_services(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Stores only (no models, no workers) on a PostgreSQL database of this test module, with the demo data."""
    state = Services(make_settings(tmp_path_factory.mktemp("pg-data"), database_url=postgres.new_database(),
                                   load_models=False, rate_limit_per_minute=100_000))
    state.initialize()
    quiet_demo_headlines(state)
    yield state
    state.stop()


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest) -> Services:
    """The services whose stores a test uses, on each backend: the shared app's (SQLite) or `pg_services`."""
    return request.getfixturevalue("services" if request.param == "sqlite" else "pg_services")


def citizen_factory(services: Services):
    """`create(pin, locale, name)` makes a fresh linked citizen in `services`; returns (citizen id, user id)."""

    def create(pin: str = "4321", locale: str = "ko-KR", name: str = "테스트 시민") -> tuple[str, str]:
        citizen_id = "citizen-t-" + secrets.token_hex(4)
        user_id = "user-t-" + secrets.token_hex(4)
        services.accounts.create_citizen(citizen_id, name, locale, pin)
        services.accounts.link_user(user_id, citizen_id)
        return citizen_id, user_id

    return create


@pytest.fixture()
def new_citizen(services):
    """A fresh linked citizen (own PIN counter and records), so tests that change state stay independent."""
    return citizen_factory(services)


@pytest.fixture()
def stores_citizen(stores):
    """`new_citizen` in the parametrised `stores`."""
    return citizen_factory(stores)


def device_token(services, user_id: str) -> str:
    """A device token for the speaker user (the demo users' published ones, else a new one)."""
    return DEMO_DEVICE_TOKENS.get(user_id) or services.devices.issue(user_id)


class Conversation:
    """Drives /v1/converse turn by turn as the speaker user's device (its token), keeping the session like a
    speaker does. `token=None` speaks anonymously."""

    def __init__(self, client, user_id: str, locale: str | None = None, token: str | None = None) -> None:
        self.client = client
        self.user_id = user_id
        self.locale = locale
        self.token = token
        self.session_id: str | None = None

    def say(self, text: str, **extra: object) -> dict:
        body = {"text": text, **extra}
        if self.locale:
            body["locale"] = self.locale
        if self.session_id:
            body["session_id"] = self.session_id
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.client.post("/v1/converse", json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
        reply = response.get_json()
        self.session_id = reply["session_id"]
        return reply


@pytest.fixture()
def conversation(client, services):
    """`conversation(user_id)` speaks as that speaker user's device; `conversation(None)` anonymously."""

    def start(user_id: str | None, locale: str | None = None) -> Conversation:
        if user_id is None:
            return Conversation(client, "", locale)
        return Conversation(client, user_id, locale, device_token(services, user_id))

    return start


@contextmanager
def routed_phrases(router: IntentRouter, phrases: dict[str, list[str]]) -> Iterator[None]:
    """Routes an utterance that starts with one of `phrases[intent]` to `intent`, with the slots the real
    vocabulary reads in it: the intent of a skill written for a test, which the router was never trained on.
    Every other utterance goes to the real router."""
    real = router.route
    starts = {intent: [squash(p) for p in texts] for intent, texts in phrases.items()}

    def route(text: str, alternatives=(), **options) -> Routing:
        spoken = squash(text)
        for intent, prefixes in starts.items():
            if any(spoken.startswith(prefix) for prefix in prefixes):
                found = router.vocabulary.read(text).found
                return Routing(decision=intent, probability=1.0, candidates=((intent, 1.0), ("faq", 0.0)),
                               slots={t: ids[0] for t, ids in found.items() if len(ids) == 1},
                               ambiguous={t: ids for t, ids in found.items() if len(ids) > 1})
        return real(text, alternatives, **options)

    router.route = route  # type: ignore[method-assign]
    try:
        yield
    finally:
        del router.route
