"""Shared fixtures for the wallet bridge tests: a real SQLite file, a real key directory, a settable clock.

The public test vectors are read from tests/fixtures/credentials/, copies of the project's shared
fixtures (CI clones the repository without ../shared).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from app import create_app
from domain.crypto import public_jwk, sign_compact
from services import Services
from settings import Settings
from storage import Database, metadata
from tests.loopback import LoopbackServer
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.config import WalletConfig
from wallet_bridge.holder import ReferenceHolder
from wallet_bridge.issuance import IssuableDocument
from wallet_bridge.mobile_id import MOBILE_ID_CONFIGURATION
from wallet_bridge.tables import WALLET_TABLES

KAKAO_TOKEN = "kakao-e2e-" + secrets.token_hex(8)
DEMO_MOBILE_ID_TX_CODE = "135790"  # data/demo.yaml: published with the demo data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "credentials"
ISSUER = "https://minwon.test"


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text(encoding="utf-8")


def fixture_json(relative: str) -> Any:
    return json.loads(fixture_text(relative))


class SettableClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class CertificateBook:
    """Stands in for the foundation's certificate records until they are on this branch: a dict of
    (citizen_id, certificate_id) -> IssuableDocument that tests can change mid-flow."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], IssuableDocument] = {}

    def add(self, citizen_id: str, document: IssuableDocument) -> None:
        self.documents[(citizen_id, document.certificate_id)] = document

    def __call__(self, citizen_id: str, certificate_id: str) -> IssuableDocument | None:
        return self.documents.get((citizen_id, certificate_id))


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime(2026, 11, 20, 3, 0, tzinfo=UTC))


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'wallet.sqlite3'}")
    metadata.create_all(database.engine, tables=list(WALLET_TABLES))
    yield database
    database.dispose()


@pytest.fixture
def config(tmp_path: Path) -> WalletConfig:
    return WalletConfig(issuer=ISSUER, data_dir=tmp_path / "data", secret_key=b"test-secret-key-0123456789")


@pytest.fixture
def certificates(clock: SettableClock) -> CertificateBook:
    book = CertificateBook()
    today = clock.now.date()
    book.add(
        "citizen-0001",
        IssuableDocument(
            "cert-0001-rrc",
            "resident-registration-copy",
            "issued",
            today - timedelta(days=30),
            today + timedelta(days=60),
            "홍길동",
        ),
    )
    book.add(
        "citizen-0001",
        IssuableDocument(
            "cert-0001-vac", "vaccination-certificate", "issued", date(2026, 5, 1), None, "홍길동"
        ),
    )
    return book


@pytest.fixture
def bridge(
    db: Database, config: WalletConfig, certificates: CertificateBook, clock: SettableClock
) -> WalletBridge:
    return WalletBridge(db, config, certificates, clock)


class Holder:
    """A wallet's key pair and the proof JWTs it signs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = public_jwk(self.key)

    def proof(self, audience: str, nonce: str | None, iat: datetime, **header: Any) -> str:
        claims: dict[str, Any] = {"aud": audience, "iat": int(iat.timestamp())}
        if nonce is not None:
            claims["nonce"] = nonce
        return sign_compact({"typ": "openid4vci-proof+jwt", "jwk": self.jwk, **header}, claims, self.key)


@pytest.fixture
def holder() -> Holder:
    return Holder()


def redeem_offer(
    bridge: WalletBridge,
    holder: Holder,
    certificate_id: str = "cert-0001-rrc",
    doc_type: str = "resident-registration-copy",
    key: str = "confirm-1",
) -> tuple[str, str]:
    """Run the whole pre-authorized code flow in-process; (credential JWT, offer id)."""
    offer = bridge.offers.create_offer("citizen-0001", "wallet-0001", certificate_id, doc_type, key)
    grant = offer.credential_offer["grants"]["urn:ietf:params:oauth:grant-type:pre-authorized_code"]
    token = bridge.offers.exchange_token(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
            "pre-authorized_code": grant["pre-authorized_code"],
            "tx_code": offer.tx_code,
        },
        client_key="127.0.0.1",
    )
    nonce = bridge.nonces.issue()
    response = bridge.issuance.handle(
        f"Bearer {token['access_token']}",
        {
            "credential_configuration_id": offer.credential_offer["credential_configuration_ids"][0],
            "proofs": {"jwt": [holder.proof(bridge.config.issuer, nonce, bridge.clock())]},
        },
    )
    return response["credentials"][0]["credential"], offer.offer_id


class PushReceiver:
    """A wallet's push endpoint on 127.0.0.1: answers 503 to the first `failures` requests, then 200, each after
    `delay_s`. Records every offer it accepted (Idempotency-Key, body) and every key that arrived while another
    request with the same key was still being answered (`overlaps`)."""

    def __init__(self, failures: int = 0, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.received: list[tuple[str, dict]] = []
        self.overlaps: list[str] = []
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                with receiver._lock:
                    if key in receiver._in_flight:
                        receiver.overlaps.append(key)
                    receiver._in_flight.add(key)
                time.sleep(delay_s)
                with receiver._lock:
                    receiver._in_flight.discard(key)
                    failing = receiver.failures > 0
                    if failing:
                        receiver.failures -= 1
                    else:
                        receiver.received.append((key, body))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = LoopbackServer(Handler)
        self.url = f"{self._server.url}/push"

    def close(self) -> None:
        self._server.close()


# --- issue 16: linking a speaker by presenting the mobile ID --------------------------------------------------

@pytest.fixture(scope="module")
def mobile_id_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Services]]:
    """An app of this test module with the demo data, behind a live server whose address is its issuer URL (the
    request object's response URI must be where wallets reach it), with a Kakao skill token."""
    data_dir = tmp_path_factory.mktemp("mobile-id-data")
    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(data_dir), "MINWON_ISSUER_URL": url,
                                  "MINWON_KAKAO_TOKEN": KAKAO_TOKEN}, load_models=False,
                                 rate_limit_per_minute=100_000)
    app = create_app(settings)
    # The router's model is trained once per process (or shared with the session app's): not in the first turn,
    # which the test's HTTP client would time out on.
    app.extensions["minwon"].router.lexical_model()
    server.app = app  # the port had to exist before the app could know its own issuer URL
    with LoopbackServer(server):
        yield url, app.extensions["minwon"]
    app.extensions["minwon"].wallet.outbox_worker.stop()


@pytest.fixture(scope="module")
def demo_wallet(mobile_id_app, tmp_path_factory) -> ReferenceHolder:
    """wallet-0001 with the mobile ID the demo seeding offered, redeemed with the published tx_code."""
    url, _ = mobile_id_app
    holder = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path_factory.mktemp("demo-wallet"))
    [entry] = holder.mailbox()
    assert entry["credential_offer"]["credential_configuration_ids"] == [MOBILE_ID_CONFIGURATION]
    [stored] = holder.run(lambda _entry: DEMO_MOBILE_ID_TX_CODE)
    assert stored.verification.valid, stored.verification.failed
    assert stored.verification.status == {"revocation": 0, "suspension": 0}
    return holder
