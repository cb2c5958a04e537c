"""Bitstring Status List v1.0: the W3C example list, the codec, and this issuer's lists in SQLite."""

from __future__ import annotations

import base64
import gzip

import pytest
from sqlalchemy import update

from tests.wallet_bridge.conftest import ISSUER, fixture_json
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.status_list import (
    REVOCATION,
    SUSPENSION,
    StatusListError,
    bit_at,
    decode_bitstring,
    encode_bitstring,
    parse_status_index,
    set_bit,
    status_of,
)
from wallet_bridge.tables import status_entries, status_lists
from wallet_bridge.verification import verify_credential


def test_w3c_example_list_decodes_to_131072_zero_bits() -> None:
    listed = fixture_json("bitstring-status-list/status_list_credential.json")
    bits = decode_bitstring(listed["credentialSubject"]["encodedList"])
    assert len(bits) == 16_384
    assert bits == bytes(16_384)


def test_w3c_revocable_credential_reads_not_revoked() -> None:
    listed = fixture_json("bitstring-status-list/status_list_credential.json")
    credential = fixture_json("bitstring-status-list/revocable_credential.json")
    entry = credential["credentialStatus"]
    assert entry["statusListIndex"] == "94567"
    assert status_of(entry, listed) == 0


def test_w3c_example_reads_revoked_once_the_bit_is_set() -> None:
    listed = fixture_json("bitstring-status-list/status_list_credential.json")
    bits = bytearray(decode_bitstring(listed["credentialSubject"]["encodedList"]))
    set_bit(bits, 94567, True)
    listed["credentialSubject"]["encodedList"] = encode_bitstring(bytes(bits))
    entry = fixture_json("bitstring-status-list/revocable_credential.json")["credentialStatus"]
    assert status_of(entry, listed) == 1
    assert status_of({**entry, "statusListIndex": "94566"}, listed) == 0


def test_left_most_bit_is_index_zero() -> None:
    bits = bytearray(16_384)
    set_bit(bits, 0, True)
    set_bit(bits, 9, True)
    assert bits[0] == 0b1000_0000 and bits[1] == 0b0100_0000
    assert [bit_at(bits, i) for i in range(11)] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    set_bit(bits, 0, False)
    assert bits[0] == 0


def test_encoding_is_multibase_base64url_gzip() -> None:
    bits = bytes(16_384)
    encoded = encode_bitstring(bits)
    assert encoded.startswith("uH4sI")  # 'u' + base64url of the gzip magic 1f 8b 08
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert decode_bitstring(encoded) == bits


@pytest.mark.parametrize(
    "encoded, message",
    [
        ("zH4sI", "prefix 'u'"),
        ("u" + "A" * 4 + "=", "base64url"),
        ("uAAAA", "not GZIP"),
    ],
)
def test_undecodable_lists(encoded: str, message: str) -> None:
    with pytest.raises(StatusListError, match=message):
        decode_bitstring(encoded)


def test_a_gzip_bomb_is_refused() -> None:
    bomb = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(17 * 1024 * 1024))).rstrip(b"=").decode()
    with pytest.raises(StatusListError, match="more than this service accepts"):
        decode_bitstring(bomb)


@pytest.mark.parametrize("value, expected", [("94567", 94567), (3, 3), ("0", 0)])
def test_status_index_parsing(value: object, expected: int) -> None:
    assert parse_status_index(value) == expected


@pytest.mark.parametrize("value", ["-1", "1e3", "", "٣", None, True, 1.5])
def test_bad_status_indexes(value: object) -> None:
    with pytest.raises(StatusListError):
        parse_status_index(value)


def test_entry_checks_purpose_list_id_and_range() -> None:
    listed = fixture_json("bitstring-status-list/status_list_credential.json")
    entry = fixture_json("bitstring-status-list/revocable_credential.json")["credentialStatus"]
    with pytest.raises(StatusListError, match="statusPurpose"):
        status_of({**entry, "statusPurpose": "suspension"}, listed)
    with pytest.raises(StatusListError, match="not the one"):
        status_of({**entry, "statusListCredential": "https://example.com/credentials/status/4"}, listed)
    with pytest.raises(StatusListError, match="outside"):
        status_of({**entry, "statusListIndex": "131072"}, listed)
    short = {
        **listed,
        "credentialSubject": {**listed["credentialSubject"], "encodedList": encode_bitstring(bytes(8))},
    }
    with pytest.raises(StatusListError, match="shorter"):
        status_of(entry, short)


def test_allocation_gives_random_unique_indices(bridge: WalletBridge) -> None:
    with bridge.db.transaction() as conn:
        allocated = [bridge.status_lists.allocate(conn, REVOCATION, f"urn:uuid:{i}") for i in range(300)]
    list_ids = {list_id for list_id, _ in allocated}
    indices = [index for _, index in allocated]
    assert len(list_ids) == 1
    assert len(set(indices)) == 300
    assert all(0 <= i < 131_072 for i in indices)
    assert indices != sorted(indices)  # not sequential: an index reveals nothing about issue order
    assert max(indices) - min(indices) > 65_536  # spread over the whole list
    with bridge.db.read() as conn:
        rows = conn.execute(status_entries.select()).all()
    assert len(rows) == 300


def test_a_half_full_list_makes_way_for_a_fresh_one(bridge: WalletBridge) -> None:
    with bridge.db.transaction() as conn:
        first, _ = bridge.status_lists.allocate(conn, SUSPENSION, "urn:uuid:a")
        conn.execute(update(status_lists).where(status_lists.c.id == first).values(allocated=65_536))
        second, _ = bridge.status_lists.allocate(conn, SUSPENSION, "urn:uuid:b")
    assert second != first


def test_served_list_is_a_signed_status_list_credential(bridge: WalletBridge) -> None:
    with bridge.db.transaction() as conn:
        list_id, index = bridge.status_lists.allocate(conn, REVOCATION, "urn:uuid:x")
        assert bridge.status_lists.set_status(conn, list_id, index, True) is True
        assert bridge.status_lists.set_status(conn, list_id, index, True) is False  # idempotent
    token = bridge.status_list_jwt(list_id)
    result = verify_credential(token, bridge.key_set(), bridge.clock())
    assert result.valid, result.checks
    listed = result.credential
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert listed["id"] == f"{ISSUER}/status/{list_id}"
    assert listed["credentialSubject"]["statusPurpose"] == "revocation"
    assert result.header["typ"] == "vc+jwt"
    entry = bridge.status_lists.entry(list_id, index, REVOCATION)
    assert status_of(entry, listed) == 1
    assert status_of({**entry, "statusListIndex": str((index + 1) % 131_072)}, listed) == 0
    assert bridge.status_list_jwt("rev-nonexistent") is None
