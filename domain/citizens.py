"""Citizens, speaker users linked to them, one-time link codes, PIN step-up and lockout.

Personal fields (the citizen's name) are encrypted at rest with AES-GCM under a key derived from
MINWON_SECRET_KEY. PINs are scrypt hashes. The failure counter and lock live in the database, so a
lockout holds across sessions, processes and workers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table, Text, select

from domain.clock import aware, utc_now
from domain.crypto import FieldCipher, secret_digest
from storage import Database, metadata

MAX_PIN_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
LINK_CODE_TTL = timedelta(minutes=10)

citizens = Table(
    "citizens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name_enc", Text, nullable=False),
    Column("locale", String(8), nullable=False, default="ko-KR"),
    Column("pin_hash", String(200), nullable=False),
    Column("pin_failures", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    # "full": document names are spoken; "brief": only counts, no document names.
    Column("privacy", String(16), nullable=False, default="full"),
    Column("created_at", DateTime(timezone=True), nullable=False),
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


class Accounts:
    def __init__(self, db: Database, secret_key: bytes) -> None:
        self.db = db
        self.cipher = FieldCipher(secret_key)

    def create_citizen(self, citizen_id: str, name: str, locale: str, pin: str, privacy: str = "full") -> None:
        with self.db.transaction() as conn:
            conn.execute(
                citizens.insert().values(
                    id=citizen_id, name_enc=self.cipher.encrypt(name, ("citizens", "name_enc", citizen_id)), locale=locale, pin_hash=hash_pin(pin),
                    pin_failures=0, privacy=privacy, created_at=utc_now(),
                )
            )

    def citizen(self, citizen_id: str) -> Citizen | None:
        with self.db.read() as conn:
            row = conn.execute(select(citizens).where(citizens.c.id == citizen_id)).mappings().first()
        if row is None:
            return None
        return Citizen(row["id"], self.cipher.decrypt(row["name_enc"], ("citizens", "name_enc", row["id"])), row["locale"], row["privacy"])

    def citizen_for_user(self, user_id: str) -> Citizen | None:
        with self.db.read() as conn:
            citizen_id = conn.execute(
                select(speaker_links.c.citizen_id).where(speaker_links.c.user_id == user_id)
            ).scalar()
        return self.citizen(citizen_id) if citizen_id else None

    def set_privacy(self, citizen_id: str, privacy: str) -> None:
        if privacy not in ("full", "brief"):
            raise ValueError("privacy must be 'full' or 'brief'")
        with self.db.transaction() as conn:
            conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(privacy=privacy))

    def link_user(self, user_id: str, citizen_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(speaker_links.delete().where(speaker_links.c.user_id == user_id))
            conn.execute(speaker_links.insert().values(user_id=user_id, citizen_id=citizen_id, linked_at=utc_now()))

    def issue_link_code(self, citizen_id: str) -> str:
        """A six-digit one-time code; only its hash is stored."""
        if self.citizen(citizen_id) is None:
            raise KeyError(citizen_id)
        code = f"{secrets.randbelow(10**6):06d}"
        with self.db.transaction() as conn:
            conn.execute(link_codes.delete().where(link_codes.c.expires_at < utc_now()))
            conn.execute(
                link_codes.insert().values(
                    code_hash=secret_digest(code), citizen_id=citizen_id, expires_at=utc_now() + LINK_CODE_TTL
                )
            )
        return code

    def redeem_link_code(self, user_id: str, code: str) -> Citizen | None:
        """Links the speaker user when the code is valid; the code is consumed in the same transaction."""
        with self.db.transaction() as conn:
            row = conn.execute(select(link_codes).where(link_codes.c.code_hash == secret_digest(code))).mappings().first()
            if row is None or aware(row["expires_at"]) < utc_now():
                return None
            conn.execute(link_codes.delete().where(link_codes.c.code_hash == row["code_hash"]))
            conn.execute(speaker_links.delete().where(speaker_links.c.user_id == user_id))
            conn.execute(
                speaker_links.insert().values(user_id=user_id, citizen_id=row["citizen_id"], linked_at=utc_now())
            )
            citizen_id = row["citizen_id"]
        return self.citizen(citizen_id)

    def lock_state(self, citizen_id: str) -> datetime | None:
        with self.db.read() as conn:
            until = aware(conn.execute(select(citizens.c.locked_until).where(citizens.c.id == citizen_id)).scalar())
        return until if until and until > utc_now() else None

    def verify_pin(self, citizen_id: str, pin: str) -> PinCheck:
        """Checks a PIN and updates the failure counter in one transaction (so parallel guesses all count)."""
        with self.db.transaction() as conn:
            row = conn.execute(select(citizens).where(citizens.c.id == citizen_id)).mappings().one()
            now = utc_now()
            locked_until = aware(row["locked_until"])
            if locked_until and locked_until > now:
                return PinCheck(ok=False, locked=True, remaining=0, locked_until=locked_until)
            failures = 0 if locked_until else row["pin_failures"]
            if _pin_matches(pin, row["pin_hash"]):
                conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                    pin_failures=0, locked_until=None))
                return PinCheck(ok=True, locked=False, remaining=MAX_PIN_FAILURES)
            failures += 1
            if failures >= MAX_PIN_FAILURES:
                until = now + LOCKOUT
                conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                    pin_failures=0, locked_until=until))
                return PinCheck(ok=False, locked=True, remaining=0, locked_until=until)
            conn.execute(citizens.update().where(citizens.c.id == citizen_id).values(
                pin_failures=failures, locked_until=None))
            return PinCheck(ok=False, locked=False, remaining=MAX_PIN_FAILURES - failures)
