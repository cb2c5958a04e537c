"""Signing keys (P-256) kept once for the whole cluster, in the database: the credential issuer's and the consent
ledger's receipt keys, each a `purpose` of its own. Rotatable; every old key stays published.

A row holds one key: its purpose, its generation (1, 2, … in the order made; the newest signs), its `kid` (the
RFC 7638 thumbprint, so anyone can check that a published key and its kid belong together), its public JWK,
and the private key as PKCS#8, sealed with AES-GCM (`FieldCipher`, a key derived from MINWON_SECRET_KEY) with
the purpose and kid as associated data, so a sealed key opens only as the key it was made as. A node started
with another MINWON_SECRET_KEY cannot open the keys and says so (every node needs the same secret).

Several nodes share one database, so:
- the first node (or process) to need a key makes it: the insert of generation 1 does nothing when another
  writer's generation 1 is there (the primary key), and everyone then reads the one that was kept;
- a rotation inserts the next generation the same way (and tries the one after if another node rotated at
  the same moment);
- each process caches the keys for `KEY_CACHE_TTL_S` seconds: a rotation on one node is signed with there at
  once and by every other node after at most that long; a kid a node does not know yet (a credential or
  receipt signed on another node with its new key) makes it read the keys again at once, so verification
  never waits for the cache.

Versions before 3 kept one key file per key in the data directory (`<data dir>/issuer-keys/<kid>.json`, the
receipt keys under `consent-receipts/`); the schema-version-3 migration imports them (`import_key_files`) and
nothing reads those files afterwards.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, Text, func, select

from domain.clock import Clock, aware, utc_now
from domain.crypto import FieldCipher, FieldIntegrityError, IntegrityFailure, jwk_thumbprint, public_jwk
from storage import Transactions, insert_or_update, metadata

log = logging.getLogger(__name__)

SIGNING_ALG = "ES256"
ISSUER_KEYS = "issuer"
RECEIPT_KEYS = "consent-receipt"
# Where versions before 3 kept the issuer keys, in the data directory (the receipt keys: domain.consent_ledger).
ISSUER_KEY_FILES = "issuer-keys"
# How long a process uses the keys it read before reading them again: the bound on how late another node's
# rotation is signed with here (verification of an unknown kid reads them at once).
KEY_CACHE_TTL_S = 5.0
# Tries at inserting the next generation when other nodes rotate at the same moment.
ROTATION_TRIES = 5

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("purpose", String(32), primary_key=True),
    Column("generation", Integer, primary_key=True, autoincrement=False),
    Column("kid", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("public_jwk", Text, nullable=False),
    # AES-GCM of the PKCS#8 DER, associated data (signing_keys, private_key_enc, purpose, kid).
    Column("private_key_enc", Text, nullable=False),
)


@dataclass(frozen=True)
class IssuerKey:
    kid: str
    created_at: float
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, str]:
        return {**public_jwk(self.private_key), "kid": self.kid, "alg": SIGNING_ALG, "use": "sig"}


class SigningKeyError(IntegrityFailure):
    """A stored signing key that does not open with this service key or is not the key its kid names."""


def _place(purpose: str, kid: str) -> tuple[str, ...]:
    return ("signing_keys", "private_key_enc", purpose, kid)


def _seal(cipher: FieldCipher, purpose: str, kid: str, private: ec.EllipticCurvePrivateKey) -> str:
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cipher.encrypt(base64.b64encode(der).decode("ascii"), _place(purpose, kid))


def _insert(conn: Connection, cipher: FieldCipher, purpose: str, generation: int, private: ec.EllipticCurvePrivateKey,
            created_at: datetime) -> bool:
    """Stores `private` as generation `generation` unless that generation (or this kid) exists; True if stored."""
    jwk = public_jwk(private)
    kid = jwk_thumbprint(jwk)
    row = {"purpose": purpose, "generation": generation, "kid": kid, "created_at": created_at,
           "public_jwk": json.dumps(jwk, sort_keys=True), "private_key_enc": _seal(cipher, purpose, kid, private)}
    stored = conn.execute(insert_or_update(conn, signing_keys).values(**row).on_conflict_do_nothing()
                          .returning(signing_keys.c.kid)).first()
    return stored is not None


def _latest_generation(conn: Connection, purpose: str) -> int:
    return conn.execute(select(func.max(signing_keys.c.generation)).where(signing_keys.c.purpose == purpose)
                        ).scalar() or 0


class IssuerKeyring:
    """The keys of one purpose, shared by every node through the database; see the module's docstring."""

    def __init__(self, db: Transactions, purpose: str, secret_key: bytes, clock: Clock = utc_now, *,
                 cache_ttl_s: float = KEY_CACHE_TTL_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not secret_key:
            raise ValueError("signing keys are sealed with the service's secret key, and none was given")
        self.db = db
        self.purpose = purpose
        self._cipher = FieldCipher(secret_key)
        self._clock = clock
        self._ttl = cache_ttl_s
        self.monotonic = monotonic
        self._keys: list[IssuerKey] = []
        self._opened: dict[str, IssuerKey] = {}  # kid → key: a key is opened once per process
        self._read_at: float | None = None

    # --- reading -----------------------------------------------------------------------------------

    def keys(self) -> list[IssuerKey]:
        """All keys, oldest first; the first call on a cluster without any key makes the first one."""
        if self._read_at is None or self.monotonic() - self._read_at >= self._ttl:
            self.refresh()
        if not self._keys:
            self._create_first()
            self.refresh()
        return self._keys

    def active_key(self) -> IssuerKey:
        return self.keys()[-1]

    def find(self, kid: str) -> IssuerKey | None:
        """The key named `kid`; one this process does not know yet is looked up in the database at once (a new
        key another node rotated to)."""
        key = next((k for k in self.keys() if k.kid == kid), None)
        if key is None and kid:
            key = next((k for k in self.refresh() if k.kid == kid), None)
        return key

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: newest key first, every retired key after it."""
        return {"keys": [k.public_jwk() for k in reversed(self.keys())]}

    def refresh(self) -> list[IssuerKey]:
        """Reads the keys from the database now, whatever the cache's age."""
        with self.db.read() as conn:
            rows = conn.execute(select(signing_keys).where(signing_keys.c.purpose == self.purpose)
                                .order_by(signing_keys.c.generation)).mappings().all()
        self._keys = [self._open(row) for row in rows]
        self._read_at = self.monotonic()
        return self._keys

    # --- changing ----------------------------------------------------------------------------------

    def rotate(self) -> IssuerKey:
        """Makes a new signing key for the whole cluster; the previous ones stay published for verification."""
        self.keys()  # a rotation on an empty cluster still leaves the first key behind it
        private = ec.generate_private_key(ec.SECP256R1())
        kid = jwk_thumbprint(public_jwk(private))
        for _ in range(ROTATION_TRIES):
            with self.db.transaction() as conn:
                if _insert(conn, self._cipher, self.purpose, _latest_generation(conn, self.purpose) + 1, private,
                           self._clock()):
                    break
        else:
            raise RuntimeError(f"could not rotate the {self.purpose} key: other rotations kept taking its place")
        key = self.find(kid)
        assert key is not None
        return key

    def _create_first(self) -> None:
        with self.db.transaction() as conn:
            # Another node may insert generation 1 at the same moment: the primary key keeps one of them.
            if _latest_generation(conn, self.purpose) == 0 and _insert(
                    conn, self._cipher, self.purpose, 1, ec.generate_private_key(ec.SECP256R1()), self._clock()):
                log.info("signing key created", extra={"purpose": self.purpose})

    def _open(self, row: Any) -> IssuerKey:
        kid = row["kid"]
        known = self._opened.get(kid)
        if known is not None:
            return known
        try:
            der = base64.b64decode(self._cipher.decrypt(row["private_key_enc"], _place(self.purpose, kid)))
        except FieldIntegrityError as exc:
            raise SigningKeyError(f"the {self.purpose} signing key {kid} does not open with this MINWON_SECRET_KEY "
                                  "(every node of a cluster needs the same one)") from exc
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey) or jwk_thumbprint(public_jwk(private)) != kid:
            raise SigningKeyError(f"the stored {self.purpose} signing key {kid} is not the key its kid names")
        key = IssuerKey(kid, aware(row["created_at"]).timestamp(), private)
        self._opened[kid] = key
        return key


