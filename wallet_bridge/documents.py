"""Document types that can go into a wallet, their credential types and this issuer's JSON-LD context.

A credential type name, the OID4VCI credential configuration id and the issuing authority are fixed
per document type here; the documents' names come from the dialog's slot vocabulary (data/slots).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from settings import PROJECT_DATA

VCDM_V2_CONTEXT = "https://www.w3.org/ns/credentials/v2"
CONTEXT_PATH = "/contexts/minwon-v1.jsonld"
SLOT_VOCABULARY = PROJECT_DATA / "slots" / "document.yaml"


@dataclass(frozen=True)
class DocumentType:
    doc_type: str  # the id the certificate records use, e.g. "resident-registration-copy"
    credential_type: str  # the VC `type` after VerifiableCredential
    authority_ko: str
    authority_en: str
    default_validity_days: int  # when the record has no end date of its own

    @property
    def configuration_id(self) -> str:
        return self.credential_type

    @property
    def name_ko(self) -> str:
        return _spoken_names()[self.doc_type]["ko"]

    @property
    def name_en(self) -> str:
        name = _spoken_names()[self.doc_type]["en"]
        return name[:1].upper() + name[1:]


@cache
def _spoken_names() -> dict[str, dict[str, str]]:
    # The dialog's slot vocabulary is the one place a document's Korean and English names are written.
    return yaml.safe_load(SLOT_VOCABULARY.read_text(encoding="utf-8"))


DOCUMENT_TYPES: dict[str, DocumentType] = {
    d.doc_type: d
    for d in (
        DocumentType("resident-registration-copy", "ResidentRegistrationCopyCredential",
                     "행정안전부", "Ministry of the Interior and Safety", 90),
        DocumentType("resident-registration-abstract", "ResidentRegistrationAbstractCredential",
                     "행정안전부", "Ministry of the Interior and Safety", 90),
        DocumentType("family-relation-certificate", "FamilyRelationCertificateCredential",
                     "대법원", "Supreme Court of Korea", 90),
        DocumentType("basic-certificate", "BasicCertificateCredential", "대법원", "Supreme Court of Korea", 90),
        DocumentType("health-insurance-eligibility", "HealthInsuranceEligibilityCredential",
                     "국민건강보험공단", "National Health Insurance Service", 90),
        DocumentType("income-amount-certificate", "IncomeAmountCertificateCredential",
                     "국세청", "National Tax Service", 90),
        DocumentType("vaccination-certificate", "VaccinationCertificateCredential",
                     "질병관리청", "Korea Disease Control and Prevention Agency", 365),
    )
}

BY_CONFIGURATION_ID = {d.configuration_id: d for d in DOCUMENT_TYPES.values()}

# Members of credentialSubject this issuer puts in; anything else is refused at issue time.
SUBJECT_TERMS = {
    "documentType": "@id",
    "documentName": "@language",
    "holderName": None,
    "issuedOn": "xsd:date",
    "documentValidUntil": "xsd:date",
    "documentNumber": None,
    "issuingAuthority": "@language",
}


def context_url(issuer: str) -> str:
    return issuer.rstrip("/") + CONTEXT_PATH


def json_ld_context(issuer: str) -> dict[str, Any]:
    """The JSON-LD 1.1 context that defines every term this issuer adds to the VCDM 2.0 base context."""
    vocab = issuer.rstrip("/") + "/vocab#"
    terms: dict[str, Any] = {
        "@version": 1.1,
        "@protected": True,
        "mw": vocab,
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "GovernmentDocumentSubject": "mw:GovernmentDocumentSubject",
    }
    for document in DOCUMENT_TYPES.values():
        terms[document.credential_type] = f"mw:{document.credential_type}"
    for term, kind in SUBJECT_TERMS.items():
        if kind is None:
            terms[term] = f"mw:{term}"
        elif kind == "@language":
            terms[term] = {"@id": f"mw:{term}", "@container": "@language"}
        elif kind == "@id":
            terms[term] = {"@id": f"mw:{term}", "@type": "@vocab"}
        else:
            terms[term] = {"@id": f"mw:{term}", "@type": kind}
    return {"@context": terms}
