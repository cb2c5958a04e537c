"""Verify that a request really comes from Alexa, as Amazon requires of self-hosted custom skills.

A request is accepted only when all of these hold, checked in this order so that the one network
request (fetching the certificate chain) is made only for a request that could be ours:

1. the ``SignatureCertChainUrl`` and ``Signature-256`` headers are present;
2. the certificate URL is ``https://s3.amazonaws.com[:443]/echo.api/...`` (host case-insensitive,
   path compared after normalising ``.``/``..`` segments, case-sensitive), without query or fragment;
3. ``request.timestamp`` is within 150 seconds of now;
4. the application id in the body is this skill's id;
5. the certificate chain behind that URL (fetched through ``outbound.py``: public address, no
   redirects) leads to a trusted root, every certificate in it is within its validity period, and the
   signing certificate's SAN contains ``echo-api.amazon.com``;
6. ``Signature-256`` is a valid RSA PKCS#1 v1.5 / SHA-256 signature of the raw body by that certificate.

Checks 3 and 4 read the body before its signature is checked, only to refuse early: they cost nothing,
and without them anybody could make the service fetch a URL by sending a request with any skill id. The
envelope is returned only after check 6, which covers exactly the bytes that were parsed.

Any failure raises :class:`AlexaVerificationError` (HTTP 400). The trust store, the certificate
fetcher and the clock are injectable so that tests can sign requests with their own CA: Amazon's CA
will never sign a test request.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import posixpath
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from outbound import OutboundPolicy, OutboundRefused, ResponseTooLarge, check_public_https_url

log = logging.getLogger(__name__)

CERT_URL_HOST = "s3.amazonaws.com"
CERT_URL_PATH_PREFIX = "/echo.api/"
CERT_SAN = "echo-api.amazon.com"
TIMESTAMP_TOLERANCE_S = 150
# A PEM chain of three certificates is ~6 KB; anything far larger is not an Alexa chain.
MAX_CHAIN_BYTES = 64 * 1024
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


class AlexaVerificationError(Exception):
    """The request failed one of Amazon's checks; the channel answers HTTP 400 and runs nothing."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CertificateFetcher(Protocol):
    def __call__(self, url: str) -> bytes:
        """The PEM bytes behind a (validated) certificate chain URL."""
        ...


def normalise_cert_chain_url(url: str) -> str:
    """Check a ``SignatureCertChainUrl`` against Amazon's rules and return it normalised.

    Raises AlexaVerificationError(``bad_cert_url``) when the scheme, host, port, path, query or fragment is
    not allowed. The URL is taken apart by ``outbound.py``'s parser, the one the fetch uses.
    """
    url = url.strip()
    if "?" in url or "#" in url:
        # Amazon's URL has neither; a query would reach the host as something the path rules never saw.
        raise AlexaVerificationError("bad_cert_url", "The certificate URL must not carry a query or fragment.")
    try:
        target = check_public_https_url(url, allowed_hosts=[CERT_URL_HOST])
    except OutboundRefused as exc:
        raise AlexaVerificationError("bad_cert_url", f"The certificate URL is not allowed: {exc.reason}.") from exc
    if target.host != CERT_URL_HOST:  # exactly this host: the allowed-host rule would also let subdomains in
        raise AlexaVerificationError("bad_cert_url", "The certificate URL must be on s3.amazonaws.com.")
    if target.port != 443:
        raise AlexaVerificationError("bad_cert_url", "The certificate URL must use port 443.")
    # Percent-decoding first means "%2e%2e/" cannot smuggle a traversal past the normalisation.
    raw_path = unquote(target.path)
    if any(ch in raw_path for ch in "?#\\") or not raw_path.isprintable() or " " in raw_path:
        # "%3F" would come back as a real query once the decoded path is put into the URL that is fetched.
        raise AlexaVerificationError("bad_cert_url", "The certificate URL path holds an encoded character it may not.")
    path = posixpath.normpath(raw_path) if raw_path else "/"
    if raw_path.endswith("/") and not path.endswith("/"):
        path += "/"
    # normpath keeps a leading "//"; Amazon's path is absolute with exactly one slash.
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if not path.startswith(CERT_URL_PATH_PREFIX):
        raise AlexaVerificationError("bad_cert_url", "The certificate URL path must start with /echo.api/.")
    return f"https://{CERT_URL_HOST}{path}"


