"""W3C VC Data Model 2.0 credentials: validating a credential document and securing it as `vc+jwt`.

Securing follows W3C VC-JOSE-COSE: the JWT payload *is* the credential (no `vc` wrapper), the header
says `typ: vc+jwt` and `cty: vc`, and the registered claims that are added (`iss`, `iat`, `exp`, `cnf`)
agree with the credential (`iss` equals `issuer`, `exp` equals `validUntil`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from domain.crypto import sign_compact
from domain.signing_keys import IssuerKey
from wallet_bridge.documents import VCDM_V2_CONTEXT

VC_JWT_TYP = "vc+jwt"
VC_CTY = "vc"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$")
# XML Schema dateTimeStamp: a dateTime that must carry a time zone.
_DATE_TIME_STAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?P<tz>Z|[+-]\d{2}:\d{2})$"
)
# A resident registration number (YYMMDD-GNNNNNN), with or without the hyphen, anywhere in a value.
_RESIDENT_REGISTRATION_NUMBER = re.compile(
    r"(?<!\d)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-?[1-8]\d{6}(?!\d)"
)


class CredentialDocumentError(ValueError):
    """A credential document that VCDM 2.0 does not allow; `field` names the offending member."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def is_url(value: Any) -> bool:
    return isinstance(value, str) and bool(_URL.match(value))


def parse_date_time_stamp(value: Any) -> datetime:
    """An XSD dateTimeStamp (RFC 3339 with an explicit offset) as an aware datetime."""
    if not isinstance(value, str):
        raise ValueError("a date-time must be a string")
    match = _DATE_TIME_STAMP.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a date-time with a time zone")
    tz = "+00:00" if match["tz"] == "Z" else match["tz"]
    fraction = match["time"].split(".")
    time_part = fraction[0] + ("." + fraction[1][:6].ljust(6, "0") if len(fraction) > 1 else "")
    try:
        return datetime.fromisoformat(f"{match['date']}T{time_part}{tz}")
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date-time") from exc


def format_date_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def issuer_id(credential: dict[str, Any]) -> str | None:
    issuer = credential.get("issuer")
    if isinstance(issuer, dict):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else None


def validate_credential_document(document: Any, default_issuer: str | None = None) -> dict[str, Any]:
    """A checked copy of an unsigned VCDM 2.0 credential, ready to sign.

    A missing base context is put first (the "inject" option of the VCDM test suite); a missing issuer
    becomes `default_issuer`; an explicit null issuer, a missing type or subject, a date that is not a
    dateTimeStamp and a validUntil before validFrom are refused.
    """
    if not isinstance(document, dict):
        raise CredentialDocumentError("credential", "a credential must be a JSON object")
    credential = dict(document)

    context = credential.get("@context", [])
    if isinstance(context, str | dict):
        context = [context]
    if not isinstance(context, list):
        raise CredentialDocumentError("@context", "@context must be an ordered set")
    credential["@context"] = [VCDM_V2_CONTEXT, *(c for c in context if c != VCDM_V2_CONTEXT)]

    types = credential.get("type")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or "VerifiableCredential" not in types:
        raise CredentialDocumentError("type", "type must include VerifiableCredential")
    if not all(isinstance(t, str) and t for t in types):
        raise CredentialDocumentError("type", "every type must be a non-empty string")
    credential["type"] = types

    if "id" in credential and not is_url(credential["id"]):
        raise CredentialDocumentError("id", "id must be a URL")

    if "issuer" not in credential:
        if default_issuer is None:
            raise CredentialDocumentError("issuer", "issuer is required")
        credential["issuer"] = default_issuer
    issuer = credential["issuer"]
    if isinstance(issuer, dict):
        if not is_url(issuer.get("id")):
            raise CredentialDocumentError("issuer", "issuer.id must be a URL")
    elif not is_url(issuer):
        raise CredentialDocumentError("issuer", "issuer must be a URL or an object with a URL id")

    subject = credential.get("credentialSubject")
    subjects = subject if isinstance(subject, list) else [subject]
    if not subjects or not all(isinstance(s, dict) and s for s in subjects):
        raise CredentialDocumentError("credentialSubject", "credentialSubject must be a non-empty object")
    for s in subjects:
        if "id" in s and not is_url(s["id"]):
            raise CredentialDocumentError("credentialSubject", "credentialSubject.id must be a URL")

    valid_from = valid_until = None
    for name in ("validFrom", "validUntil"):
        if name in credential:
            try:
                parsed = parse_date_time_stamp(credential[name])
            except ValueError as exc:
                raise CredentialDocumentError(name, f"{name} must be a date-time with a time zone") from exc
            if name == "validFrom":
                valid_from = parsed
            else:
                valid_until = parsed
    if valid_from and valid_until and valid_until < valid_from:
        raise CredentialDocumentError("validUntil", "validUntil is before validFrom")
    return credential


def contains_resident_registration_number(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_RESIDENT_REGISTRATION_NUMBER.search(value))
    if isinstance(value, dict):
        return any(contains_resident_registration_number(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_resident_registration_number(v) for v in value)
    return False


def sign_credential(
    credential: dict[str, Any], key: IssuerKey, issued_at: datetime, holder_jwk: dict[str, Any] | None = None
) -> str:
    """The credential as a compact `vc+jwt`; `credential` must already be validated."""
    issuer = issuer_id(credential)
    if issuer is None:
        raise CredentialDocumentError("issuer", "issuer is required")
    if contains_resident_registration_number(credential):
        # A credential travels to wallets and verifiers outside this service: never put an RRN in one.
        raise CredentialDocumentError("credentialSubject", "a resident registration number may not be issued")
    payload: dict[str, Any] = {**credential, "iss": issuer, "iat": int(issued_at.timestamp())}
    if "validUntil" in credential:
        payload["exp"] = int(parse_date_time_stamp(credential["validUntil"]).timestamp())
    if "validFrom" in credential:
        payload["nbf"] = int(parse_date_time_stamp(credential["validFrom"]).timestamp())
    if "id" in credential:
        payload["jti"] = credential["id"]
    if holder_jwk is not None:
        payload["cnf"] = {"jwk": holder_jwk}
    header = {"typ": VC_JWT_TYP, "cty": VC_CTY, "kid": key.kid}
    return sign_compact(header, payload, key.private_key)
