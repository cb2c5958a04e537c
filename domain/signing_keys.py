"""The issuer's signing keys: P-256, kept in the data directory, rotatable, every old key still published.

Layout: `<data_dir>/issuer-keys/<kid>.json`, one file per key holding its creation time and the private
key as PKCS#8 PEM, encrypted with the service's secret key. The newest key signs; all of them are in
the JWKS, so credentials signed before a rotation keep verifying. The `kid` is the key's RFC 7638
thumbprint, so anyone can check that a published key and its kid belong together.

Several worker processes share the directory: creation and rotation hold an exclusive `flock`, files
appear by atomic rename, and each process re-reads the directory when its modification time changes.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from domain.crypto import jwk_thumbprint, public_jwk

SIGNING_ALG = "ES256"


@dataclass(frozen=True)
class IssuerKey:
    kid: str
    created_at: float
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, str]:
        return {**public_jwk(self.private_key), "kid": self.kid, "alg": SIGNING_ALG, "use": "sig"}


class IssuerKeyring:
    def __init__(self, data_dir: Path, secret_key: bytes, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(data_dir) / "issuer-keys"
        self._secret = secret_key
        self._clock = clock
        self._cache: tuple[int, list[IssuerKey]] | None = None

    # --- reading -----------------------------------------------------------------------------------

    def keys(self) -> list[IssuerKey]:
        """All keys, oldest first; a first call on an empty directory creates the first key."""
        keys = self._load()
        if not keys:
            with self._locked():
                if not self._load():
                    self._write_new_key()
            keys = self._load()
        return keys

    def active_key(self) -> IssuerKey:
        return self.keys()[-1]

    def find(self, kid: str) -> IssuerKey | None:
        return next((k for k in self.keys() if k.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: newest key first, every retired key after it."""
        return {"keys": [k.public_jwk() for k in reversed(self.keys())]}

    # --- changing ----------------------------------------------------------------------------------

    def rotate(self) -> IssuerKey:
        """Make a new signing key; the previous ones stay published for verification."""
        self.keys()  # a rotation on an empty directory still leaves the first key behind it
        with self._locked():
            kid = self._write_new_key()
        key = self.find(kid)
        assert key is not None
        return key

    # --- files -------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _encryption(self) -> serialization.KeySerializationEncryption:
        if self._secret:
            return serialization.BestAvailableEncryption(self._secret)
        return serialization.NoEncryption()

    def _write_new_key(self) -> str:
        private = ec.generate_private_key(ec.SECP256R1())
        kid = jwk_thumbprint(public_jwk(private))
        # Strictly increasing creation times keep "newest signs" well defined even within one second.
        existing = self._load()
        created_at = max([self._clock(), *(k.created_at + 0.001 for k in existing)])
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, self._encryption()
        )
        record = {
            "kid": kid,
            "created_at": created_at,
            "alg": SIGNING_ALG,
            "private_key_pem": pem.decode("ascii"),
        }
        tmp = self.directory / f".{kid}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / f"{kid}.json")
        self._cache = None
        return kid

    def _load(self) -> list[IssuerKey]:
        try:
            stamp = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        keys = []
        for path in self.directory.glob("*.json"):
            record = json.loads(path.read_text())
            private = serialization.load_pem_private_key(
                record["private_key_pem"].encode("ascii"), password=self._secret or None
            )
            if (
                not isinstance(private, ec.EllipticCurvePrivateKey)
                or jwk_thumbprint(public_jwk(private)) != record["kid"]
            ):
                raise RuntimeError(f"issuer key file {path.name} does not hold the key its kid names")
            keys.append(IssuerKey(record["kid"], float(record["created_at"]), private))
        keys.sort(key=lambda k: k.created_at)
        self._cache = (stamp, keys)
        return keys
