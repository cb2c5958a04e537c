"""Notifications the service raises on its own (issue 18): a certificate application finished, a certificate is
about to expire or has expired, a consent's validity is ending, a wallet credential was revoked or suspended, a
wallet offer lies unclaimed.

A notification is made exactly once: its key is (citizen, kind, subject, event), and it is inserted with
INSERT … ON CONFLICT DO NOTHING, so a scan that runs again, two nodes scanning at once or an agency retrying a
state report still leave one row. The event part names the occurrence (the expiry date a reminder is about), so a
renewed certificate that approaches its new end date is told again.

The periodic scan runs on one node at a time: it holds a lease row (`scheduler_leases`) until a deadline, renewed
by the holder; a node that died lets it lapse and another takes over. The scan is a pure function of the records
and today, so a restart (or a lapsed lease taken over mid-scan) repeats nothing and skips nothing: whatever was
due is found by the next pass.

What a notification stores is the minimum to speak it after the PIN: its kind, the subject's id and a few facts
(document type, a date) in `facts`; nothing of it is ever logged, and the spoken headline before the PIN is only
a count.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    or_,
    select,
    update,
)

from domain.certificates import Certificate, certificates
from domain.clock import KST, Clock, aware, korean_today, utc_now
from domain.consent_ledger import consent_records
from domain.push_deliveries import queue_pushes
from storage import Database, insert_unless_present, metadata

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(100), nullable=False),
    # Which occurrence of the event (an expiry date, "issued"): the same event is one notification.
    Column("event", String(64), nullable=False),
    Column("facts", Text, nullable=False),  # JSON: what the reading needs (document type, date)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=True),
    Column("read_via", String(16), nullable=True),  # voice | app
    UniqueConstraint("citizen_id", "kind", "subject", "event", name="uq_notifications_event"),
)

notification_settings = Table(
    "notification_settings",
    metadata,
    Column("citizen_id", String(64), ForeignKey("citizens.id"), primary_key=True),
    Column("spoken_headlines", Boolean, nullable=False, default=True),
    Column("channels", Text, nullable=False),  # JSON list of the push channels opted into
    Column("quiet_start", String(5), nullable=False),  # "21:00", Korean time
    Column("quiet_end", String(5), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Which node runs a periodic job, and until when its claim holds.
scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("held_until", DateTime(timezone=True), nullable=False),
)

CERTIFICATE_ISSUED = "certificate_issued"
CERTIFICATE_REFUSED = "certificate_refused"
CERTIFICATE_EXPIRING = "certificate_expiring"
CERTIFICATE_EXPIRED = "certificate_expired"
CONSENT_ENDING = "consent_ending"
CREDENTIAL_REVOKED = "credential_revoked"
CREDENTIAL_SUSPENDED = "credential_suspended"
OFFER_UNCLAIMED = "offer_unclaimed"
KINDS = (CERTIFICATE_ISSUED, CERTIFICATE_REFUSED, CERTIFICATE_EXPIRING, CERTIFICATE_EXPIRED, CONSENT_ENDING,
         CREDENTIAL_REVOKED, CREDENTIAL_SUSPENDED, OFFER_UNCLAIMED)

CERTIFICATE_EXPIRING_DAYS = 14
CONSENT_ENDING_DAYS = 30
# An expiry further back than this when first seen (a service started on old records) is not news any more.
EXPIRED_LOOKBACK_DAYS = 30
PUSH_CHANNELS = ("kakao", "alexa", "wallet")
WALLET_PUSH_KINDS = (CREDENTIAL_REVOKED, CREDENTIAL_SUSPENDED)
DEFAULT_QUIET = ("21:00", "08:00")
SCAN_LEASE = "notify-scan"


@dataclass(frozen=True)
class Notification:
    id: str
    citizen_id: str
    kind: str
    subject: str
    event: str
    facts: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    read_via: str | None

    @classmethod
    def from_row(cls, row: Any) -> Notification:
        return cls(id=row["id"], citizen_id=row["citizen_id"], kind=row["kind"], subject=row["subject"],
                   event=row["event"], facts=json.loads(row["facts"]), created_at=aware(row["created_at"]),
                   read_at=aware(row["read_at"]), read_via=row["read_via"])

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "subject": self.subject, "facts": self.facts,
                "created_at": self.created_at.isoformat(), "read": self.read_at is not None,
                "read_at": self.read_at.isoformat() if self.read_at else None}


@dataclass(frozen=True)
class NotificationSettings:
    spoken_headlines: bool = True
    channels: tuple[str, ...] = ()
    quiet_start: str = DEFAULT_QUIET[0]
    quiet_end: str = DEFAULT_QUIET[1]

    def to_api(self) -> dict[str, Any]:
        return {"spoken_headlines": self.spoken_headlines, "channels": list(self.channels),
                "quiet_hours": {"start": self.quiet_start, "end": self.quiet_end, "timezone": "Asia/Seoul"}}

    def quiet_until(self, moment: datetime) -> datetime | None:
        """When the quiet hours that `moment` falls in end (the next quiet_end, Korean time); None outside them."""
        if not self.in_quiet_hours(moment):
            return None
        local = moment.astimezone(KST)
        end = datetime.combine(local.date(), parse_clock_time(self.quiet_end), tzinfo=KST)
        # In UTC: what is stored is UTC (SQLite keeps no offset).
        return (end if end > local else end + timedelta(days=1)).astimezone(UTC)

    def in_quiet_hours(self, moment: datetime) -> bool:
        """Whether `moment` falls in the quiet hours (Korean time; a span past midnight wraps)."""
        local = moment.astimezone(KST).time()
        start, end = parse_clock_time(self.quiet_start), parse_clock_time(self.quiet_end)
        if start == end:
            return False
        return start <= local < end if start < end else local >= start or local < end


def parse_clock_time(value: str) -> time:
    """'21:00' → 21:00; ValueError for anything but HH:MM on a 24-hour clock."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError("expected HH:MM")
    return time(int(hours), int(minutes))


