"""Outbound requests (SSRF): every URL the service is handed from outside — a wallet's push URL, a Kakao
callback URL, an Alexa certificate URL — is written here as an attack that must fail.

Where a test needs something to listen, it is a real TCP listener on 127.0.0.1 that the test starts
itself, and "the attack failed" means that listener was never connected to (``accept`` times out). A few
tests need a first hop that does answer (a redirect, the address pinning over TLS): a test server can
only be on loopback here, so those use the tests-only switch ``MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP``
(``OutboundPolicy(allow_loopback_http=True)``), and each says why. Everything else runs under the
production policy, which is the shared app's (the switch is off by default).
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from channels.alexa.verification import (
    AlexaRequestVerifier,
    AlexaVerificationError,
    HttpCertificateFetcher,
    normalise_cert_chain_url,
)
from channels.alexa.webhook import AlexaChannel
from channels.kakao.callback import CallbackPolicy, CallbackWorker
from channels.kakao.webhook import KakaoChannel
from domain.certificates import Certificate
from domain.clock import korean_today
from outbound import OutboundPolicy, OutboundRefused, check_public_https_url, resolve_host
from settings import Settings
from tests.channels.conftest import load_fixture
from tests.channels.signing_ca import CERT_URL, SKILL_ID, SigningCA, alexa_body
from tests.channels.test_alexa_verification import RecordingFetcher
from tests.loopback import LoopbackServer
from wallet_bridge.tables import outbox

# Tests-only: lets a first hop on 127.0.0.1 answer over plain http (see the module docstring).
LOOPBACK_FIRST_HOP = OutboundPolicy(allow_loopback_http=True)


class Listener:
    """A bare TCP listener on loopback that only records whether anybody connected."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]

    def connected_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            conn, _ = self.sock.accept()
        except TimeoutError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    sock = Listener()
    yield sock
    sock.close()


