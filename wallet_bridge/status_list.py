"""W3C Bitstring Status List v1.0: the bitstring codec, reading an entry, and this issuer's lists.

A list is a bitstring of at least 131,072 entries whose left-most bit is index 0, GZIP-compressed and
multibase-encoded as base64url without padding (prefix `u`). Each credential gets a random unused
index in a revocation list and in a suspension list, so an index says nothing about when or to whom
a credential was issued; a list takes new indices until half of it is used, then a fresh list starts,
which keeps random picking fast and every list well populated.
"""

from __future__ import annotations

import gzip
import secrets
import zlib
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from domain.clock import Clock
from domain.crypto import b64url_decode, b64url_encode
from domain.signing_keys import IssuerKeyring
from storage import lock_for_transaction
from wallet_bridge.config import WalletConfig
from wallet_bridge.credentials import format_date_time, sign_credential
from wallet_bridge.documents import VCDM_V2_CONTEXT
from wallet_bridge.tables import status_entries, status_lists

REVOCATION = "revocation"
SUSPENSION = "suspension"
PURPOSES = (REVOCATION, SUSPENSION)
ENTRY_TYPE = "BitstringStatusListEntry"
LIST_CREDENTIAL_TYPE = "BitstringStatusListCredential"
MAX_DECODED_BYTES = 16 * 1024 * 1024  # a list this service will decompress at most (a gzip bomb stops here)


class StatusListError(ValueError):
    """A status entry or list that cannot be read."""


def encode_bitstring(bits: bytes) -> str:
    return "u" + b64url_encode(gzip.compress(bytes(bits), mtime=0))