def new_notification_id() -> str:
    return "n-" + secrets.token_hex(12)


def raise_notification(conn: Connection, citizen_id: str, kind: str, subject: str, event: str,
                       facts: dict[str, Any], now: datetime) -> bool:
    """Records the notification in the caller's transaction unless this (citizen, kind, subject, event) already has
    one, and queues its pushes on the channels the citizen opted into; True when it was new."""
    notification_id = new_notification_id()
    created = insert_unless_present(conn, notifications, {
        "id": notification_id, "citizen_id": citizen_id, "kind": kind, "subject": subject, "event": event,
        "facts": json.dumps(facts, ensure_ascii=False, sort_keys=True), "created_at": now,
    })
    if created:
        queue_pushes(conn, notification_id, citizen_id, push_channels_for(conn, citizen_id, kind), now)
    return created


def push_channels_for(conn: Connection, citizen_id: str, kind: str) -> list[str]:
    """The channels a new notification of `kind` is pushed on: those the citizen opted into; the wallet only for
    its credentials' events (the wallet has nothing to show about a certificate or a consent)."""
    row = conn.execute(select(notification_settings.c.channels).where(
        notification_settings.c.citizen_id == citizen_id)).first()
    chosen = json.loads(row[0]) if row else []
    return [c for c in PUSH_CHANNELS if c in chosen and (c != "wallet" or kind in WALLET_PUSH_KINDS)]


def certificate_state_changed(conn: Connection, certificate: Certificate, now: datetime) -> None:
    """An application finished (issued or refused): the citizen's notification, in the change's own transaction."""
    kind = {"issued": CERTIFICATE_ISSUED, "refused": CERTIFICATE_REFUSED}.get(certificate.state)
    if kind is None:
        return
    facts: dict[str, Any] = {"doc_type": certificate.doc_type}
    if certificate.valid_until is not None:
        facts["valid_until"] = certificate.valid_until.isoformat()
    raise_notification(conn, certificate.citizen_id, kind, certificate.id, certificate.state, facts, now)


@dataclass(frozen=True)
class Due:
    """A notification a scan found due."""

    citizen_id: str
    kind: str
    subject: str
    event: str
    facts: dict[str, Any]


def certificates_due(conn: Connection, today: date) -> Iterable[Due]:
    """Issued certificates that end within CERTIFICATE_EXPIRING_DAYS, and those that have ended (lately)."""
    rows = conn.execute(select(certificates).where(
        certificates.c.state == "issued", certificates.c.valid_until.is_not(None),
        certificates.c.valid_until <= today + timedelta(days=CERTIFICATE_EXPIRING_DAYS),
        certificates.c.valid_until >= today - timedelta(days=EXPIRED_LOOKBACK_DAYS),
    ).order_by(certificates.c.id)).mappings().all()
    for row in rows:
        until: date = row["valid_until"]
        facts = {"doc_type": row["doc_type"], "date": until.isoformat()}
        if until < today:
            yield Due(row["citizen_id"], CERTIFICATE_EXPIRED, row["id"], until.isoformat(), facts)
        else:
            yield Due(row["citizen_id"], CERTIFICATE_EXPIRING, row["id"], until.isoformat(), facts)


def consents_due(conn: Connection, now: datetime) -> Iterable[Due]:
    """Active consents whose validity ends within CONSENT_ENDING_DAYS."""
    rows = conn.execute(select(consent_records).where(
        consent_records.c.status == "active", consent_records.c.valid_until.is_not(None),
        consent_records.c.valid_until <= now + timedelta(days=CONSENT_ENDING_DAYS),
        consent_records.c.valid_until > now,
    ).order_by(consent_records.c.id)).mappings().all()
    for row in rows:
        until = aware(row["valid_until"]).astimezone(KST).date()
        yield Due(row["citizen_id"], CONSENT_ENDING, row["id"], until.isoformat(),
                  {"recipient": row["recipient"], "data_item": row["data_item"], "date": until.isoformat()})