class Redirector(BaseHTTPRequestHandler):
    """A first hop that answers every request with a redirect to `location`."""

    location = ""

    def _redirect(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _redirect  # noqa: N815 (http.server's naming)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector(listener: Listener) -> Iterator[str]:
    """An http server on 127.0.0.1 that redirects to the listener; yields its base URL."""
    handler = type("ToListener", (Redirector,), {"location": f"http://127.0.0.1:{listener.port}/stolen"})
    with LoopbackServer(handler) as server:
        yield server.url


# -- wallet push URLs: registration ---------------------------------------------------------------------


@pytest.fixture
def wallet(services, new_citizen) -> tuple[str, str, dict[str, str]]:
    """A fresh wallet with one issued certificate to offer: (citizen id, wallet id, its auth header)."""
    citizen_id, _ = new_citizen()
    services.certificates.add(Certificate(
        id=f"{citizen_id}-rrc", citizen_id=citizen_id, doc_type="resident-registration-copy", state="issued",
        applied_on=None, issued_on=korean_today() - timedelta(days=1), valid_until=korean_today() + timedelta(days=89)))
    wallet_id = "wallet-s-" + secrets.token_hex(4)
    services.wallet.wallets.register(wallet_id, citizen_id, "token-" + wallet_id)
    return citizen_id, wallet_id, {"Authorization": f"Bearer token-{wallet_id}"}


@pytest.mark.parametrize(
    "url",
    [
        "http://wallet.example/push",  # not https
        "https://127.0.0.1/push",  # loopback
        "https://[::1]/push",  # IPv6 loopback
        "https://[::ffff:127.0.0.1]/push",  # IPv4-mapped IPv6 loopback
        "https://[::ffff:7f00:1]/push",  # the same, in hex
        "https://[64:ff9b::a9fe:a9fe]/push",  # NAT64 of 169.254.169.254
        "https://0x7f000001/push",  # hex IPv4
        "https://2130706433/push",  # decimal IPv4
        "https://0177.0.0.1/push",  # octal IPv4
        "https://127.1/push",  # short IPv4
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "https://10.0.0.5/push",  # private
        "https://172.16.3.4/push",  # private
        "https://192.168.1.10/push",  # private
        "https://100.64.0.1/push",  # shared address space (CGNAT)
        "https://0.0.0.0/push",  # unspecified
        "https://224.0.0.1/push",  # multicast
        "https://240.0.0.1/push",  # reserved
        "https://[fe80::1]/push",  # IPv6 link-local
        "https://[fd00::1]/push",  # IPv6 unique local
        "https://[fe80::1%25eth0]/push",  # IPv6 with a zone
        "https://user@wallet.example/push",  # user info
        "https://wallet.example@127.0.0.1/push",  # user info hiding the real host
        "https://wallet.example:443@10.0.0.5/push",  # the same with a "port"
        "https://@wallet.example/push",  # empty user info
        "https://wallet.example\\@127.0.0.1/push",  # backslash: parsers disagree on the host
        "https://wallet.example%2F@127.0.0.1/push",  # percent-encoded slash before the @
        "https://127.0.0.1%2Ewallet.example/push",  # percent-encoded host
        "https://wallet\u3002example/push",  # ideographic full stop as a dot
        "https://wallet.example\t.127.0.0.1/push",  # tab inside the host
        "https://wallet.example\n/push",  # newline
        "https://wallet.example/push#@127.0.0.1",  # fragment
        "https://wal let.example/push",  # a host that does not parse
        "https://wallet.example:99999/push",  # port out of range
        "https:///push",  # no host
        "//wallet.example/push",  # no scheme
    ],
)
def test_push_url_that_is_not_public_https_is_refused_at_registration(client, services, wallet, url):
    _, wallet_id, auth = wallet
    response = client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": url}, headers=auth)
    assert response.status_code == 400, url
    assert response.get_json()["error"]["code"] == "invalid_push_url"
    assert services.wallet.wallets.authenticate(wallet_id, f"token-{wallet_id}").push_url is None


def test_public_https_push_url_is_accepted(client, wallet):
    _, wallet_id, auth = wallet
    for url in ("https://wallet.example/push", "https://8.8.8.8:8443/push?w=1", "https://[2606:4700::1111]/p"):
        assert client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": url}, headers=auth).status_code == 200


# -- wallet push URLs: delivery ---------------------------------------------------------------------------


def _push_outcome(services, offer_id: str, timeout_s: float = 15.0) -> dict:
    """The outbox row of `offer_id` once its first attempt is recorded (the app's own worker may make it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        services.wallet.outbox.dispatch_due()
        with services.db.read() as conn:
            row = conn.execute(select(outbox).where(outbox.c.offer_id == offer_id)).mappings().one()
        if row["last_status"] is not None or time.monotonic() > deadline:
            return dict(row)
        time.sleep(0.2)


def test_push_to_a_name_resolving_to_loopback_is_refused_without_connecting(client, services, wallet, listener):
    citizen_id, wallet_id, auth = wallet
    url = f"https://localhost:{listener.port}/push"
    # A name is not resolved when it is registered (its DNS may change); it is when the offer is pushed.
    assert client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": url}, headers=auth).status_code == 200
    offer = services.wallet.offers.create_offer(citizen_id, wallet_id, f"{citizen_id}-rrc",
                                                "resident-registration-copy", "ssrf-" + secrets.token_hex(6),
                                                push_url=url)
    row = _push_outcome(services, offer.offer_id)
    assert row["last_status"] == "OutboundRefused" and row["delivered_at"] is None
    assert not listener.connected_within(1.0)
    # Nothing is lost: the offer waits in the mailbox.
    mailbox = client.get(f"/v1/wallets/{wallet_id}/offers", headers=auth).get_json()["offers"]
    assert [m["offer_id"] for m in mailbox] == [offer.offer_id]


def test_push_url_stored_before_the_rules_is_refused_at_send_time(services, wallet, listener):
    citizen_id, wallet_id, _ = wallet
    # A row from before registration was checked (plain http to loopback), written past the endpoint.
    url = f"http://127.0.0.1:{listener.port}/push"
    services.wallet.wallets.set_push_url(wallet_id, url)
    offer = services.wallet.offers.create_offer(citizen_id, wallet_id, f"{citizen_id}-rrc",
                                                "resident-registration-copy", "ssrf-" + secrets.token_hex(6),
                                                push_url=url)
    assert _push_outcome(services, offer.offer_id)["last_status"] == "OutboundRefused"
    assert not listener.connected_within(1.0)


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["169.254.169.254"],
        ["10.1.2.3"],
        ["0.0.0.0"],
        ["93.184.215.14", "192.168.0.1"],  # one public answer does not excuse a private one
    ],
)
def test_name_resolving_to_a_non_public_address_is_refused_at_send_time(answers):
    asked: list[str] = []
    policy = OutboundPolicy(resolver=lambda host, port: asked.append(host) or answers)
    with pytest.raises(OutboundRefused):
        policy.post_json("https://wallet.example/push", {"offer": 1})
    assert asked == ["wallet.example"]  # refused after resolving, before connecting


def _tls_server(names: list[str], tmp_path: Path) -> tuple[LoopbackServer, str, list]:
    """An https server on 127.0.0.1 with a certificate for `names`; returns (server, CA file, SNI names seen)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    seen: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(("host", self.headers["Host"], json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda _sock, name, _ctx: seen.append(("sni", name))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return LoopbackServer(server), str(cert_file), seen


def test_dns_rebinding_cannot_move_the_connection_after_the_check(tmp_path):
    """How the pinning works with TLS: the name is resolved once, by the check, and the connection goes to
    that address while SNI, certificate verification and the Host header use the name. The resolver here
    would answer differently the second time (a rebinding attacker's DNS) and "wallet.test" is in no real
    DNS, so the request can only arrive if urllib3 connected to the checked address without a lookup of its
    own. A certificate for another name is still refused: pinning did not turn verification off. The server
    can only be on loopback, hence the tests-only switch."""
    server, ca_file, seen = _tls_server(["wallet.test"], tmp_path)
    port = server.port
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if len(asked) == 1 else ["10.9.9.9"]

    try:
        pinned = OutboundPolicy(allow_loopback_http=True, ca_bundle=ca_file, resolver=rebinding)
        assert pinned.post_json(f"https://wallet.test:{port}/push", {"n": 1}) == 200
        assert asked == ["wallet.test"]
        assert ("sni", "wallet.test") in seen and ("host", f"wallet.test:{port}", {"n": 1}) in seen
        impostor = OutboundPolicy(allow_loopback_http=True, ca_bundle=ca_file, resolver=lambda h, p: ["127.0.0.1"])
        with pytest.raises(requests.exceptions.SSLError):
            impostor.post_json(f"https://impostor.test:{port}/push", {"n": 2})
        assert not any(entry[0] == "host" and entry[2] == {"n": 2} for entry in seen)
    finally:
        server.close()


def test_redirect_from_an_allowed_target_is_not_followed(redirector, listener):
    # The first hop must answer for there to be a redirect at all, and a test's server can only be on
    # loopback over http: hence the tests-only switch. The redirect target is what must see nothing.
    assert LOOPBACK_FIRST_HOP.post_json(f"{redirector}/push", {"offer": 1}) == 302
    with pytest.raises(requests.HTTPError):
        LOOPBACK_FIRST_HOP.get(f"{redirector}/echo.api/cert.pem", max_bytes=1024)
    fetcher = HttpCertificateFetcher(LOOPBACK_FIRST_HOP, timeout_s=2, allowed_hosts=["127.0.0.1"])
    with pytest.raises(AlexaVerificationError):
        fetcher(f"{redirector}/echo.api/cert.pem")
    assert not listener.connected_within(1.0)


def test_loopback_switch_is_off_by_default_and_opens_loopback_only(caplog):
    assert OutboundPolicy.from_settings(Settings.from_env({})).allow_loopback_http is False
    caplog.set_level("WARNING")
    switched = OutboundPolicy.from_settings(Settings.from_env({"MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP": "1"}))
    assert switched.allow_loopback_http and any("tests only" in r.getMessage() for r in caplog.records)
    for url in ("http://10.0.0.5/push", "https://169.254.169.254/", "http://localhost:8080/", "http://wallet.example/"):
        with pytest.raises(OutboundRefused):
            switched.check_url(url)
    with pytest.raises(OutboundRefused):
        OutboundPolicy(allow_loopback_http=True, resolver=lambda h, p: ["10.0.0.5"]).post_json("https://a.test/", {})


# -- Kakao callback URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com\\@kakao.com/",
        "https://kakao.com.evil.com/",
        "https://evil.com#@kakao.com",
        "https://kakao.com@evil.com/",
        "https://kakao.com:443@evil.com/",
        "https://evil.com%2F@kakao.com/",
        "https://evil.com%23.kakao.com/",
        "https://evil.com\t.kakao.com/",
        "https://evil.com\n.kakao.com/",
        "https://evil.com\u3002kakao.com/",  # requests' IDNA would read this as evil.com.kakao.com
        "https://evilkakao.com/",
        "http://bot-api.kakao.com/v1/callback/x",  # not https
        "https://127.0.0.1/",
        "https://[::1]/",
        " https://evil.com/ https://kakao.com/",
    ],
)
def test_kakao_callback_url_confusions_are_refused(url):
    assert CallbackPolicy(["kakao.com"]).allows(url) is False


def test_kakao_callback_to_an_allowed_name_resolving_to_loopback_is_never_connected(app, client, listener,
                                                                                       monkeypatch):
    """The allowed host list is not enough: an allowed name whose address is private is refused at send time
    (here "localhost" stands in for a kakao.com name that an attacker made resolve to loopback)."""
    current: KakaoChannel = app.extensions["minwon_kakao"]
    looked_up = threading.Event()

    def system_resolver(host: str, port: int) -> list[str]:  # the production resolver, observed
        looked_up.set()
        return resolve_host(host, port)

    production = OutboundPolicy(resolver=system_resolver)
    worker = CallbackWorker(workers=2, outbound=production)

    def slow(turn):
        time.sleep(0.6)
        return current.converse(turn)

    token = "ssrf-kakao-" + secrets.token_hex(6)
    channel = KakaoChannel(token=token, token_header="X-Skill-Token", budget_s=0.1,
                           callbacks=CallbackPolicy(["localhost"], production), worker=worker, converse=slow)
    monkeypatch.setitem(app.extensions, "minwon_kakao", channel)
    payload = load_fixture("kakao", "skill_request_keyword_search.json")
    payload["userRequest"].update(utterance="도움말", callbackUrl=f"https://localhost:{listener.port}/v1/callback/x")
    payload["userRequest"]["user"]["id"] = "kakao-ssrf-" + secrets.token_hex(4)
    try:
        response = client.post("/kakao", json=payload, headers={"X-Skill-Token": token})
        assert response.status_code == 200 and response.get_json()["useCallback"] is True
        assert looked_up.wait(10)  # the turn finished and its one callback attempt resolved the name …
        assert not listener.connected_within(1.0)  # … and was refused before connecting
    finally:
        worker.shutdown()


# -- Alexa certificate URLs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> SigningCA:
    return SigningCA.create()


@pytest.fixture
def alexa(app, ca, monkeypatch) -> RecordingFetcher:
    """The app's Alexa endpoint verifying against the test CA; every certificate fetch is counted."""
    fetcher = RecordingFetcher(ca.chain_pem())
    current: AlexaChannel = app.extensions["minwon_alexa"]
    verifier = AlexaRequestVerifier(SKILL_ID, trust_roots=[ca.root], fetch_certificate=fetcher)
    monkeypatch.setitem(app.extensions, "minwon_alexa", AlexaChannel(True, verifier, current.catalog))
    return fetcher


def _launch() -> dict:
    return load_fixture("alexa", "intent_request_launch.json")


@pytest.mark.parametrize(
    ("body_args", "code"),
    [
        ({"skill_id": "amzn1.ask.skill.someone-else"}, "wrong_application"),
        ({"skill_id": ""}, "wrong_application"),
        # Offsets from the time the test runs (a time taken at collection is minutes old by then).
        ({"timestamp": -timedelta(hours=1)}, "stale_request"),
        ({"timestamp": timedelta(minutes=10)}, "stale_request"),
    ],
)
def test_alexa_request_for_another_skill_or_stale_never_fetches_the_certificate(client, ca, alexa, body_args, code):
    if "timestamp" in body_args:
        body_args = {"timestamp": datetime.now(UTC) + body_args["timestamp"]}
    body = alexa_body(_launch(), **body_args)
    # The attacker's certificate URL is well-formed: only the cheap checks stand between it and a fetch.
    response = client.post("/alexa", data=body, headers=ca.signed_headers(body), content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert alexa.urls == []


def test_alexa_request_that_passes_the_cheap_checks_fetches_once(client, ca, alexa):
    body = alexa_body(_launch())
    response = client.post("/alexa", data=body, headers=ca.signed_headers(body), content_type="application/json")
    assert response.status_code == 200
    assert alexa.urls == [CERT_URL]


@pytest.mark.parametrize(
    "url",
    [
        CERT_URL + "?x=1",
        CERT_URL + "?",
        CERT_URL + "#frag",
        CERT_URL.replace(".pem", ".pem%3Fx=1"),  # a query once decoded
        CERT_URL.replace(".pem", ".pem%23x"),
        "https://s3.amazonaws.com\\@evil.example/echo.api/echo-api-cert.pem",
        "https://evil.example\\@s3.amazonaws.com/echo.api/echo-api-cert.pem",
        "https://bucket.s3.amazonaws.com/echo.api/echo-api-cert.pem",  # a subdomain is not the host
        "https://s3.amazonaws.com%2Eevil.example/echo.api/echo-api-cert.pem",
        "https://s3.amazonaws.com\t/echo.api/echo-api-cert.pem",
    ],
)
def test_alexa_certificate_url_with_query_fragment_or_host_trick_is_refused_unfetched(client, ca, alexa, url):
    with pytest.raises(AlexaVerificationError) as caught:
        normalise_cert_chain_url(url)
    assert caught.value.code == "bad_cert_url"
    body = alexa_body(_launch())
    response = client.post("/alexa", data=body, headers=ca.signed_headers(body, cert_url=url),
                           content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_cert_url"
    assert alexa.urls == []


def test_alexa_certificate_is_fetched_from_the_allowed_host_only():
    asked: list[str] = []
    fetcher = HttpCertificateFetcher(OutboundPolicy(resolver=lambda host, port: asked.append(host) or ["127.0.0.1"]))
    for url in ("https://evil.example/echo.api/cert.pem", "https://s3.amazonaws.com/echo.api/cert.pem"):
        with pytest.raises(AlexaVerificationError) as caught:
            fetcher(url)
        assert caught.value.code == "cert_unavailable"
    assert asked == ["s3.amazonaws.com"]  # evil.example was refused unresolved; s3's loopback answer was refused


def test_check_public_https_url_returns_what_is_sent():
    target = check_public_https_url("HTTPS://Bot-API.Kakao.COM.:443/a/../cb?x=1", ["kakao.com"])
    assert target.url == "https://bot-api.kakao.com/cb?x=1"
