"""The mobile ID: an IETF SD-JWT VC (`dc+sd-jwt`) of who the citizen is, issued through the same OID4VCI flow as
the documents and presented back (OpenID4VP) to link a speaker.

Always visible: the issuer, the type (`vct`), the validity period, the holder's key (`cnf`) and the Bitstring
Status List entries (revocation and suspension, like every credential of this issuer; the W3C entry is carried
as `credentialStatus`, since the IETF Token Status List is not used here). Selectively disclosable: `name`,
`birthdate` and `citizen_ref`. The citizen reference is a keyed digest of the citizen id, pairwise to this
service: it says nothing to anyone else and is never the resident registration number;
`wallet_citizen_refs` turns it back into the citizen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from domain.crypto import keyed_hash
from domain.signing_keys import IssuerKey
from storage import insert_unless_present
from wallet_bridge.sd_jwt import issue_sd_jwt
from wallet_bridge.tables import citizen_refs

MOBILE_ID_DOC_TYPE = "mobile-id"
MOBILE_ID_CERTIFICATE = "mobile-id"  # the offer's certificate id: a citizen has one identity, not numbered papers
MOBILE_ID_CONFIGURATION = "MobileIdCredential"
MOBILE_ID_FORMAT = "dc+sd-jwt"
MOBILE_ID_VCT_PATH = "/vct/mobile-id"
MOBILE_ID_VALIDITY = timedelta(days=365)
# (claim, Korean label, English label): every claim is selectively disclosable.
MOBILE_ID_CLAIMS = (("name", "성명", "Name"), ("birthdate", "생년월일", "Date of birth"),
                    ("citizen_ref", "시민 참조 번호", "Citizen reference"))
# What linking a speaker needs: who it is (the reference) and what to call them (the name); never the birth date.
LINK_CLAIMS = ("citizen_ref", "name")


def mobile_id_vct(issuer: str) -> str:
    return issuer.rstrip("/") + MOBILE_ID_VCT_PATH


def citizen_ref(secret_key: bytes, citizen_id: str) -> str:
    """The citizen's reference in mobile IDs: 128 bits of an HMAC of the citizen id (pairwise to this service)."""
    return keyed_hash(secret_key, "mobile-id-citizen-ref", citizen_id)[:32]


def remember_citizen_ref(conn: Connection, ref: str, citizen_id: str, now: datetime) -> None:
    insert_unless_present(conn, citizen_refs, {"ref": ref, "citizen_id": citizen_id, "created_at": now})


def citizen_for_ref(conn: Connection, ref: Any) -> str | None:
    if not isinstance(ref, str) or len(ref) > 64:
        return None
    return conn.execute(select(citizen_refs.c.citizen_id).where(citizen_refs.c.ref == ref)).scalar()


def sign_mobile_id(*, issuer: str, key: IssuerKey, holder_jwk: dict[str, Any], name: str, birth_date: str,
                   ref: str, status_entries: list[dict[str, Any]], now: datetime) -> str:
    """The mobile ID as an SD-JWT with every disclosure attached (the holder chooses which to present)."""
    issued_at = int(now.timestamp())
    claims = {
        "iss": issuer, "iat": issued_at, "nbf": issued_at, "exp": int((now + MOBILE_ID_VALIDITY).timestamp()),
        "vct": mobile_id_vct(issuer), "cnf": {"jwk": holder_jwk}, "credentialStatus": status_entries,
    }
    disclosable = {"name": name, "birthdate": birth_date, "citizen_ref": ref}
    return issue_sd_jwt({"typ": MOBILE_ID_FORMAT, "kid": key.kid}, claims, disclosable, key.private_key)


def mobile_id_configuration(issuer: str, signing_alg: str, proof_algs: list[str]) -> dict[str, Any]:
    """The mobile ID's entry in the Credential Issuer metadata (OID4VCI 1.0 Appendix A.3, SD-JWT VC)."""
    return {
        "format": MOBILE_ID_FORMAT,
        "scope": MOBILE_ID_CONFIGURATION,
        "vct": mobile_id_vct(issuer),
        "cryptographic_binding_methods_supported": ["jwk"],
        "credential_signing_alg_values_supported": [signing_alg],
        "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": proof_algs}},
        "credential_metadata": {
            "display": [{"name": "모바일 신분증", "locale": "ko-KR"}, {"name": "Mobile ID", "locale": "en-US"}],
            "claims": [
                {"path": [claim], "display": [{"name": ko, "locale": "ko-KR"}, {"name": en, "locale": "en-US"}]}
                for claim, ko, en in MOBILE_ID_CLAIMS
            ],
        },
    }