class Notifications:
    """The notifications store: raising (scan and direct), reading, marking read, and the citizen's settings."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock

    # -- raising ---------------------------------------------------------------------------------------

    def scan(self, extra_sources: Iterable[Any] = ()) -> int:
        """One pass over the records: raises every notification that is due and new; returns how many were new.

        `extra_sources` are callables (conn, now) → Due rows from the owners this module may not import (the wallet
        bridge's credentials and offers)."""
        now = self.clock()
        today = korean_today(self.clock)
        created = 0
        with self.db.transaction() as conn:
            found: list[Due] = [*certificates_due(conn, today), *consents_due(conn, now)]
            for source in extra_sources:
                found.extend(source(conn, now))
            for due in found:
                created += raise_notification(conn, due.citizen_id, due.kind, due.subject, due.event, due.facts, now)
        return created

    def claim_lease(self, name: str, owner: str, hold: timedelta) -> bool:
        """Takes or renews the lease `name` for `owner` until now + `hold`; False while another owner holds it."""
        now = self.clock()
        with self.db.transaction() as conn:
            if insert_unless_present(conn, scheduler_leases, {"name": name, "owner": owner, "held_until": now + hold}):
                return True
            taken = conn.execute(update(scheduler_leases).where(
                scheduler_leases.c.name == name,
                or_(scheduler_leases.c.owner == owner, scheduler_leases.c.held_until < now),
            ).values(owner=owner, held_until=now + hold).returning(scheduler_leases.c.name)).first()
        return taken is not None

    def release_lease(self, name: str, owner: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(scheduler_leases.delete().where(scheduler_leases.c.name == name,
                                                         scheduler_leases.c.owner == owner))

    # -- reading ---------------------------------------------------------------------------------------

    def for_citizen(self, citizen_id: str, *, unread_only: bool = False) -> list[Notification]:
        """The citizen's notifications, unread first, each group oldest first."""
        query = select(notifications).where(notifications.c.citizen_id == citizen_id)
        if unread_only:
            query = query.where(notifications.c.read_at.is_(None))
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(notifications.c.created_at, notifications.c.id)).mappings().all()
        items = [Notification.from_row(r) for r in rows]
        return [n for n in items if n.read_at is None] + [n for n in items if n.read_at is not None]

    def unread_count(self, citizen_id: str) -> int:
        return len(self.for_citizen(citizen_id, unread_only=True))

    def mark_read(self, citizen_id: str, notification_ids: list[str], via: str) -> int:
        """Marks the citizen's own notifications read (another citizen's id changes nothing); returns how many were
        unread. Marking one that is already read keeps its first reading time."""
        if not notification_ids:
            return 0
        with self.db.transaction() as conn:
            result = conn.execute(update(notifications).where(and_(
                notifications.c.citizen_id == citizen_id, notifications.c.id.in_(notification_ids),
                notifications.c.read_at.is_(None),
            )).values(read_at=self.clock(), read_via=via).returning(notifications.c.id)).all()
        return len(result)

    def get(self, citizen_id: str, notification_id: str) -> Notification | None:
        with self.db.read() as conn:
            row = conn.execute(select(notifications).where(
                notifications.c.citizen_id == citizen_id, notifications.c.id == notification_id)).mappings().first()
        return Notification.from_row(row) if row else None

    # -- settings --------------------------------------------------------------------------------------

    def settings(self, citizen_id: str) -> NotificationSettings:
        with self.db.read() as conn:
            row = conn.execute(select(notification_settings).where(
                notification_settings.c.citizen_id == citizen_id)).mappings().first()
        if row is None:
            return NotificationSettings()
        return NotificationSettings(bool(row["spoken_headlines"]), tuple(json.loads(row["channels"])),
                                    row["quiet_start"], row["quiet_end"])

    def save_settings(self, citizen_id: str, chosen: NotificationSettings) -> None:
        """Replaces the citizen's settings in one transaction (the same values again change nothing)."""
        values = {"spoken_headlines": chosen.spoken_headlines, "channels": json.dumps(list(chosen.channels)),
                  "quiet_start": chosen.quiet_start, "quiet_end": chosen.quiet_end, "updated_at": self.clock()}
        with self.db.transaction() as conn:
            if not insert_unless_present(conn, notification_settings, {"citizen_id": citizen_id, **values}):
                conn.execute(update(notification_settings).where(
                    notification_settings.c.citizen_id == citizen_id).values(**values))

    def headline_count(self, citizen_id: str) -> int:
        """How many unread notifications a spoken headline would announce: 0 when spoken headlines are off."""
        if not self.settings(citizen_id).spoken_headlines:
            return 0
        return self.unread_count(citizen_id)
