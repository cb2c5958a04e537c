"""The cryptography that the domain and the wallet bridge share, in one place.

- Secrets at rest: `FieldCipher` (AES-GCM for personal fields, bound to their table, column and row by the
  associated data, so a ciphertext copied to another row does not open), `secret_digest` / `keyed_hash`
  (what is stored in place of a bearer secret or a one-time code, so a copy of the database hands out nothing).
- JOSE: JSON Web Keys (RFC 7517/7518/8037, RFC 7638 thumbprints) and compact JWS (RFC 7515) for
  ES256/ES384/ES512 and EdDSA, on `cryptography` alone. The consent ledger's receipts and the issuer's
  credentials are signed here.

An imported public key is checked to lie on its curve, and coordinates must have exactly the curve's
length, so a malformed key fails here rather than in a verify. ECDSA signatures in JOSE are the raw
big-endian r||s pair, not DER; the conversion is here. The `alg` of a token must agree with the key it
is checked against (an ES256 token never verifies with a P-384 key, `none` and HMAC are never accepted),
and JSON with duplicate member names is refused, because two parsers may pick different duplicates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# -- secrets at rest ------------------------------------------------------------------------------------


class IntegrityFailure(ValueError):
    """Stored data failed a cryptographic integrity check: it was edited, copied from another row, or
    sealed under another key. Raised instead of using the data; the HTTP layer answers 409, never 500."""


class FieldIntegrityError(IntegrityFailure):
    """A field ciphertext that does not open for the place (table, column, row) it is read from."""

    def __init__(self, place: str) -> None:
        super().__init__(f"the stored value of {place} failed its integrity check")
        self.place = place


# A field's place: (table, column, *row key). Its canonical JSON, tagged with this version, is the AES-GCM
# associated data, so a ciphertext only opens in the row and column it was written for.
FieldPlace = tuple[str, ...]
_AAD_TAG = "minwon-field-aad-v1"


def _field_aad(place: FieldPlace) -> bytes:
    if len(place) < 3 or not all(isinstance(part, str) and part for part in place):
        raise ValueError("a field's place is (table, column, row key...), all non-empty strings")
    # JSON, not a joined string: ("a|b", "c") and ("a", "b|c") must not give the same bytes.
    return json.dumps([_AAD_TAG, *place], ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class FieldCipher:
    """AES-GCM for personal fields and sealed secrets; the nonce is stored with the ciphertext, and the
    field's place (table, column, row key) is the associated data."""

    def __init__(self, secret_key: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"minwon-field-v1" + secret_key).digest())

    def encrypt(self, text: str, aad: FieldPlace) -> str:
        nonce = secrets.token_bytes(12)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, text.encode(), _field_aad(aad))).decode()

    def decrypt(self, token: str, aad: FieldPlace) -> str:
        """The plaintext, or FieldIntegrityError when the token was not sealed for this place and key."""
        return self._open(token, _field_aad(aad), aad)

    def decrypt_unbound(self, token: str, place: FieldPlace) -> str:
        """Opens a ciphertext written before fields carried their place (schema version 1). Only the
        migration that re-seals those fields uses it."""
        return self._open(token, None, place)

    def _open(self, token: str, aad: bytes | None, place: FieldPlace) -> str:
        try:
            raw = base64.urlsafe_b64decode(token)
            return self._aead.decrypt(raw[:12], raw[12:], aad).decode()
        except (InvalidTag, ValueError, TypeError) as exc:
            raise FieldIntegrityError(".".join(place[:2]) + f" of {'/'.join(place[2:])}") from exc


def secret_digest(secret: str, secret_key: bytes) -> str:
    """What is stored in place of a bearer secret (device token, link code, app token, agency key, wallet
    token): a keyed HMAC, so a copy of the database neither hands out working credentials nor lets anyone
    test guesses offline (a six- or eight-digit code has few enough values to try them all).

    It is the HMAC of the secret's SHA-256, so digests stored as plain SHA-256 by older versions can be
    re-keyed by a migration without knowing the secrets (`rekey_digest`)."""
    return rekey_digest(hashlib.sha256(secret.encode()).hexdigest(), secret_key)


def rekey_digest(unkeyed_sha256_hex: str, secret_key: bytes) -> str:
    return keyed_hash(secret_key, "secret-digest", unkeyed_sha256_hex)


def keyed_hash(secret_key: bytes, purpose: str, value: str) -> str:
    """An HMAC under a key derived from the service secret (one derived key per purpose): a copy of the
    database alone neither reveals a code nor lets anyone make a row that matches a chosen one."""
    key = hashlib.sha256(b"minwon-wallet-hmac-v1:" + purpose.encode() + b":" + secret_key).digest()
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


# -- JSON Web Keys --------------------------------------------------------------------------------------

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


# -- compact JWS ----------------------------------------------------------------------------------------

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


# Far deeper than any header, claim set or disclosure needs; a token of 64 KB could otherwise nest 32,000
# levels and exhaust the parser's recursion (and every recursive walk of the claims after it).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _nesting_depth(text: str) -> int:
    """How deep arrays and objects nest, counted without recursion (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_constant(name: str) -> Any:
    raise JWSError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf: the same non-number as Infinity
        raise JWSError(f"{text} is out of range")
    return value


def strict_json_loads(data: bytes | str) -> Any:
    """JSON as a signed token must carry it: no duplicate members, no NaN/Infinity, at most MAX_JSON_DEPTH
    levels deep. Anything else is a JWSError, never a parser's own exception."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise JWSError(f"duplicate JSON member {key!r}")
            result[key] = value
        return result

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if _nesting_depth(text) > MAX_JSON_DEPTH:
            raise JWSError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=_no_constant,
                          parse_float=_finite_float)
    except JWSError:
        raise
    # ValueError covers JSONDecodeError and an integer longer than Python converts (4300 digits).
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
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
