"""A whole session's logs hold no PIN, link code, token or personal name."""

from __future__ import annotations

import io
import logging

from observability import JsonFormatter


def test_session_logs_hold_no_secrets(conversation, services, new_citizen):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        citizen_id, user = new_citizen(pin="7319", name="김비밀")
        code = services.accounts.issue_link_code(citizen_id)
        talk = conversation("speaker-for-logs")
        talk.say(f"연결 코드 {code}")
        talk.say("도움말")
        talk.say("7319")
        talk.say("my token is demo-wallet-token-0001")
        logging.getLogger("test").info("library said pin 7319 and Bearer abc.def")
    finally:
        root.removeHandler(handler)
    logs = stream.getvalue()
    assert '"turn"' in logs  # the session was logged …
    for secret in ("7319", code, "demo-wallet-token-0001", "김비밀", "abc.def"):
        assert secret not in logs  # … without what was said