def decode_bitstring(encoded: str) -> bytes:
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url (prefix 'u')")
    try:
        compressed = b64url_decode(encoded[1:])
    except ValueError as exc:
        raise StatusListError("encodedList is not base64url") from exc
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        bits = inflater.decompress(compressed, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise StatusListError("encodedList is not GZIP data") from exc
    if inflater.unconsumed_tail:
        raise StatusListError("encodedList decompresses to more than this service accepts")
    if not inflater.eof:
        raise StatusListError("encodedList GZIP data is truncated")
    return bits


def bit_at(bits: bytes, index: int) -> int:
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"index {index} is outside a list of {len(bits) * 8} entries")
    return (bits[index // 8] >> (7 - index % 8)) & 1


def set_bit(bits: bytearray, index: int, value: bool) -> None:
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"index {index} is outside a list of {len(bits) * 8} entries")
    mask = 0x80 >> (index % 8)
    if value:
        bits[index // 8] |= mask
    else:
        bits[index // 8] &= ~mask & 0xFF


def parse_status_index(value: Any) -> int:
    """statusListIndex is a string of decimal digits (a JSON number is tolerated)."""
    if isinstance(value, int) and not isinstance(value, bool):
        index = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        index = int(value)
    else:
        raise StatusListError("statusListIndex must be a non-negative integer string")
    if index < 0:
        raise StatusListError("statusListIndex must not be negative")
    return index


def status_of(entry: dict[str, Any], list_credential: dict[str, Any]) -> int:
    """The status bit that `entry` (a BitstringStatusListEntry) points to in `list_credential`.

    `list_credential` is the credential's content (already checked for its signature by the caller).
    """
    if not isinstance(entry, dict) or entry.get("type") != ENTRY_TYPE:
        raise StatusListError(f"credentialStatus must be a {ENTRY_TYPE}")
    index = parse_status_index(entry.get("statusListIndex"))
    if entry.get("statusSize", 1) != 1:
        raise StatusListError("only 1-bit status entries are supported")
    types = list_credential.get("type", [])
    if LIST_CREDENTIAL_TYPE not in (types if isinstance(types, list) else [types]):
        raise StatusListError(f"the status list is not a {LIST_CREDENTIAL_TYPE}")
    if entry.get("statusListCredential") != list_credential.get("id"):
        raise StatusListError("the status list is not the one the entry names")
    subject = list_credential.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("type") != "BitstringStatusList":
        raise StatusListError("the status list credential has no BitstringStatusList subject")
    purposes = subject.get("statusPurpose")
    purposes = purposes if isinstance(purposes, list) else [purposes]
    if entry.get("statusPurpose") not in purposes:
        raise StatusListError("the entry's statusPurpose does not match the list's")
    bits = decode_bitstring(subject.get("encodedList", ""))
    if len(bits) * 8 < 131_072:
        raise StatusListError(
            "the status list is shorter than the 131,072 entries the specification requires"
        )
    return bit_at(bits, index)


class StatusLists:
    """This issuer's revocation and suspension lists, in the database."""

    def __init__(self, config: WalletConfig, keyring: IssuerKeyring, clock: Clock) -> None:
        self.config = config
        self.keyring = keyring
        self.clock = clock

    def list_url(self, list_id: str) -> str:
        return self.config.url(f"/status/{list_id}")

    def entry(self, list_id: str, index: int, purpose: str) -> dict[str, Any]:
        url = self.list_url(list_id)
        return {
            "id": f"{url}#{index}",
            "type": ENTRY_TYPE,
            "statusPurpose": purpose,
            "statusListIndex": str(index),
            "statusListCredential": url,
        }

    def allocate(self, conn: Connection, purpose: str, credential_id: str) -> tuple[str, int]:
        """A random unused index in the current list for `purpose`, recorded for `credential_id`.

        Runs inside the caller's transaction, so an issuance and its indices commit together.
        """
        if purpose not in PURPOSES:
            raise ValueError(f"unknown status purpose {purpose!r}")
        list_id = self._current_list(conn, purpose)
        if list_id is None:
            # Nodes that find no list with room at the same moment take turns, so they make one new list
            # between them rather than one each.
            lock_for_transaction(conn, f"status-list:{purpose}")
            list_id = self._current_list(conn, purpose) or self._create_list(conn, purpose)
        size = self.config.status_list_entries
        while True:
            index = secrets.randbelow(size)
            taken = conn.execute(
                select(func.count())
                .select_from(status_entries)
                .where(status_entries.c.list_id == list_id, status_entries.c.idx == index)
            ).scalar()
            if not taken:
                break
        conn.execute(insert(status_entries).values(list_id=list_id, idx=index, credential_id=credential_id))
        conn.execute(
            update(status_lists)
            .where(status_lists.c.id == list_id)
            .values(allocated=status_lists.c.allocated + 1, updated_at=self.clock())
        )
        return list_id, index

    def _current_list(self, conn: Connection, purpose: str) -> str | None:
        """The newest list for `purpose` with room, locked until the transaction ends: allocations (from any
        node) and status changes on one list take turns, so no index is given twice and no bit is lost."""
        return conn.execute(
            select(status_lists.c.id)
            .where(status_lists.c.purpose == purpose,
                   status_lists.c.allocated < self.config.status_list_entries // 2)
            .order_by(status_lists.c.created_at.desc())
            .limit(1)
            .with_for_update()
        ).scalar()

    def _create_list(self, conn: Connection, purpose: str) -> str:
        list_id = f"{purpose[:3]}-{secrets.token_hex(6)}"
        now = self.clock()
        conn.execute(
            insert(status_lists).values(
                id=list_id,
                purpose=purpose,
                size=self.config.status_list_entries,
                bits=bytes(self.config.status_list_entries // 8),
                allocated=0,
                created_at=now,
                updated_at=now,
            )
        )
        return list_id

    def set_status(self, conn: Connection, list_id: str, index: int, value: bool) -> bool:
        """Set one bit; True when it changed. Runs inside the caller's transaction.

        The list is one stored bitstring, so this is a read-modify-write: the row is locked first (FOR UPDATE
        on PostgreSQL; SQLite's writer holds the whole database), and a change on another node waits and
        then reads the bits this one wrote."""
        row = conn.execute(
            select(status_lists.c.bits).where(status_lists.c.id == list_id).with_for_update()
        ).first()
        if row is None:
            raise StatusListError(f"no status list {list_id!r}")
        bits = bytearray(row.bits)
        if bit_at(bits, index) == int(value):
            return False
        set_bit(bits, index, value)
        conn.execute(
            update(status_lists)
            .where(status_lists.c.id == list_id)
            .values(bits=bytes(bits), updated_at=self.clock())
        )
        return True

    def read_status(self, conn: Connection, list_id: str, index: int) -> int:
        row = conn.execute(select(status_lists.c.bits).where(status_lists.c.id == list_id)).first()
        if row is None:
            raise StatusListError(f"no status list {list_id!r}")
        return bit_at(row.bits, index)

    def list_credential(self, conn: Connection, list_id: str) -> dict[str, Any] | None:
        """The unsigned BitstringStatusListCredential of a list, or None when there is no such list."""
        row = conn.execute(select(status_lists).where(status_lists.c.id == list_id)).mappings().first()
        if row is None:
            return None
        now = self.clock()
        url = self.list_url(list_id)
        return {
            "@context": [VCDM_V2_CONTEXT],
            "id": url,
            "type": ["VerifiableCredential", LIST_CREDENTIAL_TYPE],
            "issuer": self.config.issuer,
            "validFrom": format_date_time(now),
            "validUntil": format_date_time(now + timedelta(seconds=self.config.status_list_ttl_s)),
            "credentialSubject": {
                "id": f"{url}#list",
                "type": "BitstringStatusList",
                "statusPurpose": row["purpose"],
                "encodedList": encode_bitstring(row["bits"]),
            },
        }

    def signed_list_credential(self, conn: Connection, list_id: str) -> str | None:
        credential = self.list_credential(conn, list_id)
        if credential is None:
            return None
        return sign_credential(credential, self.keyring.active_key(), self.clock())
