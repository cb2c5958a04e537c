"""The wallet bridge over HTTP (Flask test client on the shared app): discovery, OID4VCI, status, verify, mailbox."""

from __future__ import annotations

import itertools
import json
import secrets
from datetime import timedelta

import pytest

from domain.certificates import Certificate
from domain.clock import korean_today
from domain.crypto import parse_compact
from tests.wallet_bridge.conftest import Holder, fixture_json

GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"


_ADDRESSES = itertools.count(1)


def client_addr() -> dict:
    # Token requests are counted per client address; each call is its own client, never reused in a run
    # (a random pick could land on the address the rate-limit test has just used up).
    n = next(_ADDRESSES)
    return {"REMOTE_ADDR": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}


@pytest.fixture()
def offer(services, new_citizen):
    citizen_id, _ = new_citizen()
    services.certificates.add(Certificate(
        id=f"{citizen_id}-rrc", citizen_id=citizen_id, doc_type="resident-registration-copy", state="issued",
        applied_on=None, issued_on=korean_today() - timedelta(days=1), valid_until=korean_today() + timedelta(days=89)))
    wallet_id = "wallet-t-" + secrets.token_hex(4)
    services.wallet.wallets.register(wallet_id, citizen_id, "token-" + wallet_id)
    made = services.wallet.offers.create_offer(citizen_id, wallet_id, f"{citizen_id}-rrc",
                                               "resident-registration-copy", "test-" + secrets.token_hex(6))
    return made, wallet_id


def redeem(client, made) -> str:
    grant = made.credential_offer["grants"][GRANT]
    response = client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": grant["pre-authorized_code"],
                                                   "tx_code": made.tx_code}, environ_base=client_addr())
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["access_token"]


def issue(client, services, made, holder: Holder) -> str:
    access = redeem(client, made)
    nonce = client.post("/oid4vci/nonce").get_json()["c_nonce"]
    response = client.post("/oid4vci/credential", headers={"Authorization": f"Bearer {access}"}, json={
        "credential_configuration_id": "ResidentRegistrationCopyCredential",
        "proofs": {"jwt": [holder.proof(services.wallet.config.issuer, nonce, services.wallet.clock())]}})
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["credentials"][0]["credential"]


def test_discovery_documents(client, services):
    issuer = services.wallet.config.issuer
    metadata = client.get("/.well-known/openid-credential-issuer").get_json()
    assert metadata["credential_issuer"] == issuer
    assert metadata["credential_configurations_supported"]["ResidentRegistrationCopyCredential"]["format"] == "vc+jwt"
    server = client.get("/.well-known/oauth-authorization-server").get_json()
    assert server["token_endpoint"] == f"{issuer}/oid4vci/token"
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.mimetype == "application/jwk-set+json"
    keys = json.loads(jwks.data)["keys"]
    assert keys and all("d" not in k and k["alg"] == "ES256" for k in keys)
    context = client.get("/contexts/minwon-v1.jsonld")
    assert context.mimetype == "application/ld+json"
    assert "ResidentRegistrationCopyCredential" in json.loads(context.data)["@context"]


def test_nonce_endpoint(client):
    first, second = client.post("/oid4vci/nonce"), client.post("/oid4vci/nonce")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    assert first.get_json()["c_nonce"] != second.get_json()["c_nonce"]


def test_token_endpoint_errors(client, offer):
    made, _ = offer
    code = made.credential_offer["grants"][GRANT]["pre-authorized_code"]
    env = client_addr()
    as_json = client.post("/oid4vci/token", json={"grant_type": GRANT, "pre-authorized_code": code}, environ_base=env)
    assert as_json.status_code == 400 and as_json.get_json()["error"] == "invalid_request"
    repeated = client.post("/oid4vci/token", data=f"grant_type={GRANT}&grant_type={GRANT}&pre-authorized_code={code}",
                           content_type="application/x-www-form-urlencoded", environ_base=env)
    assert repeated.get_json()["error"] == "invalid_request"
    missing = client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": code}, environ_base=env)
    assert (missing.status_code, missing.get_json()["error"]) == (400, "invalid_request")
    wrong = client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": code,
                                                "tx_code": "0000000"}, environ_base=env)
    assert (wrong.status_code, wrong.get_json()["error"]) == (400, "invalid_grant")
    assert wrong.headers["Cache-Control"] == "no-store"
    assert code not in wrong.get_data(as_text=True) and made.tx_code not in wrong.get_data(as_text=True)


def test_token_endpoint_is_rate_limited(client, offer):
    env = client_addr()
    for _ in range(10):
        client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": "guess", "tx_code": "1"},
                    environ_base=env)
    limited = client.post("/oid4vci/token", data={"grant_type": GRANT, "pre-authorized_code": "guess"},
                          environ_base=env)
    assert limited.status_code == 429 and limited.get_json()["error"] == "slow_down"
    assert int(limited.headers["Retry-After"]) >= 1


def test_credential_endpoint_over_http(client, services, offer):
    made, _ = offer
    holder = Holder()
    token = issue(client, services, made, holder)
    claims = parse_compact(token).claims()
    assert claims["cnf"]["jwk"] == holder.jwk and claims["iss"] == services.wallet.config.issuer
    # The status list it names is served, signed, as application/vc+jwt.
    url = claims["credentialStatus"][0]["statusListCredential"]
    served = client.get(url.removeprefix(services.wallet.config.issuer))
    assert served.status_code == 200 and served.mimetype == "application/vc+jwt"
    assert parse_compact(served.get_data(as_text=True)).claims()["type"][-1] == "BitstringStatusListCredential"


