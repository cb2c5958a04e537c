"""Compact JWS (RFC 7515) signing and verification for ES256/ES384/ES512 and EdDSA (RFC 8037).

ECDSA signatures in JOSE are the raw big-endian r||s pair, not DER; the conversion is here. The `alg`
of a token must agree with the key it is checked against (an ES256 token never verifies with a P-384
key, `none` and HMAC are never accepted), and JSON with duplicate member names is refused, because
two parsers may pick different duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from wallet_bridge.jwk import PrivateKey, PublicKey, b64url_decode, b64url_encode

# alg -> (curve name, hash, coordinate size); EdDSA is handled on its own.
_ECDSA = {
    "ES256": ("secp256r1", hashes.SHA256, 32),
    "ES384": ("secp384r1", hashes.SHA384, 48),
    "ES512": ("secp521r1", hashes.SHA512, 66),
}
SUPPORTED_ALGORITHMS = frozenset({*_ECDSA, "EdDSA"})

MAX_TOKEN_CHARS = 64 * 1024


class JWSError(ValueError):
    """A token that cannot be parsed or whose header cannot be honoured."""


def strict_json_loads(data: bytes | str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise JWSError(f"duplicate JSON member {key!r}")
            result[key] = value
        return result

    try:
        return json.loads(data, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JWSError("not valid JSON") from exc


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class CompactJWS:
    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    def claims(self) -> dict[str, Any]:
        claims = strict_json_loads(self.payload)
        if not isinstance(claims, dict):
            raise JWSError("JWS payload is not a JSON object")
        return claims


def parse_compact(token: str) -> CompactJWS:
    """Split and decode a compact JWS; refuses anything that is not three base64url segments."""
    if not isinstance(token, str) or not token:
        raise JWSError("token must be a non-empty string")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise JWSError("token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise JWSError(f"compact JWS needs 3 segments, got {len(parts)}")
    try:
        header_raw, payload, signature = (b64url_decode(p) for p in parts)
    except ValueError as exc:
        raise JWSError("a JWS segment is not base64url") from exc
    header = strict_json_loads(header_raw)
    if not isinstance(header, dict):
        raise JWSError("JWS header is not a JSON object")
    alg = header.get("alg")
    if alg not in SUPPORTED_ALGORITHMS:
        raise JWSError(f"unsupported alg {alg!r}")
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
        raise JWSError("critical header extensions are not supported")
    return CompactJWS(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def algorithm_for_key(key: PublicKey | PrivateKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "EdDSA"
    for alg, (curve, _, _) in _ECDSA.items():
        if key.curve.name == curve:
            return alg
    raise JWSError(f"no JOSE algorithm for curve {key.curve.name}")


def sign_compact(header: dict[str, Any], payload: dict[str, Any] | bytes, key: PrivateKey) -> str:
    """Sign `payload` with `key`; the header's `alg` is set from the key."""
    alg = algorithm_for_key(key)
    header = {**header, "alg": alg}
    body = payload if isinstance(payload, bytes) else canonical_json(payload)
    signing_input = f"{b64url_encode(canonical_json(header))}.{b64url_encode(body)}".encode("ascii")
    if alg == "EdDSA":
        signature = key.sign(signing_input)
    else:
        _, hash_cls, size = _ECDSA[alg]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hash_cls())))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def signature_is_valid(jws: CompactJWS, key: PublicKey) -> bool:
    """True when the signature verifies under `key` and the token's alg matches the key's type."""
    alg = jws.header.get("alg")
    try:
        if algorithm_for_key(key) != alg:
            return False
    except JWSError:
        return False
    try:
        if alg == "EdDSA":
            key.verify(jws.signature, jws.signing_input)
            return True
        _, hash_cls, size = _ECDSA[alg]
        if len(jws.signature) != 2 * size:
            return False
        r = int.from_bytes(jws.signature[:size], "big")
        s = int.from_bytes(jws.signature[size:], "big")
        key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hash_cls()))
        return True
    except InvalidSignature:
        return False
