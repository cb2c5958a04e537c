"""The wallet bridge's tables: offers, issued credentials, status lists, nonces, rate limits and the outbox.

Secrets are never stored in a form that can be used: pre-authorized codes and access tokens are kept
as keyed hashes for lookup; the pre-authorized code and tx_code the wallet and the speaker must see
again (a mailbox read, a repeated reply) are also kept sealed with AES-GCM under the service key, bound
to their table, column and row (`sealed_place`), so a sealed value copied into another row does not open.
Times are timezone-aware UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from domain.attempts import rate_limits
from domain.signing_keys import signing_keys
from storage import metadata

status_lists = Table(
    "wallet_status_lists",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # revocation | suspension
    Column("size", Integer, nullable=False),  # number of entries (bits)
    Column("bits", LargeBinary, nullable=False),  # uncompressed bitstring, left-most bit is index 0
    Column("allocated", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

status_entries = Table(
    "wallet_status_entries",
    metadata,
    Column("list_id", String(64), ForeignKey("wallet_status_lists.id"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("credential_id", String(100), nullable=False, index=True),
)

offers = Table(
    "wallet_offers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("citizen_id", String(64), nullable=False, index=True),
    Column("wallet_id", String(64), nullable=False, index=True),
    Column("certificate_id", String(64), nullable=False),
    Column("doc_type", String(64), nullable=False),
    Column("configuration_id", String(100), nullable=False),
    # The same confirmation retried carries the same key and gets the same offer back.
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("code_sealed", Text, nullable=False),
    Column("tx_code_hash", String(64), nullable=False),
    Column("tx_code_sealed", Text, nullable=False),
    Column("tx_code_length", Integer, nullable=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    # pending -> redeemed (token issued) -> issued (credential issued); burnt after too many wrong codes.
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("access_token_hash", String(64), nullable=True, unique=True),
    Column("access_token_expires_at", DateTime(timezone=True), nullable=True),
)

issued_credentials = Table(
    "wallet_credentials",
    metadata,
    Column("id", String(100), primary_key=True),  # urn:uuid:…, the credential's `id`
    Column("offer_id", String(64), ForeignKey("wallet_offers.id"), nullable=True, unique=True),
    Column("citizen_id", String(64), nullable=True, index=True),
    Column("certificate_id", String(64), nullable=True, index=True),
    Column("doc_type", String(64), nullable=False),
    Column("kid", String(100), nullable=False),
    Column("holder_thumbprint", String(64), nullable=True),
    Column("revocation_list_id", String(64), nullable=False),
    Column("revocation_index", Integer, nullable=False),
    Column("suspension_list_id", String(64), nullable=False),
    Column("suspension_index", Integer, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("suspended", Boolean, nullable=False, default=False),
    # When the current suspension began (None while not suspended): each suspension is news of its own.
    Column("suspended_at", DateTime(timezone=True), nullable=True),
    Column("credential_sealed", Text, nullable=False),  # the signed JWT, for an idempotent retry
    UniqueConstraint("revocation_list_id", "revocation_index"),
    UniqueConstraint("suspension_list_id", "suspension_index"),
)

nonces = Table(
    "wallet_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

outbox = Table(
    "wallet_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("offer_id", String(64), ForeignKey("wallet_offers.id"), nullable=False),
    Column("wallet_id", String(64), nullable=False),
    Column("url", String(500), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("given_up_at", DateTime(timezone=True), nullable=True),
    Column("last_status", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The node sending it now (or that last did), and until when that claim holds: a node that dies mid-send
    # leaves a claim that runs out, and then another node sends the row again.
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    UniqueConstraint("offer_id", "url"),
)

# A mobile ID's citizen reference -> the citizen: the reference is a keyed digest of the citizen id (pairwise to
# this service, never the resident registration number), so only this table turns it back into a citizen.
citizen_refs = Table(
    "wallet_citizen_refs",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("citizen_id", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A speaker user's request to be linked by a wallet presentation (OpenID4VP cross-device): the pairing number the
# speaker read out (a keyed digest, cleared once used or expired), then the authorization request it resolved to
# (its nonce and state: per-request values, the nonce cleared when it is answered), then the outcome, which the speaker announces once at its next turn.
pairings = Table(
    "wallet_pairings",
    metadata,
    Column("id", String(64), primary_key=True),  # also the request_uri's last segment: random, 192 bits
    Column("user_id", String(200), nullable=False, index=True),
    Column("number_hash", String(64), nullable=True, unique=True),
    # waiting (number spoken) -> requested (number resolved) -> linked | refused; replaced by a newer request.
    Column("status", String(16), nullable=False),
    Column("nonce", String(64), nullable=True),
    Column("state", String(64), nullable=True, unique=True),
    # A keyed digest of the accepted vp_token: the same response retried (the wallet lost the answer) gets the
    # same answer, and changes nothing.
    Column("response_hash", String(64), nullable=True),
    Column("citizen_id", String(64), nullable=True),
    Column("failed_check", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("announced_at", DateTime(timezone=True), nullable=True),
)

# The tables the bridge writes, for tests and benchmarks that create only these (with the attempt counters and
# the signing keys).
WALLET_TABLES = (status_lists, status_entries, offers, issued_credentials, nonces, rate_limits, signing_keys, outbox,
                 citizen_refs)


# The sealed columns, by table: what the schema-version-2 migration re-seals with their place.
SEALED_COLUMNS = {offers: ("code_sealed", "tx_code_sealed"), issued_credentials: ("credential_sealed",)}


def sealed_place(table: Table, column: str, row_id: str) -> tuple[str, str, str]:
    """The field cipher's associated data for a sealed value: the table, the column and the row's id."""
    return (table.name, column, row_id)
