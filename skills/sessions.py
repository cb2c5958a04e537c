"""Server-side dialog sessions with expiry, and the log of replies by request id (retries are answered
from it instead of being executed twice)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Column, Connection, DateTime, String, Table, Text, select

from domain.clock import aware, utc_now
from storage import Database, metadata

dialog_sessions = Table(
    "dialog_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(200), nullable=False, index=True),
    Column("state", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

turn_replies = Table(
    "turn_replies",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("reply", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


# Stored replies answer retries with the same request_id; a day covers any platform's retry policy.
REPLY_RETENTION = timedelta(hours=24)


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


PendingQuestion = PinQuestion | ConfirmationQuestion | SlotQuestion
_QUESTION_KINDS: dict[str, type[PinQuestion] | type[ConfirmationQuestion] | type[SlotQuestion]] = {
    "pin": PinQuestion, "confirmation": ConfirmationQuestion, "slot": SlotQuestion}


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
    pin_verified: bool = False
    # The open question the next turn answers, or None.
    pending: PendingQuestion | None = None
    last_reply: dict[str, Any] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "locale": self.locale, "pin_verified": self.pin_verified,
                "pending": asdict(self.pending) if self.pending else None,
                "last_reply": self.last_reply, "attributes": self.attributes,
            },
            ensure_ascii=False,
        )


class SessionStore:
    def __init__(self, db: Database, ttl_s: int) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_s)

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
        state = json.loads(row["state"])
        return DialogSession(
            id=row["id"], user_id=row["user_id"], locale=state["locale"], is_new=False,
            pin_verified=state.get("pin_verified", False), pending=question_from_json(state.get("pending")),
            last_reply=state.get("last_reply"), attributes=state.get("attributes", {}),
        )

    def save(self, conn: Connection, session: DialogSession) -> None:
        values = {"user_id": session.user_id, "state": session.to_json(), "expires_at": utc_now() + self.ttl}
        updated = conn.execute(dialog_sessions.update().where(dialog_sessions.c.id == session.id).values(**values))
        if updated.rowcount == 0:
            conn.execute(dialog_sessions.insert().values(id=session.id, **values))

    def end(self, session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(dialog_sessions.delete().where(dialog_sessions.c.id == session_id))

    def stored_reply(self, user_id: str, request_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            raw = conn.execute(
                select(turn_replies.c.reply).where(
                    turn_replies.c.user_id == user_id, turn_replies.c.request_id == request_id
                )
            ).scalar()
        return json.loads(raw) if raw else None

    def store_reply(self, conn: Connection, user_id: str, request_id: str, reply: dict[str, Any]) -> None:
        conn.execute(
            turn_replies.insert().values(
                user_id=user_id, request_id=request_id, reply=json.dumps(reply, ensure_ascii=False),
                created_at=utc_now(),
            )
        )

    def purge_expired(self) -> int:
        """Deletes expired sessions and replies older than REPLY_RETENTION; returns the rows removed."""
        now = utc_now()
        with self.db.transaction() as conn:
            sessions = conn.execute(dialog_sessions.delete().where(dialog_sessions.c.expires_at < now)).rowcount
            replies = conn.execute(turn_replies.delete().where(turn_replies.c.created_at < now - REPLY_RETENTION))
            return sessions + replies.rowcount