def import_key_files(conn: Connection, directory: Path, purpose: str, secret_key: bytes) -> int:
    """Moves the key files an older version kept in `directory` (`<kid>.json`: created_at and the private key as
    PEM, encrypted with the service key) into the database as generations 1, 2, … in their creation order, so
    the newest file key still signs and everything signed before verifies. Runs only for a purpose that has no
    key in the database yet (a key made since is never displaced); returns how many keys it imported."""
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not files or _latest_generation(conn, purpose) > 0:
        return 0
    cipher = FieldCipher(secret_key)
    found = []
    for path in files:
        record = json.loads(path.read_text())
        private = serialization.load_pem_private_key(record["private_key_pem"].encode("ascii"),
                                                     password=secret_key or None)
        if not isinstance(private, ec.EllipticCurvePrivateKey) or jwk_thumbprint(public_jwk(private)) != record["kid"]:
            raise SigningKeyError(f"key file {path.name} does not hold the key its kid names")
        found.append((float(record["created_at"]), private))
    found.sort(key=lambda item: item[0])
    for generation, (created_at, private) in enumerate(found, start=1):
        _insert(conn, cipher, purpose, generation, private, datetime.fromtimestamp(created_at, UTC))
    log.info("signing keys imported from the data directory", extra={"purpose": purpose, "keys": len(found)})
    return len(found)
