"""The wallet bridge's settings: the issuer identifier and the lifetimes and limits of the flow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATUS_LIST_MIN_ENTRIES = 131_072  # Bitstring Status List v1.0 §6.1: at least 16 KB, for herd privacy


@dataclass(frozen=True)
class WalletConfig:
    issuer: str  # the Credential Issuer Identifier: an https URL in production, the base of every endpoint
    data_dir: Path
    secret_key: bytes
    offer_ttl_s: int = 600  # a pre-authorized code lives ten minutes
    access_token_ttl_s: int = 300
    nonce_ttl_s: int = 300
    tx_code_length: int = 6
    max_tx_code_failures: int = 5  # then the pre-authorized code is burnt
    token_attempts_per_minute: int = 10  # per client address, across codes
    proof_max_age_s: int = 300  # a key proof's iat may be this old …
    proof_max_skew_s: int = 60  # … or this far in the future
    status_list_entries: int = STATUS_LIST_MIN_ENTRIES
    status_list_ttl_s: int = 3600  # validUntil of a served status list credential
    outbox_max_attempts: int = 8
    outbox_base_delay_s: float = 5.0
    outbox_max_delay_s: float = 3600.0
    push_timeout_s: float = 5.0
    # How long a node's claim on an outbox row holds: longer than one POST can take (its connect and read
    # timeouts), so no two nodes send a row at once; a dead node's rows are sent again after this.
    outbox_claim_lease_s: float = 30.0
    # OpenID4VP (linking a speaker by a wallet presentation): the verifier's pre-registered client id, which is
    # also the `aud` a key-binding JWT must name; the pairing number the speaker reads out and how long it and its
    # request live; failed number look-ups per calling address and in total per window (database budgets).
    verifier_client_id: str = "minwon-voice"
    pairing_digits: int = 6
    pairing_ttl_s: int = 300
    pairing_failures_window_s: int = 300
    pairing_failures_per_address: int = 10
    pairing_failures_total: int = 300
    presentation_max_age_s: int = 300  # a key-binding JWT's iat may be this old …
    presentation_max_skew_s: int = 60  # … or this far in the future

    def __post_init__(self) -> None:
        if self.outbox_claim_lease_s <= 2 * self.push_timeout_s:
            raise ValueError("outbox_claim_lease_s must be more than twice push_timeout_s (connect + read)")
        if not 4 <= self.tx_code_length <= 6:
            raise ValueError("tx_code_length must be 4 to 6 digits")
        if self.status_list_entries < STATUS_LIST_MIN_ENTRIES or self.status_list_entries % 8:
            raise ValueError(
                f"a status list needs at least {STATUS_LIST_MIN_ENTRIES} entries, a multiple of 8"
            )

    @property
    def issuer_base(self) -> str:
        return self.issuer.rstrip("/")

    def url(self, path: str) -> str:
        return self.issuer_base + path
