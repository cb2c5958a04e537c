"""The pushes of a notification (issue 18): one row per notification and push channel the citizen opted into, written
in the notification's own transaction (a transactional outbox), so a notification is never raised without its
pushes being due, and a repeated event (the same notification) queues nothing twice.

Rows are claimed and their outcomes recorded with storage.py's claimed-outbox helpers, the mechanism the wallet's
offer pushes use: one node sends a row at a time, a crashed node's claim runs out and the row is sent again (at
least once); the platforms tell a repeat by its reference (the notification id). What is sent, and to whom, is the
channels' business (channels/pushes.py); this module only keeps the queue and each row's state, which the citizen's
app sees:

- pending: waiting for its (next) attempt;
- held: quiet hours; sent when they end (never dropped);
- sent: the platform accepted it;
- failed: the platform kept refusing or could not be reached for a day (retried with backoff until then);
- not_configured: this service has no credentials for the platform; nothing was sent;
- no_recipient: the citizen has no account on the platform that the service can address (no linked speaker of
  that platform, no wallet push URL); nothing was sent;
- opted_out: the citizen turned the channel off before the push went out; nothing was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    select,
)

from domain.clock import Clock, aware, utc_now
from domain.crypto import FieldCipher, FieldIntegrityError
from storage import (
    Database,
    claim_row,
    insert_unless_present,
    lock_next_due,
    metadata,
    record_claimed,
    unclaimed,
)

notification_pushes = Table(
    "notification_pushes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", String(32), ForeignKey("notifications.id"), nullable=False),
    Column("citizen_id", String(64), nullable=False, index=True),
    Column("channel", String(16), nullable=False),  # kakao | alexa | wallet
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    # Why the last attempt did not get through: an HTTP status, an exception's class name, "quiet_hours". Never a
    # response body (it could echo what was sent).
    Column("last_status", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    UniqueConstraint("notification_id", "channel", name="uq_notification_pushes_channel"),
)

# A speaker user's own platform id, when the service keeps only a digest of it in its user id (an Alexa userId is
# longer than the 200 characters a user id may have, so channels/speaker_ids.py digests it): what a push to that
# user must name. Encrypted (bound to its row), written only for linked users, by their platform's channel.
push_addresses = Table(
    "push_addresses",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("address_enc", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

PENDING, HELD, SENT, FAILED, NOT_CONFIGURED, NO_RECIPIENT, OPTED_OUT = (
    "pending", "held", "sent", "failed", "not_configured", "no_recipient", "opted_out")
PUSH_STATES = (PENDING, HELD, SENT, FAILED, NOT_CONFIGURED, NO_RECIPIENT, OPTED_OUT)
WAITING = (PENDING, HELD)


def queue_pushes(conn: Connection, notification_id: str, citizen_id: str, channels: Iterable[str],
                 now: datetime) -> int:
    """Queues one push per channel for a new notification, in the caller's transaction; returns how many."""
    queued = 0
    for channel in channels:
        queued += insert_unless_present(conn, notification_pushes, {
            "notification_id": notification_id, "citizen_id": citizen_id, "channel": channel, "state": PENDING,
            "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now,
        })
    return queued


@dataclass(frozen=True)
class PushClaim:
    """A push row this node has claimed: send it before `until`, then record the outcome."""

    row_id: int
    notification_id: str
    citizen_id: str
    channel: str
    attempt: int  # this attempt's number, 1 for the first (a hold for quiet hours is not an attempt)
    created_at: datetime
    until: datetime


@dataclass(frozen=True)
class PushState:
    channel: str
    state: str
    attempts: int
    updated_at: datetime
    next_attempt_at: datetime | None  # when a pending or held push goes out (at the earliest)

    def to_api(self) -> dict[str, object]:
        return {"channel": self.channel, "state": self.state, "attempts": self.attempts,
                "updated_at": self.updated_at.isoformat(),
                "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None}


class PushQueue:
    """The queue of notification pushes: claiming the next due row, recording outcomes, each notification's states."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    def claim_next(self, node_id: str, lease: timedelta) -> PushClaim | None:
        now = self.clock()
        due = and_(notification_pushes.c.state.in_(WAITING), notification_pushes.c.next_attempt_at <= now,
                   unclaimed(notification_pushes, now))
        with self.db.transaction() as conn:
            row = lock_next_due(conn, notification_pushes, due,
                                (notification_pushes.c.next_attempt_at, notification_pushes.c.id))
            if row is None:
                return None
            attempt = claim_row(conn, notification_pushes, row, node_id, now + lease)
        return PushClaim(row["id"], row["notification_id"], row["citizen_id"], row["channel"], attempt,
                         aware(row["created_at"]), now + lease)

    def record(self, claim: PushClaim, node_id: str, state: str, *, status: str | None = None,
               next_attempt_at: datetime | None = None, attempt_counted: bool = True) -> bool:
        """The outcome of a claimed push (while the claim is still this node's); False when the claim had run out
        and another node has claimed the row since. `attempt_counted=False` (a hold for quiet hours) gives the
        attempt back, so only real sends count."""
        now = self.clock()
        values: dict[str, object] = {"state": state, "last_status": status, "updated_at": now}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if not attempt_counted:
            values["attempts"] = claim.attempt - 1
        with self.db.transaction() as conn:
            return record_claimed(conn, notification_pushes, claim.row_id, node_id, claim.attempt, values)

    def states_for(self, citizen_id: str) -> dict[str, list[PushState]]:
        """Each of the citizen's notifications → its pushes' states, by channel name."""
        with self.db.read() as conn:
            rows = conn.execute(select(notification_pushes).where(notification_pushes.c.citizen_id == citizen_id)
                                .order_by(notification_pushes.c.channel)).mappings().all()
        found: dict[str, list[PushState]] = {}
        for row in rows:
            waiting = row["state"] in WAITING
            found.setdefault(row["notification_id"], []).append(PushState(
                row["channel"], row["state"], row["attempts"], aware(row["updated_at"]),
                aware(row["next_attempt_at"]) if waiting else None))
        return found


class PushAddresses:
    """The platform ids of linked speaker users whose service user id is a digest (see `push_addresses`)."""

    def __init__(self, db: Database, cipher: FieldCipher, clock: Clock = utc_now) -> None:
        self.db, self.cipher, self.clock = db, cipher, clock
        # Users whose address this process has stored: a linked user's later turns cost nothing.
        self._known: set[str] = set()

    def known(self, user_id: str) -> bool:
        """Whether this process has stored the user's address already (no database access)."""
        return user_id in self._known

    def remember(self, user_id: str, address: str) -> None:
        """Keeps `address` for `user_id` once (the digest is of the address, so it never changes)."""
        if user_id in self._known:
            return
        sealed = self.cipher.encrypt(address, (push_addresses.name, "address_enc", user_id))
        with self.db.transaction() as conn:
            insert_unless_present(conn, push_addresses, {"user_id": user_id, "address_enc": sealed,
                                                         "created_at": self.clock()})
        self._known.add(user_id)

    def address_of(self, user_id: str) -> str | None:
        with self.db.read() as conn:
            sealed = conn.execute(select(push_addresses.c.address_enc).where(
                push_addresses.c.user_id == user_id)).scalar()
        if sealed is None:
            return None
        try:
            return self.cipher.decrypt(sealed, (push_addresses.name, "address_enc", user_id))
        except FieldIntegrityError:
            return None  # not this row's: never sent anywhere
