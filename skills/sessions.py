"""Server-side dialog sessions with expiry, and the log of replies by request id (retries are answered
from it instead of being executed twice).

A request id is answered once even when copies of the request reach several threads or nodes at the same
time (a platform retrying while the first try is still running, a load balancer sending the retry elsewhere):
the first copy claims the request id in `turn_claims` and answers; the others wait for its stored reply and
return that. A claim lapses after `CLAIM_LEASE`, so a node that died mid-turn does not block its request id.

A session belongs to the principal (speaker user) that created it: a turn from anyone else never
continues it. Its state and the stored replies hold what was said (a tx_code, a certificate readout), so
both are encrypted with the field cipher. A stored reply is bound to its principal and session and lives
as long as a session does.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Column, Connection, DateTime, String, Table, Text, or_, select

from domain.clock import aware, utc_now
from domain.crypto import FieldCipher
from storage import Database, StorageUnavailable, insert_or_update, insert_unless_present, metadata

log = logging.getLogger(__name__)

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

# Who is answering a request id right now (a node's `instance_id`), and until when that claim holds.
turn_claims = Table(
    "turn_claims",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("claimed_until", DateTime(timezone=True), nullable=False),
)

# Far longer than a turn takes (a lock wait gives up after 10 s): a claim still there after this belongs to a
# node that died or lost its database mid-turn, and another caller takes over.
CLAIM_LEASE = timedelta(seconds=20)
# How long a copy of a request waits for the copy that is being answered elsewhere; past a claim's lease, so
# that a lapsed claim is taken over within one wait. Then the caller gets 503 and may retry.
CLAIM_WAIT_S = 25.0
CLAIM_POLL_S = 0.05


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
    # What the store holds for this session (its state as loaded or last saved, and its expiry), so that a turn
    # that changed nothing need not write it again.
    stored_state: str | None = field(default=None, repr=False, compare=False)
    stored_expires_at: datetime | None = field(default=None, repr=False, compare=False)

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


# A turn that changes nothing in its session still pushes the session's expiry back, but at most this often.
EXPIRY_REFRESH = timedelta(seconds=60)


class SessionStore:
    def __init__(self, db: Database, ttl_s: int, cipher: FieldCipher, *, node_id: str) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_s)
        self.cipher = cipher
        # The process's name among the nodes (`storage.instance_id`, made once by the caller): the owner of
        # this store's request claims.
        self.node_id = node_id
        # The request ids this process is answering now: a claim of this node's that is not among them was
        # left by a turn that failed (its database went away before the claim could be dropped).
        self._answering: set[tuple[str, str]] = set()
        self._answering_lock = threading.Lock()

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
        stored = self.cipher.decrypt(row["state"], ("dialog_sessions", "state", row["id"]))
        state = json.loads(stored)
        return DialogSession(
            id=row["id"], user_id=row["user_id"], locale=state["locale"], is_new=False,
            platform_session=row["platform_session"],
            pin_citizen_id=state.get("pin_citizen_id"), link_stamp=state.get("link_stamp"),
            pending=question_from_json(state.get("pending")), last_reply=state.get("last_reply"),
            attributes=state.get("attributes", {}),
            stored_state=stored, stored_expires_at=aware(row["expires_at"]),
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

    def needs_save(self, session: DialogSession) -> bool:
        """Whether the turn left something to write: a new session, a changed state, or an expiry that was last
        pushed back more than EXPIRY_REFRESH ago (a session lives `ttl` after its last turn, give or take that)."""
        if session.is_new or session.stored_state is None or session.stored_expires_at is None:
            return True
        if session.to_json() != session.stored_state:
            return True
        return session.stored_expires_at - utc_now() < self.ttl - EXPIRY_REFRESH

    def save(self, conn: Connection, session: DialogSession) -> None:
        """Writes the session in one statement (an insert when new, else an upsert) and remembers what was
        written. One statement is atomic by itself, so `conn` may be in autocommit."""
        state = session.to_json()
        expires_at = utc_now() + self.ttl
        values = {"user_id": session.user_id,
                  "state": self.cipher.encrypt(state, ("dialog_sessions", "state", session.id)),
                  "expires_at": expires_at, "platform_session": session.platform_session}
        statement = dialog_sessions.insert()
        if not session.is_new:
            # A new session's id is fresh and random: nothing to update. A loaded one is updated, or written anew
            # when it was deleted since (relinked, purged).
            statement = insert_or_update(conn, dialog_sessions).on_conflict_do_update(
                index_elements=[dialog_sessions.c.id], set_=values)
        conn.execute(statement.values(id=session.id, **values))
        session.is_new = False
        session.stored_state, session.stored_expires_at = state, expires_at

    def end(self, session_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(dialog_sessions.delete().where(dialog_sessions.c.id == session_id))

    def stored_reply(self, user_id: str, session_id: str | None, request_id: str) -> dict[str, Any] | None:
        """The reply this principal got for `request_id`, when it is younger than a session's lifetime and
        was given in `session_id` (a retry of a first turn, which had no session yet, names none)."""
        with self.db.read() as conn:
            return self._stored_reply(conn, user_id, session_id, request_id)

    def _stored_reply(self, conn: Connection, user_id: str, session_id: str | None,
                      request_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            select(turn_replies).where(turn_replies.c.user_id == user_id, turn_replies.c.request_id == request_id)
        ).mappings().first()
        if row is None or aware(row["created_at"]) < utc_now() - self.ttl:
            return None
        if session_id is not None and row["session_id"] != session_id:
            return None
        return json.loads(self.cipher.decrypt(row["reply"], ("turn_replies", "reply", user_id, request_id)))

    def claim_request(self, user_id: str, session_id: str | None, request_id: str) -> dict[str, Any] | None:
        """Makes this caller the one that answers `request_id` (None), or returns the stored reply when the
        request was answered already. While another thread or node is answering it, waits for that reply; a
        claim that lapsed, or that this node left behind, is taken over. The caller that got None must call
        `release_claim` when its turn ends. Raises StorageUnavailable when the wait runs out."""
        key = (user_id, request_id)
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            with self._answering_lock:
                answered_here = key in self._answering
                self._answering.add(key)
            if not answered_here:
                try:
                    claimed, reply = self._try_claim(user_id, session_id, request_id)
                except BaseException:
                    self._forget(key)
                    raise
                if claimed:
                    return None
                self._forget(key)
                if reply is not None:
                    return reply
            reply = self._wait_for_reply(user_id, session_id, request_id, deadline)
            if reply is not None:
                return reply

    def _wait_for_reply(self, user_id: str, session_id: str | None, request_id: str,
                        deadline: float) -> dict[str, Any] | None:
        """The reply of the copy being answered elsewhere, or None once its claim is gone or lapsed (then this
        caller tries to claim it). Reads only, so waiting takes no write lock from the copy it waits for."""
        key = (turn_claims.c.user_id == user_id) & (turn_claims.c.request_id == request_id)
        while True:
            if time.monotonic() > deadline:
                log.warning("a copy of a request waited too long for the copy being answered elsewhere")
                raise StorageUnavailable("the same request is still being answered")
            time.sleep(CLAIM_POLL_S)
            with self.db.read() as conn:
                reply = self._stored_reply(conn, user_id, session_id, request_id)
                claim = conn.execute(select(turn_claims.c.owner, turn_claims.c.claimed_until).where(key)).first()
            if reply is not None:
                return reply
            with self._answering_lock:
                answered_here = (user_id, request_id) in self._answering
            if claim is None or aware(claim.claimed_until) < utc_now() or (
                    claim.owner == self.node_id and not answered_here):
                return None

    def _try_claim(self, user_id: str, session_id: str | None,
                   request_id: str) -> tuple[bool, dict[str, Any] | None]:
        """(True, None) when this node now holds the claim; (False, reply) with the stored reply or None."""
        now = utc_now()
        key = (turn_claims.c.user_id == user_id) & (turn_claims.c.request_id == request_id)
        with self.db.transaction() as conn:
            claimed = insert_unless_present(conn, turn_claims, {
                "user_id": user_id, "request_id": request_id, "owner": self.node_id,
                "claimed_until": now + CLAIM_LEASE})
            if not claimed:
                # Lapsed, or this node's own from a turn that failed (no thread here answers it): taken over.
                claimed = conn.execute(turn_claims.update().where(
                    key, or_(turn_claims.c.claimed_until < now, turn_claims.c.owner == self.node_id)
                ).values(owner=self.node_id, claimed_until=now + CLAIM_LEASE)).rowcount == 1
            # Read after claiming: a reply stored (and its claim dropped) by a caller that finished a moment ago
            # is seen here, so a request is never answered twice.
            reply = self._stored_reply(conn, user_id, session_id, request_id)
            if reply is not None:
                if claimed:
                    conn.execute(turn_claims.delete().where(key))
                return False, reply
            return claimed, None

    def release_claim(self, user_id: str, request_id: str, *, answered: bool) -> None:
        """Ends this node's claim on `request_id`. An answered claim was dropped with the stored reply; one
        whose turn failed is dropped here so that a retry need not wait for its lease (when the database is
        not there, a retry on this node takes it over and one elsewhere waits out the lease)."""
        key = (user_id, request_id)
        try:
            if not answered:
                with self.db.transaction() as conn:
                    conn.execute(turn_claims.delete().where(
                        turn_claims.c.user_id == user_id, turn_claims.c.request_id == request_id,
                        turn_claims.c.owner == self.node_id))
        except StorageUnavailable:
            log.warning("the claim of a failed turn stays until its lease runs out: storage unavailable")
        finally:
            self._forget(key)

    def _forget(self, key: tuple[str, str]) -> None:
        with self._answering_lock:
            self._answering.discard(key)

    def store_reply(self, conn: Connection, user_id: str, session_id: str, request_id: str,
                    reply: dict[str, Any]) -> None:
        """Stores the reply and drops the request's claim, in the caller's transaction."""
        # A request id reused after its stored reply expired starts over; the old row makes way.
        conn.execute(turn_replies.delete().where(turn_replies.c.user_id == user_id,
                                                 turn_replies.c.request_id == request_id))
        conn.execute(turn_claims.delete().where(turn_claims.c.user_id == user_id,
                                                turn_claims.c.request_id == request_id))
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
            claims = conn.execute(turn_claims.delete().where(turn_claims.c.claimed_until < now))
            return sessions + replies.rowcount + claims.rowcount
