"""Citizens, speaker users linked to them, one-time link codes, PIN step-up and lockout.

Personal fields (the citizen's name) are encrypted at rest with AES-GCM under a key derived from
MINWON_SECRET_KEY. PINs are scrypt hashes. The failure counter and lock live in the database and are
changed under a row lock, so a lockout holds across sessions, processes, workers and nodes, and parallel
guesses all count. Lockouts escalate (15 minutes, then an hour, then until `app.py unlock`), so a PIN
cannot be walked through five guesses at a time.

Link codes are eight digits, valid ten minutes, bound to one citizen and used once; only a keyed digest
is stored. Failed code attempts count per speaker user, per calling address and in total, in the
database, so guessing a code is throttled across every node.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Connection, DateTime, ForeignKey, Integer, String, Table, Text, select

from domain.attempts import RateLimit
from domain.clock import aware, utc_now
from domain.crypto import FieldCipher, secret_digest
from domain.devices import is_anonymous
from storage import Database, metadata

MAX_PIN_FAILURES = 5
# The lock after the first, second, … run of wrong PINs; after the last one, only `app.py unlock` helps.
LOCKOUTS = (timedelta(minutes=15), timedelta(hours=1))
LOCKED_UNTIL_RESET = datetime(9999, 12, 31, tzinfo=UTC)
LINK_CODE_TTL = timedelta(minutes=10)
LINK_CODE_DIGITS = 8
# Failed link-code attempts per ten minutes: per speaker user, per calling address, and in total (each one a
# domain.attempts budget: that many at once, then one more every 600 s / limit). With 10^8 codes and the
# total budget, a guess succeeds with odds of about 1 in 10^5 per live code in ten minutes.
LINK_ATTEMPT_WINDOW_S = 600
LINK_FAILURES_PER_USER = 5
LINK_FAILURES_PER_ADDRESS = 20
LINK_FAILURES_TOTAL = 1000

citizens = Table(
    "citizens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name_enc", Text, nullable=False),
    Column("locale", String(8), nullable=False, default="ko-KR"),
    Column("pin_hash", String(200), nullable=False),
    Column("pin_failures", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    # Runs of wrong PINs since the last right one: picks the next lock's length (LOCKOUTS).
    Column("lockouts", Integer, nullable=False, default=0, server_default="0"),
    # "full": document names are spoken; "brief": only counts, no document names.
    Column("privacy", String(16), nullable=False, default="full"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The birth date (YYYY-MM-DD), encrypted like the name: what a mobile ID credential states (schema version 4).
    Column("birth_date_enc", Text, nullable=True),
)

speaker_links = Table(
    "speaker_links",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
)

link_codes = Table(
    "link_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Citizen:
    id: str
    name: str
    locale: str
    privacy: str
    birth_date: str | None = None  # YYYY-MM-DD, when known (a mobile ID needs it)
    # The end of a PIN lockout as stored when this record was read (None: none was set); `locked_on` says whether
    # it still holds. A turn reads its citizen once (`Accounts.link_of`) and checks the lockout on that record.
    locked_until: datetime | None = None

    def locked_on(self, now: datetime) -> datetime | None:
        """The end of the lockout when the citizen is locked out at `now`, else None."""
        return self.locked_until if self.locked_until is not None and self.locked_until > now else None


def link_user_in(conn: Connection, user_id: str, citizen_id: str) -> None:
    """(Re)links a speaker user to a citizen inside the caller's transaction; the new `linked_at` is the new link
    stamp, so every dialog session begun under the earlier link ends at its next turn."""
    conn.execute(speaker_links.delete().where(speaker_links.c.user_id == user_id))
    conn.execute(speaker_links.insert().values(user_id=user_id, citizen_id=citizen_id, linked_at=utc_now()))


def citizen_exists_in(conn: Connection, citizen_id: str) -> bool:
    return conn.execute(select(citizens.c.id).where(citizens.c.id == citizen_id)).first() is not None


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _pin_matches(pin: str, stored: str) -> bool:
    _, salt_hex, digest_hex = stored.split("$")
    digest = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    locked: bool
    remaining: int
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Link:
    """A speaker user's link to a citizen; `stamp` changes with every (re)link, so a dialog session started
    under an earlier link can be recognised and dropped."""

    citizen: Citizen
    stamp: str


@dataclass(frozen=True)
class LinkAttempt:
    citizen: Citizen | None
    throttled: bool = False


class Accounts:
    def __init__(self, db: Database, secret_key: bytes) -> None:
        self.db = db
        self.cipher = FieldCipher(secret_key)
        self._key = secret_key
        # Failed link-code guesses per speaker user, per calling address and in total (keys: the user id, the
        # address, and one key for everyone).
        self._link_budgets = (
            RateLimit("link:user", LINK_FAILURES_PER_USER, LINK_ATTEMPT_WINDOW_S, secret_key),
            RateLimit("link:addr", LINK_FAILURES_PER_ADDRESS, LINK_ATTEMPT_WINDOW_S, secret_key),
            RateLimit("link:total", LINK_FAILURES_TOTAL, LINK_ATTEMPT_WINDOW_S, secret_key),
        )

    def create_citizen(self, citizen_id: str, name: str, locale: str, pin: str, privacy: str = "full",
                       birth_date: str | None = None) -> None:
        birth_date_enc = None if birth_date is None else self.cipher.encrypt(
            birth_date, ("citizens", "birth_date_enc", citizen_id))
        with self.db.transaction() as conn:
            conn.execute(
                citizens.insert().values(
                    id=citizen_id, name_enc=self.cipher.encrypt(name, ("citizens", "name_enc", citizen_id)), locale=locale, pin_hash=hash_pin(pin),
                    pin_failures=0, privacy=privacy, created_at=utc_now(), birth_date_enc=birth_date_enc,
                )
            )

    def citizen(self, citizen_id: str) -> Citizen | None:
        with self.db.read() as conn:
            row = conn.execute(select(citizens).where(citizens.c.id == citizen_id)).mappings().first()
        return None if row is None else self._citizen(row)

    def _citizen(self, row: Mapping[str, Any]) -> Citizen:
        birth_date = row.get("birth_date_enc")
        return Citizen(row["id"], self.cipher.decrypt(row["name_enc"], ("citizens", "name_enc", row["id"])), row["locale"],
                       row["privacy"],
                       None if birth_date is None else self.cipher.decrypt(
                           birth_date, ("citizens", "birth_date_enc", row["id"])),
                       aware(row["locked_until"]))

    def citizen_for_user(self, user_id: str) -> Citizen | None:
        link = self.link_of(user_id)
        return link.citizen if link else None

    def link_of(self, user_id: str) -> Link | None:
        # Every turn asks. An anonymous principal is never linked (a caller without a token cannot link), so it
        # costs no query; a linked one costs one (the link and its citizen together).
        if is_anonymous(user_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(
                select(speaker_links.c.linked_at, citizens)
                .join(citizens, citizens.c.id == speaker_links.c.citizen_id)
                .where(speaker_links.c.user_id == user_id)).mappings().first()
        if row is None:
            return None
        return Link(self._citizen(row), aware(row["linked_at"]).isoformat(timespec="microseconds"))

    def is_linked(self, user_id: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(
                select(speaker_links.c.user_id).where(speaker_links.c.user_id == user_id)).first() is not None

    def linked_users(self, citizen_id: str) -> list[str]:
        """The speaker users linked to the citizen (namespaced platform ids, as channels/speaker_ids.py makes them),
        oldest link first: whom a platform push can address."""
        with self.db.read() as conn:
            return list(conn.execute(select(speaker_links.c.user_id).where(speaker_links.c.citizen_id == citizen_id)
                                     .order_by(speaker_links.c.linked_at, speaker_links.c.user_id)).scalars())

    def set_privacy(self, citizen_id: str, privacy: str) -> None:
        if privacy not in ("full", "brief"):
            raise ValueError("privacy must be 'full' or 'brief'")
        with self.db.transaction() as conn:
            conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(privacy=privacy))

    def link_user(self, user_id: str, citizen_id: str) -> None:
        with self.db.transaction() as conn:
            link_user_in(conn, user_id, citizen_id)

    def issue_link_code(self, citizen_id: str) -> str:
        """An eight-digit one-time code for this citizen; only its keyed digest is stored."""
        if self.citizen(citizen_id) is None:
            raise KeyError(citizen_id)
        code = f"{secrets.randbelow(10**LINK_CODE_DIGITS):0{LINK_CODE_DIGITS}d}"
        with self.db.transaction() as conn:
            conn.execute(link_codes.delete().where(link_codes.c.expires_at < utc_now()))
            conn.execute(
                link_codes.insert().values(
                    code_hash=secret_digest(code, self._key), citizen_id=citizen_id, expires_at=utc_now() + LINK_CODE_TTL
                )
            )
        return code

    def redeem_link_code(self, user_id: str, code: str, origin: str = "-") -> LinkAttempt:
        """Links the speaker user when the code is valid; the code is consumed in the same transaction.

        A wrong code counts against the speaker user, the calling address (`origin`) and the total; while
        any of the three budgets is used up, no code is even looked at."""
        budgets = tuple(zip(self._link_budgets, (user_id, origin, "all"), strict=True))
        with self.db.transaction() as conn:
            if any(budget.exhausted(conn, key) for budget, key in budgets):
                return LinkAttempt(None, throttled=True)
            row = conn.execute(select(link_codes).where(
                link_codes.c.code_hash == secret_digest(code, self._key))).mappings().first()
            if row is None or aware(row["expires_at"]) < utc_now():
                for budget, key in budgets:
                    budget.count(conn, key)
                return LinkAttempt(None)
            conn.execute(link_codes.delete().where(link_codes.c.code_hash == row["code_hash"]))
            link_user_in(conn, user_id, row["citizen_id"])
            citizen_id = row["citizen_id"]
        return LinkAttempt(self.citizen(citizen_id))

    def lock_state(self, citizen_id: str) -> datetime | None:
        """The end of the citizen's PIN lockout, read now, or None when not locked out."""
        with self.db.read() as conn:
            until = aware(conn.execute(select(citizens.c.locked_until).where(citizens.c.id == citizen_id)).scalar())
        return until if until and until > utc_now() else None

    def verify_pin(self, citizen_id: str, pin: str) -> PinCheck:
        """Checks a PIN and updates the failure counter in one transaction, with the citizen's row locked
        (FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite), so parallel guesses all count."""
        with self.db.transaction() as conn:
            row = conn.execute(select(citizens).where(citizens.c.id == citizen_id).with_for_update()).mappings().one()
            now = utc_now()
            locked_until = aware(row["locked_until"])
            if locked_until and locked_until > now:
                return PinCheck(ok=False, locked=True, remaining=0, locked_until=locked_until)
            failures = 0 if locked_until else row["pin_failures"]
            if _pin_matches(pin, row["pin_hash"]):
                conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                    pin_failures=0, locked_until=None, lockouts=0))
                return PinCheck(ok=True, locked=False, remaining=MAX_PIN_FAILURES)
            failures += 1
            if failures >= MAX_PIN_FAILURES:
                lockouts = row["lockouts"] + 1
                until = now + LOCKOUTS[lockouts - 1] if lockouts <= len(LOCKOUTS) else LOCKED_UNTIL_RESET
                conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                    pin_failures=0, locked_until=until, lockouts=lockouts))
                return PinCheck(ok=False, locked=True, remaining=0, locked_until=until)
            conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                pin_failures=failures, locked_until=None))
            return PinCheck(ok=False, locked=False, remaining=MAX_PIN_FAILURES - failures)

    def unlock(self, citizen_id: str) -> bool:
        """Lifts any PIN lock and forgets the wrong PINs (an administrator's step, after checking identity)."""
        with self.db.transaction() as conn:
            return conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                pin_failures=0, locked_until=None, lockouts=0)).rowcount > 0
