"""The Credential Endpoint (OID4VCI 1.0 §8): checks a credential request and issues the `vc+jwt` (a document)
or the `dc+sd-jwt` (the mobile ID, wallet_bridge.mobile_id).

Everything one issuance changes — the spent c_nonce, the two status-list indices, the credential
record and the offer's state — is written in one transaction. A request for an offer that already
has its credential, proven with the same holder key, gets that same credential back: a wallet that
lost the response can retry without a second credential being made.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from domain.clock import KST, Clock, korean_today
from domain.crypto import FieldCipher, FieldIntegrityError, jwk_thumbprint
from domain.signing_keys import IssuerKeyring
from storage import Database
from wallet_bridge.config import WalletConfig
from wallet_bridge.credentials import format_date_time, sign_credential, validate_credential_document
from wallet_bridge.documents import DOCUMENT_TYPES, VCDM_V2_CONTEXT, DocumentType, context_url
from wallet_bridge.mobile_id import (
    MOBILE_ID_DOC_TYPE,
    MOBILE_ID_VALIDITY,
    citizen_ref,
    remember_citizen_ref,
    sign_mobile_id,
)
from wallet_bridge.nonces import NonceStore
from wallet_bridge.oauth_errors import OAuthError
from wallet_bridge.offers import ISSUED, CredentialOffers, RedeemedOffer
from wallet_bridge.proofs import KeyProof, check_proof_jwt, invalid_proof
from wallet_bridge.status_list import REVOCATION, SUSPENSION, StatusLists
from wallet_bridge.tables import issued_credentials, sealed_place

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuableDocument:
    """What the certificate records say about the document at the moment of issuance."""

    certificate_id: str
    doc_type: str
    status: str  # issued | expired | revoked | suspended | in_progress
    issued_on: date | None
    valid_until: date | None
    holder_name: str
    birth_date: str | None = None  # YYYY-MM-DD: only the mobile ID states it


# (citizen_id, certificate_id) -> the document, or None when the citizen has no such certificate.
DocumentSource = Callable[[str, str], IssuableDocument | None]


@dataclass(frozen=True)
class CredentialRequest:
    configuration_id: str | None
    credential_identifier: str | None
    jwt_proofs: list[Any]


def parse_credential_request(body: Any) -> CredentialRequest:
    """The request's shape, checked before any proof is looked at (OID4VCI 1.0 §8.2)."""
    if not isinstance(body, dict):
        raise OAuthError("invalid_credential_request", "the credential request must be a JSON object")
    if "credential_response_encryption" in body:
        raise OAuthError("invalid_encryption_parameters", "credential response encryption is not supported")
    configuration_id = body.get("credential_configuration_id")
    identifier = body.get("credential_identifier")
    if configuration_id is None and identifier is None:
        hint = " (format/doctype requests are from drafts before 1.0)" if "format" in body else ""
        raise OAuthError(
            "invalid_credential_request",
            "credential_configuration_id or credential_identifier is required" + hint,
        )
    if configuration_id is not None and identifier is not None:
        raise OAuthError(
            "invalid_credential_request",
            "credential_configuration_id and credential_identifier are mutually exclusive",
        )
    for value in (configuration_id, identifier):
        if value is not None and (not isinstance(value, str) or not value):
            raise OAuthError("invalid_credential_request", "the credential id must be a non-empty string")
    if "proof" in body:
        raise OAuthError("invalid_credential_request", "use `proofs` (OID4VCI 1.0), not `proof`")
    proofs = body.get("proofs")
    if proofs is None:
        raise invalid_proof("proofs is required: this issuer binds every credential to a holder key")
    if not isinstance(proofs, dict) or len(proofs) != 1:
        raise invalid_proof("proofs must hold exactly one proof type")
    if "jwt" not in proofs:
        raise invalid_proof(f"unsupported proof type {next(iter(proofs))!r}: only jwt")
    jwt_proofs = proofs["jwt"]
    if not isinstance(jwt_proofs, list) or not jwt_proofs:
        raise invalid_proof("proofs.jwt must be a non-empty array")
    return CredentialRequest(configuration_id, identifier, jwt_proofs)


