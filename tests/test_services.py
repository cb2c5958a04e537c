"""services.py: one place builds every store once; start() and stop() own every thread and subprocess."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from services import Services
from settings import Settings
from tests.conftest import make_settings


def _children() -> set[int]:
    """Live child processes of this process (every thread's children, from /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def test_stop_ends_every_thread_and_subprocess_it_started(services) -> None:
    # The session app's data directory already holds a built FAQ index, so the loaders only load.
    own = Services(make_settings(services.settings.data_dir))
    own.initialize()
    threads_before = set(threading.enumerate())
    children_before = _children()
    own.start(background=True)
    assert own.wait_ready(600), own.load_error
    own.kakao_callbacks.submit(lambda: None).result(5)  # the callback pool's threads exist only once used
    started_threads = set(threading.enumerate()) - threads_before
    started_children = _children() - children_before
    assert started_threads, "start() should have started worker threads"
    assert len(started_children) == 1, "the speech synthesis worker is one child process"

    own.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ({t for t in started_threads if t.is_alive()} or
                                           started_children & _children()):
        time.sleep(0.1)
    assert [t.name for t in started_threads if t.is_alive()] == []
    assert started_children & _children() == set()
    own.stop()  # a second stop is harmless


def test_every_store_is_built_once(services) -> None:
    # The skills, the wallet bridge and the HTTP endpoints all work on the same objects.
    certificates = next(s for s in services.dialog.skills if s.name == "certificates")
    consent = next(s for s in services.dialog.skills if s.name == "consent")
    wallet = next(s for s in services.dialog.skills if s.name == "wallet")
    assert certificates.records is services.certificates
    assert consent.ledger is services.consents
    assert wallet.bridge is services.wallet
    assert services.wallet.wallets is services.wallets
    assert services.dialog.accounts is services.accounts and services.dialog.sessions is services.sessions


def test_purge_removes_expired_sessions_and_old_replies(services, conversation) -> None:
    from datetime import timedelta

    from domain.clock import utc_now
    from skills.sessions import dialog_sessions, turn_replies

    reply_user = "dev-purge-" + os.urandom(3).hex()
    chat = conversation(reply_user)
    chat.say("도움말", request_id="purge-r1")
    with services.db.transaction() as conn:
        conn.execute(dialog_sessions.update().where(dialog_sessions.c.id == chat.session_id)
                     .values(expires_at=utc_now() - timedelta(seconds=1)))
        conn.execute(turn_replies.update().where(turn_replies.c.user_id == reply_user)
                     .values(created_at=utc_now() - services.sessions.ttl - timedelta(minutes=1)))
    assert services.purge() >= 2
    with services.db.read() as conn:
        assert conn.execute(dialog_sessions.select().where(dialog_sessions.c.id == chat.session_id)).first() is None
        assert conn.execute(turn_replies.select().where(turn_replies.c.user_id == reply_user)).first() is None


def test_a_node_without_models_is_ready_at_once(tmp_path) -> None:
    """MINWON_LOAD_MODELS=0 (a dialog-only node, the two-node test): ready without the FAQ and speech models;
    an unknown value keeps the models on."""
    assert Settings.from_env({"MINWON_LOAD_MODELS": "no"}).load_models is False
    assert Settings.from_env({"MINWON_LOAD_MODELS": "nope"}).load_models is True
    assert Settings.from_env({}).load_models is True
    state = Services(make_settings(tmp_path, load_models=Settings.from_env({"MINWON_LOAD_MODELS": "0"}).load_models))
    state.initialize()
    state.start()
    try:
        assert state.wait_ready(30) and state.components == {}
    finally:
        state.stop()
