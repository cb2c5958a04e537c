"""ES256 compact JWS (RFC 7515 / 7518) and P-256 JWKs (RFC 7517, thumbprints after RFC 7638).

Small on purpose: consent receipts need to be signed and checked, nothing more. JOSE's ECDSA
signature is the raw big-endian r||s pair (64 bytes for P-256), not the DER that `cryptography`
produces, so the conversion lives here. Only `alg: ES256` is accepted when verifying.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

ES256 = "ES256"
_COORDINATE_BYTES = 32


class JoseError(ValueError):
    """A token that is malformed, not ES256, or whose signature does not verify."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text or any(c in text for c in "+/ \n\r\t"):
        raise JoseError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JoseError("not base64url") from exc


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same bytes for the same value, so hashes and signatures repeat."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public.curve, ec.SECP256R1):
        raise JoseError("only P-256 keys are supported")
    numbers = public.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64url_encode(numbers.x.to_bytes(_COORDINATE_BYTES, "big")),
            "y": b64url_encode(numbers.y.to_bytes(_COORDINATE_BYTES, "big"))}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, base64url."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    return b64url_encode(hashlib.sha256(canonical_json(required)).digest())


def public_key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise JoseError("only EC P-256 JWKs are supported")
    x, y = (b64url_decode(jwk.get(name, "")) for name in ("x", "y"))
    if len(x) != _COORDINATE_BYTES or len(y) != _COORDINATE_BYTES:
        raise JoseError("a P-256 coordinate must have 32 bytes")
    try:
        return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                             ec.SECP256R1()).public_key()
    except ValueError as exc:
        raise JoseError("the point is not on P-256") from exc


def sign_es256(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey, header: dict[str, Any] | None = None) -> str:
    """A compact JWS over the JSON claims; `alg` is always ES256."""
    protected = {**(header or {}), "alg": ES256}
    signing_input = f"{b64url_encode(canonical_json(protected))}.{b64url_encode(canonical_json(claims))}"
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")
    return f"{signing_input}.{b64url_encode(signature)}"


def verify_es256(token: str, key: ec.EllipticCurvePublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a token whose ES256 signature verifies under `key`; JoseError otherwise."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise JoseError("a compact JWS has three segments")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JoseError("a JWS segment is not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != ES256 or "crit" in header:
        raise JoseError("only ES256 without critical extensions is accepted")
    if not isinstance(claims, dict):
        raise JoseError("the JWS payload is not a JSON object")
    signature = b64url_decode(parts[2])
    if len(signature) != 2 * _COORDINATE_BYTES:
        raise JoseError("an ES256 signature has 64 bytes")
    r = int.from_bytes(signature[:_COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[_COORDINATE_BYTES:], "big")
    try:
        key.verify(encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise JoseError("the signature does not verify") from exc
    return header, claims
