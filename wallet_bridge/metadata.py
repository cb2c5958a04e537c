"""Discovery documents: OID4VCI Credential Issuer metadata and RFC 8414 authorization-server metadata.

The Credential Issuer is its own authorization server (no `authorization_servers` member), so a wallet
finds the token endpoint at `/.well-known/oauth-authorization-server` under the issuer identifier.
"""

from __future__ import annotations

from typing import Any

from domain.signing_keys import SIGNING_ALG
from wallet_bridge.config import WalletConfig
from wallet_bridge.documents import DOCUMENT_TYPES, VCDM_V2_CONTEXT, context_url
from wallet_bridge.mobile_id import MOBILE_ID_CONFIGURATION, mobile_id_configuration
from wallet_bridge.offers import PRE_AUTHORIZED_GRANT
from wallet_bridge.proofs import PROOF_ALGS

CREDENTIAL_FORMAT = "vc+jwt"
TOKEN_PATH = "/oid4vci/token"
NONCE_PATH = "/oid4vci/nonce"
CREDENTIAL_PATH = "/oid4vci/credential"
JWKS_PATH = "/.well-known/jwks.json"
ISSUER_METADATA_PATH = "/.well-known/openid-credential-issuer"
AUTHORIZATION_SERVER_METADATA_PATH = "/.well-known/oauth-authorization-server"

_CLAIM_NAMES = (
    ("holderName", "성명", "Name"),
    ("documentName", "문서", "Document"),
    ("issuedOn", "발급일", "Issued on"),
    ("documentValidUntil", "유효기간", "Valid until"),
    ("documentNumber", "문서 번호", "Document number"),
    ("issuingAuthority", "발급 기관", "Issuing authority"),
)


def credential_issuer_metadata(config: WalletConfig) -> dict[str, Any]:
    configurations = {}
    for document in DOCUMENT_TYPES.values():
        configurations[document.configuration_id] = {
            "format": CREDENTIAL_FORMAT,
            "scope": document.configuration_id,
            "cryptographic_binding_methods_supported": ["jwk"],
            "credential_signing_alg_values_supported": [SIGNING_ALG],
            "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": list(PROOF_ALGS)}},
            "credential_definition": {
                "@context": [VCDM_V2_CONTEXT, context_url(config.issuer)],
                "type": ["VerifiableCredential", document.credential_type],
            },
            "credential_metadata": {
                "display": [
                    {"name": document.name_ko, "locale": "ko-KR"},
                    {"name": document.name_en, "locale": "en-US"},
                ],
                "claims": [
                    {
                        "path": ["credentialSubject", claim],
                        "display": [{"name": ko, "locale": "ko-KR"}, {"name": en, "locale": "en-US"}],
                    }
                    for claim, ko, en in _CLAIM_NAMES
                ],
            },
        }
    configurations[MOBILE_ID_CONFIGURATION] = mobile_id_configuration(config.issuer, SIGNING_ALG, list(PROOF_ALGS))
    return {
        "credential_issuer": config.issuer,
        "credential_endpoint": config.url(CREDENTIAL_PATH),
        "nonce_endpoint": config.url(NONCE_PATH),
        "display": [
            {"name": "민원 음성비서 전자증명서", "locale": "ko-KR"},
            {"name": "Minwon Voice digital certificates", "locale": "en-US"},
        ],
        "credential_configurations_supported": configurations,
    }


def authorization_server_metadata(config: WalletConfig) -> dict[str, Any]:
    return {
        "issuer": config.issuer,
        "token_endpoint": config.url(TOKEN_PATH),
        "jwks_uri": config.url(JWKS_PATH),
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        # No authorization endpoint: offers are only made by the voice assistant after a PIN step-up.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
    }
