"""SD-JWT (RFC 9901) parsing and disclosure matching: `<issuer JWT>~<disclosure>~...~[<KB-JWT>]`.

Only the verifier side is here: this service issues plain `vc+jwt`, but it verifies SD-JWT credentials
it is shown (the W3C test vectors include one). Every disclosure must match exactly one digest in the
signed payload, and every digest at most one disclosure; otherwise a holder could smuggle claims in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from domain.crypto import CompactJWS, JWSError, b64url_decode, b64url_encode, parse_compact, strict_json_loads

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
