"""Keyed hashes for looking secrets up without storing them: pre-authorized codes, tx_codes, access tokens.

An HMAC under a key derived from the service secret (one derived key per purpose), so a copy of the
database alone neither reveals a code nor lets anyone make a row that matches a chosen one. What must
be shown again (the code in a mailbox read, the tx_code in a repeated reply, an issued credential) is
sealed separately with the service's field cipher.
"""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(secret_key: bytes, purpose: str, value: str) -> str:
    key = hashlib.sha256(b"minwon-wallet-hmac-v1:" + purpose.encode() + b":" + secret_key).digest()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
