"""The citizen's certificates (issued documents and applications) as the certificate skills read them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Column, Date, ForeignKey, String, Table, select

from storage import Database, metadata

certificates = Table(
    "certificates",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    Column("doc_type", String(64), nullable=False),
    # issued | in_progress | revoked | suspended; "expired" is derived from valid_until.
    Column("state", String(16), nullable=False),
    Column("applied_on", Date, nullable=True),
    Column("issued_on", Date, nullable=True),
    Column("valid_until", Date, nullable=True),
)


@dataclass(frozen=True)
class Certificate:
    id: str
    citizen_id: str
    doc_type: str
    state: str
    applied_on: date | None
    issued_on: date | None
    valid_until: date | None

    def status_on(self, today: date) -> str:
        """issued | expired | revoked | suspended | in_progress, as of `today`."""
        if self.state == "issued" and self.valid_until is not None and self.valid_until < today:
            return "expired"
        return self.state


class CertificateRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, certificate: Certificate) -> None:
        with self.db.transaction() as conn:
            conn.execute(certificates.insert().values(**certificate.__dict__))

    def for_citizen(self, citizen_id: str) -> list[Certificate]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(certificates).where(certificates.c.citizen_id == citizen_id).order_by(certificates.c.id)
            ).mappings().all()
        return [Certificate(**row) for row in rows]

