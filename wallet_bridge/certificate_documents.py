"""The certificate records, as the credential endpoint needs them: is the document issued, and for whom."""

from __future__ import annotations

from datetime import date

from domain.certificates import Certificate, CertificateRecords
from domain.citizens import Accounts
from domain.clock import Clock, korean_today
from wallet_bridge.issuance import IssuableDocument
from wallet_bridge.mobile_id import MOBILE_ID_CERTIFICATE, MOBILE_ID_DOC_TYPE


class CertificateDocuments:
    def __init__(self, records: CertificateRecords, accounts: Accounts, clock: Clock) -> None:
        self.records = records
        self.accounts = accounts
        self.clock = clock

    def certificates(self, citizen_id: str, doc_type: str) -> list[Certificate]:
        """The citizen's certificates of one type, the most recently issued first."""
        found = [c for c in self.records.for_citizen(citizen_id) if c.doc_type == doc_type]
        return sorted(found, key=lambda c: (c.issued_on or date.min, c.id), reverse=True)

    def status(self, certificate: Certificate) -> str:
        return certificate.status_on(korean_today(self.clock))

    def __call__(self, citizen_id: str, certificate_id: str) -> IssuableDocument | None:
        if certificate_id == MOBILE_ID_CERTIFICATE:
            return self.identity(citizen_id)
        certificate = next((c for c in self.records.for_citizen(citizen_id) if c.id == certificate_id), None)
        citizen = self.accounts.citizen(citizen_id)
        if certificate is None or citizen is None:
            return None
        return IssuableDocument(
            certificate_id=certificate.id, doc_type=certificate.doc_type, status=self.status(certificate),
            issued_on=certificate.issued_on, valid_until=certificate.valid_until, holder_name=citizen.name,
        )

    def identity(self, citizen_id: str) -> IssuableDocument | None:
        """What the mobile ID states: the citizen's name and birth date (none without a birth date on record)."""
        citizen = self.accounts.citizen(citizen_id)
        if citizen is None:
            return None
        return IssuableDocument(
            certificate_id=MOBILE_ID_CERTIFICATE, doc_type=MOBILE_ID_DOC_TYPE,
            status="issued" if citizen.birth_date else "unavailable", issued_on=None, valid_until=None,
            holder_name=citizen.name, birth_date=citizen.birth_date,
        )
