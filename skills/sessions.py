"""Server-side dialog sessions with expiry, and the log of replies by request id (retries are answered
from it instead of being executed twice).

A session belongs to the principal (speaker user) that created it: a turn from anyone else never
continues it. Its state and the stored replies hold what was said (a tx_code, a certificate readout), so
both are encrypted with the field cipher. A stored reply is bound to its principal and session and lives
as long as a session does.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Column, Connection, DateTime, String, Table, Text, select

from domain.clock import aware, utc_now
from domain.crypto import FieldCipher
from storage import Database, metadata

dialog_sessions = Table(
    "dialog_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(200), nullable=False, index=True),
    Column("state", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # The speaker platform's own session or conversation (a digest), for platforms that do not carry ours.
    Column("platform_session", String(64), nullable=True),
)

turn_replies = Table(
    "turn_replies",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("reply", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("session_id", String(64), nullable=True),
)




@dataclass
class PinQuestion:
    """The PIN was asked for; when it is right, `intent` runs with `slots`."""

    intent: str | None
    slots: dict[str, str] = field(default_factory=dict)
    kind: Literal["pin"] = "pin"


@dataclass
class ConfirmationQuestion:
    """Yes or no to `action`, which `skill` carries out (or declines) when answered."""

    skill: str
    intent: str | None
    action: dict[str, Any]
    kind: Literal["confirmation"] = "confirmation"


@dataclass
class SlotQuestion:
    """A missing or ambiguous slot was asked for; `choices` limits the answer to those value ids."""

    slot: str
    intent: str | None
    slots: dict[str, str] = field(default_factory=dict)
    choices: list[str] | None = None
    tries: int = 0
    kind: Literal["slot"] = "slot"


@dataclass
class ClarifyQuestion:
    """Which of two candidate requests was meant (`choices`: intents or "faq", in the order named); the chosen
    one then runs on what was said (`text`, `alternatives`, `slots`). `skill` reads the answer."""

    skill: str
    choices: list[str]
    text: str
    alternatives: list[str] = field(default_factory=list)
    slots: dict[str, str] = field(default_factory=dict)
    tries: int = 0
    kind: Literal["clarify"] = "clarify"


PendingQuestion = PinQuestion | ConfirmationQuestion | SlotQuestion | ClarifyQuestion
_QUESTION_KINDS: dict[str, type[PendingQuestion]] = {
    "pin": PinQuestion, "confirmation": ConfirmationQuestion, "slot": SlotQuestion, "clarify": ClarifyQuestion}


def question_from_json(value: dict[str, Any] | None) -> PendingQuestion | None:
    if not value or value.get("kind") not in _QUESTION_KINDS:
        return None
    return _QUESTION_KINDS[value["kind"]](**value)


@dataclass
class DialogSession:
    id: str
    user_id: str
    locale: str
    is_new: bool = True
    platform_session: str | None = None
    # The citizen whose PIN was given in this session: a PIN proves who is speaking for that citizen only.
    pin_citizen_id: str | None = None
    # The speaker user's link when the session began (`Link.stamp`); a relink or unlink ends the session.
    link_stamp: str | None = None
    # The open question the next turn answers, or None.
    pending: PendingQuestion | None = None
    last_reply: dict[str, Any] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def pin_given_for(self, citizen_id: str) -> bool:
        return self.pin_citizen_id is not None and self.pin_citizen_id == citizen_id

    def to_json(self) -> str:
        return json.dumps(
            {
                "locale": self.locale, "pin_citizen_id": self.pin_citizen_id, "link_stamp": self.link_stamp,
                "pending": asdict(self.pending) if self.pending else None,
                "last_reply": self.last_reply, "attributes": self.attributes,
            },
            ensure_ascii=False,
        )


class SessionStore:
    def __init__(self, db: Database, ttl_s: int, cipher: FieldCipher) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_s)
        self.cipher = cipher

    @staticmethod
    def new_id() -> str:
        return "s-" + secrets.token_urlsafe(16)

    def load(self, session_id: str | None, user_id: str) -> DialogSession | None:
        """The live session with this id for this user, or None (unknown, expired or someone else's)."""
        if not session_id:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(dialog_sessions).where(dialog_sessions.c.id == session_id)).mappings().first()
        if row is None or row["user_id"] != user_id or aware(row["expires_at"]) < utc_now():
            return None
        state = json.loads(self.cipher.decrypt(row["state"], ("dialog_sessions", "state", row["id"])))
        return DialogSession(
            id=row["id"], user_id=row["user_id"], locale=state["locale"], is_new=False,
            platform_session=row["platform_session"],
            pin_citizen_id=state.get("pin_citizen_id"), link_stamp=state.get("link_stamp"),
            pending=question_from_json(state.get("pending")), last_reply=state.get("last_reply"),
            attributes=state.get("attributes", {}),
        )

    def owner(self, session_id: str) -> str | None:
        """The principal a session id belongs to (live or not), or None when the id is unknown."""
        with self.db.read() as conn:
            return conn.execute(select(dialog_sessions.c.user_id).where(dialog_sessions.c.id == session_id)).scalar()

    def for_platform(self, user_id: str, platform_session: str) -> str | None:
        """The principal's live session that continues the platform's session `platform_session`."""
        with self.db.read() as conn:
            return conn.execute(
                select(dialog_sessions.c.id).where(dialog_sessions.c.user_id == user_id,
                                                   dialog_sessions.c.platform_session == platform_session,
                                                   dialog_sessions.c.expires_at >= utc_now())
                .order_by(dialog_sessions.c.expires_at.desc()).limit(1)).scalar()

    def save(self, conn: Connection, session: DialogSession) -> None:
        values = {"user_id": session.user_id,
                  "state": self.cipher.encrypt(session.to_json(), ("dialog_sessions", "state", session.id)),
                  "expires_at": utc_now() + self.ttl, "platform_session": session.platform_session}
        updated = conn.execute(dialog_sessions.update().where(dialog_sessions.c.id == session.id).values(**values))
        if updated.rowcount == 0:
            conn.execute(dialog_sessions.insert().values(id=session.id, **values))

    def end(self, session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(dialog_sessions.delete().where(dialog_sessions.c.id == session_id))

    def stored_reply(self, user_id: str, session_id: str | None, request_id: str) -> dict[str, Any] | None:
        """The reply this principal got for `request_id`, when it is younger than a session's lifetime and
        was given in `session_id` (a retry of a first turn, which had no session yet, names none)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(turn_replies).where(turn_replies.c.user_id == user_id, turn_replies.c.request_id == request_id)
            ).mappings().first()
        if row is None or aware(row["created_at"]) < utc_now() - self.ttl:
            return None
        if session_id is not None and row["session_id"] != session_id:
            return None
        return json.loads(self.cipher.decrypt(row["reply"], ("turn_replies", "reply", user_id, request_id)))

    def store_reply(self, conn: Connection, user_id: str, session_id: str, request_id: str,
                    reply: dict[str, Any]) -> None:
        # A request id reused after its stored reply expired starts over; the old row makes way.
        conn.execute(turn_replies.delete().where(turn_replies.c.user_id == user_id,
                                                 turn_replies.c.request_id == request_id))
        conn.execute(
            turn_replies.insert().values(
                user_id=user_id, request_id=request_id, session_id=session_id,
                reply=self.cipher.encrypt(json.dumps(reply, ensure_ascii=False),
                                          ("turn_replies", "reply", user_id, request_id)),
                created_at=utc_now(),
            )
        )

    def end_all_for(self, user_id: str, keep: str | None = None) -> int:
        """Ends every session of the principal except `keep` (after a link changed)."""
        with self.db.transaction() as conn:
            query = dialog_sessions.delete().where(dialog_sessions.c.user_id == user_id)
            if keep is not None:
                query = query.where(dialog_sessions.c.id != keep)
            return conn.execute(query).rowcount

    def purge_expired(self) -> int:
        """Deletes expired sessions and stored replies older than a session's lifetime; returns the rows."""
        now = utc_now()
        with self.db.transaction() as conn:
            sessions = conn.execute(dialog_sessions.delete().where(dialog_sessions.c.expires_at < now)).rowcount
            replies = conn.execute(turn_replies.delete().where(turn_replies.c.created_at < now - self.ttl))
            return sessions + replies.rowcount
