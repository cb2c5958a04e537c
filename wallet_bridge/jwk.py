"""JSON Web Keys (RFC 7517/7518/8037): import, export and RFC 7638 thumbprints, on `cryptography` alone.

Supported: EC P-256/P-384/P-521 and OKP Ed25519 — the curves that the credential formats here use.
An imported public key is checked to lie on its curve (cryptography refuses points that do not), and
coordinates must have exactly the curve's length, so a malformed key fails here rather than in a verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

THUMBPRINT_URN_PREFIX = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:"

_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}
_CURVE_NAMES = {cls.name: (crv, size) for crv, (cls, size) in _EC_CURVES.items()}


class JWKError(ValueError):
    """A JWK that is malformed, of an unsupported type, or not a point on its curve."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: other alphabets, padding and stray characters are errors."""
    if not isinstance(text, str):
        raise ValueError("base64url value must be a string")
    if "=" in text or any(c in text for c in "+/ \n\r\t"):
        raise ValueError("not unpadded base64url")
    if len(text) % 4 == 1:
        raise ValueError("impossible base64url length")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def _coordinate(jwk: dict[str, Any], name: str, size: int) -> int:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise JWKError(f"JWK member {name!r} is missing")
    try:
        raw = b64url_decode(value)
    except ValueError as exc:
        raise JWKError(f"JWK member {name!r} is not base64url") from exc
    if len(raw) != size:
        raise JWKError(f"JWK member {name!r} has {len(raw)} bytes, expected {size}")
    return int.from_bytes(raw, "big")


def public_key_from_jwk(jwk: Any) -> PublicKey:
    """The public key of a JWK; a private member (`d`) in it is ignored here, refused by callers that care."""
    if not isinstance(jwk, dict):
        raise JWKError("JWK must be a JSON object")
    kty = jwk.get("kty")
    if kty == "EC":
        crv = jwk.get("crv")
        if crv not in _EC_CURVES:
            raise JWKError(f"unsupported EC curve {crv!r}")
        curve_cls, size = _EC_CURVES[crv]
        x, y = _coordinate(jwk, "x", size), _coordinate(jwk, "y", size)
        try:
            return ec.EllipticCurvePublicNumbers(x, y, curve_cls()).public_key()
        except ValueError as exc:
            raise JWKError("EC point is not on the curve") from exc
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise JWKError(f"unsupported OKP curve {jwk.get('crv')!r}")
        x = jwk.get("x")
        try:
            raw = b64url_decode(x)
        except ValueError as exc:
            raise JWKError("JWK member 'x' is not base64url") from exc
        if len(raw) != 32:
            raise JWKError("Ed25519 key must be 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    raise JWKError(f"unsupported key type {kty!r}")


def private_key_from_jwk(jwk: dict[str, Any]) -> PrivateKey:
    """The private key of a JWK with `d` (used for test vectors; issuer keys are stored as PEM)."""
    public = public_key_from_jwk(jwk)
    if not isinstance(jwk.get("d"), str):
        raise JWKError("JWK has no private member 'd'")
    if isinstance(public, ed25519.Ed25519PublicKey):
        return ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(jwk["d"]))
    _, size = _EC_CURVES[jwk["crv"]]
    d = _coordinate(jwk, "d", size)
    private = ec.derive_private_key(d, public.curve)
    if private.public_key().public_numbers() != public.public_numbers():
        raise JWKError("private key does not match the public coordinates")
    return private


def public_jwk(key: PublicKey | PrivateKey) -> dict[str, str]:
    """The public JWK of a key, with only the required members (kty, crv, x[, y])."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url_encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)),
        }
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_NAMES:
            raise JWKError(f"unsupported EC curve {key.curve.name}")
        crv, size = _CURVE_NAMES[key.curve.name]
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    raise JWKError(f"unsupported key {type(key).__name__}")


_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (base64url): the required members, sorted, no whitespace."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None:
        raise JWKError(f"unsupported key type {jwk.get('kty')!r}")
    missing = [m for m in members if not isinstance(jwk.get(m), str)]
    if missing:
        raise JWKError(f"JWK lacks {', '.join(missing)}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def jwk_thumbprint_urn(jwk: dict[str, Any]) -> str:
    """RFC 9278 URN form of the thumbprint, as OID4VCI examples use for `kid`."""
    return THUMBPRINT_URN_PREFIX + jwk_thumbprint(jwk)


def same_public_key(a: dict[str, Any], b: dict[str, Any]) -> bool:
    try:
        return jwk_thumbprint(a) == jwk_thumbprint(b)
    except JWKError:
        return False
