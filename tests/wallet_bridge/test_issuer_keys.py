"""Issuer keys: made on first use, kept sealed in the database for every node, rotated with old keys published;
on SQLite and on PostgreSQL (`database_url`)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from domain.crypto import jwk_thumbprint
from domain.signing_keys import ISSUER_KEYS, KEY_CACHE_TTL_S, RECEIPT_KEYS, IssuerKeyring, SigningKeyError, signing_keys
from storage import Database, metadata
from tests.nodes import run_together

SECRET = b"test-secret-key-0123456789"
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class Ticks:
    """A settable monotonic clock for the keyring's cache."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def db(database_url: str):
    database = Database(database_url)
    metadata.create_all(database.engine, tables=[signing_keys])
    yield database
    database.dispose()


def stored_rows(db: Database) -> list[dict]:
    with db.read() as conn:
        return [dict(row) for row in conn.execute(select(signing_keys).order_by(
            signing_keys.c.purpose, signing_keys.c.generation)).mappings()]


def test_first_use_creates_one_p256_key(db) -> None:
    ring = IssuerKeyring(db, ISSUER_KEYS, SECRET)
    assert stored_rows(db) == []
    key = ring.active_key()
    jwks = ring.jwks()
    assert len(jwks["keys"]) == 1
    published = jwks["keys"][0]
    assert published["kty"] == "EC" and published["crv"] == "P-256" and published["alg"] == "ES256"
    assert published["kid"] == key.kid == jwk_thumbprint(published)
    assert "d" not in published
    assert ring.active_key().kid == key.kid  # the second call does not make another
    assert IssuerKeyring(db, ISSUER_KEYS, SECRET).active_key().kid == key.kid  # nor does a restart
    assert len(stored_rows(db)) == 1


def test_issuer_and_receipt_keys_are_different_keys(db) -> None:
    issuer = IssuerKeyring(db, ISSUER_KEYS, SECRET).active_key()
    receipts = IssuerKeyring(db, RECEIPT_KEYS, SECRET).active_key()
    assert issuer.kid != receipts.kid
    assert [row["purpose"] for row in stored_rows(db)] == [RECEIPT_KEYS, ISSUER_KEYS]


def test_private_keys_are_sealed_not_stored_in_plaintext(db) -> None:
    key = IssuerKeyring(db, ISSUER_KEYS, SECRET).active_key()
    (row,) = stored_rows(db)
    assert set(json.loads(row["public_jwk"])) == {"kty", "crv", "x", "y"}
    private_der = key.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
    secret_scalar = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    for column, value in row.items():
        text = str(value)
        assert not any(f'"{member}"' in text for member in PRIVATE_JWK_MEMBERS), column
        assert "PRIVATE KEY" not in text and base64.b64encode(private_der).decode() not in text, column
    sealed = base64.urlsafe_b64decode(row["private_key_enc"])
    assert private_der not in sealed and secret_scalar not in sealed


def test_a_sealed_key_opens_only_with_its_secret_and_in_its_place(db) -> None:
    kid = IssuerKeyring(db, ISSUER_KEYS, SECRET).active_key().kid
    with pytest.raises(SigningKeyError, match="MINWON_SECRET_KEY"):
        IssuerKeyring(db, ISSUER_KEYS, b"another-nodes-secret").keys()
    # A receipt key's ciphertext copied into the issuer's row does not open there: the purpose and kid are bound.
    IssuerKeyring(db, RECEIPT_KEYS, SECRET).active_key()
    with db.transaction() as conn:
        receipt_sealed = conn.execute(select(signing_keys.c.private_key_enc).where(
            signing_keys.c.purpose == RECEIPT_KEYS)).scalar_one()
        conn.execute(signing_keys.update().where(signing_keys.c.kid == kid).values(private_key_enc=receipt_sealed))
    with pytest.raises(SigningKeyError):
        IssuerKeyring(db, ISSUER_KEYS, SECRET).keys()


def test_rotation_keeps_old_keys_published(db) -> None:
    ring = IssuerKeyring(db, ISSUER_KEYS, SECRET)
    first = ring.active_key()
    second = ring.rotate()
    third = ring.rotate()
    assert len({first.kid, second.kid, third.kid}) == 3
    assert ring.active_key().kid == third.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [third.kid, second.kid, first.kid]
    assert ring.find(first.kid) is not None
    assert [row["generation"] for row in stored_rows(db)] == [1, 2, 3]
    assert IssuerKeyring(db, ISSUER_KEYS, SECRET).active_key().kid == third.kid


def test_another_node_signs_with_a_rotated_key_within_the_cache_bound(db) -> None:
    ticks = Ticks()
    node_a = IssuerKeyring(db, ISSUER_KEYS, SECRET)
    node_b = IssuerKeyring(db, ISSUER_KEYS, SECRET, monotonic=ticks)
    old = node_b.active_key()
    assert node_a.active_key().kid == old.kid
    rotated = node_a.rotate()
    # A credential signed with the new key verifies on the other node at once: an unknown kid is looked up …
    assert node_b.find(rotated.kid) is not None
    # … and the other node signs with the new key at the latest when its cache runs out.
    fresh_b = IssuerKeyring(db, ISSUER_KEYS, SECRET, monotonic=ticks)
    fresh_b.keys()
    node_a.rotate()
    ticks.now += KEY_CACHE_TTL_S - 0.5
    assert fresh_b.active_key().kid == rotated.kid  # still within the bound: the cached key
    ticks.now += 0.5
    assert fresh_b.active_key().kid == node_a.active_key().kid != rotated.kid
    assert [k["kid"] for k in fresh_b.jwks()["keys"]] == [k["kid"] for k in node_a.jwks()["keys"]]


def test_nodes_starting_together_agree_on_one_key(database_url: str) -> None:
    # Each "node" has its own engine and pool (on SQLite also its own writer lock, like another process).
    databases = [Database(database_url) for _ in range(4)]
    metadata.create_all(databases[0].engine, tables=[signing_keys])
    kids = run_together([lambda database=database: IssuerKeyring(database, ISSUER_KEYS, SECRET).active_key().kid
                         for database in databases])
    try:
        assert len(kids) == 4 and len(set(kids)) == 1
        assert len(stored_rows(databases[0])) == 1
    finally:
        for database in databases:
            database.dispose()


def test_rotations_at_the_same_moment_each_make_a_key(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(3)]
    metadata.create_all(databases[0].engine, tables=[signing_keys])
    IssuerKeyring(databases[0], ISSUER_KEYS, SECRET).active_key()
    rings = [IssuerKeyring(database, ISSUER_KEYS, SECRET) for database in databases]
    for ring in rings:
        ring.keys()
    run_together([ring.rotate for ring in rings])
    try:
        rows = stored_rows(databases[0])
        assert [row["generation"] for row in rows] == [1, 2, 3, 4] and len({row["kid"] for row in rows}) == 4
    finally:
        for database in databases:
            database.dispose()
