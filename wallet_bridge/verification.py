"""Verifying a secured credential and saying which check failed.

Accepted forms: `vc+jwt` (VC-JOSE-COSE: the payload is a VCDM 2.0 credential), `vc+sd-jwt` (the same
with selective disclosure), `dc+sd-jwt` (an IETF SD-JWT VC: a `vct` and plain JWT claims, no JSON-LD), and
`jwt_vc_json` (a plain JWT whose `vc` claim holds a VCDM 1.1 credential, as OID4VCI examples use). A
presentation to a verifier also carries a key-binding JWT, checked against a `KeyBindingRequirement`
(nonce, audience, iat window, sd_hash). Checks run in order — format, key, signature, claims, dates,
holder binding, status — and nothing after a failed signature is trusted enough to run.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.crypto import (
    CompactJWS,
    JWKError,
    JWSError,
    jwk_thumbprint,
    parse_compact,
    public_key_from_jwk,
    signature_is_valid,
)
from wallet_bridge.credentials import (
    CredentialDocumentError,
    issuer_id,
    parse_date_time_stamp,
    validate_credential_document,
)
from wallet_bridge.sd_jwt import KB_JWT_TYP, SDJWTError, is_sd_jwt, resolve_disclosures, sd_hash, split_sd_jwt
from wallet_bridge.status_list import ENTRY_TYPE, StatusListError, status_of

CLOCK_SKEW = timedelta(seconds=60)
CHECK_ORDER = ("format", "key", "signature", "claims", "dates", "holder_binding", "status")

# (header, unverified claims) -> the JWK to check the signature with, or None when none is published.
KeyResolver = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]
# status list URL -> the list as a compact vc+jwt (verified here) or an already trusted credential dict.
StatusListFetcher = Callable[[str], "str | dict[str, Any]"]


@dataclass(frozen=True)
class KeyBindingRequirement:
    """What a verifier expects of the key-binding JWT of a presentation made for it: its own nonce and audience,
    and an `iat` no older than `max_age` and no further ahead than `max_skew`."""

    nonce: str
    audience: str
    max_age: timedelta = timedelta(minutes=5)
    max_skew: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not applicable or not run
    detail: str


@dataclass
class VerificationResult:
    checks: list[Check] = field(default_factory=list)
    credential: dict[str, Any] | None = None
    header: dict[str, Any] | None = None
    disclosed: dict[str, Any] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # statusPurpose -> bit

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if c.ok is False), None)

    @property
    def valid(self) -> bool:
        signature = next((c for c in self.checks if c.name == "signature"), None)
        return self.failed is None and signature is not None and signature.ok is True

    def add(self, name: str, ok: bool | None, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok is not False

    def skip_rest(self) -> None:
        done = {c.name for c in self.checks}
        for name in CHECK_ORDER:
            if name not in done:
                self.checks.append(Check(name, None, "not run: an earlier check failed"))

    def to_json(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "valid": self.valid,
            "failed_check": failed.name if failed else None,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "credential": self.credential,
            "disclosed": self.disclosed,
            "status": self.status,
        }


class KeySet:
    """A key resolver over a fixed list of public JWKs (a JWKS, or verification methods).

    With `issuer`, a key is only offered for credentials that name that issuer, so one issuer's key
    can never vouch for a credential claiming to come from another.
    """

    def __init__(self, keys: Iterable[dict[str, Any]], issuer: str | None = None) -> None:
        self.keys = [k for k in keys if isinstance(k, dict)]
        self.issuer = issuer

    def __call__(self, header: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any] | None:
        if self.issuer is not None and claimed_issuer(claims) != self.issuer:
            return None
        kid = header.get("kid")
        if not isinstance(kid, str):
            return self.keys[0] if len(self.keys) == 1 else None
        fragment = kid.rsplit("#", 1)[-1]
        for key in self.keys:
            if key.get("kid") in (kid, fragment):
                return key
            try:
                thumbprint = jwk_thumbprint(key)
            except JWKError:
                continue
            if fragment in (thumbprint, "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + thumbprint):
                return key
        return None


def claimed_issuer(claims: dict[str, Any]) -> str | None:
    if isinstance(claims.get("vc"), dict):
        return issuer_id(claims["vc"]) or claims.get("iss")
    return issuer_id(claims) or claims.get("iss")


def _numeric_or_rfc3339(value: Any) -> datetime:
    # VC-JOSE-COSE test vectors carry iat as an RFC 3339 string; RFC 7519 says NumericDate. Accept both.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return parse_date_time_stamp(value)


def verify_credential(
    token: str,
    resolve_key: KeyResolver,
    now: datetime,
    fetch_status_list: StatusListFetcher | None = None,
    holder_jwk: dict[str, Any] | None = None,
    key_binding: KeyBindingRequirement | None = None,
) -> VerificationResult:
    """Verify a secured credential; `holder_jwk`, when given, must be the key the credential binds; with
    `key_binding`, the token must be an SD-JWT presentation whose KB-JWT meets it."""
    result = VerificationResult()
    try:
        sd = split_sd_jwt(token) if is_sd_jwt(token) else None
        jws = sd.issuer_jwt if sd else parse_compact(token)
        claims = jws.claims()
    except (JWSError, SDJWTError) as exc:
        result.add("format", False, str(exc))
        result.skip_rest()
        return result
    result.header = jws.header
    typ = jws.header.get("typ")
    if sd is not None:
        # A VCDM credential with selective disclosure has an @context; an IETF SD-JWT VC has a vct instead.
        sd_profile = "sd-jwt" if "@context" in claims else "sd-jwt-vc"
        profile = sd_profile if typ in ("vc+sd-jwt", "dc+sd-jwt") else None
    elif typ == "vc+jwt":
        profile = "vc+jwt"
    elif typ in (None, "JWT") and isinstance(claims.get("vc"), dict):
        profile = "jwt_vc_json"
    else:
        profile = None
    if profile is None:
        result.add("format", False, f"unsupported credential type {typ!r}")
        result.skip_rest()
        return result
    result.add("format", True, f"{profile}, {jws.header.get('alg')}")

    jwk = resolve_key(jws.header, claims)
    if jwk is None:
        result.add("key", False, f"no published key {jws.header.get('kid')!r} for this issuer")
        result.skip_rest()
        return result
    try:
        public_key = public_key_from_jwk(jwk)
    except JWKError as exc:
        result.add("key", False, f"the published key is unusable: {exc}")
        result.skip_rest()
        return result
    result.add("key", True, f"kid {jws.header.get('kid')!r}")

    if not signature_is_valid(jws, public_key):
        result.add("signature", False, "the signature does not verify with the issuer's key")
        result.skip_rest()
        return result
    result.add("signature", True, "signature verifies")

    credential = _check_claims(result, profile, claims, sd)
    if credential is None:
        result.skip_rest()
        return result
    result.credential = credential
    _check_dates(result, profile, claims, credential, now)
    _check_holder_binding(result, claims, sd, holder_jwk, key_binding, now)
    _check_status(result, credential, now, resolve_key, fetch_status_list)
    return result


def _check_claims(
    result: VerificationResult, profile: str, claims: dict[str, Any], sd: Any
) -> dict[str, Any] | None:
    if profile == "jwt_vc_json":
        credential = dict(claims["vc"])
        issuer = issuer_id(credential) or claims.get("iss")
        if "iss" in claims and issuer != claims["iss"]:
            result.add("claims", False, "iss does not equal vc.issuer")
            return None
        if not credential.get("credentialSubject") or "VerifiableCredential" not in credential.get(
            "type", []
        ):
            result.add("claims", False, "vc lacks type VerifiableCredential or credentialSubject")
            return None
        result.add("claims", True, "VCDM 1.1 credential in the vc claim")
        return credential
    if profile == "sd-jwt-vc":
        try:
            payload, result.disclosed = resolve_disclosures(claims, sd.disclosures)
        except SDJWTError as exc:
            result.add("claims", False, f"disclosures: {exc}")
            return None
        if not isinstance(payload.get("vct"), str) or not payload["vct"]:
            result.add("claims", False, "an SD-JWT VC needs a vct")
            return None
        if not isinstance(payload.get("iss"), str) or not payload["iss"]:
            result.add("claims", False, "an SD-JWT VC needs an iss")
            return None
        result.add("claims", True, f"SD-JWT VC {payload['vct']}, {len(result.disclosed)} disclosed claim(s)")
        return {k: v for k, v in payload.items() if k != "cnf"}
    if profile == "sd-jwt":
        try:
            payload, result.disclosed = resolve_disclosures(claims, sd.disclosures)
        except SDJWTError as exc:
            result.add("claims", False, f"disclosures: {exc}")
            return None
    else:
        payload = claims
    credential = {
        k: v for k, v in payload.items() if k not in ("iss", "iat", "exp", "nbf", "jti", "cnf", "sub")
    }
    if "@context" not in credential:
        result.add("claims", False, "the payload is not a credential (no @context)")
        return None
    try:
        validate_credential_document(credential)
    except CredentialDocumentError as exc:
        result.add("claims", False, f"{exc.field}: {exc}")
        return None
    if "iss" in claims and claims["iss"] != issuer_id(credential):
        result.add("claims", False, "iss does not equal issuer")
        return None
    detail = "VCDM 2.0 credential"
    if result.disclosed:
        detail += f", {len(result.disclosed)} disclosed claim(s)"
    result.add("claims", True, detail)
    return credential


def _check_dates(
    result: VerificationResult,
    profile: str,
    claims: dict[str, Any],
    credential: dict[str, Any],
    now: datetime,
) -> None:
    moments: list[tuple[str, str, datetime]] = []  # (name, "start"|"end", when)
    try:
        for name, kind in (("iat", "start"), ("nbf", "start"), ("exp", "end")):
            if name in claims:
                moments.append((name, kind, _numeric_or_rfc3339(claims[name])))
        for name, kind in (
            ("validFrom", "start"),
            ("validUntil", "end"),
            ("issuanceDate", "start"),
            ("expirationDate", "end"),
        ):
            if name in credential:
                moments.append((name, kind, parse_date_time_stamp(credential[name])))
    except (ValueError, OverflowError, OSError) as exc:
        result.add("dates", False, f"unreadable date: {exc}")
        return
    for name, kind, when in moments:
        if kind == "start" and when > now + CLOCK_SKEW:
            result.add("dates", False, f"{name} is in the future")
            return
        if kind == "end" and when <= now - CLOCK_SKEW:
            result.add("dates", False, f"{name} has passed: the credential expired")
            return
    result.add("dates", True, "within its validity period" if moments else "no validity period stated")


def _check_holder_binding(
    result: VerificationResult, claims: dict[str, Any], sd: Any, holder_jwk: dict[str, Any] | None,
    key_binding: KeyBindingRequirement | None = None, now: datetime | None = None,
) -> None:
    cnf = claims.get("cnf")
    if cnf is None:
        if holder_jwk is not None or key_binding is not None:
            result.add("holder_binding", False, "the credential binds no holder key")
        else:
            result.add("holder_binding", None, "the credential binds no holder key")
        return
    bound = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(bound, dict) or "d" in bound:
        result.add("holder_binding", False, "cnf.jwk is missing or holds a private key")
        return
    try:
        bound_key = public_key_from_jwk(bound)
    except JWKError as exc:
        result.add("holder_binding", False, f"cnf.jwk is not a usable key: {exc}")
        return
    if holder_jwk is not None and jwk_thumbprint(holder_jwk) != jwk_thumbprint(bound):
        result.add("holder_binding", False, "the credential is bound to a different holder key")
        return
    if key_binding is not None and (sd is None or sd.key_binding_jwt is None):
        result.add("holder_binding", False, "the presentation has no key binding JWT")
        return
    if sd is not None and sd.key_binding_jwt is not None:
        kb: CompactJWS = sd.key_binding_jwt
        try:
            kb_claims = kb.claims()
        except JWSError as exc:
            result.add("holder_binding", False, f"key binding JWT: {exc}")
            return
        if kb.header.get("typ") != KB_JWT_TYP or not signature_is_valid(kb, bound_key):
            result.add("holder_binding", False, "the key binding JWT is not signed by the bound key")
            return
        if kb_claims.get("sd_hash") != sd_hash(sd.presented_prefix, claims.get("_sd_alg", "sha-256")):
            result.add("holder_binding", False, "the key binding JWT covers other disclosures")
            return
        if key_binding is not None:
            problem = _key_binding_problem(kb_claims, key_binding, now or datetime.now(UTC))
            if problem:
                result.add("holder_binding", False, problem)
                return
        result.add("holder_binding", True, "key binding JWT signed by the bound key")
        return
    result.add("holder_binding", True, f"bound to key {jwk_thumbprint(bound)}")


def _key_binding_problem(kb_claims: dict[str, Any], expected: KeyBindingRequirement, now: datetime) -> str | None:
    """Why the KB-JWT was not made for this verifier and this transaction just now, or None when it was."""
    nonce = kb_claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), expected.nonce.encode()):
        return "the key binding JWT's nonce is not this request's"
    if kb_claims.get("aud") != expected.audience:
        return "the key binding JWT's aud is not this verifier"
    iat = kb_claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        return "the key binding JWT has no iat"
    try:
        issued = datetime.fromtimestamp(iat, UTC)
    except (ValueError, OverflowError, OSError):
        return "the key binding JWT's iat is outside the accepted window"
    if issued > now + expected.max_skew:
        return "the key binding JWT's iat is in the future"
    if issued < now - expected.max_age:
        return "the key binding JWT is too old"
    return None


def _check_status(
    result: VerificationResult,
    credential: dict[str, Any],
    now: datetime,
    resolve_key: KeyResolver,
    fetch_status_list: StatusListFetcher | None,
) -> None:
    entries = credential.get("credentialStatus")
    if entries is None:
        result.add("status", None, "the credential has no status entry")
        return
    entries = entries if isinstance(entries, list) else [entries]
    entries = [e for e in entries if isinstance(e, dict) and e.get("type") == ENTRY_TYPE]
    if not entries:
        result.add("status", None, "no Bitstring Status List entry")
        return
    if fetch_status_list is None:
        result.add("status", None, "status not checked: no way to fetch status lists")
        return
    for entry in entries:
        purpose = entry.get("statusPurpose")
        try:
            fetched = fetch_status_list(entry.get("statusListCredential", ""))
            list_credential = _trusted_status_list(fetched, resolve_key, now)
            bit = status_of(entry, list_credential)
        except (StatusListError, StatusListUnavailable) as exc:
            result.add("status", False, f"{purpose} status cannot be read: {exc}")
            return
        result.status[str(purpose)] = bit
    set_purposes = [p for p, bit in result.status.items() if bit]
    if set_purposes:
        word = {"revocation": "revoked", "suspension": "suspended"}
        result.add("status", False, ", ".join(word.get(p, p) for p in set_purposes))
    else:
        result.add(
            "status",
            True,
            "not "
            + " or ".join(
                {"revocation": "revoked", "suspension": "suspended"}.get(p, p) for p in result.status
            ),
        )


class StatusListUnavailable(RuntimeError):
    """The status list could not be fetched or did not verify."""


def _trusted_status_list(
    fetched: str | dict[str, Any], resolve_key: KeyResolver, now: datetime
) -> dict[str, Any]:
    if isinstance(fetched, dict):
        return fetched
    inner = verify_credential(fetched, resolve_key, now)
    if not inner.valid or inner.credential is None:
        failed = inner.failed
        raise StatusListUnavailable(
            f"the status list does not verify ({failed.name if failed else 'unknown'})"
        )
    return inner.credential
