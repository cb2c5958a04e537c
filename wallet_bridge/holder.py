"""A reference wallet (holder) for the pre-authorized code flow, used by the tests and the demo.

    python -m wallet_bridge.holder --wallet wallet-0001 --token demo-wallet-token-0001 --url http://127.0.0.1:8080

It reads the wallet's mailbox, asks for the tx_code the speaker read out, discovers the issuer from
the offer, redeems the pre-authorized code, fetches a c_nonce, proves possession of its own P-256 key,
receives the credential, verifies it against the issuer's published JWKS and status lists, and keeps it
in its store directory. Only public endpoints and standard formats are used — nothing of the service's
internals — so it is also a check that an outside wallet can do the same.
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

from domain.crypto import parse_compact, public_jwk, sign_compact
from wallet_bridge.offers import PRE_AUTHORIZED_GRANT
from wallet_bridge.proofs import PROOF_TYP
from wallet_bridge.verification import KeySet, StatusListUnavailable, VerificationResult, verify_credential

TIMEOUT_S = 10


class HolderError(RuntimeError):
    """A step of the flow failed; the message says which, and the server's error code when there is one."""


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
        return StoredCredential(entry["offer_id"], parse_compact(credential).claims()["id"], path, result)

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

    def run(self, ask_tx_code: Callable[[dict[str, Any]], str]) -> list[StoredCredential]:
        """Redeem every offer in the mailbox that is not in the store yet (a pushed duplicate is skipped)."""
        done = self.stored_offer_ids()
        return [self.redeem(entry, ask_tx_code(entry)) for entry in self.mailbox() if entry["offer_id"] not in done]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wallet_bridge.holder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wallet", required=True, help="wallet id, e.g. wallet-0001")
    parser.add_argument("--token", required=True, help="the wallet's mailbox token")
    parser.add_argument("--url", required=True, help="base URL of the service, e.g. http://127.0.0.1:8080")
    parser.add_argument("--store", default="./holder-store", help="where the holder keeps its key and credentials")
    parser.add_argument("--tx-code", help="the code the speaker read out (asked for when not given)")
    args = parser.parse_args(argv)
    holder = ReferenceHolder(args.url, args.wallet, args.token, Path(args.store))

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


if __name__ == "__main__":
    sys.exit(main())
