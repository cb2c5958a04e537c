"""Alexa request verification: every rule Amazon lists for self-hosted skills, each failing on its own.

Requests are signed by a test CA built in ``signing_ca.py`` (Amazon's CA cannot sign test requests);
the verifier gets that CA's root as its trust store and an in-memory certificate fetcher.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from channels.alexa.verification import (
    AlexaRequestVerifier,
    AlexaVerificationError,
    CachedCertificateFetcher,
    HttpCertificateFetcher,
    load_trust_roots,
    normalise_cert_chain_url,
)
from outbound import OutboundPolicy
from tests.channels.signing_ca import CERT_URL, SKILL_ID, SigningCA, alexa_body
from tests.loopback import LoopbackServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speakers" / "alexa"


@pytest.fixture(scope="module")
def ca() -> SigningCA:
    return SigningCA.create()


@pytest.fixture(scope="module")
def launch() -> dict:
    return json.loads((FIXTURES / "intent_request_launch.json").read_text())


class RecordingFetcher:
    """Serves one PEM chain for any URL and records the URLs asked for."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


def make_verifier(ca: SigningCA, pem: bytes | None = None, **kw) -> tuple[AlexaRequestVerifier, RecordingFetcher]:
    fetcher = RecordingFetcher(pem if pem is not None else ca.chain_pem())
    return AlexaRequestVerifier(SKILL_ID, trust_roots=[ca.root], fetch_certificate=fetcher, **kw), fetcher


def expect_rejection(verifier: AlexaRequestVerifier, headers: dict, body: bytes, code: str) -> None:
    with pytest.raises(AlexaVerificationError) as caught:
        verifier.verify(headers, body)
    assert caught.value.code == code
    assert caught.value.status == 400


def test_correctly_signed_request_passes_and_returns_the_envelope(ca, launch):
    verifier, fetcher = make_verifier(ca)
    body = alexa_body(launch)
    envelope = verifier.verify(ca.signed_headers(body), body)
    assert envelope["request"]["type"] == "LaunchRequest"
    assert envelope["context"]["System"]["application"]["applicationId"] == SKILL_ID
    assert fetcher.urls == [CERT_URL]


def test_header_names_are_case_insensitive(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch)
    headers = {k.lower(): v for k, v in ca.signed_headers(body).items()}
    assert verifier.verify(headers, body)["request"]["type"] == "LaunchRequest"


@pytest.mark.parametrize("missing", ["SignatureCertChainUrl", "Signature-256"])
def test_missing_signature_headers_are_rejected(ca, launch, missing):
    verifier, fetcher = make_verifier(ca)
    body = alexa_body(launch)
    headers = ca.signed_headers(body)
    del headers[missing]
    expect_rejection(verifier, headers, body, "signature_missing")
    assert fetcher.urls == []  # nothing fetched for an unsigned request


def test_legacy_sha1_signature_header_alone_is_not_enough(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch)
    headers = ca.signed_headers(body)
    headers["Signature"] = headers.pop("Signature-256")
    expect_rejection(verifier, headers, body, "signature_missing")


@pytest.mark.parametrize(
    "url",
    [
        "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",  # not https
        "https://notamazon.com/echo.api/echo-api-cert.pem",  # wrong host
        "https://s3.amazonaws.com.evil.example/echo.api/echo-api-cert.pem",  # host suffix trick
        "https://evil.example@s3.amazonaws.com/echo.api/echo-api-cert.pem",  # credentials in URL
        "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",  # path is case-sensitive
        "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem",  # wrong path
        "https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem",  # traversal out
        "https://s3.amazonaws.com/echo.api/%2e%2e/invalid.path/echo-api-cert.pem",  # encoded traversal
        "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",  # wrong port
        "https://s3.amazonaws.com:notaport/echo.api/echo-api-cert.pem",  # malformed port
    ],
)
def test_bad_certificate_urls_are_rejected_without_fetching(ca, launch, url):
    verifier, fetcher = make_verifier(ca)
    body = alexa_body(launch)
    expect_rejection(verifier, ca.signed_headers(body, cert_url=url), body, "bad_cert_url")
    assert fetcher.urls == []


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        (
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        ),
        (
            "https://s3.amazonaws.com:443/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        ),
        (
            "https://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
            "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
        ),
        (
            "HTTPS://s3.amazonaws.com/echo.api/../echo.api/cert.pem",
            "https://s3.amazonaws.com/echo.api/cert.pem",
        ),
    ],
)
def test_allowed_certificate_urls_are_normalised(url, normalised):
    assert normalise_cert_chain_url(url) == normalised