def subject_pseudonym(secret_key: bytes, citizen_id: str) -> str:
    """A stable `urn:uuid` for the citizen that reveals nothing about who they are (UUIDv8 from an HMAC)."""
    digest = hmac.new(
        hashlib.sha256(b"minwon-subject-v1" + secret_key).digest(), citizen_id.encode(), hashlib.sha256
    ).digest()
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return uuid.UUID(bytes=bytes(raw)).urn


def document_validity(document: IssuableDocument, doc_type: DocumentType, today: date) -> tuple[datetime, datetime]:
    """validFrom and validUntil: from the start of the issue day (`today` when the document has none) to the end
    of the last valid day (KST)."""
    issued_on = document.issued_on or today
    start = datetime.combine(issued_on, time(0, 0), KST)
    last_day = document.valid_until or issued_on + timedelta(days=doc_type.default_validity_days - 1)
    end = datetime.combine(last_day + timedelta(days=1), time(0, 0), KST)
    return start.astimezone(UTC), end.astimezone(UTC)


class CredentialIssuance:
    def __init__(
        self,
        db: Database,
        config: WalletConfig,
        keyring: IssuerKeyring,
        status_lists: StatusLists,
        nonces: NonceStore,
        offers: CredentialOffers,
        documents: DocumentSource,
        clock: Clock,
    ) -> None:
        self.db = db
        self.config = config
        self.keyring = keyring
        self.status_lists = status_lists
        self.nonces = nonces
        self.offers = offers
        self.documents = documents
        self.clock = clock
        self.box = FieldCipher(config.secret_key)

    def handle(self, authorization: str | None, body: Any) -> dict[str, Any]:
        """The Credential Response for a request, or OAuthError with the spec's error code."""
        # The certificate records are read before the issuance transaction: a second connection opened
        # inside it would wait for the write lock that the transaction itself holds.
        document = self._document_for(authorization)
        self.keyring.active_key()  # likewise the signing key, which the first issuance of a cluster makes
        with self.db.transaction() as conn:
            offer = self.offers.authenticate(conn, authorization)
            request = parse_credential_request(body)
            now = self.clock()
            proofs: list[KeyProof] = [
                check_proof_jwt(
                    proof,
                    self.config.issuer,
                    now,
                    lambda nonce: self.nonces.consume(conn, nonce),
                    max_age=timedelta(seconds=self.config.proof_max_age_s),
                    max_skew=timedelta(seconds=self.config.proof_max_skew_s),
                )
                for proof in request.jwt_proofs
            ]
            if len(proofs) != 1:
                raise OAuthError(
                    "invalid_credential_request", "batch issuance is not supported: send one proof"
                )
            if request.credential_identifier is not None:
                raise OAuthError(
                    "unknown_credential_identifier", "this issuer does not use credential identifiers"
                )
            if request.configuration_id != offer.configuration_id:
                raise OAuthError(
                    "unknown_credential_configuration",
                    "the access token is not for this credential configuration",
                )
            holder_jwk = proofs[0].jwk
            if offer.state == ISSUED:
                credential = self._already_issued(conn, offer.id, holder_jwk)
            else:
                credential = self._issue(conn, offer, document, holder_jwk)
        return {"credentials": [{"credential": credential}]}

    def _already_issued(self, conn: Connection, offer_id: str, holder_jwk: dict[str, Any]) -> str:
        row = (
            conn.execute(select(issued_credentials).where(issued_credentials.c.offer_id == offer_id))
            .mappings()
            .one()
        )
        if row["holder_thumbprint"] != jwk_thumbprint(holder_jwk):
            raise OAuthError("credential_request_denied", "this offer's credential was issued to another key")
        try:
            return self.box.decrypt(row["credential_sealed"], sealed_place(issued_credentials, "credential_sealed",
                                                                           row["id"]))
        except FieldIntegrityError as exc:
            # The stored copy is not this credential's (copied from another row): it is never handed out.
            log.error("stored credential failed its integrity check", extra={"field": exc.place})
            raise OAuthError("credential_request_denied", "the stored credential failed its integrity check") from exc

    def _document_for(self, authorization: str | None) -> IssuableDocument | None:
        try:
            with self.db.read() as conn:
                offer = self.offers.authenticate(conn, authorization)
        except OAuthError:
            return None  # answered properly inside the transaction
        return self.documents(offer.citizen_id, offer.certificate_id)

    def _issue(self, conn: Connection, offer: RedeemedOffer, document: IssuableDocument | None,
               holder_jwk: dict[str, Any]) -> str:
        if document is None or document.doc_type != offer.doc_type or document.certificate_id != offer.certificate_id:
            raise OAuthError("credential_request_denied", "the document is no longer available")
        if document.status != "issued":
            raise OAuthError("credential_request_denied", f"the document is {document.status}, not issued")
        credential_id = uuid.uuid4().urn
        revocation = self.status_lists.allocate(conn, REVOCATION, credential_id)
        suspension = self.status_lists.allocate(conn, SUSPENSION, credential_id)
        entries = [self.status_lists.entry(*revocation, REVOCATION), self.status_lists.entry(*suspension, SUSPENSION)]
        key = self.keyring.active_key()
        now = self.clock()
        if offer.doc_type == MOBILE_ID_DOC_TYPE:
            if not document.birth_date:
                raise OAuthError("credential_request_denied", "the citizen's record has no birth date")
            ref = citizen_ref(self.config.secret_key, offer.citizen_id)
            remember_citizen_ref(conn, ref, offer.citizen_id, now)
            token = sign_mobile_id(issuer=self.config.issuer, key=key, holder_jwk=holder_jwk,
                                   name=document.holder_name, birth_date=document.birth_date, ref=ref,
                                   status_entries=entries, now=now)
            valid_until = now + MOBILE_ID_VALIDITY
        else:
            credential = self.build_credential(credential_id, offer.citizen_id, document, entries)
            token = sign_credential(credential, key, now, holder_jwk)
            valid_until = datetime.fromisoformat(credential["validUntil"])
        conn.execute(
            insert(issued_credentials).values(
                id=credential_id,
                offer_id=offer.id,
                citizen_id=offer.citizen_id,
                certificate_id=offer.certificate_id,
                doc_type=offer.doc_type,
                kid=key.kid,
                holder_thumbprint=jwk_thumbprint(holder_jwk),
                revocation_list_id=revocation[0],
                revocation_index=revocation[1],
                suspension_list_id=suspension[0],
                suspension_index=suspension[1],
                issued_at=now,
                valid_until=valid_until,
                revoked_at=None,
                suspended=False,
                credential_sealed=self.box.encrypt(
                    token, sealed_place(issued_credentials, "credential_sealed", credential_id)),
            )
        )
        self.offers.mark_issued(conn, offer.id)
        return token

    def build_credential(
        self,
        credential_id: str,
        citizen_id: str,
        document: IssuableDocument,
        status_entries: list[dict[str, Any]],
    ) -> dict[str, Any]:
        doc_type = DOCUMENT_TYPES[document.doc_type]
        valid_from, valid_until = document_validity(document, doc_type, korean_today(self.clock))
        subject: dict[str, Any] = {
            "id": subject_pseudonym(self.config.secret_key, citizen_id),
            "type": "GovernmentDocumentSubject",
            "documentType": document.doc_type,
            "documentName": {"ko": doc_type.name_ko, "en": doc_type.name_en},
            "holderName": document.holder_name,
            "documentNumber": document.certificate_id,
            "issuingAuthority": {"ko": doc_type.authority_ko, "en": doc_type.authority_en},
        }
        if document.issued_on:
            subject["issuedOn"] = document.issued_on.isoformat()
        if document.valid_until:
            subject["documentValidUntil"] = document.valid_until.isoformat()
        credential = {
            "@context": [VCDM_V2_CONTEXT, context_url(self.config.issuer)],
            "id": credential_id,
            "type": ["VerifiableCredential", doc_type.credential_type],
            "issuer": self.config.issuer,
            "name": [
                {"@value": doc_type.name_ko, "@language": "ko"},
                {"@value": doc_type.name_en, "@language": "en"},
            ],
            "validFrom": format_date_time(valid_from),
            "validUntil": format_date_time(valid_until),
            "credentialSubject": subject,
            "credentialStatus": status_entries,
        }
        return validate_credential_document(credential)
