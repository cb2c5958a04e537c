"""Wallet bridge costs, as ratios to one ES256 signature measured in the same run.

    .venv/bin/python -m bench.wallet_bench [--rounds 50]

Measures: a bare ES256 sign (the baseline), verifying an issued credential (signature + its two status
lists, each a signed list that is verified too), encoding a 131,072-entry status list, and one whole
in-process issuance (offer → token → nonce → credential, on a real SQLite file).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from domain.clock import utc_now
from domain.crypto import public_jwk, sign_compact
from storage import Database, metadata
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.config import WalletConfig
from wallet_bridge.issuance import IssuableDocument
from wallet_bridge.status_list import encode_bitstring
from wallet_bridge.tables import WALLET_TABLES

GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


def per_call(fn: Callable[[], object], rounds: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    work = Path(tempfile.mkdtemp())
    db = Database(f"sqlite:///{work / 'bench.sqlite3'}")
    metadata.create_all(db.engine, tables=list(WALLET_TABLES))
    today = utc_now().date()
    document = IssuableDocument("cert-1", "resident-registration-copy", "issued", today, today + timedelta(days=30),
                                "홍길동")
    bridge = WalletBridge(db, WalletConfig("https://minwon.bench", work / "data", b"bench-secret"),
                          lambda _c, _d: document)
    holder = ec.generate_private_key(ec.SECP256R1())
    counter = iter(range(10**9))

    def issue() -> str:
        offer = bridge.offers.create_offer("c-1", "w-1", "cert-1", "resident-registration-copy", f"k{next(counter)}")
        code = offer.credential_offer["grants"][GRANT]["pre-authorized_code"]
        access = bridge.offers.exchange_token({"grant_type": GRANT, "pre-authorized_code": code,
                                               "tx_code": offer.tx_code}, f"client-{next(counter)}")["access_token"]
        proof = sign_compact({"typ": "openid4vci-proof+jwt", "jwk": public_jwk(holder)},
                             {"aud": bridge.config.issuer, "iat": int(time.time()), "nonce": bridge.nonces.issue()},
                             holder)
        response = bridge.issuance.handle(f"Bearer {access}", {
            "credential_configuration_id": "ResidentRegistrationCopyCredential", "proofs": {"jwt": [proof]}})
        return response["credentials"][0]["credential"]

    key = bridge.keyring.active_key().private_key
    credential = issue()
    assert bridge.verify(credential).valid
    results = {
        "es256_sign (baseline)": per_call(lambda: sign_compact({"typ": "JWT"}, {"a": 1}, key), rounds * 10),
        "encode_status_list_131072": per_call(lambda: encode_bitstring(bytes(16_384)), rounds),
        "verify_credential_with_status": per_call(lambda: bridge.verify(credential), rounds),
        "issue_offer_token_nonce_credential": per_call(issue, rounds),
    }
    baseline = results["es256_sign (baseline)"]
    report = {name: {"ms": round(seconds * 1000, 3), "x_baseline": round(seconds / baseline, 1)}
              for name, seconds in results.items()}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