def test_the_normalised_url_is_what_gets_fetched(ca, launch):
    verifier, fetcher = make_verifier(ca)
    body = alexa_body(launch)
    url = "https://S3.amazonaws.com:443/echo.api/../echo.api/echo-api-cert-test.pem"
    verifier.verify(ca.signed_headers(body, cert_url=url), body)
    assert fetcher.urls == [CERT_URL]


def test_wrong_subject_alternative_name_is_rejected(ca, launch):
    verifier, _ = make_verifier(ca, pem=ca.chain_pem(ca.leaf(san="echo-api.example.com")))
    body = alexa_body(launch)
    expect_rejection(verifier, ca.signed_headers(body), body, "bad_certificate_san")


def test_expired_certificate_is_rejected(ca, launch):
    now = datetime.now(UTC)
    expired = ca.leaf(not_before=now - timedelta(days=400), not_after=now - timedelta(days=1))
    verifier, _ = make_verifier(ca, pem=ca.chain_pem(expired))
    body = alexa_body(launch)
    expect_rejection(verifier, ca.signed_headers(body), body, "certificate_expired")


def test_not_yet_valid_certificate_is_rejected(ca, launch):
    now = datetime.now(UTC)
    future = ca.leaf(not_before=now + timedelta(days=1), not_after=now + timedelta(days=90))
    verifier, _ = make_verifier(ca, pem=ca.chain_pem(future))
    body = alexa_body(launch)
    expect_rejection(verifier, ca.signed_headers(body), body, "certificate_expired")


def test_chain_to_an_untrusted_root_is_rejected(ca, launch):
    stranger = SigningCA.create()  # a perfectly formed chain, but its root is not in the trust store
    verifier, _ = make_verifier(ca, pem=stranger.chain_pem())
    body = alexa_body(launch)
    headers = {"SignatureCertChainUrl": CERT_URL, "Signature-256": stranger.sign(body)}
    expect_rejection(verifier, headers, body, "untrusted_certificate")


def test_leaf_not_signed_by_the_presented_intermediate_is_rejected(ca, launch):
    forged = ca.leaf(issuer_key=ca.leaf_key)  # claims the intermediate as issuer, self-signed in fact
    verifier, _ = make_verifier(ca, pem=ca.chain_pem(forged))
    body = alexa_body(launch)
    expect_rejection(verifier, ca.signed_headers(body), body, "untrusted_certificate")


def test_garbage_at_the_certificate_url_is_rejected(ca, launch):
    verifier, _ = make_verifier(ca, pem=b"<html>not a certificate</html>")
    body = alexa_body(launch)
    expect_rejection(verifier, ca.signed_headers(body), body, "bad_certificate")


def test_signature_over_a_different_body_is_rejected(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch)
    headers = ca.signed_headers(body)
    tampered = body.replace(b"LaunchRequest", b"IntentRequest")
    expect_rejection(verifier, headers, tampered, "bad_signature")


def test_signature_by_another_key_is_rejected(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch)
    headers = {"SignatureCertChainUrl": CERT_URL, "Signature-256": ca.sign(body, key=ca.root_key)}
    expect_rejection(verifier, headers, body, "bad_signature")


def test_signature_that_is_not_base64_is_rejected(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch)
    headers = {"SignatureCertChainUrl": CERT_URL, "Signature-256": "not base64 at all!"}
    expect_rejection(verifier, headers, body, "bad_signature")


@pytest.mark.parametrize("offset_s", [-151, 151, -3600])
def test_timestamps_outside_150_seconds_are_rejected(ca, launch, offset_s):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch, timestamp=datetime.now(UTC) + timedelta(seconds=offset_s))
    expect_rejection(verifier, ca.signed_headers(body), body, "stale_request")


def test_timestamp_inside_the_window_passes(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch, timestamp=datetime.now(UTC) - timedelta(seconds=140))
    assert verifier.verify(ca.signed_headers(body), body)["request"]["type"] == "LaunchRequest"


def test_the_original_2015_fixture_is_stale(ca):
    """The shared fixtures are years old: signed as they are, verification must still refuse them."""
    verifier, _ = make_verifier(ca)
    body = (FIXTURES / "intent_request_launch.json").read_bytes()
    expect_rejection(verifier, ca.signed_headers(body), body, "stale_request")


def test_wrong_application_id_is_rejected(ca, launch):
    verifier, _ = make_verifier(ca)
    body = alexa_body(launch, skill_id="amzn1.ask.skill.someone-else")
    expect_rejection(verifier, ca.signed_headers(body), body, "wrong_application")


def test_unconfigured_skill_id_accepts_nothing(ca, launch):
    fetcher = RecordingFetcher(ca.chain_pem())
    verifier = AlexaRequestVerifier("", trust_roots=[ca.root], fetch_certificate=fetcher)
    body = alexa_body(launch, skill_id="")
    expect_rejection(verifier, ca.signed_headers(body), body, "wrong_application")


