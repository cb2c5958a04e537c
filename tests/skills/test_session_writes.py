"""A turn writes its dialog session only when there is something to write, on both backends: a new session is
inserted once; the same question again, or a repeat, writes nothing (no transaction, so no write lock) unless the
session's expiry is due to be pushed back; a changed state is written; a turn with a request id always keeps its
reply for a retry.

A write is seen in the row itself: the state is sealed with a fresh nonce every time it is written, so an
unchanged ciphertext and expiry mean no write happened.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from skills.engine import Reply, Turn
from skills.sessions import dialog_sessions, turn_replies


def say(stores, user_id: str, text: str, session_id: str | None = None, request_id: str | None = None) -> Reply:
    return stores.dialog.converse(Turn(user_id=user_id, text=text, session_id=session_id, locale="ko-KR",
                                       request_id=request_id))


def stored(stores, session_id: str) -> tuple[str, object]:
    with stores.db.read() as conn:
        row = conn.execute(select(dialog_sessions.c.state, dialog_sessions.c.expires_at)
                           .where(dialog_sessions.c.id == session_id)).one()
    return row.state, row.expires_at


def test_a_turn_that_changes_nothing_writes_nothing(stores, stores_citizen):
    _, user_id = stores_citizen()
    first = say(stores, user_id, "도움말")
    written = stored(stores, first.session_id)
    again = say(stores, user_id, "도움말", first.session_id)
    assert (again.session_id, again.speech) == (first.session_id, first.speech)
    assert stored(stores, first.session_id) == written
    repeated = say(stores, user_id, "다시 말해줘", first.session_id)
    assert repeated.speech == first.speech
    assert stored(stores, first.session_id) == written
    # Something else was said: the state changed, and it is written.
    say(stores, user_id, "내 증명서 상태 알려줘", first.session_id)
    assert stored(stores, first.session_id)[0] != written[0]


def test_an_unchanged_session_still_has_its_expiry_pushed_back(stores, stores_citizen):
    _, user_id = stores_citizen()
    first = say(stores, user_id, "도움말")
    state, expires_at = stored(stores, first.session_id)
    aged = expires_at - timedelta(minutes=2)  # as if the last write were two minutes old
    with stores.db.transaction() as conn:
        conn.execute(dialog_sessions.update().where(dialog_sessions.c.id == first.session_id)
                     .values(expires_at=aged))
    say(stores, user_id, "도움말", first.session_id)
    new_state, new_expiry = stored(stores, first.session_id)
    assert new_expiry > aged and new_state != state


def test_a_turn_with_a_request_id_keeps_its_reply_even_when_the_session_is_unchanged(stores, stores_citizen):
    _, user_id = stores_citizen()
    first = say(stores, user_id, "도움말")
    say(stores, user_id, "도움말", first.session_id, request_id="unchanged-1")
    with stores.db.read() as conn:
        kept = conn.execute(select(turn_replies.c.session_id).where(turn_replies.c.user_id == user_id,
                                                                     turn_replies.c.request_id == "unchanged-1")).all()
    assert [row.session_id for row in kept] == [first.session_id]


def test_a_new_session_is_inserted_once(stores, stores_citizen):
    _, user_id = stores_citizen()
    reply = say(stores, user_id, "도움말")
    with stores.db.read() as conn:
        rows = conn.execute(select(dialog_sessions.c.id).where(dialog_sessions.c.user_id == user_id)).all()
    assert [row.id for row in rows] == [reply.session_id]
