"""A reference wallet (holder) for the pre-authorized code flow and OpenID4VP presentation, used by the tests and
the demo.

    python -m wallet_bridge.holder --wallet wallet-0001 --token demo-wallet-token-0001 --url http://127.0.0.1:8080
    python -m wallet_bridge.holder --wallet wallet-0001 --token demo-wallet-token-0001 --url http://127.0.0.1:8080 \
        present 382914

It reads the wallet's mailbox, asks for the tx_code the speaker read out, discovers the issuer from
the offer, redeems the pre-authorized code, fetches a c_nonce, proves possession of its own P-256 key,
receives the credential, verifies it against the issuer's published JWKS and status lists, and keeps it
in its store directory. Only public endpoints and standard formats are used — nothing of the service's
internals — so it is also a check that an outside wallet can do the same.

`present PAIRING_NUMBER` links a speaker: the number the speaker read out is exchanged for an OpenID4VP
authorization request by reference; the signed request object is checked against the verifier's published keys
(a pre-registered verifier: this service), the claims it asks for are shown, and the stored mobile ID is
presented with only those disclosures and a key-binding JWT (nonce, aud, sd_hash), by direct_post.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from domain.crypto import JWSError, parse_compact, public_jwk, public_key_from_jwk, sign_compact, signature_is_valid
from wallet_bridge.offers import PRE_AUTHORIZED_GRANT
from wallet_bridge.proofs import PROOF_TYP
from wallet_bridge.sd_jwt import SDJWTError, add_key_binding, is_sd_jwt, select_disclosures, split_sd_jwt
from wallet_bridge.verification import KeySet, StatusListUnavailable, VerificationResult, verify_credential

TIMEOUT_S = 10


class HolderError(RuntimeError):
    """A step of the flow failed; the message says which, and the server's error code when there is one."""


@dataclass(frozen=True)
class PresentationRequest:
    """An OpenID4VP authorization request whose signature checked out, as the holder acts on it."""

    client_id: str
    response_uri: str
    nonce: str
    state: str
    credential_query_id: str
    format: str
    vct_values: list[str]
    claims: list[str]  # the top-level claims the verifier asks for


@dataclass(frozen=True)
class StoredCredential:
    offer_id: str
    credential_id: str
    path: Path
    verification: VerificationResult