@pytest.mark.parametrize(
    "fixture, error",
    [
        ("credential_request_configuration_id_mdoc.json", "invalid_proof"),
        ("credential_request_identifier_two_jwt_proofs.json", "invalid_proof"),
        ("credential_request_iso_mdl.json", "invalid_credential_request"),
    ],
)
def test_spec_credential_requests_over_http(client, offer, fixture, error):
    made, _ = offer
    access = redeem(client, made)
    response = client.post("/oid4vci/credential", headers={"Authorization": f"Bearer {access}"},
                           json=fixture_json(f"oid4vci/{fixture}"))
    assert (response.status_code, response.get_json()["error"]) == (400, error)


def test_credential_endpoint_without_token_or_json(client):
    no_token = client.post("/oid4vci/credential", json={"credential_configuration_id": "x", "proofs": {"jwt": ["a"]}})
    assert no_token.status_code == 401 and no_token.headers["WWW-Authenticate"].startswith("Bearer")
    as_form = client.post("/oid4vci/credential", data={"a": "b"})
    assert as_form.get_json()["error"] == "invalid_credential_request"
    broken = client.post("/oid4vci/credential", data="{not json", content_type="application/json")
    assert broken.get_json()["error"] == "invalid_credential_request"


def test_verify_endpoint(client, services, offer):
    made, _ = offer
    holder = Holder()
    token = issue(client, services, made, holder)
    valid = client.post("/v1/credentials/verify", json={"credential": token, "holder_jwk": holder.jwk}).get_json()
    assert valid["valid"] is True and valid["failed_check"] is None
    assert valid["status"] == {"revocation": 0, "suspension": 0}
    services.wallet.status_control.revoke(parse_compact(token).claims()["id"])
    revoked = client.post("/v1/credentials/verify", json={"credential": token}).get_json()
    assert revoked["valid"] is False and revoked["failed_check"] == "status"
    garbage = client.post("/v1/credentials/verify", json={"credential": "not.a.jwt"}).get_json()
    assert garbage["valid"] is False and garbage["failed_check"] == "format"
    other_holder = client.post("/v1/credentials/verify", json={"credential": token, "holder_jwk": Holder().jwk})
    assert other_holder.get_json()["failed_check"] in ("holder_binding", "status")


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({}, 400, "missing_credential"),
        ({"credential": 5}, 400, "missing_credential"),
        ({"credential": "a.b.c", "holder_jwk": "x"}, 400, "invalid_holder_jwk"),
    ],
)
def test_verify_endpoint_bad_input(client, body, status, code):
    response = client.post("/v1/credentials/verify", json=body)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)


def test_verify_endpoint_rejects_an_unusable_holder_key(client, services, offer):
    made, _ = offer
    token = issue(client, services, made, Holder())
    response = client.post("/v1/credentials/verify", json={"credential": token, "holder_jwk": {"kty": "EC"}})
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "invalid_holder_jwk")
    assert client.post("/v1/credentials/verify", data="x").status_code == 415


def test_mailbox_needs_the_wallet_token(client, offer):
    made, wallet_id = offer
    ok = client.get(f"/v1/wallets/{wallet_id}/offers", headers={"Authorization": f"Bearer token-{wallet_id}"})
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"
    assert [o["offer_id"] for o in ok.get_json()["offers"]] == [made.offer_id]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic token-{wallet_id}"}):
        denied = client.get(f"/v1/wallets/{wallet_id}/offers", headers=headers)
        assert denied.status_code == 401 and denied.get_json()["error"]["code"] == "invalid_token"
        assert "WWW-Authenticate" in denied.headers
    unknown = client.get("/v1/wallets/no-such-wallet/offers", headers={"Authorization": f"Bearer token-{wallet_id}"})
    assert unknown.status_code == 401  # same answer as a wrong token


def test_push_url_registration(client, services, offer):
    made, wallet_id = offer
    auth = {"Authorization": f"Bearer token-{wallet_id}"}
    # Plain http and loopback are refused too (tests/security/test_outbound.py has every address trick).
    for bad in ("ftp://x", "http://", "not a url", 5, "https://x/" + "a" * 600, "http://wallet.example/push",
                "https://127.0.0.1:9/push"):
        response = client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": bad}, headers=auth)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_push_url"
    good = "https://wallet.example/push"  # not resolved when registered: names are checked at every push
    assert client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": good}).status_code == 401
    ok = client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": good}, headers=auth)
    assert ok.status_code == 200
    assert services.wallet.wallets.authenticate(wallet_id, f"token-{wallet_id}").push_url == good
    cleared = client.put(f"/v1/wallets/{wallet_id}/push-url", json={"url": None}, headers=auth)
    assert cleared.status_code == 200
    assert services.wallet.wallets.authenticate(wallet_id, f"token-{wallet_id}").push_url is None


def test_unknown_status_list_is_404(client):
    response = client.get("/status/rev-000000000000")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "status_list_not_found"
