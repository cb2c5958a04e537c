"""The citizen's certificates (issued documents and applications) as the certificate skills read them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Column, Connection, Date, DateTime, ForeignKey, String, Table, select, update

from storage import Database, metadata

certificates = Table(
    "certificates",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("citizen_id", String(64), ForeignKey("citizens.id"), nullable=False, index=True),
    Column("doc_type", String(64), nullable=False),
    # issued | in_progress | refused | revoked | suspended; "expired" is derived from valid_until.
    Column("state", String(16), nullable=False),
    Column("applied_on", Date, nullable=True),
    Column("issued_on", Date, nullable=True),
    Column("valid_until", Date, nullable=True),
)

# What an issuing agency reported (POST /v1/agencies/certificates/{id}/state), by its request id: a retry gets the
# first answer, and a request id used again for something else is refused.
certificate_state_reports = Table(
    "certificate_state_reports",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("certificate_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("valid_until", Date, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Which agency issues each document type: an agency reports states only for the documents it issues.
DOCUMENT_ISSUERS = {
    "resident-registration-copy": "mois",
    "resident-registration-abstract": "mois",
    "family-relation-certificate": "scourt",
    "health-insurance-eligibility": "nhis",
    "income-amount-certificate": "nts",
    "vaccination-certificate": "kdca",
}
# The states an agency may report for an application in progress.
REPORTABLE_STATES = ("issued", "refused")


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



@dataclass(frozen=True)
class StateReport:
    """The outcome of an agency's state report: `outcome` is applied | repeated (the same request id again, or the
    state already reported) | not_found (no such certificate of this agency's) | conflict (the request id was used
    for something else, or the certificate is not in progress)."""

    outcome: str
    certificate: Certificate | None = None


# Called inside the report's transaction when a certificate changed state: (conn, certificate, now).
StateChanged = Callable[[Connection, Certificate, datetime], None]


def report_state(db: Database, agency_id: str, certificate_id: str, request_id: str, state: str,
                 valid_until: date | None, today: date, now: datetime, on_change: StateChanged) -> StateReport:
    """An issuing agency says its application is issued or refused: the certificate changes, the report is kept
    under its request id and `on_change` runs (it raises the citizen's notification), all in one transaction."""
    with db.transaction() as conn:
        # The row lock makes two reports of one certificate (a retry racing its first try, two nodes) take turns,
        # so the second sees the first's report; SQLite's writer already holds the database's write lock.
        row = conn.execute(select(certificates).where(certificates.c.id == certificate_id)
                           .with_for_update()).mappings().first()
        if row is None or DOCUMENT_ISSUERS.get(row["doc_type"]) != agency_id:
            # Another agency's document and an unknown id get the same answer: nothing to learn about other ids.
            return StateReport("not_found")
        current = Certificate(**row)
        stored = conn.execute(select(certificate_state_reports).where(
            certificate_state_reports.c.agency_id == agency_id,
            certificate_state_reports.c.request_id == request_id)).mappings().first()
        if stored is not None:
            same = (stored["certificate_id"], stored["state"], stored["valid_until"]) == (
                certificate_id, state, valid_until)
            return StateReport("repeated" if same else "conflict", current)
        if current.state != "in_progress":
            already = current.state == state and (state != "issued" or current.valid_until == valid_until)
            return StateReport("repeated" if already else "conflict", current)
        conn.execute(certificate_state_reports.insert().values(
            agency_id=agency_id, request_id=request_id, certificate_id=certificate_id, state=state,
            valid_until=valid_until, at=now))
        values: dict[str, object] = {"state": state}
        if state == "issued":
            values.update(issued_on=today, valid_until=valid_until)
        conn.execute(update(certificates).where(certificates.c.id == certificate_id).values(**values))
        changed = Certificate(**{**current.__dict__, **values})
        on_change(conn, changed, now)
        return StateReport("applied", changed)
