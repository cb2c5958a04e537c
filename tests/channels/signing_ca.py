"""A throw-away PKI that stands in for Amazon's: a root, an intermediate and a signing certificate.

Why not the real thing: Alexa signs requests with a key that only Amazon holds, chained to a public
root. Tests have to produce signed requests themselves, so they build their own CA with
``cryptography`` and hand its root to the verifier as the trust store (the verifier's trust store is
injectable for exactly this reason). Everything else — URL rules, chain building, SAN, validity,
RSA/SHA-256 signature, timestamp and application id checks — runs for real.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_URL = "https://s3.amazonaws.com/echo.api/echo-api-cert-test.pem"
SKILL_ID = "amzn1.ask.skill.00000000-1111-2222-3333-444444444444"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ca_certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, now: datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class SigningCA:
    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    intermediate: x509.Certificate
    intermediate_key: rsa.RSAPrivateKey
    leaf_key: rsa.RSAPrivateKey

    @classmethod
    def create(cls) -> SigningCA:
        now = datetime.now(UTC)
        root_key, intermediate_key = _key(), _key()
        root = _ca_certificate("Test Root CA", root_key, "Test Root CA", root_key, now)
        intermediate = _ca_certificate("Test Intermediate CA", intermediate_key, "Test Root CA", root_key, now)
        return cls(root, root_key, intermediate, intermediate_key, _key())

    def leaf(
        self,
        san: str = "echo-api.amazon.com",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        issuer_key: rsa.RSAPrivateKey | None = None,
    ) -> x509.Certificate:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(san))
            .issuer_name(self.intermediate.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.leaf_key.public_key()), critical=False)
            .sign(issuer_key or self.intermediate_key, hashes.SHA256())
        )

    def chain_pem(self, leaf: x509.Certificate | None = None) -> bytes:
        """What Amazon serves at the certificate URL: the signing certificate, then the intermediate."""
        leaf = leaf or self.leaf()
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, self.intermediate))

    def sign(self, body: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
        signature = (key or self.leaf_key).sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def signed_headers(self, body: bytes, cert_url: str = CERT_URL) -> dict[str, str]:
        return {"SignatureCertChainUrl": cert_url, "Signature-256": self.sign(body)}


def alexa_body(envelope: dict, timestamp: datetime | None = None, skill_id: str = SKILL_ID) -> bytes:
    """A fixture envelope re-addressed to the test skill and stamped now, as raw bytes to sign."""
    envelope = json.loads(json.dumps(envelope))
    stamp = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope.setdefault("request", {})["timestamp"] = stamp
    for holder in ((envelope.get("context") or {}).get("System"), envelope.get("session")):
        if isinstance(holder, dict):
            holder.setdefault("application", {})["applicationId"] = skill_id
    return json.dumps(envelope, ensure_ascii=False).encode()