def test_request_without_session_uses_the_context_application_id(ca):
    envelope = json.loads((FIXTURES / "System.ExceptionEncountered.json").read_text())
    verifier, _ = make_verifier(ca)
    body = alexa_body(envelope)
    assert "session" not in json.loads(body)
    assert verifier.verify(ca.signed_headers(body), body)["request"]["type"] == "System.ExceptionEncountered"


def test_signed_body_that_is_not_json_is_rejected(ca):
    verifier, _ = make_verifier(ca)
    body = b"\xff\xfe not json"
    expect_rejection(verifier, ca.signed_headers(body), body, "bad_request")


def test_cached_fetcher_downloads_once_until_the_ttl_passes():
    calls: list[str] = []
    clock = [1000.0]

    def fetch(url: str) -> bytes:
        calls.append(url)
        return f"pem #{len(calls)}".encode()

    cached = CachedCertificateFetcher(fetch, ttl_s=60, monotonic=lambda: clock[0])
    assert cached(CERT_URL) == b"pem #1"
    assert cached(CERT_URL) == b"pem #1"
    clock[0] += 61
    assert cached(CERT_URL) == b"pem #2"
    assert calls == [CERT_URL, CERT_URL]


def test_cached_fetcher_evicts_the_least_recently_used_url():
    calls: list[str] = []
    cached = CachedCertificateFetcher(lambda url: calls.append(url) or url.encode(), max_entries=2)
    for url in ("a", "b", "a", "c", "a", "b"):
        cached(url)
    assert calls == ["a", "b", "c", "b"]


def test_expired_certificate_is_refused_even_when_cached(ca, launch):
    """A chain cached while valid must be refused once the clock passes its notAfter."""
    now = datetime.now(UTC)
    short_lived = ca.leaf(not_before=now - timedelta(days=1), not_after=now + timedelta(minutes=5))
    clock = [now]
    fetcher = CachedCertificateFetcher(RecordingFetcher(ca.chain_pem(short_lived)))
    verifier = AlexaRequestVerifier(SKILL_ID, trust_roots=[ca.root], fetch_certificate=fetcher, clock=lambda: clock[0])
    body = alexa_body(launch, timestamp=now)
    verifier.verify(ca.signed_headers(body), body)
    clock[0] = now + timedelta(minutes=10)
    later = alexa_body(launch, timestamp=clock[0])
    expect_rejection(verifier, ca.signed_headers(later), later, "certificate_expired")


class _ChainHandler(BaseHTTPRequestHandler):
    pem = b""
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).hits += 1
        if self.path != "/echo.api/echo-api-cert-test.pem":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-pem-file")
        self.send_header("Content-Length", str(len(self.pem)))
        self.end_headers()
        self.wfile.write(self.pem)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def chain_server(ca):
    handler = type("Handler", (_ChainHandler,), {"pem": ca.chain_pem(), "hits": 0})
    with LoopbackServer(handler) as server:
        yield server.url, handler


# The chain server is plain http on 127.0.0.1, which the outbound policy refuses in production: these two
# tests are about downloading and caching, so they use the tests-only switch (MINWON_OUTBOUND_ALLOW_LOOPBACK_HTTP)
# and allow the loopback host in place of s3.amazonaws.com.
LOCAL_CHAIN_SERVER = {"outbound": OutboundPolicy(allow_loopback_http=True), "allowed_hosts": ["127.0.0.1"]}


def test_http_fetcher_downloads_over_real_http_and_the_cache_keeps_it(chain_server):
    base, handler = chain_server
    cached = CachedCertificateFetcher(HttpCertificateFetcher(timeout_s=2, **LOCAL_CHAIN_SERVER))
    url = f"{base}/echo.api/echo-api-cert-test.pem"
    first = cached(url)
    assert first == handler.pem and first.startswith(b"-----BEGIN CERTIFICATE-----")
    assert cached(url) == first
    assert handler.hits == 1


def test_http_fetcher_turns_http_errors_into_verification_errors(chain_server):
    base, _ = chain_server
    with pytest.raises(AlexaVerificationError) as caught:
        HttpCertificateFetcher(timeout_s=2, **LOCAL_CHAIN_SERVER)(f"{base}/echo.api/missing.pem")
    assert caught.value.code == "cert_unavailable"


def test_default_trust_store_is_the_requests_ca_bundle():
    roots = load_trust_roots()
    assert len(roots) > 50
    assert all(r.subject == r.issuer for r in roots[:20])  # roots are self-issued


def test_trust_store_skips_an_unreadable_certificate(ca, tmp_path):
    from cryptography.hazmat.primitives import serialization

    good = ca.root.public_bytes(serialization.Encoding.PEM)
    broken = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(broken + good)
    assert load_trust_roots(bundle) == [ca.root]
