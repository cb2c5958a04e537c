"""My Data release: a recipient agency asks for one of a citizen's data items and gets it only under an
active, in-validity consent. Every request is recorded, released or refused.

The citizen's data items are personal data and are stored encrypted (the accounts field cipher), each
bound to its (citizen, data item) row: a ciphertext copied from another row is refused, and the request
is recorded as `unreadable`.
Agency API keys are stored as SHA-256 hashes; keys may also come from MINWON_AGENCY_KEYS
("nhis=KEY,nts=KEY"), hashed when read. The consent is read and the request recorded in the same
transaction, so a withdrawal committed before the request is always seen by it.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, String, Table, Text, select

from domain.clock import utc_now
from domain.consent_ledger import ConsentLedger
from domain.crypto import FieldCipher, FieldIntegrityError, secret_digest
from storage import Database, metadata

log = logging.getLogger(__name__)

mydata_items = Table(
    "mydata_items",
    metadata,
    Column("citizen_id", String(64), ForeignKey("citizens.id"), primary_key=True),
    Column("data_item", String(64), primary_key=True),
    Column("value_enc", Text, nullable=False),
)

agency_keys = Table(
    "agency_keys",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("agency_id", String(64), nullable=False, index=True),
)

share_requests = Table(
    "share_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("agency_id", String(64), nullable=False, index=True),
    Column("citizen_id", String(64), nullable=False, index=True),
    Column("data_item", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),  # released | refused | no_data | unreadable
    Column("consent_record_id", String(64), nullable=True),
)


class AgencyKeys:
    def __init__(self, db: Database, secret_key: bytes, configured: str = "") -> None:
        self.db = db
        self._key = secret_key
        # "nhis=KEY,nts=KEY" from the settings; only the digests are kept in memory.
        self._configured = {
            secret_digest(key.strip(), secret_key): agency.strip()
            for agency, _, key in (part.partition("=") for part in configured.split(",") if "=" in part)
            if key.strip()
        }

    def add(self, agency_id: str, key: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(agency_keys.insert().values(key_hash=secret_digest(key, self._key), agency_id=agency_id))

    def agency_for(self, key: str) -> str | None:
        digest = secret_digest(key, self._key)
        for known, agency in self._configured.items():
            if hmac.compare_digest(known, digest):
                return agency
        with self.db.read() as conn:
            return conn.execute(select(agency_keys.c.agency_id).where(agency_keys.c.key_hash == digest)).scalar()


def value_place(citizen_id: str, data_item: str) -> tuple[str, str, str, str]:
    """Where a data item's ciphertext belongs (the field cipher's associated data): another citizen's row or
    another data item does not open it."""
    return ("mydata_items", "value_enc", citizen_id, data_item)


class CitizenData:
    """The citizen's data items (what an agency receives), encrypted at rest."""

    def __init__(self, db: Database, cipher: FieldCipher) -> None:
        self.db = db
        self.cipher = cipher

    def put(self, citizen_id: str, data_item: str, value: dict[str, Any]) -> None:
        encrypted = self.cipher.encrypt(json.dumps(value, ensure_ascii=False), value_place(citizen_id, data_item))
        with self.db.transaction() as conn:
            conn.execute(mydata_items.delete().where(mydata_items.c.citizen_id == citizen_id,
                                                     mydata_items.c.data_item == data_item))
            conn.execute(mydata_items.insert().values(citizen_id=citizen_id, data_item=data_item, value_enc=encrypted))

    def get(self, citizen_id: str, data_item: str) -> dict[str, Any] | None:
        """The data item, None when none is on record; FieldIntegrityError when its ciphertext is not this row's."""
        with self.db.read() as conn:
            value_enc = conn.execute(select(mydata_items.c.value_enc).where(
                mydata_items.c.citizen_id == citizen_id, mydata_items.c.data_item == data_item)).scalar()
        return None if value_enc is None else self.decrypt(citizen_id, data_item, value_enc)

    def decrypt(self, citizen_id: str, data_item: str, value_enc: str) -> dict[str, Any]:
        return json.loads(self.cipher.decrypt(value_enc, value_place(citizen_id, data_item)))


@dataclass(frozen=True)
class ShareDecision:
    # released | refused (no active consent) | no_data (consent, but nothing on record) | unreadable (the stored
    # item failed its integrity check, so nothing was released)
    outcome: str
    request_id: str
    data: dict[str, Any] | None = None
    consent_record_id: str | None = None
    valid_until: datetime | None = None


def decide_share(db: Database, ledger: ConsentLedger, data: CitizenData, agency_id: str, citizen_id: str,
                 data_item: str, purpose: str, now: datetime | None = None) -> ShareDecision:
    """Releases the data item only under an active consent in its validity, and records the request either way."""
    now = now or utc_now()
    request_id = "share-" + secrets.token_hex(8)
    released: dict[str, Any] | None = None
    with db.transaction() as conn:
        record = ledger.active_record(conn, citizen_id, agency_id, data_item, purpose, now)
        value_enc = None
        if record is not None:
            value_enc = conn.execute(select(mydata_items.c.value_enc).where(
                mydata_items.c.citizen_id == citizen_id, mydata_items.c.data_item == data_item)).scalar()
        outcome = "refused" if record is None else "no_data" if value_enc is None else "released"
        if outcome == "released":
            # Opened before the request is recorded, so the record says what really happened: a ciphertext
            # copied in from another row is logged as unreadable, not as released.
            try:
                released = data.decrypt(citizen_id, data_item, value_enc)
            except FieldIntegrityError as exc:
                log.error("stored data item failed its integrity check", extra={"field": exc.place})
                outcome = "unreadable"
        conn.execute(share_requests.insert().values(
            id=request_id, at=now, agency_id=agency_id, citizen_id=citizen_id, data_item=data_item, purpose=purpose,
            outcome=outcome, consent_record_id=record.id if record else None))
    if outcome != "released":
        return ShareDecision(outcome, request_id)
    assert record is not None
    return ShareDecision(outcome, request_id, released, record.id, record.valid_until)
