"""Secrets at rest: keyed hashes for lookup, AES-GCM sealing for what must be shown again.

A pre-authorized code, an access token or a tx_code is looked up by its HMAC under a key derived from
the service secret, so a copy of the database alone does not reveal or let anyone forge one. What a
wallet or the speaker must see again (the code in a mailbox read, the tx_code in a repeated reply, the
issued credential for an idempotent retry) is sealed with AES-GCM under another derived key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def keyed_hash(secret_key: bytes, purpose: str, value: str) -> str:
    key = hashlib.sha256(b"minwon-wallet-hmac-v1:" + purpose.encode() + b":" + secret_key).digest()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


class SealedBox:
    """AES-GCM with a random 96-bit nonce stored in front of the ciphertext."""

    def __init__(self, secret_key: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"minwon-wallet-seal-v1" + secret_key).digest())

    def encrypt(self, text: str) -> str:
        nonce = secrets.token_bytes(12)
        return base64.urlsafe_b64encode(
            nonce + self._aead.encrypt(nonce, text.encode("utf-8"), None)
        ).decode()

    def decrypt(self, token: str) -> str:
        raw = base64.urlsafe_b64decode(token)
        return self._aead.decrypt(raw[:12], raw[12:], None).decode("utf-8")
