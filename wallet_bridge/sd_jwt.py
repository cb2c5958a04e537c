"""SD-JWT (RFC 9901): `<issuer JWT>~<disclosure>~...~[<KB-JWT>]` — issuing, presenting and verifying.

The issuer side makes the mobile ID (an SD-JWT VC, `dc+sd-jwt`): each selectively disclosable claim becomes a
salted disclosure whose digest goes into `_sd`, with decoy digests so the number of claims does not show. The
holder side keeps only the disclosures a verifier asked for and appends a key-binding JWT (`kb+jwt`) over them.
The verifier side matches disclosures: every disclosure must match exactly one digest in the signed payload, and
every digest at most one disclosure; otherwise a holder could smuggle claims in.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from domain.crypto import (
    CompactJWS,
    JWSError,
    PrivateKey,
    b64url_decode,
    b64url_encode,
    parse_compact,
    sign_compact,
    strict_json_loads,
)

KB_JWT_TYP = "kb+jwt"
DEFAULT_SD_ALG = "sha-256"

_HASHES = {"sha-256": hashlib.sha256, "sha-384": hashlib.sha384, "sha-512": hashlib.sha512}


class SDJWTError(ValueError):
    """A malformed SD-JWT or a disclosure that does not match the signed payload."""


@dataclass(frozen=True)
class SDJWT:
    issuer_jwt: CompactJWS
    disclosures: list[str]
    key_binding_jwt: CompactJWS | None
    presented_prefix: str  # everything the KB-JWT's sd_hash covers


def is_sd_jwt(token: str) -> bool:
    return isinstance(token, str) and "~" in token


def split_sd_jwt(token: str) -> SDJWT:
    token = token.strip()
    parts = token.split("~")
    if len(parts) < 2:
        raise SDJWTError("an SD-JWT has at least one '~'")
    try:
        issuer_jwt = parse_compact(parts[0])
        kb = parse_compact(parts[-1]) if parts[-1] else None
    except JWSError as exc:
        raise SDJWTError(str(exc)) from exc
    disclosures = parts[1:-1]
    if any(not d for d in disclosures):
        raise SDJWTError("empty disclosure")
    prefix = token[: len(token) - len(parts[-1])]
    return SDJWT(issuer_jwt, disclosures, kb, prefix)


def _decode_disclosure(disclosure: str) -> list[Any]:
    try:
        value = strict_json_loads(b64url_decode(disclosure))
    except (ValueError, JWSError) as exc:
        raise SDJWTError("a disclosure is not base64url JSON") from exc
    if not isinstance(value, list) or len(value) not in (2, 3) or not isinstance(value[0], str):
        raise SDJWTError("a disclosure must be [salt, name, value] or [salt, value]")
    if len(value) == 3 and (not isinstance(value[1], str) or value[1] in ("_sd", "...")):
        raise SDJWTError("a disclosure has an invalid claim name")
    return value


def resolve_disclosures(
    payload: dict[str, Any], disclosures: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payload with every disclosed claim put back (and `_sd`, `_sd_alg` removed), plus a flat
    name -> value map of what was disclosed."""
    alg = payload.get("_sd_alg", "sha-256")
    if alg not in _HASHES:
        raise SDJWTError(f"unsupported _sd_alg {alg!r}")
    by_digest: dict[str, list[Any]] = {}
    for disclosure in disclosures:
        digest = b64url_encode(_HASHES[alg](disclosure.encode("ascii")).digest())
        if digest in by_digest:
            raise SDJWTError("the same disclosure is presented twice")
        by_digest[digest] = _decode_disclosure(disclosure)
    used: set[str] = set()
    disclosed: dict[str, Any] = {}

    def take(digest: Any) -> list[Any] | None:
        if not isinstance(digest, str):
            raise SDJWTError("a digest must be a string")
        if digest in used:
            raise SDJWTError("a digest appears twice in the payload")
        if digest in by_digest:
            used.add(digest)
            return by_digest[digest]
        return None  # a decoy digest, or a claim the holder chose not to disclose

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            result = {k: walk(v) for k, v in node.items() if k not in ("_sd", "_sd_alg")}
            digests = node.get("_sd", [])
            if not isinstance(digests, list):
                raise SDJWTError("_sd must be an array")
            for digest in digests:
                found = take(digest)
                if found is None:
                    continue
                if len(found) != 3:
                    raise SDJWTError("an array-element disclosure is referenced from _sd")
                _, name, value = found
                if name in result:
                    raise SDJWTError(f"disclosed claim {name!r} already exists")
                result[name] = walk(value)
                disclosed[name] = result[name]
            return result
        if isinstance(node, list):
            items = []
            for item in node:
                if isinstance(item, dict) and set(item) == {"..."}:
                    found = take(item["..."])
                    if found is None:
                        continue
                    if len(found) != 2:
                        raise SDJWTError("an object-property disclosure is referenced from an array")
                    items.append(walk(found[1]))
                else:
                    items.append(walk(item))
            return items
        return node

    resolved = walk(payload)
    unused = set(by_digest) - used
    if unused:
        raise SDJWTError(f"{len(unused)} disclosure(s) match no digest in the signed payload")
    return resolved, disclosed


