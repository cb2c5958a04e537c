"""The wallet bridge assembled: one object per process that the HTTP endpoints, the CLI and the voice
skill share (keys, status lists, offers, issuance, revocation, push delivery, verification)."""

from __future__ import annotations

from typing import Any

from domain.clock import Clock, utc_now
from domain.signing_keys import ISSUER_KEYS, IssuerKeyring
from domain.wallets import WalletRegistry
from outbound import OutboundPolicy
from settings import Settings
from storage import Database
from wallet_bridge.config import WalletConfig
from wallet_bridge.issuance import CredentialIssuance, DocumentSource
from wallet_bridge.mobile_id import MOBILE_ID_CERTIFICATE, MOBILE_ID_DOC_TYPE
from wallet_bridge.nonces import NonceStore
from wallet_bridge.offers import CreatedOffer, CredentialOffers
from wallet_bridge.outbox import OfferOutbox, OutboxWorker
from wallet_bridge.presentation import SpeakerPairings
from wallet_bridge.revocation import CredentialStatusControl
from wallet_bridge.status_list import StatusLists
from wallet_bridge.verification import (
    KeyBindingRequirement,
    KeySet,
    StatusListUnavailable,
    VerificationResult,
    verify_credential,
)

DEFAULT_ISSUER = "http://127.0.0.1:8080"  # where `make run` serves; set MINWON_ISSUER_URL in production


def wallet_config(settings: Settings) -> WalletConfig:
    return WalletConfig(
        issuer=settings.get("MINWON_ISSUER_URL", DEFAULT_ISSUER).rstrip("/"),
        data_dir=settings.data_dir,
        secret_key=settings.secret_key,
        tx_code_length=int(settings.get("MINWON_WALLET_TX_CODE_LENGTH", "6")),
    )


class IssuerKeySet(KeySet):
    """The issuer's keys as this node has them, read again from the database when a token names a kid that is not
    among them: a key another node has just rotated to verifies here at once, not only when the cache runs out."""

    def __init__(self, keyring: IssuerKeyring, issuer: str) -> None:
        super().__init__(keyring.jwks()["keys"], issuer=issuer)
        self._keyring = keyring

    def __call__(self, header: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any] | None:
        found = super().__call__(header, claims)
        kid = header.get("kid")
        if found is None and isinstance(kid, str) and self._keyring.find(kid) is not None:
            self.keys = self._keyring.jwks()["keys"]
            found = super().__call__(header, claims)
        return found


class WalletBridge:
    def __init__(
        self,
        db: Database,
        config: WalletConfig,
        documents: DocumentSource,
        clock: Clock = utc_now,
        outbound: OutboundPolicy | None = None,
        wallets: WalletRegistry | None = None,
        node_id: str | None = None,
    ) -> None:
        """`node_id`: the process's name among the nodes (`storage.instance_id`), for the outbox's claims; made
        here when the caller has none."""
        self.db = db
        # Push URLs are checked against this policy when registered and again (resolved) when used.
        self.outbound = outbound or OutboundPolicy()
        self.config = config
        self.clock = clock
        self.documents = documents
        # In the database: every node signs with the same key and publishes the same JWKS.
        self.keyring = IssuerKeyring(db, ISSUER_KEYS, config.secret_key, clock)
        self.status_lists = StatusLists(config, self.keyring, clock)
        self.nonces = NonceStore(db, config.nonce_ttl_s, clock)
        self.offers = CredentialOffers(db, config, clock)
        self.issuance = CredentialIssuance(
            db, config, self.keyring, self.status_lists, self.nonces, self.offers, documents, clock
        )
        self.status_control = CredentialStatusControl(db, self.status_lists, clock)
        self.outbox = OfferOutbox(db, config, self.offers, clock, self.outbound, node_id=node_id)
        self.outbox_worker = OutboxWorker(self.outbox)
        self.wallets = wallets or WalletRegistry(db, config.secret_key)
        self.pairings = SpeakerPairings(db, config, self.keyring, self.verify_presentation, clock)

    def wallet_copies(self, citizen_id: str) -> dict[str, str]:
        """doc_type → the state of its newest copy in the citizen's wallet: valid | revoked | suspended."""
        return {state.doc_type: state.status for state in self.status_control.for_citizen(citizen_id)}

    def key_set(self) -> KeySet:
        """This issuer's published keys, only for credentials that name this issuer."""
        return IssuerKeySet(self.keyring, self.config.issuer)

    def status_list_jwt(self, list_id: str) -> str | None:
        with self.db.read() as conn:
            return self.status_lists.signed_list_credential(conn, list_id)

    def fetch_own_status_list(self, url: str) -> str:
        prefix = self.config.url("/status/")
        if not url.startswith(prefix):
            raise StatusListUnavailable("the status list is not published by this issuer")
        token = self.status_list_jwt(url[len(prefix) :])
        if token is None:
            raise StatusListUnavailable("no such status list")
        return token

    def verify(self, token: str, holder_jwk: dict[str, Any] | None = None) -> VerificationResult:
        """Verify a credential of this issuer with its published keys and its own status lists."""
        return verify_credential(token, self.key_set(), self.clock(), self.fetch_own_status_list, holder_jwk)

    def verify_presentation(self, token: str, key_binding: KeyBindingRequirement) -> VerificationResult:
        """Verify an SD-JWT presentation of a credential of this issuer, with the key binding `key_binding` asks."""
        return verify_credential(token, self.key_set(), self.clock(), self.fetch_own_status_list,
                                 key_binding=key_binding)

    def offer_mobile_id(self, citizen_id: str, idempotency_key: str, tx_code: str | None = None) -> CreatedOffer | None:
        """A mobile-ID offer in the citizen's wallet mailbox (None when the citizen has no wallet)."""
        wallet = self.wallets.for_citizen(citizen_id)
        if wallet is None:
            return None
        return self.offers.create_offer(citizen_id, wallet.id, MOBILE_ID_CERTIFICATE, MOBILE_ID_DOC_TYPE,
                                        idempotency_key, push_url=wallet.push_url, tx_code=tx_code)
