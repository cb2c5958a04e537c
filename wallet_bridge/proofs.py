"""OID4VCI 1.0 `jwt` key proofs (§F.1): the wallet shows it holds the key the credential will bind.

A proof is accepted when its header says `typ: openid4vci-proof+jwt` with an allowed `alg` and a
public `jwk`, its signature verifies with that `jwk`, `aud` is this Credential Issuer, `iat` is
recent, and `nonce` is a fresh c_nonce of ours (checked last, so a bad proof never spends a nonce).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.crypto import JWKError, JWSError, parse_compact, public_key_from_jwk, signature_is_valid
from wallet_bridge.oauth_errors import OAuthError

PROOF_TYP = "openid4vci-proof+jwt"
PROOF_ALGS = ("ES256",)


@dataclass(frozen=True)
class KeyProof:
    jwk: dict[str, Any]
    claims: dict[str, Any]


def invalid_proof(description: str) -> OAuthError:
    return OAuthError("invalid_proof", description)


def check_proof_jwt(
    token: Any,
    audience: str,
    now: datetime,
    nonce_is_fresh: Callable[[str], bool],
    max_age: timedelta = timedelta(minutes=5),
    max_skew: timedelta = timedelta(seconds=60),
) -> KeyProof:
    """The proven holder key, or OAuthError `invalid_proof` / `invalid_nonce`.

    `nonce_is_fresh` is called once, last, and may spend the nonce.
    """
    if not isinstance(token, str):
        raise invalid_proof("a jwt proof must be a string")
    try:
        jws = parse_compact(token)
        claims = jws.claims()
    except JWSError as exc:
        raise invalid_proof(f"the proof is not a compact JWT: {exc}") from exc
    header = jws.header
    if header.get("typ") != PROOF_TYP:
        raise invalid_proof(f"proof typ must be {PROOF_TYP}")
    if header.get("alg") not in PROOF_ALGS:
        raise invalid_proof(f"proof alg must be one of {', '.join(PROOF_ALGS)}")
    if "kid" in header or "x5c" in header or "trust_chain" in header:
        raise invalid_proof("this issuer binds credentials to a jwk: the proof must carry only `jwk`")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise invalid_proof("the proof header has no jwk")
    if "d" in jwk:
        raise invalid_proof("the proof jwk contains a private key")
    try:
        key = public_key_from_jwk(jwk)
    except JWKError as exc:
        raise invalid_proof(f"the proof jwk is unusable: {exc}") from exc
    if not signature_is_valid(jws, key):
        raise invalid_proof("the proof signature does not verify with its jwk")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise invalid_proof("the proof aud is not this credential issuer")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise invalid_proof("the proof iat must be a NumericDate")
    try:
        issued = datetime.fromtimestamp(iat, UTC)
    except (ValueError, OverflowError, OSError):  # NaN, or a year no datetime can hold (1e300)
        raise invalid_proof("the proof iat is outside the accepted window") from None
    if issued > now + max_skew or issued < now - max_age:
        raise invalid_proof("the proof iat is outside the accepted window")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise invalid_proof("the proof has no c_nonce")
    if not nonce_is_fresh(nonce):
        raise OAuthError(
            "invalid_nonce", "the c_nonce is unknown, used or expired: get a new one from the nonce endpoint"
        )
    public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")}
    return KeyProof(public, claims)