def sd_hash(presented_prefix: str, alg: str = "sha-256") -> str:
    return b64url_encode(_HASHES[alg](presented_prefix.encode("ascii")).digest())


# -- issuing -------------------------------------------------------------------------------------------


def make_disclosure(name: str | None, value: Any, salt: str | None = None) -> str:
    """A disclosure: base64url of the JSON array [salt, name, value] (an object property) or [salt, value] (an
    array element). The salt has 128 bits, so a digest cannot be reversed by trying likely values."""
    salt = salt if salt is not None else b64url_encode(secrets.token_bytes(16))
    array = [salt, value] if name is None else [salt, name, value]
    return b64url_encode(json.dumps(array, ensure_ascii=False).encode("utf-8"))


def disclosure_digest(disclosure: str, alg: str = DEFAULT_SD_ALG) -> str:
    return b64url_encode(_HASHES[alg](disclosure.encode("ascii")).digest())


def issue_sd_jwt(header: dict[str, Any], claims: dict[str, Any], disclosable: dict[str, Any], key: PrivateKey,
                 decoys: int = 2) -> str:
    """An SD-JWT whose top-level `disclosable` claims are selectively disclosable; `claims` are always visible.
    The digests are sorted with the decoys, so their order says nothing about which claim is which."""
    if set(disclosable) & set(claims) or {"_sd", "_sd_alg", "..."} & set(disclosable):
        raise SDJWTError("a claim is both always visible and selectively disclosable, or has a reserved name")
    disclosures = [make_disclosure(name, value) for name, value in disclosable.items()]
    digests = [disclosure_digest(d) for d in disclosures]
    digests += [b64url_encode(hashlib.sha256(secrets.token_bytes(32)).digest()) for _ in range(decoys)]
    payload = {**claims, "_sd": sorted(digests), "_sd_alg": DEFAULT_SD_ALG}
    return sign_compact(header, payload, key) + "~" + "".join(d + "~" for d in disclosures)


# -- presenting ----------------------------------------------------------------------------------------


def disclosed_claim_name(disclosure: str) -> str | None:
    """The claim name of an object-property disclosure (None for an array element)."""
    value = _decode_disclosure(disclosure)
    return value[1] if len(value) == 3 else None


def select_disclosures(sd_jwt: str, names: set[str]) -> str:
    """The SD-JWT with only the disclosures of the top-level claims in `names` (and no key binding), ending in '~'."""
    parsed = split_sd_jwt(sd_jwt)
    kept = [d for d in parsed.disclosures if disclosed_claim_name(d) in names]
    issuer_jwt = sd_jwt.strip().split("~", 1)[0]
    return issuer_jwt + "~" + "".join(d + "~" for d in kept)


def add_key_binding(presentation: str, key: PrivateKey, *, nonce: str, audience: str, issued_at: int,
                    alg: str = DEFAULT_SD_ALG) -> str:
    """Appends a KB-JWT (RFC 9901 §4.3): signed by the holder key, over this exact presentation (`sd_hash`), for
    one verifier (`aud`) and one transaction (`nonce`)."""
    if not presentation.endswith("~"):
        raise SDJWTError("a presentation to bind must end with '~' (and carry no key binding yet)")
    claims = {"iat": issued_at, "aud": audience, "nonce": nonce, "sd_hash": sd_hash(presentation, alg)}
    return presentation + sign_compact({"typ": KB_JWT_TYP}, claims, key)
