"""Credential offers with pre-authorized codes, and the token endpoint that redeems them (OID4VCI 1.0 §4, §6).

An offer names one credential configuration and carries a single-use pre-authorized code that lives
ten minutes, protected by a numeric tx_code that reaches the citizen over a second channel (the
speaker reads it aloud). Redeeming the code with the right tx_code yields a short-lived access token
for the credential endpoint. Wrong tx_codes are counted per code (the code is burnt after five) and
token requests are counted per client address, both in the database so every worker sees them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from domain.attempts import RateLimit
from domain.clock import Clock, aware
from domain.crypto import FieldCipher, FieldIntegrityError, keyed_hash
from storage import Database, insert_unless_present
from wallet_bridge.config import WalletConfig
from wallet_bridge.credentials import format_date_time
from wallet_bridge.documents import DOCUMENT_TYPES
from wallet_bridge.mobile_id import MOBILE_ID_CONFIGURATION, MOBILE_ID_DOC_TYPE
from wallet_bridge.oauth_errors import OAuthError, invalid_token
from wallet_bridge.tables import offers, outbox, sealed_place

log = logging.getLogger(__name__)

PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
MAX_CODE_CHARS = 128

TX_CODE_DESCRIPTION = "스피커가 읽어 준 숫자를 입력하세요. Enter the digits the speaker read out."

PENDING, REDEEMED, ISSUED, BURNT = "pending", "redeemed", "issued", "burnt"


@dataclass(frozen=True)
class CreatedOffer:
    offer_id: str
    tx_code: str  # for the speaker to read out; never logged
    credential_offer: dict[str, Any]
    expires_at: datetime
    is_new: bool  # False when an earlier request with the same idempotency key made it


@dataclass(frozen=True)
class RedeemedOffer:
    """The offer an access token was issued for, as the credential endpoint needs it."""

    id: str
    citizen_id: str
    certificate_id: str
    doc_type: str
    configuration_id: str
    state: str


class CredentialOffers:
    def __init__(self, db: Database, config: WalletConfig, clock: Clock) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.box = FieldCipher(config.secret_key)
        self.limiter = RateLimit("token", config.token_attempts_per_minute, 60, config.secret_key, clock=clock)

    def _hash(self, purpose: str, value: str) -> str:
        return keyed_hash(self.config.secret_key, purpose, value)

    # --- offers ------------------------------------------------------------------------------------

    def create_offer(
        self,
        citizen_id: str,
        wallet_id: str,
        certificate_id: str,
        doc_type: str,
        idempotency_key: str,
        push_url: str | None = None,
        tx_code: str | None = None,
    ) -> CreatedOffer:
        """A new offer (and its push delivery, when the wallet has a push URL), or the one an earlier
        request with the same `idempotency_key` created. `tx_code` is only ever given for the demo wallet's
        seeded mobile ID, whose code is published with the rest of the demo data; otherwise it is random."""
        if doc_type == MOBILE_ID_DOC_TYPE:
            configuration_id = MOBILE_ID_CONFIGURATION
        elif doc_type in DOCUMENT_TYPES:
            configuration_id = DOCUMENT_TYPES[doc_type].configuration_id
        else:
            raise ValueError(f"document type {doc_type!r} cannot be sent to a wallet")
        now = self.clock()
        with self.db.transaction() as conn:
            row = (
                conn.execute(select(offers).where(offers.c.idempotency_key == idempotency_key))
                .mappings()
                .first()
            )
            if row is not None:
                return self._created(row, is_new=False)
            code = secrets.token_urlsafe(32)
            length = self.config.tx_code_length
            if tx_code is None:
                tx_code = f"{secrets.randbelow(10**length):0{length}d}"
            elif len(tx_code) != length or not tx_code.isdigit():
                raise ValueError(f"a tx_code has {length} digits")
            offer_id = secrets.token_urlsafe(16)
            values = dict(
                id=offer_id,
                citizen_id=citizen_id,
                wallet_id=wallet_id,
                certificate_id=certificate_id,
                doc_type=doc_type,
                configuration_id=configuration_id,
                idempotency_key=idempotency_key,
                code_hash=self._hash("pre-authorized-code", code),
                code_sealed=self.box.encrypt(code, sealed_place(offers, "code_sealed", offer_id)),
                tx_code_hash=self._hash("tx-code", tx_code),
                tx_code_sealed=self.box.encrypt(tx_code, sealed_place(offers, "tx_code_sealed", offer_id)),
                tx_code_length=length,
                failed_attempts=0,
                state=PENDING,
                created_at=now,
                expires_at=now + timedelta(seconds=self.config.offer_ttl_s),
            )
            if not insert_unless_present(conn, offers, values):
                # Another node made the offer for this key since the lookup above (two racing confirmations):
                # its insert was waited for, and its offer is the answer for both.
                row = (
                    conn.execute(select(offers).where(offers.c.idempotency_key == idempotency_key))
                    .mappings()
                    .one()
                )
                return self._created(row, is_new=False)
            if push_url:
                conn.execute(
                    insert(outbox).values(
                        offer_id=offer_id,
                        wallet_id=wallet_id,
                        url=push_url,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
            return self._created(values, is_new=True)

    def _created(self, row: Mapping[str, Any], is_new: bool) -> CreatedOffer:
        return CreatedOffer(
            offer_id=row["id"],
            tx_code=self.box.decrypt(row["tx_code_sealed"], sealed_place(offers, "tx_code_sealed", row["id"])),
            credential_offer=self.credential_offer(row),
            expires_at=aware(row["expires_at"]),
            is_new=is_new,
        )

    def credential_offer(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The OID4VCI Credential Offer object for an offer row."""
        return {
            "credential_issuer": self.config.issuer,
            "credential_configuration_ids": [row["configuration_id"]],
            "grants": {
                PRE_AUTHORIZED_GRANT: {
                    "pre-authorized_code": self.box.decrypt(
                        row["code_sealed"], sealed_place(offers, "code_sealed", row["id"])),
                    "tx_code": {
                        "input_mode": "numeric",
                        "length": row["tx_code_length"],
                        "description": TX_CODE_DESCRIPTION,
                    },
                }
            },
        }

    def mailbox_entry(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "offer_id": row["id"],
            "created_at": format_date_time(aware(row["created_at"])),
            "expires_at": format_date_time(aware(row["expires_at"])),
            "credential_offer": self.credential_offer(row),
        }

    def pending_for_wallet(self, wallet_id: str) -> list[dict[str, Any]]:
        """The wallet's mailbox: offers not yet redeemed and not expired, oldest first."""
        now = self.clock()
        with self.db.read() as conn:
            rows = (
                conn.execute(
                    select(offers)
                    .where(
                        offers.c.wallet_id == wallet_id, offers.c.state == PENDING, offers.c.expires_at > now
                    )
                    .order_by(offers.c.created_at, offers.c.id)
                )
                .mappings()
                .all()
            )
        entries = []
        for row in rows:
            try:
                entries.append(self.mailbox_entry(row))
            except FieldIntegrityError as exc:
                # One offer whose sealed code is not its own (copied from another offer) is left out and
                # reported; the wallet's other offers are still delivered.
                log.error("wallet offer left out: its sealed code failed the integrity check",
                          extra={"offer_id": row["id"], "field": exc.place})
        return entries

    def pending_row(self, conn: Connection, offer_id: str) -> Mapping[str, Any] | None:
        return (
            conn.execute(
                select(offers).where(
                    offers.c.id == offer_id, offers.c.state == PENDING, offers.c.expires_at > self.clock()
                )
            )
            .mappings()
            .first()
        )

    # --- token endpoint ----------------------------------------------------------------------------

    def exchange_token(self, form: Mapping[str, Any], client_key: str) -> dict[str, Any]:
        """The token response for a pre-authorized code grant, or OAuthError with the RFC 6749 code."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type != PRE_AUTHORIZED_GRANT:
            raise OAuthError("unsupported_grant_type", "only the pre-authorized code grant is supported")
        code = form.get("pre-authorized_code")
        if not isinstance(code, str) or not code:
            raise OAuthError("invalid_request", "pre-authorized_code is required")
        tx_code = form.get("tx_code")
        # Counters must survive the error answer, so the transaction commits and the error is raised after.
        with self.db.transaction() as conn:
            outcome = self._exchange(conn, code, tx_code, client_key)
        if isinstance(outcome, OAuthError):
            raise outcome
        return outcome

    def _exchange(
        self, conn: Connection, code: str, tx_code: Any, client_key: str
    ) -> dict[str, Any] | OAuthError:
        retry_after = self.limiter.hit(conn, client_key)
        if retry_after is not None:
            return OAuthError(
                "slow_down",
                "too many token requests: wait before trying again",
                429,
                {"Retry-After": str(retry_after)},
            )
        if len(code) > MAX_CODE_CHARS:
            return OAuthError("invalid_grant", "the pre-authorized code is not valid")
        row = (
            conn.execute(
                select(offers)
                .where(offers.c.code_hash == self._hash("pre-authorized-code", code))
                .with_for_update()
            )
            .mappings()
            .first()
        )
        now = self.clock()
        if row is None:
            return OAuthError("invalid_grant", "the pre-authorized code is not valid")
        if row["state"] != PENDING:
            return OAuthError(
                "invalid_grant", "the pre-authorized code was already used or is no longer valid"
            )
        if aware(row["expires_at"]) <= now:
            return OAuthError("invalid_grant", "the pre-authorized code has expired")
        if tx_code is None or tx_code == "":
            return OAuthError("invalid_request", "this offer requires a tx_code")
        if not isinstance(tx_code, str) or not secrets.compare_digest(
            self._hash("tx-code", tx_code), row["tx_code_hash"]
        ):
            failures = row["failed_attempts"] + 1
            burnt = failures >= self.config.max_tx_code_failures
            conn.execute(
                update(offers)
                .where(offers.c.id == row["id"])
                .values(failed_attempts=failures, state=BURNT if burnt else PENDING)
            )
            if burnt:
                return OAuthError(
                    "invalid_grant", "wrong tx_code; too many attempts, the offer is no longer valid"
                )
            return OAuthError("invalid_grant", "wrong tx_code")
        token = secrets.token_urlsafe(32)
        conn.execute(
            update(offers)
            .where(offers.c.id == row["id"], offers.c.state == PENDING)
            .values(
                state=REDEEMED,
                access_token_hash=self._hash("access-token", token),
                access_token_expires_at=now + timedelta(seconds=self.config.access_token_ttl_s),
            )
        )
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.config.access_token_ttl_s}

    def authenticate(self, conn: Connection, authorization: str | None) -> RedeemedOffer:
        """The offer behind a `Bearer` access token, locked for the rest of the transaction."""
        if not authorization or not authorization.startswith("Bearer "):
            raise invalid_token("an access token from the token endpoint is required")
        token = authorization[len("Bearer ") :].strip()
        if not token or len(token) > MAX_CODE_CHARS:
            raise invalid_token("the access token is not valid")
        row = (
            conn.execute(
                select(offers)
                .where(offers.c.access_token_hash == self._hash("access-token", token))
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if row is None or row["state"] not in (REDEEMED, ISSUED):
            raise invalid_token("the access token is not valid")
        if aware(row["access_token_expires_at"]) <= self.clock():
            raise invalid_token("the access token has expired")
        return RedeemedOffer(
            row["id"],
            row["citizen_id"],
            row["certificate_id"],
            row["doc_type"],
            row["configuration_id"],
            row["state"],
        )

    def mark_issued(self, conn: Connection, offer_id: str) -> None:
        conn.execute(update(offers).where(offers.c.id == offer_id).values(state=ISSUED))
