"""Consent records, one per (citizen, recipient, data item, purpose), each with its history of events."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Table, UniqueConstraint, select

from skills.accounts import _aware, utcnow
from storage import Database, metadata

consent_records = Table(
    "consent_records",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    Column("recipient", String(64), nullable=False),
    Column("data_item", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("since", DateTime(timezone=True), nullable=True),
    Column("valid_until", DateTime(timezone=True), nullable=True),
    UniqueConstraint("citizen_id", "recipient", "data_item", "purpose"),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(64), ForeignKey("consent_records.id"), nullable=False, index=True),
    Column("event", String(16), nullable=False),  # given | withdrawn | expired | renewed
    Column("at", DateTime(timezone=True), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
)


@dataclass(frozen=True)
class ConsentRecord:
    id: str
    citizen_id: str
    recipient: str
    data_item: str
    purpose: str
    active: bool
    since: datetime | None
    valid_until: datetime | None


class ConsentLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    def records(self, citizen_id: str) -> list[ConsentRecord]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(consent_records).where(consent_records.c.citizen_id == citizen_id).order_by(consent_records.c.id)
            ).mappings().all()
        return [
            ConsentRecord(**{**row, "since": _aware(row["since"]), "valid_until": _aware(row["valid_until"])})
            for row in rows
        ]

    def set_consent(
        self, citizen_id: str, recipient: str, data_item: str, purpose: str, active: bool,
        channel: str, actor: str, valid_until: datetime | None = None,
    ) -> bool:
        """Gives or withdraws; returns False when the consent was already in that state (nothing written)."""
        with self.db.transaction() as conn:
            key = (
                (consent_records.c.citizen_id == citizen_id) & (consent_records.c.recipient == recipient)
                & (consent_records.c.data_item == data_item) & (consent_records.c.purpose == purpose)
            )
            row = conn.execute(select(consent_records).where(key)).mappings().first()
            now = utcnow()
            if row is not None and row["active"] == active:
                return False
            if row is None:
                record_id = "consent-" + secrets.token_hex(6)
                conn.execute(consent_records.insert().values(
                    id=record_id, citizen_id=citizen_id, recipient=recipient, data_item=data_item, purpose=purpose,
                    active=active, since=now if active else None, valid_until=valid_until))
            else:
                record_id = row["id"]
                conn.execute(consent_records.update().where(consent_records.c.id == record_id).values(
                    active=active, since=now if active else row["since"]))
            conn.execute(consent_events.insert().values(
                record_id=record_id, event="given" if active else "withdrawn", at=now, channel=channel, actor=actor))
            return True