class ReferenceHolder:
    def __init__(self, base_url: str, wallet_id: str, wallet_token: str, store: Path,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.wallet_id = wallet_id
        self.wallet_token = wallet_token
        self.store = store
        self.http = session or requests.Session()
        self.key = self._load_or_create_key()

    # --- the holder's key and store --------------------------------------------------------------------

    def _load_or_create_key(self) -> ec.EllipticCurvePrivateKey:
        self.store.mkdir(parents=True, exist_ok=True)
        path = self.store / "holder-key.pem"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return key

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.key)

    def stored_offer_ids(self) -> set[str]:
        return {p.stem for p in (self.store / "credentials").glob("*.jwt")}

    # --- HTTP ------------------------------------------------------------------------------------------

    def _call(self, method: str, url: str, step: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, url, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise HolderError(f"{step}: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            error = body.get("error")
            code = error.get("code") if isinstance(error, dict) else error
            raise HolderError(f"{step}: HTTP {response.status_code} {code or ''}".rstrip())
        return body

    def mailbox(self) -> list[dict[str, Any]]:
        body = self._call("GET", f"{self.base_url}/v1/wallets/{self.wallet_id}/offers", "mailbox",
                          headers={"Authorization": f"Bearer {self.wallet_token}"})
        return list(body.get("offers", []))

    # --- the flow --------------------------------------------------------------------------------------

    def redeem(self, entry: dict[str, Any], tx_code: str) -> StoredCredential:
        """Redeem one mailbox entry with the tx_code; returns the verified, stored credential."""
        offer = entry["credential_offer"]
        issuer = offer["credential_issuer"]
        metadata = self._call("GET", f"{issuer}/.well-known/openid-credential-issuer", "issuer metadata")
        if metadata.get("credential_issuer") != issuer:
            raise HolderError("issuer metadata: credential_issuer does not match the offer")
        if metadata.get("credential_request_encryption", {}).get("encryption_required"):
            raise HolderError("issuer metadata: request encryption is required, which this holder does not do")
        configuration_id = offer["credential_configuration_ids"][0]
        if configuration_id not in metadata.get("credential_configurations_supported", {}):
            raise HolderError("issuer metadata: the offered configuration is not supported by the issuer")
        server = self._call("GET", f"{issuer}/.well-known/oauth-authorization-server", "authorization server")
        grant = offer["grants"][PRE_AUTHORIZED_GRANT]
        form = {"grant_type": PRE_AUTHORIZED_GRANT, "pre-authorized_code": grant["pre-authorized_code"]}
        if "tx_code" in grant:
            form["tx_code"] = tx_code
        token = self._call("POST", server["token_endpoint"], "token", data=form)
        nonce = self._call("POST", metadata["nonce_endpoint"], "nonce")["c_nonce"]
        proof = sign_compact({"typ": PROOF_TYP, "jwk": self.jwk},
                             {"aud": issuer, "iat": int(time.time()), "nonce": nonce}, self.key)
        response = self._call(
            "POST", metadata["credential_endpoint"], "credential",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            json={"credential_configuration_id": configuration_id, "proofs": {"jwt": [proof]}},
        )
        credential = response["credentials"][0]["credential"]
        result = self.verify(credential, issuer)
        if not result.valid:
            failed = result.failed
            raise HolderError(f"verification: {failed.name}: {failed.detail}" if failed else "verification failed")
        folder = self.store / "credentials"
        folder.mkdir(exist_ok=True)
        path = folder / f"{entry['offer_id']}.jwt"
        path.write_text(credential)
        claims = (split_sd_jwt(credential).issuer_jwt if is_sd_jwt(credential) else parse_compact(credential)).claims()
        # A VCDM credential has an id; an SD-JWT VC (the mobile ID) has none (it would only help to track its holder).
        return StoredCredential(entry["offer_id"], claims.get("id", ""), path, result)

    def verify(self, credential: str, issuer: str) -> VerificationResult:
        """Verify with what the issuer publishes: its JWKS and its status lists, fetched over HTTP."""
        jwks = self._call("GET", f"{issuer}/.well-known/jwks.json", "issuer keys")
        return verify_credential(credential, KeySet(jwks.get("keys", []), issuer=issuer), datetime.now(UTC),
                                 self.fetch_status_list, holder_jwk=self.jwk)

    def fetch_status_list(self, url: str) -> str:
        try:
            response = self.http.get(url, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise StatusListUnavailable(type(exc).__name__) from exc
        if response.status_code != 200:
            raise StatusListUnavailable(f"HTTP {response.status_code}")
        return response.text

    # --- OpenID4VP -----------------------------------------------------------------------------------------

    def fetch_request(self, pairing_number: str) -> PresentationRequest:
        """The verifier's authorization request for the number the speaker read out, its signature checked."""
        reference = self._call("POST", f"{self.base_url}/oid4vp/pairings", "pairing",
                               data={"pairing_number": pairing_number})
        client_id, request_uri = reference.get("client_id"), reference.get("request_uri")
        if not isinstance(client_id, str) or not isinstance(request_uri, str):
            raise HolderError("pairing: the answer has no client_id and request_uri")
        try:
            response = self.http.get(request_uri, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise HolderError(f"request object: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise HolderError(f"request object: HTTP {response.status_code}")
        # The verifier is pre-registered with this wallet: it is the service itself, whose keys are its JWKS.
        jwks = self._call("GET", f"{self.base_url}/.well-known/jwks.json", "verifier keys")
        try:
            jws = parse_compact(response.text)
            claims = jws.claims()
        except JWSError as exc:
            raise HolderError(f"request object: {exc}") from exc
        key = KeySet(jwks.get("keys", []))(jws.header, claims)
        if jws.header.get("typ") != "oauth-authz-req+jwt" or key is None or not signature_is_valid(
                jws, public_key_from_jwk(key)):
            raise HolderError("request object: not signed by the verifier")
        if claims.get("client_id") != client_id:
            raise HolderError("request object: client_id does not match the request")
        if claims.get("response_type") != "vp_token" or claims.get("response_mode") != "direct_post":
            raise HolderError("request object: only response_type vp_token by direct_post is supported")
        queries = (claims.get("dcql_query") or {}).get("credentials") or []
        if len(queries) != 1:
            raise HolderError("request object: this holder answers a DCQL query for one credential")
        query = queries[0]
        asked = requested_claims(query)
        return PresentationRequest(
            client_id=client_id, response_uri=claims["response_uri"], nonce=claims["nonce"], state=claims["state"],
            credential_query_id=query["id"], format=query.get("format", ""),
            vct_values=list((query.get("meta") or {}).get("vct_values", [])), claims=asked)

    def find_credential(self, request: PresentationRequest) -> str:
        """The stored SD-JWT VC that answers the request (the newest of the asked type)."""
        folder = self.store / "credentials"
        for path in sorted(folder.glob("*.jwt"), key=lambda p: p.stat().st_mtime, reverse=True):
            token = path.read_text().strip()
            if not is_sd_jwt(token):
                continue
            try:
                jws = split_sd_jwt(token).issuer_jwt
                vct = jws.claims().get("vct")
            except (SDJWTError, JWSError):
                continue
            if jws.header.get("typ") == request.format and vct in request.vct_values:
                return token
        raise HolderError("present: no stored credential answers the request")

    def presentation(self, request: PresentationRequest, credential: str, *, nonce: str | None = None,
                     audience: str | None = None, issued_at: int | None = None,
                     key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """The credential with only the asked disclosures and a key-binding JWT for this request (the keyword
        arguments exist for tests that make a wrong one)."""
        selected = select_disclosures(credential, set(request.claims))
        return add_key_binding(selected, key or self.key, nonce=request.nonce if nonce is None else nonce,
                               audience=request.client_id if audience is None else audience,
                               issued_at=int(time.time()) if issued_at is None else issued_at)

    def post_presentation(self, request: PresentationRequest, presentation: str) -> requests.Response:
        """The Authorization Response by direct_post; the verifier's answer as it came."""
        vp_token = json.dumps({request.credential_query_id: [presentation]})
        return self.http.post(request.response_uri, data={"vp_token": vp_token, "state": request.state},
                              timeout=TIMEOUT_S)

    def present(self, pairing_number: str, show: Callable[[PresentationRequest], None] | None = None) -> None:
        """The whole cross-device flow: fetch the request, show what is asked, post the presentation."""
        request = self.fetch_request(pairing_number)
        if show is not None:
            show(request)
        response = self.post_presentation(request, self.presentation(request, self.find_credential(request)))
        if response.status_code != 200:
            try:
                error = response.json().get("error", "")
            except ValueError:
                error = ""
            raise HolderError(f"presentation: HTTP {response.status_code} {error}".rstrip())

    def run(self, ask_tx_code: Callable[[dict[str, Any]], str]) -> list[StoredCredential]:
        """Redeem every offer in the mailbox that is not in the store yet (a pushed duplicate is skipped)."""
        done = self.stored_offer_ids()
        return [self.redeem(entry, ask_tx_code(entry)) for entry in self.mailbox() if entry["offer_id"] not in done]


def requested_claims(credential_query: dict[str, Any]) -> list[str]:
    """The top-level claims a DCQL credential query asks for (a nested path asks for its top-level claim, whose
    disclosure holds the rest), in the query's order, each once."""
    names: list[str] = []
    for claim in credential_query.get("claims") or []:
        path = claim.get("path") if isinstance(claim, dict) else None
        if isinstance(path, list) and path and isinstance(path[0], str) and path[0] not in names:
            names.append(path[0])
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wallet_bridge.holder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wallet", required=True, help="wallet id, e.g. wallet-0001")
    parser.add_argument("--token", required=True, help="the wallet's mailbox token")
    parser.add_argument("--url", required=True, help="base URL of the service, e.g. http://127.0.0.1:8080")
    parser.add_argument("--store", default="./holder-store", help="where the holder keeps its key and credentials")
    parser.add_argument("--tx-code", help="the code the speaker read out (asked for when not given)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("receive", help="redeem the offers in the mailbox (what runs without a command)")
    present = commands.add_parser("present", help="link a speaker: present the mobile ID for a pairing number")
    present.add_argument("pairing_number", help="the number the speaker read out")
    args = parser.parse_args(argv)
    holder = ReferenceHolder(args.url, args.wallet, args.token, Path(args.store))
    if args.command == "present":
        return _present(holder, args.pairing_number)

    def ask(entry: dict[str, Any]) -> str:
        if args.tx_code:
            return args.tx_code
        # The code is typed, not echoed, like a one-time code in a wallet app.
        return getpass.getpass(f"확인 코드 / confirmation code for offer {entry['offer_id']}: ").strip()

    try:
        stored = holder.run(ask)
    except HolderError as exc:
        print(f"holder: {exc}", file=sys.stderr)
        return 1
    if not stored:
        print("no new offers in the mailbox", file=sys.stderr)
    for item in stored:
        print(json.dumps({"offer_id": item.offer_id, "credential_id": item.credential_id, "path": str(item.path),
                          "valid": item.verification.valid, "status": item.verification.status},
                         ensure_ascii=False))
    return 0


def _present(holder: ReferenceHolder, pairing_number: str) -> int:
    def show(request: PresentationRequest) -> None:
        print(f"{request.client_id} 요청 항목 / asks for: {', '.join(request.claims)}", file=sys.stderr)

    try:
        holder.present(pairing_number, show)
    except HolderError as exc:
        print(f"holder: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"presented": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
