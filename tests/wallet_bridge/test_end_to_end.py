"""The whole story over real HTTP: the demo user asks the speaker, the reference holder redeems the offer
from the mailbox with the tx_code that was read out, the credential verifies, `revoke` makes it read revoked.

This app has its own live server because the issuer identifier must be the address wallets reach it at.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from app import create_app
from domain.crypto import parse_compact
from domain.signing_keys import KEY_CACHE_TTL_S
from settings import Settings
from tests.conftest import ROOT
from tests.loopback import LoopbackServer
from tests.wallet_bridge.conftest import fixture_json
from wallet_bridge.holder import HolderError, ReferenceHolder

DIGITS = re.compile(r'<say-as interpret-as="digits">(\d+)</say-as>')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("e2e-data")
    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(data_dir), "MINWON_ISSUER_URL": url}, load_models=False)
    app = create_app(settings)
    server.app = app  # the port had to exist before the app could know its own issuer URL
    with LoopbackServer(server):
        # The demo seeding put a mobile ID offer into wallet-0001's mailbox; a holder of its own takes it (with the
        # published tx_code), so these tests see only the offers their spoken requests make.
        seeded = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", data_dir / "mobile-id-holder")
        assert len(seeded.run(lambda _entry: "135790")) == 1
        yield url, data_dir
    app.extensions["minwon"].wallet.outbox_worker.stop()


def say(url: str, session: dict, text: str) -> dict:
    body = {"user_id": "demo-user-ko", "text": text, **({"session_id": session["id"]} if session else {})}
    response = requests.post(f"{url}/v1/converse", json=body, timeout=30,
                             headers={"Authorization": "Bearer demo-device-token-ko"})
    assert response.status_code == 200, response.text
    reply = response.json()
    session["id"] = reply["session_id"]
    return reply


def cli(data_dir: Path, url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINWON_DEMO": "1", "MINWON_DATA_DIR": str(data_dir), "MINWON_ISSUER_URL": url}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_speak_redeem_verify_revoke(live, tmp_path):
    url, data_dir = live
    session: dict = {}
    asked = say(url, session, "주민등록표 등본 지갑으로 보내줘")
    assert asked["expects"] == "confirmation"
    assert say(url, session, "네")["expects"] == "pin"
    done = say(url, session, "일 삼 오 칠")
    tx_code = DIGITS.findall(done["ssml"])[0]
    assert "전자지갑으로 보냈어요" in done["speech"]

    holder = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path / "holder")
    heard = []
    stored = holder.run(lambda entry: heard.append(entry["offer_id"]) or tx_code)
    assert len(stored) == 1 and len(heard) == 1
    credential = stored[0]
    assert credential.verification.valid and credential.verification.status == {"revocation": 0, "suspension": 0}
    token = credential.path.read_text()
    claims = parse_compact(token).claims()
    assert claims["issuer"] == url and claims["cnf"]["jwk"] == holder.jwk
    assert claims["credentialSubject"]["documentType"] == "resident-registration-copy"
    assert "900101" not in token and "citizen-0001" not in token

    # The service's own verifier agrees, over HTTP and on the command line.
    verified = requests.post(f"{url}/v1/credentials/verify", json={"credential": token}, timeout=30).json()
    assert verified["valid"] is True
    cli_ok = cli(data_dir, url, "verify-credential", str(credential.path))
    assert cli_ok.returncode == 0 and json.loads(cli_ok.stdout)["valid"] is True

    # The certificate-status skill knows about the copy (the PIN was given earlier in this session).
    assert say(url, session, "주민등록표 등본 어떻게 됐어?")["speech"].endswith("전자문서지갑에도 사본이 있어요.")

    # The mailbox is empty now, and running the holder again redeems nothing twice.
    assert holder.mailbox() == []
    assert holder.run(lambda entry: tx_code) == []

    revoked = cli(data_dir, url, "revoke", credential.credential_id)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["status"] == "revoked"
    after = holder.verify(token, url)
    assert not after.valid and after.failed.name == "status" and after.failed.detail == "revoked"
    cli_revoked = cli(data_dir, url, "verify-credential", "-", stdin=token)
    assert cli_revoked.returncode == 1 and json.loads(cli_revoked.stdout)["failed_check"] == "status"
    assert cli(data_dir, url, "resume", credential.credential_id).returncode == 1  # revocation is final
    assert say(url, session, "주민등록표 등본 어떻게 됐어?")["speech"].endswith("전자문서지갑의 사본은 폐기되었어요.")


def spoken_tx_code(url: str, utterance: str = "등본 지갑으로 보내줘") -> str:
    session: dict = {}
    say(url, session, utterance)
    assert say(url, session, "네")["expects"] == "pin"
    return DIGITS.findall(say(url, session, "일 삼 오 칠")["ssml"])[0]


def test_holder_with_the_wrong_tx_code_gets_invalid_grant(live, tmp_path):
    url, _ = live
    tx_code = spoken_tx_code(url)
    wrong = "0" * len(tx_code) if tx_code != "0" * len(tx_code) else "1" * len(tx_code)
    holder = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path / "holder")
    with pytest.raises(HolderError, match="token: HTTP 400 invalid_grant"):
        holder.run(lambda entry: wrong)
    assert len(holder.run(lambda entry: tx_code)) == 1  # one wrong try does not burn the offer


def test_cli_key_rotation_keeps_old_credentials_verifiable(live, tmp_path):
    url, data_dir = live
    holder = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path / "holder")
    tx_code = spoken_tx_code(url)
    old = holder.run(lambda entry: tx_code)[0].path.read_text()
    before = requests.get(f"{url}/.well-known/jwks.json", timeout=10).json()["keys"]
    rotated = cli(data_dir, url, "rotate-issuer-key")
    assert rotated.returncode == 0
    result = json.loads(rotated.stdout)
    # The CLI is another process (another node would be the same): the running server reads the keys from the
    # database again when its key cache runs out, so it publishes the new key within KEY_CACHE_TTL_S.
    deadline = time.monotonic() + KEY_CACHE_TTL_S + 5
    while True:
        after = requests.get(f"{url}/.well-known/jwks.json", timeout=10).json()["keys"]
        if len(after) > len(before) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert result["published_keys"] == len(before) + 1 == len(after)
    assert after[0]["kid"] == result["active_kid"] and {k["kid"] for k in before} <= {k["kid"] for k in after}
    # From then on the running server signs with the new key; the old credential still verifies.
    assert requests.post(f"{url}/v1/credentials/verify", json={"credential": old}, timeout=30).json()["valid"]
    tx_code = spoken_tx_code(url)
    new = holder.run(lambda entry: tx_code)[0].path.read_text()
    assert parse_compact(new).header["kid"] == result["active_kid"] != parse_compact(old).header["kid"]


def test_cli_errors(live, tmp_path):
    url, data_dir = live
    assert cli(data_dir, url, "revoke", "urn:uuid:00000000-0000-0000-0000-000000000000").returncode == 1
    assert cli(data_dir, url, "verify-credential", str(tmp_path / "missing.jwt")).returncode == 2
    garbage = cli(data_dir, url, "verify-credential", "-", stdin="not a credential")
    assert garbage.returncode == 1 and json.loads(garbage.stdout)["failed_check"] == "format"
    listing = cli(data_dir, url, "list-credentials", "citizen-0001")
    assert listing.returncode == 0 and isinstance(json.loads(listing.stdout), list)


def test_holder_refuses_an_issuer_that_requires_encryption(tmp_path):
    """The OID4VCI example metadata says encryption_required: this holder does not encrypt, so it stops."""
    from http.server import BaseHTTPRequestHandler

    metadata = fixture_json("oid4vci/credential_issuer_metadata_sd_jwt_long.json")

    class Issuer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = json.dumps({**metadata, "credential_issuer": base}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with LoopbackServer(Issuer) as issuer:
        offer = fixture_json("oid4vci/credential_offer_pre-authz_code.json")
        offer["credential_issuer"] = issuer.url
        holder = ReferenceHolder(issuer.url, "w", "t", tmp_path / "holder")
        with pytest.raises(HolderError, match="encryption is required"):
            holder.redeem({"offer_id": "x", "credential_offer": offer}, "1234")