class HttpCertificateFetcher:
    """Downloads a certificate chain through ``outbound.py`` (allowed host only, its address checked and
    pinned, no redirects, short timeout, bounded size)."""

    def __init__(
        self,
        outbound: OutboundPolicy | None = None,
        timeout_s: float = 3.0,
        allowed_hosts: Sequence[str] = (CERT_URL_HOST,),
    ) -> None:
        self.outbound = outbound or OutboundPolicy()
        self.timeout_s = timeout_s
        self.allowed_hosts = tuple(allowed_hosts)

    def __call__(self, url: str) -> bytes:
        try:
            return self.outbound.get(
                url, max_bytes=MAX_CHAIN_BYTES, allowed_hosts=self.allowed_hosts, timeout_s=self.timeout_s
            )
        except ResponseTooLarge as exc:
            raise AlexaVerificationError("cert_unavailable", "The certificate chain is too large.") from exc
        except requests.RequestException as exc:
            raise AlexaVerificationError("cert_unavailable", "The certificate chain could not be downloaded.") from exc


class CachedCertificateFetcher:
    """Keeps downloaded chains in memory, so one Alexa certificate is fetched once per process and TTL.

    The cache holds bytes only: validity dates and the chain are checked again on every request, so a
    chain that expires while cached is still refused.
    """

    def __init__(
        self,
        fetch: CertificateFetcher,
        ttl_s: float = 3600.0,
        max_entries: int = 16,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(url)
            if entry and now - entry[0] < self._ttl_s:
                self._entries.move_to_end(url)
                return entry[1]
        pem = self._fetch(url)  # outside the lock: a slow download must not block cached lookups
        with self._lock:
            self._entries[url] = (now, pem)
            self._entries.move_to_end(url)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return pem


def load_trust_roots(path: str | Path | None = None) -> list[x509.Certificate]:
    """Root certificates from a PEM bundle; by default the CA bundle that ``requests`` itself trusts.

    Certificates are read one by one, so that one malformed root in a system bundle (some carry a
    non-positive serial number, which newer ``cryptography`` refuses) costs that root only.
    """
    bundle = Path(path) if path else Path(requests.utils.DEFAULT_CA_BUNDLE_PATH)
    roots = []
    for block in bundle.read_bytes().split(_PEM_END):
        if _PEM_BEGIN not in block:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                roots.append(x509.load_pem_x509_certificate(block + _PEM_END))
            except ValueError:
                log.warning("skipped an unreadable certificate in the trust store")
    return roots


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AlexaRequestVerifier:
    def __init__(
        self,
        skill_id: str,
        trust_roots: Sequence[x509.Certificate] | None = None,
        fetch_certificate: CertificateFetcher | None = None,
        clock: Callable[[], datetime] = _utcnow,
        tolerance_s: int = TIMESTAMP_TOLERANCE_S,
    ) -> None:
        self.skill_id = skill_id
        self._trust_roots = list(trust_roots) if trust_roots is not None else None
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._fetch = fetch_certificate or CachedCertificateFetcher(HttpCertificateFetcher())
        self._clock = clock
        self._tolerance = timedelta(seconds=tolerance_s)

    def _trust_store(self) -> Store:
        # Loaded on first use: parsing ~150 roots costs a few ms that a process without Alexa never pays.
        with self._store_lock:
            if self._store is None:
                roots = self._trust_roots if self._trust_roots is not None else load_trust_roots()
                self._store = Store(roots)
            return self._store

    def verify(self, headers: Mapping[str, str], body: bytes) -> dict:
        """Run every check on one request and return its parsed JSON envelope."""
        cert_url = _header(headers, "SignatureCertChainUrl")
        signature_b64 = _header(headers, "Signature-256")
        if not cert_url:
            raise AlexaVerificationError("signature_missing", "The SignatureCertChainUrl header is missing.")
        if not signature_b64:
            raise AlexaVerificationError("signature_missing", "The Signature-256 header is missing.")
        url = normalise_cert_chain_url(cert_url)
        # The cheap checks first, on the body as sent: nothing is fetched for a stale or foreign request.
        envelope = _parse_envelope(body)
        self._check_timestamp(envelope)
        self._check_application_id(envelope)
        leaf = self._verified_leaf(url)
        self._check_signature(leaf, signature_b64, body)
        return envelope  # parsed from exactly the bytes the signature covers

    def _verified_leaf(self, url: str) -> x509.Certificate:
        pem = self._fetch(url)
        try:
            chain = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise AlexaVerificationError("bad_certificate", "The certificate chain is not valid PEM.") from exc
        leaf, intermediates = chain[0], chain[1:]
        now = self._clock()
        for cert in chain:
            if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
                raise AlexaVerificationError("certificate_expired", "The signing certificate is not currently valid.")
        try:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns_names = {name.lower() for name in names.get_values_for_type(x509.DNSName)}
        except x509.ExtensionNotFound:
            dns_names = set()
        if CERT_SAN not in dns_names:
            raise AlexaVerificationError(
                "bad_certificate_san", "The signing certificate is not issued to echo-api.amazon.com."
            )
        if not isinstance(leaf.public_key(), rsa.RSAPublicKey):
            raise AlexaVerificationError("bad_certificate", "The signing certificate does not hold an RSA key.")
        verifier = PolicyBuilder().store(self._trust_store()).time(now).build_server_verifier(x509.DNSName(CERT_SAN))
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            log.warning("alexa certificate chain rejected", extra={"reason": str(exc)[:200]})
            raise AlexaVerificationError("untrusted_certificate", "The certificate chain is not trusted.") from exc
        return leaf

    @staticmethod
    def _check_signature(leaf: x509.Certificate, signature_b64: str, body: bytes) -> None:
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AlexaVerificationError("bad_signature", "The Signature-256 header is not base64.") from exc
        public_key = leaf.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        try:
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise AlexaVerificationError("bad_signature", "The request signature does not match its body.") from exc

    def _check_timestamp(self, envelope: dict) -> None:
        raw = (envelope.get("request") or {}).get("timestamp")
        if not isinstance(raw, str):
            raise AlexaVerificationError("stale_request", "The request has no timestamp.")
        try:
            stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AlexaVerificationError("stale_request", "The request timestamp is not ISO 8601.") from exc
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        if abs(self._clock() - stamp) > self._tolerance:
            raise AlexaVerificationError("stale_request", "The request timestamp is outside the 150 second window.")

    def _check_application_id(self, envelope: dict) -> None:
        application_id = request_application_id(envelope)
        if not self.skill_id or application_id != self.skill_id:
            raise AlexaVerificationError("wrong_application", "The request is not addressed to this skill.")


def request_application_id(envelope: dict) -> str | None:
    """The skill id a request is addressed to: ``context.System`` first, ``session`` for old requests."""
    system = (envelope.get("context") or {}).get("System") or {}
    application = system.get("application") or ((envelope.get("session") or {}).get("application") or {})
    value = application.get("applicationId")
    return value if isinstance(value, str) else None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # Plain dicts in tests and tools are case-sensitive; HTTP header names are not.
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return (value or "").strip()


def _parse_envelope(body: bytes) -> dict:
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise AlexaVerificationError("bad_request", "The request body is not JSON.") from exc
    if not isinstance(envelope, dict):
        raise AlexaVerificationError("bad_request", "The request body is not a JSON object.")
    return envelope
